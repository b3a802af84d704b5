//! The plugin host: loads WebAssembly components that export the
//! `partest:plugin` contract and runs them as [`Isolation`] providers.
//!
//! - One [`wasmtime::Engine`] per [`PluginHost`] (per run), compiled
//!   components cached on disk (see [`engine`]).
//! - Capabilities are imports, linked for a plugin only when its
//!   `[plugins.NAME] allow` grants them; a plugin importing an ungranted one
//!   is refused at load with the line that would grant it.
//! - Each call is bounded in time, memory and bytes ([`plugin`]).
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

mod bindings;
mod engine;
mod log;
mod plugin;
mod postgres;
mod process;
/// The password-hiding helper plugins get as `partest_plugin_sdk::redact`:
/// the same file, so host and plugin messages hide passwords alike.
#[path = "../../../../plugin-sdk/src/redact.rs"]
mod redact;
mod redis;
mod runs;
mod sqlite;
mod state;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use bindings::v0_1_0::PluginWorldPre;
use bindings::v0_1_0::partest::plugin as caps;
use bindings::v0_1_0::partest::plugin::types::Info;
use bindings::{PACKAGE, PLUGIN_EXPORT_V0_1_0};
pub use engine::CacheStats;
use engine::Runtime;
pub use plugin::{Limits, WasmPlugin};
use state::{Grants, HostState};

