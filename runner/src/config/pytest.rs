//! `[pytest]`: how the pytest adapter calls Python.

use std::time::Duration;

use serde::Deserialize;

use super::values::Seconds;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PytestTable {
    /// The interpreter that has pytest installed (a virtualenv's python, say).
    #[serde(default = "default_python")]
    pub python: String,
    /// Extra arguments given to every pytest worker.
    #[serde(default)]
    pub args: Vec<String>,
    /// How long a worker may take to start and collect.
    #[serde(default = "default_collect_timeout")]
    pub collect_timeout: Seconds,
    /// Which test modules each worker imports.
    #[serde(default)]
    pub collect: CollectMode,
}

/// `[pytest] collect`: which test modules each worker imports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectMode {
    /// Every worker imports every test module before its first test, as
    /// pytest and pytest-xdist do: tests that rely on another test module
    /// having been imported (a registry it fills, a submodule it loads)
    /// work. Real suites do (pallets/click).
    #[default]
    All,
    /// Each worker imports only its share of the modules, and later the
    /// modules of tests it is given: each module is imported about once
    /// instead of once per worker, for suites whose imports are slow.
    Share,
}

impl Default for PytestTable {
    fn default() -> Self {
        PytestTable {
            python: default_python(),
            args: Vec::new(),
            collect_timeout: default_collect_timeout(),
            collect: CollectMode::default(),
        }
    }
}

fn default_python() -> String {
    "python3".to_string()
}

fn default_collect_timeout() -> Seconds {
    Seconds(Duration::from_secs(300))
}
