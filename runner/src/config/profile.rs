//! `[profile.NAME]`: a named set of overrides, selected with `--profile`.
//! `unit`, `integration` and `e2e` exist without any config, as in the
//! hand-written pytest-xdist set-ups partest replaces.

use serde::Deserialize;

use super::values::{Filter, Seconds, WorkerCount};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileTable {
    pub workers: Option<WorkerCount>,
    /// Only tests matching these globs run under this profile.
    pub filter: Option<Filter>,
    pub retries: Option<u32>,
    pub timeout: Option<Seconds>,
    pub fail_fast: Option<bool>,
}

impl ProfileTable {
    /// The built-in profile of that name, if there is one.
    pub fn builtin(name: &str) -> Option<ProfileTable> {
        let workers = match name {
            "unit" => WorkerCount::Auto,
            "integration" => WorkerCount::Fixed(2.try_into().expect("nonzero")),
            "e2e" => WorkerCount::Fixed(1.try_into().expect("nonzero")),
            _ => return None,
        };
        Some(ProfileTable {
            workers: Some(workers),
            ..ProfileTable::default()
        })
    }

    /// A user's table overrides the built-in key by key.
    pub fn over(self, base: ProfileTable) -> ProfileTable {
        ProfileTable {
            workers: self.workers.or(base.workers),
            filter: self.filter.or(base.filter),
            retries: self.retries.or(base.retries),
            timeout: self.timeout.or(base.timeout),
            fail_fast: self.fail_fast.or(base.fail_fast),
        }
    }
}
