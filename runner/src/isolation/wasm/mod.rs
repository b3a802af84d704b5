//! The plugin host: loads WebAssembly components that export the
//! `partest:plugin` contract and runs them as [`Isolation`] providers.
//!
//! - One [`wasmtime::Engine`] per [`PluginHost`] (per run), compiled
//!   components cached in the user's cache dir (see [`engine`]).
//! - Capabilities are imports, one module each behind
//!   [`capability::Capability`], linked for a plugin only when its
//!   `[plugins.NAME] allow` grants them; a plugin importing an ungranted one
//!   is refused at load with the line that would grant it.
//! - Each call is bounded in time, memory, bytes and disk ([`plugin`]);
//!   what a capability call starts on the host (a query, a program) ends
//!   with the call.
//! - The env a plugin hands to tests is declared and checked ([`env`]).
//!
//! Wiring (the run flow):
//!
//! ```ignore
//! let names = Settings::resolve(&config, &overrides)?.plugins;
//! let host = wasm::PluginHost::new(&config.root, &state_dir)?;
//! let mut providers: Vec<Box<dyn Isolation>> = vec![Box::new(TempDirs::new(None))];
//! providers.extend(host.load_providers(&config, &names)?);
//! let lifecycle = Lifecycle::new(providers);
//! ```

mod capability;
mod deadline;
mod engine;
mod env;
mod log;
mod pg_reach;
mod pg_tls;
mod plugin;
mod postgres;
mod process;
mod quota;
/// The password-hiding helper plugins get as `partest_plugin_sdk::redact`:
/// the same file, so host and plugin messages hide passwords alike.
#[path = "../../../../plugin-sdk/src/redact.rs"]
mod redact;
mod redis;
mod runs;
mod since_v0_1_0;
mod sqlite;
mod state;
mod tls;
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use capability::{CAPABILITIES, Granted, SettingGrantError};
pub use engine::CacheStats;
use engine::Runtime;
pub use plugin::{Limits, WasmPlugin};
use since_v0_1_0::Pre;
use state::{Grants, HostState};
pub use types::Info;
use types::SettingGrant;

use crate::config::{Config, PluginTable};
use crate::error::{Error, Result};
use crate::isolation::{Isolation, IsolationErrorKind};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

/// How severe a plugin's log message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where plugins' `log` calls go: (plugin name, level, message).
pub type LogSink = Arc<dyn Fn(&str, LogLevel, &str) + Send + Sync>;

/// The default sink: warnings and errors to stderr, the rest dropped.
pub fn stderr_log_sink() -> LogSink {
    Arc::new(|plugin, level, msg| {
        if level >= LogLevel::Warn {
            eprintln!("partest: plugin {plugin}: {msg}");
        }
    })
}

/// The names of the built-in plugins (embedded in the binary).
pub fn builtin_names() -> Vec<&'static str> {
    builtin::BUILTINS.iter().map(|(n, _)| *n).collect()
}

/// The `.wasm` of a `test-*` guest (partest's own tests and benches).
#[doc(hidden)]
pub fn test_guest(name: &str) -> PathBuf {
    Path::new(builtin::GUEST_DIR).join(format!("{}.wasm", name.replace('-', "_")))
}

/// Loads plugins for one run.
pub struct PluginHost {
    runtime: Runtime,
    root: PathBuf,
    state_dir: PathBuf,
    log: LogSink,
}

/// A component's bytes and how to name where they came from.
struct Source {
    bytes: Vec<u8>,
    label: String,
}

impl PluginHost {
    /// `state_dir` is `<root>/.partest`: each plugin's scratch dirs and
    /// databases are under `plugins/NAME/`. Compiled components are cached
    /// in the user's cache dir ([`engine::user_cache_dir`]).
    pub fn new(root: &Path, state_dir: &Path) -> Result<PluginHost> {
        Self::with_cache_dir(root, state_dir, engine::user_cache_dir())
    }

    /// As [`PluginHost::new`], with compiled components cached in
    /// `cache_dir` (`None`: not cached).
    pub fn with_cache_dir(
        root: &Path,
        state_dir: &Path,
        cache_dir: Option<PathBuf>,
    ) -> Result<PluginHost> {
        let runtime = Runtime::new(cache_dir)
            .map_err(|e| Error::setup(format!("cannot start the WebAssembly engine: {e:#}")))?;
        Ok(PluginHost {
            runtime,
            root: root.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            log: stderr_log_sink(),
        })
    }

