//! `[command]`: the universal adapter, one test per matched file.

use serde::Deserialize;

use super::values::Filter;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CommandTable {
    /// Globs relative to the project root; each matching file is one test.
    pub tests: Filter,
    /// The command template; `{}` is replaced by the test file's path.
    #[serde(default = "default_run")]
    pub run: String,
}

fn default_run() -> String {
    "sh {}".to_string()
}
