//! `[plugins.NAME]`: one isolation plugin, built in or loaded from `path`.
//! The host keys (`path`, `allow`, `limits`) are read here; every other key
//! belongs to the plugin and is handed to its `configure` hook as TOML text,
//! and the plugin reports its own errors.
//!
//! ```toml
//! [plugins.minio]
//! path = "tools/partest-minio.wasm"
//! allow = { process = ["mc"], redis = "redis://127.0.0.1:6379" }
//! limits = { call-timeout = "5s", setup-run-timeout = "2m", memory = "256MiB", boundary = "16MiB", scratch = "1GiB" }
//! allow-superuser = false    # a postgres grant may log in as a superuser (custom plugins)
//! bucket = "test"            # the plugin's own setting
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{ByteSize, Seconds};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PluginTable {
    /// A custom plugin's component; absent for a built-in.
    pub path: Option<PathBuf>,
    /// `allow = { ... }`: what the plugin may reach outside its sandbox,
    /// by capability (`process`, `redis`, `postgres`, `sqlite`). Each
    /// capability reads its own entry (the plugin host's `capability`
    /// modules), so this layer keeps the table as written.
    #[serde(default)]
    pub allow: toml::Table,
    /// The sandbox limits of this plugin.
    #[serde(default)]
    pub limits: PluginLimits,
    /// Whether a custom plugin's postgres grant may log in as a superuser
    /// (which can run programs on the server). Built-ins need no leave.
    #[serde(default)]
    pub allow_superuser: bool,
    /// The plugin's own settings, passed to it verbatim.
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// `limits = { ... }`: each bounds one plugin call.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginLimits {
    /// Wall time of one hook call (setup-slot, reset-slot, ...).
    pub call_timeout: Option<Seconds>,
    /// Wall time of setup-run, the teardowns and sweep (templates,
    /// migrations, dropping what a slot holds).
    pub setup_run_timeout: Option<Seconds>,
    /// Linear memory of one instance.
    pub memory: Option<ByteSize>,
    /// Bytes the plugin may pass to partest in one call (arguments, results).
    pub boundary: Option<ByteSize>,
    /// Bytes its scratch dir and SQLite databases may hold on disk.
    pub scratch: Option<ByteSize>,
}

impl PluginLimits {
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_SETUP_RUN_TIMEOUT: Duration = Duration::from_secs(120);
    pub const DEFAULT_MEMORY: u64 = 256 << 20;
    pub const DEFAULT_BOUNDARY: u64 = 16 << 20;
    pub const DEFAULT_SCRATCH: u64 = 1 << 30;

    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
            .map_or(Self::DEFAULT_CALL_TIMEOUT, |s| s.0)
    }
    pub fn setup_run_timeout(&self) -> Duration {
        self.setup_run_timeout
            .map_or(Self::DEFAULT_SETUP_RUN_TIMEOUT, |s| s.0)
    }
    pub fn memory(&self) -> u64 {
        self.memory.map_or(Self::DEFAULT_MEMORY, |b| b.0)
    }
    pub fn boundary(&self) -> u64 {
        self.boundary.map_or(Self::DEFAULT_BOUNDARY, |b| b.0)
    }
    pub fn scratch(&self) -> u64 {
        self.scratch.map_or(Self::DEFAULT_SCRATCH, |b| b.0)
    }
}

impl PluginTable {
    /// The plugin's settings as TOML text, for its `configure` hook.
    pub fn settings_toml(&self) -> String {
        toml::to_string(&self.settings).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_split_from_settings() {
        let t: PluginTable = toml::from_str(
            r#"
            path = "x.wasm"
            allow = { process = ["mc"], redis = "redis://h:1" }
            limits = { call-timeout = "2s", memory = "64MiB", scratch = "10MiB" }
            allow-superuser = true
            bucket = "b"
            "#,
        )
        .unwrap();
        assert_eq!(t.allow["process"].as_array().map(Vec::len), Some(1));
        assert_eq!(t.allow["redis"].as_str(), Some("redis://h:1"));
        assert_eq!(t.limits.call_timeout(), Duration::from_secs(2));
        assert_eq!(t.limits.memory(), 64 << 20);
        assert_eq!(t.limits.scratch(), 10 << 20);
        assert!(t.allow_superuser);
        assert_eq!(t.settings_toml().trim(), "bucket = \"b\"");
    }
}