    /// Sends the plugins' log messages to `sink` instead of stderr.
    pub fn with_log_sink(mut self, sink: LogSink) -> PluginHost {
        self.log = sink;
        self
    }

    /// Compiles and cache hits so far (a warm run compiles nothing).
    pub fn stats(&self) -> CacheStats {
        self.runtime.stats()
    }

    /// Loads `names` as providers for [`crate::isolation::Lifecycle`].
    pub fn load_providers(
        &self,
        config: &Config,
        names: &[String],
    ) -> Result<Vec<Box<dyn Isolation>>> {
        Ok(self
            .load(config, names)?
            .into_iter()
            .map(|p| Box::new(p) as Box<dyn Isolation>)
            .collect())
    }

    /// Loads, links, describes and configures each plugin. Unknown names,
    /// ungranted capabilities and bad settings are config errors (exit 2);
    /// a plugin that cannot start is a setup error (exit 3).
    pub fn load(&self, config: &Config, names: &[String]) -> Result<Vec<WasmPlugin>> {
        names.iter().map(|n| self.load_one(config, n)).collect()
    }

    /// The plugin's component, compiled, and its table as the host applies
    /// it: a built-in's with the grants it takes from its settings.
    fn prepare(&self, config: &Config, name: &str) -> Result<(PluginTable, Source, Component)> {
        let written = written_table(config, name);
        let source = self.source(config, name, &written)?;
        let component = self.compile(name, &source)?;
        if !is_builtin(config, name) {
            return Ok((written, source, component));
        }
        let mut probe = self.probe(config, name, &written, &source, &component)?;
        let info = probe
            .plugin
            .describe(&mut probe.store)
            .map_err(|e| probe.fail(e))?;
        let table = with_builtin_declarations(config, name, written, &info)?;
        Ok((table, source, component))
    }

    /// An instance of `component` with every capability linked and only
    /// `table`'s grants behind them, to describe and configure it (which
    /// use no capability) before the run.
    fn probe(
        &self,
        config: &Config,
        name: &str,
        table: &PluginTable,
        source: &Source,
        component: &Component,
    ) -> Result<Probe> {
        let label = source.label.clone();
        let fail = |e: wasmtime::Error| {
            Error::setup(format!(
                "plugin {name} ({label}): cannot describe it: {e:#}"
            ))
        };
        let grants = self.grants(config, name, table)?;
        let pre = self
            .linker(None)
            .and_then(|l| Pre::new(&l, component))
            .map_err(fail)?;
        let scratch = tempfile::Builder::new()
            .prefix("describe-")
            .tempdir_in(&grants.home)
            .map_err(|e| Error::setup(format!("plugin {name}: cannot make a scratch dir: {e}")))?;
        let state = HostState::new(grants, 64 << 20, scratch.path()).map_err(fail)?;
        let mut store = plugin::new_store(&self.runtime.engine, state);
        store
            .data_mut()
            .begin_call(std::time::Duration::from_secs(5), false);
        let plugin = pre.instantiate(&mut store).map_err(fail)?;
        Ok(Probe {
            store,
            plugin,
            _scratch: scratch,
            name: name.to_string(),
            label,
        })
    }

    fn load_one(&self, config: &Config, name: &str) -> Result<WasmPlugin> {
        let (table, source, component) = self.prepare(config, name)?;
        let table = &table;
        let grants = self.grants(config, name, table)?;
        self.check_imports(config, name, &grants.caps, &source, &component)?;
        let linker = self
            .linker(Some(&grants.caps))
            .map_err(|e| Error::setup(format!("plugin {name}: cannot link: {e:#}")))?;
        let pre = Pre::new(&linker, &component).map_err(|e| {
            Error::setup(format!(
                "plugin {name} ({}): cannot link its imports: {e:#}",
                source.label
            ))
        })?;
        let limits = Limits {
            call: table.limits.call_timeout(),
            setup_run: table.limits.setup_run_timeout(),
            memory: usize::try_from(table.limits.memory()).unwrap_or(usize::MAX),
            boundary: usize::try_from(table.limits.boundary()).unwrap_or(usize::MAX),
        };
        WasmPlugin::start(
            name.to_string(),
            source.label,
            pre,
            grants,
            table.settings_toml(),
            limits,
        )
        .map_err(|e| match e.kind {
            // Its settings, found wrong by its configure or max-slots: the
            // user's to fix (exit 2); anything else stops the run (exit 3).
            IsolationErrorKind::BadConfig => Error::config(format!(
                "[plugins.{name}] in {}: {}",
                config.at(&["plugins", name]),
                e.message
            )),
            _ => Error::Isolation(e),
        })
    }

