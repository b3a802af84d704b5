//! Write a [partest](https://github.com/partest/partest) isolation plugin in
//! plain Rust: implement [`Plugin`], call [`register!`], build for
//! `wasm32-wasip2`. This crate is the only dependency a plugin needs; it owns
//! the WIT bindings (`partest:plugin@0.1.0`), so you never write any.
//!
//! ```
//! use partest_plugin_sdk::{config, log, Env, Plugin, Result, RunInfo, Slot};
//! use partest_plugin_sdk::serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! #[serde(crate = "partest_plugin_sdk::serde", deny_unknown_fields)]
//! struct Settings {
//!     #[serde(default = "default_var")]
//!     var: String,
//! }
//! fn default_var() -> String { "GREETING".into() }
//!
//! struct Hello { var: String }
//!
//! impl Plugin for Hello {
//!     const SUMMARY: &'static str = "says hello to each slot";
//!     const ENV_VARS: &'static [&'static str] = &["GREETING"];
//!
//!     fn configure() -> Result<Self> {
//!         let s: Settings = config()?; // [plugins.hello] from partest.toml
//!         Ok(Hello { var: s.var })
//!     }
//!
//!     // `var` is configurable: declare the name the settings chose.
//!     fn env_vars(&self) -> Vec<String> {
//!         vec![self.var.clone()]
//!     }
//!
//!     fn setup_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env> {
//!         log::info(format!("hello {} of run {}", slot.name, run.run_id));
//!         Ok(vec![(self.var.clone(), format!("hello {}", slot.name))])
//!     }
//! }
//!
//! partest_plugin_sdk::register!(Hello);
//! # fn main() {}
//! ```
//!
//! Each slot gets its own instance, and the run-level hooks theirs: instances
//! share nothing but the scratch directory ([`RunInfo::scratch`]), so derive
//! names from [`RunInfo::run_id`] (which every hook receives) or keep files there.
//! Capabilities ([`redis`], [`postgres`], [`sqlite`], [`process`]) are imported
//! only if you call them, and the user must grant them in partest.toml;
//! [`log`] and [`runs`] (is the run that made this resource still alive?)
//! are always granted.

extern crate self as partest_plugin_sdk;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/since_v0.1.0",
        world: "plugin-world",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "::partest_plugin_sdk::bindings",
        runtime_path: "::partest_plugin_sdk::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

#[doc(hidden)]
pub mod __private;
pub mod capabilities;
pub mod redact;

pub use bindings::partest::plugin::types::{
    ConfigKey, Error, KeptSetup, RunInfo, SettingGrant, SetupCache, Slot,
};
pub use capabilities::{log, postgres, process, redis, runs, sqlite};
/// Re-exported so a plugin needs no serde dependency of its own: use
/// `#[derive(partest_plugin_sdk::serde::Deserialize)]` with
/// `#[serde(crate = "partest_plugin_sdk::serde")]`.
pub use serde;

/// The result of every hook and capability call.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Environment variables handed to the setup commands or a slot's tests, in order.
pub type Env = Vec<(String, String)>;

impl Error {
    /// The user's settings are wrong; name the key and what is allowed.
    pub fn bad_config(msg: impl core::fmt::Display) -> Error {
        Error::BadConfig(msg.to_string())
    }
    /// A service the plugin needs is not there.
    pub fn unavailable(msg: impl core::fmt::Display) -> Error {
        Error::Unavailable(msg.to_string())
    }
    /// The plugin will not do this, on purpose (it would destroy someone's data).
    pub fn refused(msg: impl core::fmt::Display) -> Error {
        Error::Refused(msg.to_string())
    }
    /// Anything else.
    pub fn failed(msg: impl core::fmt::Display) -> Error {
        Error::Failed(msg.to_string())
    }
}

