//! The host's own, version-neutral view of the plugin contract: what the
//! hooks exchange and what the capabilities take and return. Only the
//! version adapters ([`super::since_v0_1_0`]) know the generated bindings;
//! everything else in the host works on these.

use crate::isolation::IsolationErrorKind;
pub use crate::isolation::{KeptSetup, SetupCache};

/// Why a hook or a capability call failed, by whose fault (the contract's `error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The plugin's table in partest.toml is wrong; the text names the key.
    BadConfig(String),
    /// A service the plugin needs is not there.
    Unavailable(String),
    /// The plugin or the host will not do this, on purpose.
    Refused(String),
    /// Anything else.
    Failed(String),
}

impl Error {
    pub fn kind(&self) -> IsolationErrorKind {
        match self {
            Error::BadConfig(_) => IsolationErrorKind::BadConfig,
            Error::Unavailable(_) => IsolationErrorKind::Unavailable,
            Error::Refused(_) => IsolationErrorKind::Refused,
            Error::Failed(_) => IsolationErrorKind::Failed,
        }
    }

    pub fn into_message(self) -> String {
        match self {
            Error::BadConfig(m) | Error::Unavailable(m) | Error::Refused(m) | Error::Failed(m) => m,
        }
    }
}

/// One key a plugin reads from its table, for `partest plugins inspect`.
#[derive(Clone, Debug)]
pub struct ConfigKey {
    pub name: String,
    pub description: String,
    /// The default, as TOML text.
    pub default_value: Option<String>,
}

/// A grant a built-in plugin takes from its own settings.
#[derive(Clone, Debug)]
pub struct SettingGrant {
    /// The capability's name (`redis`).
    pub capability: String,
    /// The setting whose value is granted; `None`: the default alone.
    pub setting: Option<String>,
    /// Granted when the setting is absent, as TOML text.
    pub default_value: Option<String>,
}

/// What `describe` tells the host.
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub max_slots: Option<u32>,
    pub resets_between_tests: bool,
    pub config_keys: Vec<ConfigKey>,
    pub env_vars: Vec<String>,
    pub setting_grants: Vec<SettingGrant>,
    /// The time limits it needs when the user sets none (built-ins only).
    pub default_limits: DefaultLimits,
}

/// A plugin's own defaults for its time limits; `None`: partest's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultLimits {
    pub call: Option<std::time::Duration>,
    pub setup_run: Option<std::time::Duration>,
}

/// The run, as a plugin sees it.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub run_id: String,
    pub workers: u32,
    /// The scratch directory as the plugin sees it.
    pub scratch: String,
    pub setup: Option<SetupCache>,
}

/// A query's result (`sqlite`, `postgres`): column names, values as text.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

pub use crate::model::Env;
