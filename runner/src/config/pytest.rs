//! `[pytest]`: how the pytest adapter calls Python.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PytestTable {
    /// The interpreter that has pytest installed (a virtualenv's python, say).
    #[serde(default = "default_python")]
    pub python: String,
    /// Extra arguments given to every pytest call, collection included.
    #[serde(default)]
    pub args: Vec<String>,
    /// Most tests in one pytest process; batches shrink toward the end of the queue.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

impl Default for PytestTable {
    fn default() -> Self {
        PytestTable {
            python: default_python(),
            args: Vec::new(),
            max_batch: default_max_batch(),
        }
    }
}

fn default_python() -> String {
    "python3".to_string()
}

fn default_max_batch() -> usize {
    64
}