use crate::config::{Config, PluginTable};
use crate::error::{Error, Result};
use crate::isolation::Isolation;

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
    /// `state_dir` is `<root>/.partest`: compiled components are cached in
    /// `cache/plugins/`, and each plugin's scratch dir is `plugins/NAME/`.
    pub fn new(root: &Path, state_dir: &Path) -> Result<PluginHost> {
        let runtime = Runtime::new(Some(state_dir.join("cache").join("plugins")))
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

    fn load_one(&self, config: &Config, name: &str) -> Result<WasmPlugin> {
        let table = effective_table(config, name)?;
        let table = &table;
        let source = self.source(config, name, table)?;
        let component = self.compile(name, &source)?;
        self.check_imports(config, name, table, &source, &component)?;
        let grants = self.grants(name, table)?;
        let linker = self
            .linker(Some(table))
            .map_err(|e| Error::setup(format!("plugin {name}: cannot link: {e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(PluginWorldPre::new)
            .map_err(|e| {
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
        .map_err(|e| {
            if plugin::is_bad_config(&e) {
                Error::config(format!(
                    "[plugins.{name}] in {}: {}",
                    config.origin(),
                    e.message
                        .trim_start_matches("configure: ")
                        .trim_start_matches("bad config: ")
                ))
            } else {
                Error::setup(e.to_string())
            }
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
                    config.origin(),
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
        table: &PluginTable,
        source: &Source,
        component: &wasmtime::component::Component,
    ) -> Result<()> {
        let ty = component.component_type();
        let engine = &self.runtime.engine;
        if !ty.exports(engine).any(|(n, _)| n == PLUGIN_EXPORT_V0_1_0) {
            return Err(Error::setup(format!(
                "plugin {name} ({}) does not export {PLUGIN_EXPORT_V0_1_0}: it is not a partest plugin, or it was built \
                 against a newer partest-plugin-sdk than this partest supports",
                source.label
            )));
        }
        for (import, _) in ty.imports(engine) {
            match capability_of(import) {
                Some(cap) => {
                    // Exit 3, like every other plugin that tries more than it may.
                    if let Some(grant) = grant_hint(cap, table) {
                        return Err(Error::setup(format!(
                            "plugin {name} ({}) imports the `{cap}` capability, which is not granted; to allow it, \
                             add to [plugins.{name}] in {}: {grant}",
                            source.label,
                            config.origin()
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

    fn grants(&self, name: &str, table: &PluginTable) -> Result<Arc<Grants>> {
        let scratch = self.state_dir.join("plugins").join(name);
        std::fs::create_dir_all(&scratch).map_err(|e| {
            Error::setup(format!(
                "plugin {name}: cannot create its scratch dir {}: {e}",
                scratch.display()
            ))
        })?;
        Ok(Arc::new(Grants {
            plugin: name.to_string(),
            scratch,
            root: self.root.clone(),
            process: table.allow.process.clone(),
            redis: table.allow.redis.clone(),
            postgres: table.allow.postgres.clone(),
            sqlite: table.allow.sqlite.clone(),
            boundary: usize::try_from(table.limits.boundary()).unwrap_or(usize::MAX),
            log: self.log.clone(),
        }))
    }

    /// WASI, `types`, `log`, `runs` and `sqlite` always; `process`, `redis` and
    /// `postgres` only when `table` grants them (`None`: link everything,
    /// for describing a plugin whose grants are empty anyway).
    fn linker(&self, table: Option<&PluginTable>) -> wasmtime::Result<Linker<HostState>> {
        let mut linker = Linker::new(&self.runtime.engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        caps::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        caps::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        caps::runs::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        caps::sqlite::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        if table.is_none_or(|t| !t.allow.process.is_empty()) {
            caps::process::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        }
        if table.is_none_or(|t| t.allow.redis.is_some()) {
            caps::redis::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        }
        if table.is_none_or(|t| t.allow.postgres.is_some()) {
            caps::postgres::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        }
        Ok(linker)
    }

    /// What `plugins list` and `inspect` show: describe(), then the slot
    /// limit with the user's settings (configure, max-slots), the
    /// component's capability imports, and where it came from.
    fn describe(&self, config: &Config, name: &str) -> Result<Described> {
        let table = effective_table(config, name)?;
        let table = &table;
        let source = self.source(config, name, table)?;
        let component = self.compile(name, &source)?;
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
        let fail = |e: wasmtime::Error| {
            Error::setup(format!(
                "plugin {name} ({}): cannot describe it: {e:#}",
                source.label
            ))
        };
        let grants = self.grants(name, table)?;
        let pre = self
            .linker(None)
            .and_then(|l| l.instantiate_pre(&component))
            .and_then(PluginWorldPre::new)
            .map_err(fail)?;
        let mut store = Store::new(engine, HostState::new(grants, 64 << 20).map_err(fail)?);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        let budget = std::time::Duration::from_secs(5);
        store.set_epoch_deadline(engine::ticks(budget));
        store.data_mut().deadline = std::time::Instant::now() + budget;
        let world = pre.instantiate(&mut store).map_err(fail)?;
        let hooks = world.partest_plugin_plugin();
        let info = hooks.call_describe(&mut store).map_err(fail)?;
        let configured = match hooks.call_configure(&mut store, &table.settings_toml()) {
            Ok(Ok(())) => match hooks.call_max_slots(&mut store) {
                Ok(Ok(n)) => Ok((
                    n,
                    hooks
                        .call_resets_between_tests(&mut store)
                        .unwrap_or(info.resets_between_tests),
                )),
                Ok(Err(e)) => Err(format!("max-slots: {}", plugin::wit_message(&e))),
                Err(e) => Err(format!("max-slots: {e:#}")),
            },
            Ok(Err(e)) => Err(format!("configure: {}", plugin::wit_message(&e))),
            Err(e) => Err(format!("configure: {e:#}")),
        };
        Ok(Described {
            info,
            configured,
            imports,
            source: source.label,
        })
    }
}

struct Described {
    info: Info,
    /// `max-slots` after `configure` with the user's settings, or why not.
    /// `max-slots` and `resets-between-tests` after `configure` with the
    /// user's settings, or why they could not be asked.
    configured: std::result::Result<(Option<u32>, bool), String>,
    imports: Vec<String>,
    source: String,
}

/// Built-ins whose one server grant is their own `url` setting, so that a
/// user writes the URL once: (plugin, capability, default URL). The plugin
/// reads the same `url` (with the same default) and can reach nothing else.
/// The built-in sqlite plugin may copy from its own `template` setting.
const TEMPLATE_GRANT: &str = "sqlite";

/// The built-in docker plugin runs `docker` (and `docker-compose`) by default.
const DOCKER: &str = "docker";

const URL_GRANTS: &[(&str, &str, &str)] = &[
    ("redis", "redis", "redis://127.0.0.1:6379"),
    (
        "postgres",
        "postgres",
        "postgres://postgres@127.0.0.1:5432/postgres",
    ),
];

/// `[plugins.NAME]` as the host applies it: for a built-in in
/// [`URL_GRANTS`], `allow.<capability>` is its `url` setting (or the
/// default). An explicit `allow` naming another server is an error: the
/// plugin would be configured for one server and granted another.
fn effective_table(config: &Config, name: &str) -> Result<PluginTable> {
    let mut table = config.file.plugins.get(name).cloned().unwrap_or_default();
    let builtin = table.path.is_none() && builtin_names().contains(&name);
    if builtin
        && name == TEMPLATE_GRANT
        && let Some(toml::Value::String(template)) = table.settings.get("template")
        && !table.allow.sqlite.contains(template)
    {
        table.allow.sqlite.push(template.clone());
    }
    if builtin && name == DOCKER {
        // Its whole job is running docker: granted without a second line,
        // and given time for `compose up --wait` unless the user set a limit.
        if table.allow.process.is_empty() {
            table.allow.process = vec!["docker".into(), "docker-compose".into()];
        }
        let slow = crate::config::Seconds(std::time::Duration::from_secs(300));
        table.limits.call_timeout.get_or_insert(slow);
        table.limits.setup_run_timeout.get_or_insert(slow);
    }
    let Some(&(_, cap, default)) = URL_GRANTS.iter().find(|(n, _, _)| *n == name) else {
        return Ok(table);
    };
    if !builtin {
        return Ok(table);
    }
    let url = match table.settings.get("url") {
        None => None,
        Some(toml::Value::String(u)) => Some(u.clone()),
        Some(other) => {
            return Err(Error::config(format!(
                "[plugins.{name}] url in {}: expected a string like {default:?}, found {other}",
                config.origin()
            )));
        }
    };
    let slot = match cap {
        "redis" => &mut table.allow.redis,
        _ => &mut table.allow.postgres,
    };
    match (slot.as_deref(), url) {
        (None, url) => *slot = Some(url.unwrap_or_else(|| default.to_string())),
        (Some(granted), Some(url)) if granted != url => {
            return Err(Error::config(format!(
                "[plugins.{name}] in {}: url = {:?} but allow.{cap} = {:?}; \
                 the built-in {name} plugin is granted its own url, so drop allow.{cap}",
                config.origin(),
                redact::url(&url),
                redact::url(granted),
            )));
        }
        _ => {}
    }
    Ok(table)
}

/// `partest:plugin/redis@0.1.0` → `redis`.
fn capability_of(import: &str) -> Option<&str> {
    let rest = import.strip_prefix(PACKAGE)?;
    Some(rest.split('@').next().unwrap_or(rest))
}

/// `None` when `cap` is granted by `table`, else the config line that grants it.
fn grant_hint(cap: &str, table: &PluginTable) -> Option<String> {
    match cap {
        "types" | "log" | "runs" | "sqlite" => None,
        "process" if !table.allow.process.is_empty() => None,
        "process" => Some("allow = { process = [\"program\", ...] }".into()),
        "redis" if table.allow.redis.is_some() => None,
        "redis" => Some("allow = { redis = \"redis://127.0.0.1:6379\" }".into()),
        "postgres" if table.allow.postgres.is_some() => None,
        "postgres" => {
            Some("allow = { postgres = \"postgres://user@127.0.0.1:5432/postgres\" }".into())
        }
        other => Some(format!(
            "nothing: this partest does not provide `{other}` (is the plugin built against a newer SDK?)"
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
                    .clone()
                    .map_or(d.info.max_slots, |(n, _)| n)
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
    let table = effective_table(config, name)?;
    let table = &table;
    let mut out = String::new();
    out.push_str(&format!("plugin     {name}\n"));
    out.push_str(&format!("version    {}\n", d.info.version));
    out.push_str(&format!("source     {}\n", d.source));
    if !d.info.summary.is_empty() {
        out.push_str(&format!("summary    {}\n", d.info.summary));
    }
    let limit = |n: Option<u32>| n.map_or("no limit".to_string(), |n| n.to_string());
    let max_slots = match &d.configured {
        Ok((n, _)) if *n == d.info.max_slots => limit(*n),
        Ok((n, _)) => format!(
            "{} with these settings ({} without)",
            limit(*n),
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
            .map_or(d.info.resets_between_tests, |(_, r)| *r)
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
        let status = match (cap.as_str(), grant_hint(cap, table)) {
            ("log", _) => "granted (always)".to_string(),
            ("runs", _) => "granted (always: is a run alive?)".to_string(),
            ("sqlite", _) if table.allow.sqlite.is_empty() => {
                "granted (its scratch dir only)".to_string()
            }
            ("sqlite", _) => format!(
                "granted (its scratch dir; copies from: {})",
                table.allow.sqlite.join(", ")
            ),
            ("process", None) => format!("granted: {}", table.allow.process.join(", ")),
            ("redis", None) => format!(
                "granted: {}",
                redact::url(table.allow.redis.as_deref().unwrap_or(""))
            ),
            ("postgres", None) => "granted".to_string(),
            (_, None) => "granted".to_string(),
            (_, Some(hint)) => format!("NOT granted: add to [plugins.{name}]: {hint}"),
        };
        out.push_str(&format!("  {cap:<9} {status}\n"));
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
