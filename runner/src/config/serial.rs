//! `[serial]`: tests that must run alone, after the parallel phase.

use serde::Deserialize;

use super::values::Filter;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SerialTable {
    /// pytest markers that make a test serial.
    #[serde(default = "default_markers")]
    pub markers: Vec<String>,
    /// Test names (globs) that run serially whatever their markers.
    #[serde(default)]
    pub filter: Filter,
}

impl Default for SerialTable {
    fn default() -> Self {
        SerialTable {
            markers: default_markers(),
            filter: Filter::default(),
        }
    }
}

fn default_markers() -> Vec<String> {
    vec!["serial".to_string(), "no_parallel".to_string()]
}
