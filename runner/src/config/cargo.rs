//! `[cargo]`: how the cargo adapter builds the test binaries.

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CargoTable {
    /// Extra arguments for `cargo test --no-run` (`--workspace`, `--features x`, …).
    #[serde(default)]
    pub args: Vec<String>,
}
