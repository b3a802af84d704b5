//! The effective settings of one command: built-in defaults, then
//! partest.toml's `[run]`, then the chosen profile, then the command line.

use std::path::PathBuf;
use std::time::Duration;

use super::{Config, Filter, NoTests, Order, WorkerCount};
use crate::error::Result;

/// What the command line may override; `None` leaves the file's value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub workers: Option<WorkerCount>,
    pub profile: Option<String>,
    pub plugins: Vec<String>,
    pub retries: Option<u32>,
    pub timeout: Option<Duration>,
    pub fail_fast: Option<bool>,
    /// `--maxfail N`: stop starting tests after N failures.
    pub max_fail: Option<u32>,
    /// `--ff`: start last run's failures first.
    pub failed_first: Option<bool>,
    /// `--lf`: only last run's failures (all tests when none is recorded).
    pub last_failed: bool,
    pub junit: Option<PathBuf>,
    pub no_tests: Option<NoTests>,
    pub max_worker_restart: Option<usize>,
    pub shard: Option<crate::model::ShardMode>,
    pub timings: Option<PathBuf>,
    /// `--queue`, `--queue-run`, `--queue-lease`.
    pub queue: (Option<String>, Option<String>, Option<Duration>),
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub workers: WorkerCount,
    /// Where `workers` came from, for the report.
    pub workers_source: String,
    pub profile: Option<String>,
    pub filter: Option<Filter>,
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub fail_fast: bool,
    /// Stop starting tests after this many failures (`--maxfail`; 1 is `--fail-fast`).
    pub max_fail: Option<u32>,
    /// Relative paths are relative to the project root.
    pub junit: Option<PathBuf>,
    /// Enabled plugins: `--plugins`, `[run] plugins`, then `[plugins.*]` tables.
    pub plugins: Vec<String>,
    pub order: Order,
    /// Last run's failures first (`[run] failed-first`, `--ff`; default on).
    pub failed_first: bool,
    /// Only last run's failures (`--lf`).
    pub last_failed: bool,
    pub no_tests: NoTests,
    /// pytest workers replaced after a crash or timeout before the run gives up.
    pub max_worker_restart: Option<usize>,
    /// `--shard`: one machine's share of the selection.
    pub shard: Option<crate::model::ShardMode>,
    /// `--timings` / `[run] timings`, relative to the project root.
    pub timings: Option<PathBuf>,
    /// `--queue URL`, `--queue-run ID`, `--queue-lease SECS`.
    pub queue: (Option<String>, Option<String>, Option<Duration>),
    /// `[run] leak = "fail"`: leaving processes behind fails a test.
    pub leak_fails: bool,
}

impl Settings {
    pub fn resolve(config: &Config, o: &Overrides) -> Result<Settings> {
        let run = &config.file.run;
        let profile = match &o.profile {
            Some(name) => Some(config.profile(name)?),
            None => None,
        };
        let p = profile.as_ref();
        let (workers, workers_source) = if let Some(w) = o.workers {
            (w, "-n on the command line".to_string())
        } else if let Some(w) = p.and_then(|p| p.workers) {
            (
                w,
                format!("profile {}", o.profile.as_deref().unwrap_or_default()),
            )
        } else if let Some(w) = run.workers {
            (
                w,
                format!("[run] workers in {}", config.at(&["run", "workers"])),
            )
        } else {
            (WorkerCount::Auto, "default".to_string())
        };
        let mut plugins: Vec<String> = Vec::new();
        let names = o
            .plugins
            .iter()
            .chain(&run.plugins)
            .chain(config.file.plugins.keys());
        for name in names {
            if !plugins.contains(name) {
                plugins.push(name.clone());
            }
        }
        Ok(Settings {
            workers,
            workers_source,
            profile: o.profile.clone(),
            filter: p.and_then(|p| p.filter.clone()),
            retries: o
                .retries
                .or(p.and_then(|p| p.retries))
                .or(run.retries)
                .unwrap_or(0),
            timeout: o
                .timeout
                .or(p.and_then(|p| p.timeout).map(|s| s.0))
                .or(run.timeout.map(|s| s.0)),
            kill_grace: run.kill_grace.map_or(Duration::from_secs(2), |s| s.0),
            fail_fast: o
                .fail_fast
                .or(p.and_then(|p| p.fail_fast))
                .or(run.fail_fast)
                .unwrap_or(false),
            max_fail: o.max_fail,
            junit: o
                .junit
                .clone()
                .or_else(|| run.junit.clone())
                .map(|j| config.root.join(j)),
            plugins,
            order: run.order.unwrap_or_default(),
            failed_first: o.failed_first.or(run.failed_first).unwrap_or(true),
            last_failed: o.last_failed,
            no_tests: o.no_tests.or(run.no_tests).unwrap_or_default(),
            max_worker_restart: o.max_worker_restart.or(run.max_worker_restart),
            shard: o.shard.clone(),
            timings: o
                .timings
                .clone()
                .or_else(|| run.timings.clone())
                .map(|t| config.root.join(t)),
            queue: o.queue.clone(),
            leak_fails: run.leak == Some(super::Leak::Fail),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config {
            text: text.to_string(),
            root: "/r".into(),
            invoked_in: "/r".into(),
            path: None,
            file: super::super::parse(text, Path::new("p.toml")).unwrap(),
        }
    }

    #[test]
    fn flags_beat_profiles_beat_the_file() {
        let c = config(
            "[run]\nworkers = 3\nretries = 1\n[profile.ci]\nretries = 2\nfail-fast = true\n",
        );
        let s = Settings::resolve(&c, &Overrides::default()).unwrap();
        assert_eq!(
            (s.workers.to_string(), s.retries, s.fail_fast),
            ("3".into(), 1, false)
        );
        let o = Overrides {
            profile: Some("ci".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&c, &o).unwrap();
        assert_eq!((s.retries, s.fail_fast), (2, true));
        let o = Overrides {
            profile: Some("ci".into()),
            retries: Some(0),
            fail_fast: Some(false),
            ..Default::default()
        };
        let s = Settings::resolve(&c, &o).unwrap();
        assert_eq!((s.retries, s.fail_fast), (0, false));
        let o = Overrides {
            profile: Some("e2e".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&c, &o).unwrap();
        assert_eq!(
            (s.workers.to_string(), s.workers_source.as_str()),
            ("1".into(), "profile e2e")
        );
    }

    #[test]
    fn plugins_merge_flags_and_tables_once_each() {
        let c = config("[run]\nplugins = [\"redis\"]\n[plugins.sqlite]\n[plugins.redis]\n");
        let o = Overrides {
            plugins: vec!["redis".into()],
            ..Default::default()
        };
        assert_eq!(
            Settings::resolve(&c, &o).unwrap().plugins,
            ["redis", "sqlite"]
        );
    }
}