    fn source(&self, config: &Config, name: &str, table: &PluginTable) -> Result<Source> {
        if let Some(path) = &table.path {
            let full = if path.is_absolute() {
                path.clone()
            } else {
                config.root.join(path)
            };
            let bytes = std::fs::read(&full).map_err(|e| {
                Error::config(format!(
                    "[plugins.{name}] path = {:?} in {}: cannot read {}: {e}",
                    path.display(),
                    config.at(&["plugins", name, "path"]),
                    full.display()
                ))
            })?;
            return Ok(Source {
                bytes,
                label: path.display().to_string(),
            });
        }
        match builtin::BUILTINS.iter().find(|(n, _)| *n == name) {
            Some((_, bytes)) => Ok(Source {
                bytes: bytes.to_vec(),
                label: "built-in".into(),
            }),
            None => {
                let builtins = builtin_names();
                Err(Error::config(format!(
                    "unknown plugin {name:?}: it is not built in (built-ins: {}) and {} has no [plugins.{name}] path = \"....wasm\"",
                    if builtins.is_empty() {
                        "none".to_string()
                    } else {
                        builtins.join(", ")
                    },
                    config.origin()
                )))
            }
        }
    }

    fn compile(&self, name: &str, source: &Source) -> Result<wasmtime::component::Component> {
        self.runtime.component(&source.bytes).map_err(|e| {
            Error::setup(format!(
                "plugin {name} ({}) is not a valid WebAssembly component (build it with --target wasm32-wasip2): {e:#}",
                source.label
            ))
        })
    }

    /// Refuses a plugin that imports a capability its table does not grant,
    /// or anything partest does not provide.
    fn check_imports(
        &self,
        config: &Config,
        name: &str,
        granted: &Granted,
        source: &Source,
        component: &wasmtime::component::Component,
    ) -> Result<()> {
        let ty = component.component_type();
        let engine = &self.runtime.engine;
        if !ty.exports(engine).any(|(n, _)| n == since_v0_1_0::EXPORT) {
            return Err(Error::setup(format!(
                "plugin {name} ({}) does not export {}: it is not a partest plugin, or it was built \
                 against a newer partest-plugin-sdk than this partest supports",
                source.label,
                since_v0_1_0::EXPORT
            )));
        }
        for (import, _) in ty.imports(engine) {
            match capability_of(import) {
                Some("types") => {}
                Some(cap) => {
                    // Exit 3, like every other plugin that tries more than it may.
                    if let Some(grant) = grant_hint(cap, granted) {
                        return Err(Error::setup(format!(
                            "plugin {name} ({}) imports the `{cap}` capability, which is not granted; to allow it, \
                             add to [plugins.{name}] in {}: {grant}",
                            source.label,
                            config.at(&["plugins", name])
                        )));
                    }
                }
                None if import.starts_with("wasi:") => {}
                None => {
                    return Err(Error::setup(format!(
                        "plugin {name} ({}) imports {import}, which partest does not provide",
                        source.label
                    )));
                }
            }
        }
        Ok(())
    }