/// An isolation plugin. Only [`Plugin::configure`] and [`Plugin::setup_slot`]
/// are required; every other hook does nothing by default.
pub trait Plugin: Sized + 'static {
    /// One line for `partest plugins list`.
    const SUMMARY: &'static str = "";
    /// The most slots the plugin can serve whatever its settings (Redis: 16
    /// databases), for `partest plugins list`. A run asks
    /// [`Plugin::max_slots`] instead, which returns this by default.
    const MAX_SLOTS: Option<u32> = None;
    /// Whether [`Plugin::reset_slot`] must run between tests whatever the
    /// settings. A run asks [`Plugin::resets_between_tests`] instead.
    const RESETS_BETWEEN_TESTS: bool = false;
    /// The environment variables [`Plugin::setup_run`] and
    /// [`Plugin::setup_slot`] may return whatever the settings; shown by
    /// `partest plugins inspect`. A run asks [`Plugin::env_vars`] instead,
    /// which returns these by default. partest refuses any other name, and
    /// always the ones that make a program run other code (`LD_PRELOAD`,
    /// `BASH_ENV`, `PATH`, `PYTHON*`, `NODE_OPTIONS`, ...) and the ones it
    /// sets itself (`PARTEST_WORKER`, `TMPDIR`, ...).
    const ENV_VARS: &'static [&'static str] = &[];
    /// The time limit of one hook call the plugin needs when the user sets
    /// none (`None`: partest's 5 s). Honoured for partest's built-in
    /// plugins only: a custom plugin's limits are the user's `limits`.
    const CALL_TIMEOUT: Option<core::time::Duration> = None;
    /// As [`Plugin::CALL_TIMEOUT`], for setup-run, the teardowns and sweep
    /// (`None`: partest's 2 minutes).
    const SETUP_RUN_TIMEOUT: Option<core::time::Duration> = None;

    /// The keys of your table, for `partest plugins inspect`.
    fn config_keys() -> Vec<ConfigKey> {
        Vec::new()
    }

    /// Grants taken from the plugin's own settings (the built-in redis
    /// plugin is granted its `url`). partest applies them to its built-in
    /// plugins only; a custom plugin gets what the user wrote under `allow`.
    fn setting_grants() -> Vec<SettingGrant> {
        Vec::new()
    }

    /// Makes the plugin from its settings; read them with [`config`].
    /// Called in every new instance before any other hook.
    fn configure() -> Result<Self>;

    /// The most slots this configured plugin can serve (Redis: the size of
    /// its database range; PostgreSQL: what the server allows); `None`: no
    /// limit. Asked once, on the run-level instance right after
    /// [`Plugin::configure`] and before the worker count is decided, so it
    /// caps `-n auto` and shows in `partest report`. Capabilities may be
    /// used; an error stops the run (exit 3, or 2 for [`Error::BadConfig`]).
    fn max_slots(&self) -> Result<Option<u32>> {
        Ok(Self::MAX_SLOTS)
    }

    /// Whether [`Plugin::reset_slot`] must run between tests with these
    /// settings (Redis: `flush-between-tests = true`). Asked once after
    /// [`Plugin::configure`]; returns `RESETS_BETWEEN_TESTS` by default.
    fn resets_between_tests(&self) -> bool {
        Self::RESETS_BETWEEN_TESTS
    }

    /// The variables the hooks may return with these settings (a
    /// configurable `var`, say). Asked once after [`Plugin::configure`];
    /// returns `ENV_VARS` by default.
    fn env_vars(&self) -> Vec<String> {
        Self::ENV_VARS.iter().map(|v| v.to_string()).collect()
    }

    /// Whether each slot's database is a copy of the template
    /// [`Plugin::setup_run`] made, which the setup commands migrate (the
    /// postgres plugin in database mode). Asked once after
    /// [`Plugin::configure`]; when the run has setup commands, pytest-django
    /// then uses the slot's database as it is instead of building its own.
    fn slots_copy_template(&self) -> bool {
        false
    }

    /// Once per run: make templates; the env goes to the setup commands.
    fn setup_run(&mut self, _run: &RunInfo) -> Result<Env> {
        Ok(Env::new())
    }

    /// Once per slot; the env goes to every test on the slot.
    fn setup_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env>;

    /// Between two tests on a slot, when `RESETS_BETWEEN_TESTS`.
    fn reset_slot(&mut self, _run: &RunInfo, _slot: &Slot) -> Result<()> {
        Ok(())
    }

    /// Undo [`Plugin::setup_slot`].
    fn teardown_slot(&mut self, _run: &RunInfo, _slot: &Slot, _run_failed: bool) -> Result<()> {
        Ok(())
    }

    /// Undo [`Plugin::setup_run`].
    fn teardown_run(&mut self, _run: &RunInfo, _run_failed: bool) -> Result<()> {
        Ok(())
    }

    /// The set-ups kept across runs (`[setup] inputs`): templates this
    /// plugin kept under a key with [`Plugin::keep_setup`]. `None` (the
    /// default): it keeps none with these settings, and a run never skips
    /// its setup commands on its account.
    fn kept_setups(&mut self) -> Result<Option<Vec<KeptSetup>>> {
        Ok(None)
    }

    /// Keep the template [`Plugin::setup_run`] made under `run.setup`'s key
    /// (called once the setup commands succeeded); later runs whose
    /// [`SetupCache::reuse`] is true clone it without building one.
    fn keep_setup(&mut self, _run: &RunInfo) -> Result<()> {
        Ok(())
    }

    /// Remove the set-up kept under `key`; `false` when there was none.
    fn drop_setup(&mut self, _key: &str) -> Result<bool> {
        Ok(false)
    }

    /// Remove what crashed runs left behind (`partest clean`): only what
    /// carries your run-id marker, only for runs [`runs::is_dead`] says are
    /// dead. One line per thing removed; with `dry_run`, remove nothing and
    /// return one line per thing that would be removed.
    fn sweep(&mut self, _run: &RunInfo, _dry_run: bool) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// The plugin's settings (its `[plugins.NAME]` table, without partest's own
/// keys `path`, `allow` and `limits`), deserialized with serde. A mismatch is
/// a [`Error::BadConfig`] naming the key.
pub fn config<T: serde::de::DeserializeOwned>() -> Result<T> {
    __private::with_settings(|text| {
        toml::from_str(text).map_err(|e| Error::bad_config(e.message()))
    })
}

/// Registers your [`Plugin`] type as the component's exports. Use it once.
#[macro_export]
macro_rules! register {
    ($plugin:ty) => {
        const _: () = {
            struct __PartestMeta;
            impl $crate::__private::Meta for __PartestMeta {
                const NAME: &'static str = env!("CARGO_PKG_NAME");
                const VERSION: &'static str = env!("CARGO_PKG_VERSION");
                type Plugin = $plugin;
            }
            type __PartestAdapter = $crate::__private::Adapter<__PartestMeta>;
    $crate::bindings::__export_plugin!(__PartestAdapter with_types_in $crate::bindings);
        };
    };
}
