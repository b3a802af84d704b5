//! The adapter for plugins built against `partest:plugin@0.1.0`: the
//! generated bindings, and the conversions between them and the host's own
//! types ([`super::types`]), as Zed's extension host keeps one `since_v*`
//! module per contract version. Nothing else in the host names the
//! bindings; a plugin built against 0.1.0 keeps loading when 0.2.0 gets an
//! adapter of its own next to this one.

use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};

use super::state::HostState;
use super::types::{self, ConfigKey, DefaultLimits, Info, SettingGrant};
use super::{LogLevel, log, postgres, process, redis, runs, sqlite};
use crate::model::Slot;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "plugin-world",
    });
}

use bindings::partest::plugin::{
    log as wit_log, postgres as wit_postgres, process as wit_process, redis as wit_redis,
    runs as wit_runs, sqlite as wit_sqlite, types as wit,
};
use bindings::{PluginWorld, PluginWorldPre};

/// The export a 0.1.0 plugin has.
pub const EXPORT: &str = "partest:plugin/plugin@0.1.0";

/// Adds capability `name`'s host functions to `linker` (`types`, which has
/// none, rides along with `log`, which every plugin has).
pub fn link(linker: &mut Linker<HostState>, name: &str) -> wasmtime::Result<()> {
    match name {
        "log" => {
            wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
            wit_log::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
        }
        "runs" => wit_runs::add_to_linker::<_, HasSelf<_>>(linker, |s| s),
        "sqlite" => wit_sqlite::add_to_linker::<_, HasSelf<_>>(linker, |s| s),
        "process" => wit_process::add_to_linker::<_, HasSelf<_>>(linker, |s| s),
        "redis" => wit_redis::add_to_linker::<_, HasSelf<_>>(linker, |s| s),
        "postgres" => wit_postgres::add_to_linker::<_, HasSelf<_>>(linker, |s| s),
        // A capability this version of the contract does not have.
        _ => Ok(()),
    }
}

/// A 0.1.0 component, linked and ready to instantiate.
pub struct Pre(PluginWorldPre<HostState>);

impl Pre {
    pub fn new(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Pre> {
        let pre: InstancePre<HostState> = linker.instantiate_pre(component)?;
        PluginWorldPre::new(pre).map(Pre)
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        self.0.engine()
    }

    pub fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Plugin> {
        self.0.instantiate(store).map(Plugin)
    }
}

/// One instance's hooks, on the host's types.
pub struct Plugin(PluginWorld);

/// What a hook returns: a trap (`Err`), or the plugin's answer.
pub type Hook<T> = wasmtime::Result<Result<T, types::Error>>;

impl Plugin {
    pub fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<Info> {
        self.0
            .partest_plugin_plugin()
            .call_describe(store)
            .map(info)
    }

    pub fn configure(&self, store: &mut Store<HostState>, settings: &str) -> Hook<()> {
        errors(
            self.0
                .partest_plugin_plugin()
                .call_configure(store, settings),
        )
    }

    pub fn max_slots(&self, store: &mut Store<HostState>) -> Hook<Option<u32>> {
        errors(self.0.partest_plugin_plugin().call_max_slots(store))
    }

    pub fn resets_between_tests(&self, store: &mut Store<HostState>) -> wasmtime::Result<bool> {
        self.0
            .partest_plugin_plugin()
            .call_resets_between_tests(store)
    }

    pub fn env_vars(&self, store: &mut Store<HostState>) -> wasmtime::Result<Vec<String>> {
        self.0.partest_plugin_plugin().call_env_vars(store)
    }

    pub fn slots_copy_template(&self, store: &mut Store<HostState>) -> wasmtime::Result<bool> {
        self.0
            .partest_plugin_plugin()
            .call_slots_copy_template(store)
    }

    pub fn setup_run(
        &self,
        store: &mut Store<HostState>,
        run: &types::RunInfo,
    ) -> Hook<types::Env> {
        errors(
            self.0
                .partest_plugin_plugin()
                .call_setup_run(store, &run_info(run)),
        )
    }

    pub fn setup_slot(
        &self,
        store: &mut Store<HostState>,
        run: &types::RunInfo,
        slot: &Slot,
    ) -> Hook<types::Env> {
        errors(self.0.partest_plugin_plugin().call_setup_slot(
            store,
            &run_info(run),
            &wit_slot(slot),
        ))
    }