    fn grants(&self, config: &Config, name: &str, table: &PluginTable) -> Result<Arc<Grants>> {
        let home = self.state_dir.join("plugins").join(name);
        let _ = Config::make_state_dir(&self.state_dir);
        std::fs::create_dir_all(&home).map_err(|e| {
            Error::setup(format!(
                "plugin {name}: cannot create its dir {}: {e}",
                home.display()
            ))
        })?;
        let caps = Granted::read(table).map_err(|why| {
            Error::config(format!(
                "[plugins.{name}] {why} ({})",
                config.at(&["plugins", name, "allow"])
            ))
        })?;
        Ok(Arc::new(Grants {
            plugin: name.to_string(),
            home,
            root: self.root.clone(),
            builtin: is_builtin(config, name),
            caps,
            boundary: usize::try_from(table.limits.boundary()).unwrap_or(usize::MAX),
            scratch_quota: table.limits.scratch(),
            keep_on_failure: matches!(
                table.settings.get("keep-on-failure"),
                Some(toml::Value::Boolean(true))
            ),
            log: self.log.clone(),
            run_id: std::sync::OnceLock::new(),
            project: crate::model::project_id(&self.root),
            setup_key: std::sync::OnceLock::new(),
        }))
    }

    /// WASI always, then each capability granted (`None`: every one, for
    /// describing a plugin, which runs no hook that uses them).
    fn linker(&self, granted: Option<&Granted>) -> wasmtime::Result<Linker<HostState>> {
        let mut linker = Linker::new(&self.runtime.engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        for cap in CAPABILITIES {
            if granted.is_none_or(|g| g.has(cap.name())) {
                since_v0_1_0::link(&mut linker, cap.name())?;
            }
        }
        Ok(linker)
    }

    /// What `plugins list` and `inspect` show: describe(), then the slot
    /// limit with the user's settings (configure, max-slots), the
    /// component's capability imports, and where it came from.
    fn describe(&self, config: &Config, name: &str) -> Result<Described> {
        let (table, source, component) = self.prepare(config, name)?;
        let engine = &self.runtime.engine;
        let mut imports: Vec<String> = component
            .component_type()
            .imports(engine)
            .filter_map(|(i, _)| {
                capability_of(i)
                    .filter(|c| *c != "types")
                    .map(str::to_string)
            })
            .collect();
        imports.sort();
        imports.dedup();
        let mut probe = self.probe(config, name, &table, &source, &component)?;
        let granted = probe.store.data().grants.clone();
        let fail = |e: wasmtime::Error| {
            Error::setup(format!(
                "plugin {name} ({}): cannot describe it: {e:#}",
                source.label
            ))
        };
        let Probe { store, plugin, .. } = &mut probe;
        let info = plugin.describe(&mut *store).map_err(fail)?;
        let said = |e: types::Error| format!("{}{}", e.kind().label(), e.into_message());
        let configured = match plugin.configure(&mut *store, &table.settings_toml()) {
            Ok(Ok(())) => match plugin.max_slots(&mut *store) {
                Ok(Ok(n)) => Ok(Configured {
                    max_slots: n,
                    resets: plugin
                        .resets_between_tests(&mut *store)
                        .unwrap_or(info.resets_between_tests),
                    env_vars: plugin
                        .env_vars(&mut *store)
                        .unwrap_or_else(|_| info.env_vars.clone()),
                }),
                Ok(Err(e)) => Err(format!("max-slots: {}", said(e))),
                Err(e) => Err(format!("max-slots: {e:#}")),
            },
            Ok(Err(e)) => Err(format!("configure: {}", said(e))),
            Err(e) => Err(format!("configure: {e:#}")),
        };
        Ok(Described {
            info,
            configured,
            imports,
            source: source.label,
            granted,
        })
    }
}

/// A plugin instance made only to describe and configure it.
struct Probe {
    // Dropped before the scratch dir it sees.
    store: Store<HostState>,
    plugin: since_v0_1_0::Plugin,
    _scratch: tempfile::TempDir,
    name: String,
    label: String,
}

impl Probe {
    fn fail(&self, e: wasmtime::Error) -> Error {
        Error::setup(format!(
            "plugin {} ({}): cannot describe it: {e:#}",
            self.name, self.label
        ))
    }
}

struct Described {
    info: Info,
    /// Its grants as the host applies them.
    granted: Arc<Grants>,
    /// What the plugin says after `configure` with the user's settings, or
    /// why it could not be asked.
    configured: std::result::Result<Configured, String>,
    imports: Vec<String>,
    source: String,
}

/// `max-slots`, `resets-between-tests` and `env-vars` with the user's settings.
#[derive(Clone)]
struct Configured {
    max_slots: Option<u32>,
    resets: bool,
    env_vars: Vec<String>,
}

/// Whether `name` is one of partest's own plugins (and not replaced by a `path`).
fn is_builtin(config: &Config, name: &str) -> bool {
    config
        .file
        .plugins
        .get(name)
        .is_none_or(|t| t.path.is_none())
        && builtin_names().contains(&name)
}

/// `[plugins.NAME]` as written, or empty.
fn written_table(config: &Config, name: &str) -> PluginTable {
    config.file.plugins.get(name).cloned().unwrap_or_default()
}

/// The TOML value of a setting grant: the setting, else its default.
fn granted_value(table: &PluginTable, grant: &SettingGrant) -> Option<toml::Value> {
    let set = grant.setting.as_ref().and_then(|k| table.settings.get(k));
    set.cloned().or_else(|| {
        let text = grant.default_value.as_ref()?;
        toml::from_str::<toml::Table>(&format!("v = {text}"))
            .ok()?
            .remove("v")
    })
}

/// `table` with what a built-in plugin declares for itself: the grants it
/// takes from its own settings (`declared.setting_grants`), so that a user
/// writes a URL once and the plugin can reach nothing else, and its own
/// time limits where the user set none. An explicit `allow` naming another
/// server is an error: the plugin would be configured for one server and
/// granted another.
fn with_builtin_declarations(
    config: &Config,
    name: &str,
    mut table: PluginTable,
    declared: &Info,
) -> Result<PluginTable> {
    for grant in &declared.setting_grants {
        let Some(value) = granted_value(&table, grant) else {
            continue;
        };
        // A capability this partest does not know: its import is refused anyway.
        let Some(cap) = capability::find(&grant.capability) else {
            continue;
        };
        let key = grant.setting.as_deref().unwrap_or("default");
        let mut allow = table.allow.remove(cap.name());
        let merged = cap.grant_setting(&mut allow, &value);
        if let Some(allow) = allow {
            table.allow.insert(cap.name().to_string(), allow);
        }
        match merged {
            Ok(()) => {}
            Err(SettingGrantError::Expected(what)) => {
                return Err(Error::config(format!(
                    "[plugins.{name}] {key} in {}: expected {what}, found {value}",
                    config.at(&["plugins", name, key])
                )));
            }
            Err(SettingGrantError::Conflict { setting, granted }) => {
                return Err(Error::config(format!(
                    "[plugins.{name}] in {}: {key} = {setting:?} but allow.{cap} = {granted:?}; \
                     the built-in {name} plugin is granted its own {key}, so drop allow.{cap}",
                    config.at(&["plugins", name, "allow"]),
                    cap = cap.name(),
                )));
            }
        }
    }
    let own = |limit: Option<std::time::Duration>| limit.map(crate::config::Seconds);
    if let Some(call) = own(declared.default_limits.call) {
        table.limits.call_timeout.get_or_insert(call);
    }
    if let Some(setup_run) = own(declared.default_limits.setup_run) {
        table.limits.setup_run_timeout.get_or_insert(setup_run);
    }
    Ok(table)
}

/// The package of every capability import: `partest:plugin/redis@0.1.0`.
const PACKAGE: &str = "partest:plugin/";

/// `partest:plugin/redis@0.1.0` → `redis`.
fn capability_of(import: &str) -> Option<&str> {
    let rest = import.strip_prefix(PACKAGE)?;
    Some(rest.split('@').next().unwrap_or(rest))
}

/// `None` when `cap` is granted, else the config line that grants it.
fn grant_hint(cap: &str, granted: &Granted) -> Option<String> {
    match capability::find(cap) {
        Some(_) if granted.has(cap) => None,
        Some(c) => Some(c.hint()),
        None => Some(format!(
            "nothing: this partest does not provide `{cap}` (is the plugin built against a newer SDK?)"
        )),
    }
}

/// The text of `partest plugins list`: built-ins and configured plugins.
pub fn plugins_list(config: &Config, state_dir: &Path) -> Result<String> {
    let host = PluginHost::new(&config.root, state_dir)?;
    let mut names: Vec<String> = builtin_names().into_iter().map(str::to_string).collect();
    for n in config.file.plugins.keys() {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    if names.is_empty() {
        return Ok("no plugins: none is built in and partest.toml configures none\n".into());
    }
    let mut rows = vec![[
        "NAME".to_string(),
        "VERSION".into(),
        "SOURCE".into(),
        "MAX SLOTS".into(),
        "SUMMARY".into(),
    ]];
    for name in &names {
        match host.describe(config, name) {
            Ok(d) => rows.push([
                name.clone(),
                d.info.version.clone(),
                d.source.clone(),
                d.configured
                    .as_ref()
                    .map_or(d.info.max_slots, |c| c.max_slots)
                    .map_or("-".into(), |n| n.to_string()),
                d.info.summary.clone(),
            ]),
            Err(e) => rows.push([
                name.clone(),
                "?".into(),
                "?".into(),
                "?".into(),
                format!("error: {e}"),
            ]),
        }
    }
    Ok(table_text(&rows))
}

/// The text of `partest plugins inspect NAME`.
pub fn plugins_inspect(config: &Config, state_dir: &Path, name: &str) -> Result<String> {
    let host = PluginHost::new(&config.root, state_dir)?;
    let d = host.describe(config, name)?;
    let granted = &d.granted.caps;
    let mut out = String::new();
    out.push_str(&format!("plugin     {name}\n"));
    out.push_str(&format!("version    {}\n", d.info.version));
    out.push_str(&format!("source     {}\n", d.source));
    if !d.info.summary.is_empty() {
        out.push_str(&format!("summary    {}\n", d.info.summary));
    }
    let limit = |n: Option<u32>| n.map_or("no limit".to_string(), |n| n.to_string());
    let max_slots = match &d.configured {
        Ok(c) if c.max_slots == d.info.max_slots => limit(c.max_slots),
        Ok(c) => format!(
            "{} with these settings ({} without)",
            limit(c.max_slots),
            limit(d.info.max_slots)
        ),
        Err(e) => format!(
            "{} (with these settings unknown: {e})",
            limit(d.info.max_slots)
        ),
    };
    out.push_str(&format!("max slots  {max_slots}\n"));
    out.push_str(&format!(
        "resets     {}\n",
        if d.configured
            .as_ref()
            .map_or(d.info.resets_between_tests, |c| c.resets)
        {
            "between tests"
        } else {
            "no"
        }
    ));
    out.push_str("capabilities (imports):\n");
    if d.imports.is_empty() {
        out.push_str("  none\n");
    }
    for cap in &d.imports {
        let status = match (capability::find(cap), granted.grant(cap)) {
            (Some(c), Some(grant)) => c.describe_grant(grant),
            _ => format!(
                "NOT granted: add to [plugins.{name}]: {}",
                grant_hint(cap, granted).unwrap_or_default()
            ),
        };
        out.push_str(&format!("  {cap:<9} {status}\n"));
    }
    let env_vars = d
        .configured
        .as_ref()
        .map_or(&d.info.env_vars, |c| &c.env_vars);
    out.push_str(&format!(
        "env        {}\n",
        if env_vars.is_empty() {
            "none (it may set no variable)".to_string()
        } else {
            env_vars.join(", ")
        }
    ));
    // What it asks to set against what the user granted (built-ins set
    // the names their settings give).
    if !d.granted.builtin && !env_vars.is_empty() {
        let allowed = granted.get::<env::Names>().map_or(&[][..], |n| &n.0[..]);
        let missing: Vec<&str> = env_vars
            .iter()
            .filter(|v| !allowed.contains(v))
            .map(String::as_str)
            .collect();
        out.push_str(&if missing.is_empty() {
            "  granted  all of them (allow.env)\n".to_string()
        } else {
            format!(
                "  NOT granted: {}: add them to [plugins.{name}] allow = {{ env = [...] }}\n",
                missing.join(", ")
            )
        });
    }
    if !d.info.config_keys.is_empty() {
        out.push_str("config keys:\n");
        for k in &d.info.config_keys {
            let default = k
                .default_value
                .as_deref()
                .map_or("no default".to_string(), |v| format!("default {v}"));
            out.push_str(&format!(
                "  {:<16} {:<20} {}\n",
                k.name, default, k.description
            ));
        }
    }
    Ok(out)
}

fn table_text(rows: &[[String; 5]]) -> String {
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = (0..5)
            .map(|c| format!("{:<w$}", r[c], w = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
