//! `[isolation]`: paths each slot's processes see a private copy of.

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IsolationTable {
    /// Files and directories (relative ones from the project root) that
    /// each slot gets its own copy of, at the same path.
    #[serde(default)]
    pub private_paths: Vec<String>,
    /// Each slot gets an empty `/tmp` and `/var/tmp` of its own.
    #[serde(default)]
    pub private_tmp: bool,
}
