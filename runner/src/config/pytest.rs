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
}

impl Default for PytestTable {
    fn default() -> Self {
        PytestTable {
            python: default_python(),
            args: Vec::new(),
            collect_timeout: default_collect_timeout(),
        }
    }
}

fn default_python() -> String {
    "python3".to_string()
}

fn default_collect_timeout() -> Seconds {
    Seconds(Duration::from_secs(300))
}
