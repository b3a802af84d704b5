//! `[setup]`: commands run once per run, after the plugins made their
//! templates and before any slot is cloned from them (migrations, fixtures).

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SetupTable {
    /// Each runs with `sh -c` in the project root; a non-zero exit fails the run (exit 3).
    #[serde(default)]
    pub commands: Vec<String>,
}
