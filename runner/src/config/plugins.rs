//! `[plugins.NAME]`: one isolation plugin, built in or loaded from `path`.
//! The host keys are read here; every other key belongs to the plugin and is
//! handed to its `configure` hook, which reports its own errors.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PluginTable {
    /// A custom plugin's component; absent for a built-in.
    pub path: Option<PathBuf>,
    /// The plugin's own settings, passed to it verbatim.
    #[serde(flatten)]
    pub settings: toml::Table,
}