    pub fn reset_slot(
        &self,
        store: &mut Store<HostState>,
        run: &types::RunInfo,
        slot: &Slot,
    ) -> Hook<()> {
        errors(self.0.partest_plugin_plugin().call_reset_slot(
            store,
            &run_info(run),
            &wit_slot(slot),
        ))
    }

    pub fn teardown_slot(
        &self,
        store: &mut Store<HostState>,
        run: &types::RunInfo,
        slot: &Slot,
        run_failed: bool,
    ) -> Hook<()> {
        errors(self.0.partest_plugin_plugin().call_teardown_slot(
            store,
            &run_info(run),
            &wit_slot(slot),
            run_failed,
        ))
    }

    pub fn teardown_run(
        &self,
        store: &mut Store<HostState>,
        run: &types::RunInfo,
        run_failed: bool,
    ) -> Hook<()> {
        errors(
            self.0
                .partest_plugin_plugin()
                .call_teardown_run(store, &run_info(run), run_failed),
        )
    }

    pub fn kept_setups(&self, store: &mut Store<HostState>) -> Hook<Option<Vec<types::KeptSetup>>> {
        errors(self.0.partest_plugin_plugin().call_kept_setups(store)).map(|answer| {
            answer.map(|kept| {
                kept.map(|list| {
                    list.into_iter()
                        .map(|k| types::KeptSetup {
                            key: k.key,
                            built: k.built,
                            used: k.used,
                        })
                        .collect()
                })
            })
        })
    }

    pub fn keep_setup(&self, store: &mut Store<HostState>, run: &types::RunInfo) -> Hook<()> {
        errors(
            self.0
                .partest_plugin_plugin()
                .call_keep_setup(store, &run_info(run)),
        )
    }

    pub fn drop_setup(&self, store: &mut Store<HostState>, key: &str) -> Hook<bool> {
        errors(self.0.partest_plugin_plugin().call_drop_setup(store, key))
    }

