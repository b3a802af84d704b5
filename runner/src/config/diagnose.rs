//! `[diagnose]`: how far partest looks into the tests that failed in the
//! parallel phase (alone, after their worker's predecessors, beside the
//! tests that overlapped them) before the run ends.

use std::time::Duration;

use serde::Deserialize;

use super::values::Seconds;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DiagnoseTable {
    /// Off: failures are reported as they are (as `--no-diagnose`).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// At most this many failed tests are examined, in the order they failed.
    #[serde(default = "default_max_tests")]
    pub max_tests: usize,
    /// All examinations together stop after this long, saying what is left.
    #[serde(default = "default_max_seconds")]
    pub max_seconds: Seconds,
}

impl Default for DiagnoseTable {
    fn default() -> Self {
        DiagnoseTable {
            enabled: default_enabled(),
            max_tests: default_max_tests(),
            max_seconds: default_max_seconds(),
        }
    }
}

fn default_enabled() -> bool {
    true
}

fn default_max_tests() -> usize {
    10
}

fn default_max_seconds() -> Seconds {
    Seconds(Duration::from_secs(300))
}
