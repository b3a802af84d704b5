//! `[setup]`: commands run once per run, after the plugins made their
//! templates and before any slot is cloned from them (migrations, fixtures).

use std::time::Duration;

use serde::Deserialize;

use super::values::Seconds;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SetupTable {
    /// Each runs with `sh -c` in the project root; a non-zero exit fails the run (exit 3).
    #[serde(default)]
    pub commands: Vec<String>,
    /// How long one command may take; then its process group is killed.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// Globs from the project root whose files shape the set-up
    /// (`**/migrations/*.py`): with them, the plugins' migrated templates
    /// are kept under a key of their contents and reused while it holds.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// How many kept set-ups a project keeps; the least recently used goes.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

impl Default for SetupTable {
    fn default() -> Self {
        SetupTable {
            commands: Vec::new(),
            timeout: default_timeout(),
            inputs: Vec::new(),
            keep: default_keep(),
        }
    }
}

fn default_timeout() -> Seconds {
    Seconds(Duration::from_secs(30 * 60))
}

fn default_keep() -> usize {
    3
}