    pub fn sweep(
        &self,
        store: &mut Store<HostState>,
        run: &types::RunInfo,
        dry_run: bool,
    ) -> Hook<Vec<String>> {
        errors(
            self.0
                .partest_plugin_plugin()
                .call_sweep(store, &run_info(run), dry_run),
        )
    }
}

// ---- from the bindings to the host's types ----

fn errors<T>(r: wasmtime::Result<Result<T, wit::Error>>) -> Hook<T> {
    r.map(|answer| answer.map_err(error))
}

fn error(e: wit::Error) -> types::Error {
    match e {
        wit::Error::BadConfig(m) => types::Error::BadConfig(m),
        wit::Error::Unavailable(m) => types::Error::Unavailable(m),
        wit::Error::Refused(m) => types::Error::Refused(m),
        wit::Error::Failed(m) => types::Error::Failed(m),
    }
}

fn millis(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

fn info(i: wit::Info) -> Info {
    Info {
        name: i.name,
        version: i.version,
        summary: i.summary,
        max_slots: i.max_slots,
        resets_between_tests: i.resets_between_tests,
        config_keys: i
            .config_keys
            .into_iter()
            .map(|k| ConfigKey {
                name: k.name,
                description: k.description,
                default_value: k.default_value,
            })
            .collect(),
        env_vars: i.env_vars,
        setting_grants: i
            .setting_grants
            .into_iter()
            .map(|g| SettingGrant {
                capability: g.capability,
                setting: g.setting,
                default_value: g.default_value,
            })
            .collect(),
        default_limits: DefaultLimits {
            call: millis(i.default_limits.call_timeout_ms),
            setup_run: millis(i.default_limits.setup_run_timeout_ms),
        },
    }
}

// ---- from the host's types to the bindings ----

fn wit_error(e: types::Error) -> wit::Error {
    match e {
        types::Error::BadConfig(m) => wit::Error::BadConfig(m),
        types::Error::Unavailable(m) => wit::Error::Unavailable(m),
        types::Error::Refused(m) => wit::Error::Refused(m),
        types::Error::Failed(m) => wit::Error::Failed(m),
    }
}

fn run_info(r: &types::RunInfo) -> wit::RunInfo {
    wit::RunInfo {
        run_id: r.run_id.clone(),
        workers: r.workers,
        scratch: r.scratch.clone(),
        setup: r.setup.as_ref().map(|c| wit::SetupCache {
            key: c.key.clone(),
            reuse: c.reuse,
        }),
    }
}

fn wit_slot(slot: &Slot) -> wit::Slot {
    wit::Slot {
        index: slot.index as u32,
        name: slot.name.clone(),
    }
}

// ---- the capabilities' host functions ----

impl wit::Host for HostState {}

impl wit_log::Host for HostState {
    fn log(&mut self, level: wit_log::Level, message: String) {
        let level = match level {
            wit_log::Level::Trace => LogLevel::Trace,
            wit_log::Level::Debug => LogLevel::Debug,
            wit_log::Level::Info => LogLevel::Info,
            wit_log::Level::Warn => LogLevel::Warn,
            wit_log::Level::Error => LogLevel::Error,
        };
        log::log(self, level, message)
    }
}

impl wit_runs::Host for HostState {
    fn liveness_of(&mut self, run_id: String) -> wit_runs::Liveness {
        match runs::liveness_of(&run_id) {
            crate::runs::Liveness::Alive => wit_runs::Liveness::Alive,
            crate::runs::Liveness::Dead => wit_runs::Liveness::Dead,
            crate::runs::Liveness::Unknown => wit_runs::Liveness::Unknown,
        }
    }
}

impl wit_process::Host for HostState {
    fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<wit_process::Output, wit::Error> {
        process::run(self, program, args, env)
            .map(|o| wit_process::Output {
                status: o.status,
                stdout: o.stdout,
                stderr: o.stderr,
            })
            .map_err(wit_error)
    }

    fn start(
        &mut self,
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        ready_port: Option<u16>,
    ) -> Result<u32, wit::Error> {
        process::start(self, program, args, env, ready_port).map_err(wit_error)
    }

    fn stop(&mut self, handle: u32) -> Result<(), wit::Error> {
        process::stop(self, handle).map_err(wit_error)
    }

    fn free_port(&mut self) -> Result<u16, wit::Error> {
        process::free_port().map_err(wit_error)
    }
}

impl wit_redis::Host for HostState {
    fn url(&mut self) -> String {
        redis::url(self)
    }

    fn command(&mut self, args: Vec<Vec<u8>>) -> Result<Vec<wit_redis::Node>, wit::Error> {
        let nodes = redis::command(self, args).map_err(wit_error)?;
        Ok(nodes
            .into_iter()
            .map(|n| match n {
                redis::Node::Nil => wit_redis::Node::Nil,
                redis::Node::Int(i) => wit_redis::Node::Int(i),
                redis::Node::Data(d) => wit_redis::Node::Data(d),
                redis::Node::Status(s) => wit_redis::Node::Status(s),
                redis::Node::Array(n) => wit_redis::Node::Array(n),
            })
            .collect())
    }
}

impl wit_postgres::Host for HostState {
    fn url(&mut self, database: Option<String>) -> String {
        postgres::url(self, database)
    }

    fn execute(&mut self, database: Option<String>, sql: String) -> Result<(), wit::Error> {
        postgres::execute(self, database, sql).map_err(wit_error)
    }

    fn query(
        &mut self,
        database: Option<String>,
        sql: String,
    ) -> Result<wit_postgres::Rows, wit::Error> {
        postgres::query(self, database, sql)
            .map(|r| wit_postgres::Rows {
                columns: r.columns,
                rows: r.rows,
            })
            .map_err(wit_error)
    }
}

impl wit_sqlite::Host for HostState {
    fn execute(&mut self, name: String, sql: String) -> Result<(), wit::Error> {
        sqlite::execute(self, name, sql).map_err(wit_error)
    }

    fn query(&mut self, name: String, sql: String) -> Result<wit_sqlite::Rows, wit::Error> {
        sqlite::query(self, name, sql)
            .map(|r| wit_sqlite::Rows {
                columns: r.columns,
                rows: r.rows,
            })
            .map_err(wit_error)
    }

    fn backup(&mut self, source: String, target: String) -> Result<(), wit::Error> {
        sqlite::backup(self, source, target).map_err(wit_error)
    }

    fn copy_granted(&mut self, source: String, target: String) -> Result<(), wit::Error> {
        sqlite::copy_granted(self, source, target).map_err(wit_error)
    }

    fn remove(&mut self, name: String) -> Result<(), wit::Error> {
        sqlite::remove(self, name).map_err(wit_error)
    }

    fn size(&mut self, name: String) -> Result<Option<u64>, wit::Error> {
        sqlite::size(self, name).map_err(wit_error)
    }

    fn databases(&mut self) -> Result<Vec<String>, wit::Error> {
        sqlite::databases(self).map_err(wit_error)
    }

    fn host_path(&mut self, name: String) -> Result<String, wit::Error> {
        sqlite::host_path(self, name).map_err(wit_error)
    }
}
