//! `[run]`: how a plain `partest run` behaves.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::{Seconds, WorkerCount};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    Pytest,
    Cargo,
    Command,
}

impl AdapterKind {
    pub fn name(self) -> &'static str {
        match self {
            AdapterKind::Pytest => "pytest",
            AdapterKind::Cargo => "cargo",
            AdapterKind::Command => "command",
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunTable {
    /// Auto-detected from the project's files when absent.
    pub adapter: Option<AdapterKind>,
    pub workers: Option<WorkerCount>,
    pub retries: Option<u32>,
    /// Per-test wall-clock limit; the whole process group is killed past it.
    pub timeout: Option<Seconds>,
    pub fail_fast: Option<bool>,
    pub junit: Option<PathBuf>,
    /// Plugins enabled for every run, in addition to the `[plugins.*]` tables.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Time a test group gets between SIGTERM and SIGKILL.
    pub kill_grace: Option<Seconds>,
}
