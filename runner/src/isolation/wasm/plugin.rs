//! One loaded plugin as an [`Isolation`] provider: one Store (and instance)
//! for the run-level hooks and one per slot, each made from the plugin's
//! `InstancePre`, configured before its first hook, bounded in time (epoch
//! deadline), memory (StoreLimits), bytes crossing the boundary (hostcall
//! fuel) and disk (the scratch quota, checked at every epoch check and
//! after every call), and thrown away after a trap. The env its hooks
//! return is checked against what it declared ([`super::env`]).
//!
//! Scratch: until setup-run, instances see an empty private dir (removed
//! with the plugin); from setup-run on, `scratch-<run id>/`, removed at
//! teardown-run unless the run failed and the table says
//! `keep-on-failure = true`. `sweep` removes those of dead runs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};

use super::env;
use super::since_v0_1_0::{self as contract, Pre};
use super::state::{Grants, HostState, MemoryLimitExceeded, SCRATCH_GUEST};
use super::types::{self, Info, RunInfo as PluginRunInfo};
use crate::isolation::{
    IsoResult, Isolation, IsolationError, IsolationErrorKind as Kind, KeptSetup, RunInfo,
};
use crate::model::{Env, Slot};

/// The sandbox limits of one plugin, resolved from its `limits` table.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub call: Duration,
    pub setup_run: Duration,
    pub memory: usize,
    pub boundary: usize,
}

/// A live instance and the Store it lives in.
struct Live {
    store: Store<HostState>,
    plugin: contract::Plugin,
}

type Cell = Arc<Mutex<Option<Live>>>;

/// Epoch ticks between two looks at the deadline and the disk quota.
const CHECK_TICKS: u64 = 10;

/// What stopped a plugin that went over its disk quota mid-call.
#[derive(Debug)]
struct QuotaExceeded(String);

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuotaExceeded {}

/// The directory instances get as their scratch dir.
enum Scratch {
    /// Before setup-run: nothing worth keeping.
    Load(tempfile::TempDir),
    /// The run's, from setup-run on.
    Run(PathBuf),
}

impl Scratch {
    fn path(&self) -> &Path {
        match self {
            Scratch::Load(dir) => dir.path(),
            Scratch::Run(dir) => dir,
        }
    }
}

/// `scratch-<run id>`: a run's scratch dir under the plugin's home.
const RUN_SCRATCH_PREFIX: &str = "scratch-";

pub struct WasmPlugin {
    name: String,
    source: String,
    info: Info,
    /// What the configured plugin said it can serve (`max-slots`).
    max_slots: Option<u32>,
    /// Whether the configured plugin resets between tests.
    resets: bool,
    /// Whether its slots' databases are copies of the template (`slots-copy-template`).
    copies_template: bool,
    /// The variables its hooks may return (`env-vars`, asked at load).
    env_vars: Vec<String>,
    scratch: Mutex<Scratch>,
    scratch_released: AtomicBool,
    pre: Pre,
    grants: Arc<Grants>,
    settings: String,
    limits: Limits,
    run_info: Mutex<Option<PluginRunInfo>>,
    run_cell: Cell,
    slots: Mutex<Vec<Cell>>,
}

impl WasmPlugin {
    /// Instantiates the run-level instance, asks it to describe itself and
    /// hands it its settings. The error is for the user: it names the plugin.
    pub(super) fn start(
        name: String,
        source: String,
        pre: Pre,
        grants: Arc<Grants>,
        settings: String,
        limits: Limits,
    ) -> Result<WasmPlugin, IsolationError> {
        let placeholder = Info {
            name: name.clone(),
            ..Info::default()
        };
        let load_scratch = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(&grants.home)
            .map_err(|e| {
                IsolationError::new(
                    name.clone(),
                    "describe",
                    Kind::Failed,
                    format!("cannot make its scratch dir: {e}"),
                )
            })?;
        let mut plugin = WasmPlugin {
            name,
            source,
            info: placeholder,
            max_slots: None,
            resets: false,
            copies_template: false,
            env_vars: Vec::new(),
            scratch: Mutex::new(Scratch::Load(load_scratch)),
            scratch_released: AtomicBool::new(false),
            pre,
            grants,
            settings,
            limits,
            run_info: Mutex::new(None),
            run_cell: Arc::new(Mutex::new(None)),
            slots: Mutex::new(Vec::new()),
        };
        let cell = plugin.run_cell.clone();
        plugin.info = plugin.call(&cell, "describe", limits.call, |p, s| p.describe(s).map(Ok))?;
        // Shown by `plugins list` and `inspect`: text, not terminal control.
        let info = &mut plugin.info;
        for text in [&mut info.name, &mut info.version, &mut info.summary] {
            *text = super::log::printable(text);
        }
        for key in &mut info.config_keys {
            key.description = super::log::printable(&key.description);
        }
        // The instance is configured by now (the call above made it), so
        // the plugin can size itself from its settings or its server.
        plugin.max_slots = plugin.call(&cell, "max-slots", limits.call, |p, s| p.max_slots(s))?;
        plugin.resets = plugin.call(&cell, "resets-between-tests", limits.call, |p, s| {
            p.resets_between_tests(s).map(Ok)
        })?;
        plugin.env_vars =
            plugin.call(&cell, "env-vars", limits.call, |p, s| p.env_vars(s).map(Ok))?;
        plugin.copies_template =
            plugin.call(&cell, "slots-copy-template", limits.call, |p, s| {
                p.slots_copy_template(s).map(Ok)
            })?;
        env::check_declared(&plugin.env_vars)
            .map_err(|m| plugin.err("env-vars", Kind::Failed, m))?;
        // A custom plugin sets only what the user granted.
        if !plugin.grants.builtin {
            let granted = plugin.grants.caps.get::<env::Names>();
            env::check_declared_granted(&plugin.env_vars, granted)
                .map_err(|m| plugin.err("env-vars", Kind::BadConfig, m))?;
        }
        Ok(plugin)
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The configured plugin's slot limit (`max-slots`, asked at load).
    pub fn configured_max_slots(&self) -> Option<u32> {
        self.max_slots
    }

    /// The variables its hooks may return, as it declared them.
    pub fn env_vars(&self) -> &[String] {
        &self.env_vars
    }

    /// `built-in` or the component's path.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn err(&self, hook: &'static str, kind: Kind, message: String) -> IsolationError {
        IsolationError::new(self.name.clone(), hook, kind, message)
    }

    /// The plugin's own error from `hook`.
    fn plugin_err(&self, hook: &'static str, e: types::Error) -> IsolationError {
        self.err(
            hook,
            e.kind(),
            super::log::printable_lines(&e.into_message()),
        )
    }

    /// A fresh instance, configured. `configure` failing is reported as the
    /// hook the instance was made for.
    fn instantiate(&self, hook: &'static str) -> IsoResult<Live> {
        let scratch = lock(&self.scratch).path().to_path_buf();
        let state =
            HostState::new(self.grants.clone(), self.limits.memory, &scratch).map_err(|e| {
                self.err(
                    hook,
                    Kind::Failed,
                    format!("cannot set up its sandbox: {e:#}"),
                )
            })?;
        let mut store = new_store(self.pre.engine(), state);
        store.set_hostcall_fuel(self.limits.boundary);
        store
            .data_mut()
            .begin_call(self.limits.call, interruptible(hook));
        let plugin = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.trapped(hook, &e, self.limits.call))?;
        let configured = plugin.configure(&mut store, &self.settings);
        let failed = match configured {
            Ok(Ok(())) => return Ok(Live { store, plugin }),
            Ok(Err(e)) => self.plugin_err(hook, e),
            Err(e) => self.trapped(hook, &e, self.limits.call),
        };
        Err(IsolationError {
            configuring: true,
            ..failed
        })
    }

    /// Runs one hook on the instance in `cell` (made first if needed) under
    /// the time limit. A trap discards the instance; a plugin error keeps it.
    fn call<R>(
        &self,
        cell: &Cell,
        hook: &'static str,
        limit: Duration,
        f: impl FnOnce(&contract::Plugin, &mut Store<HostState>) -> contract::Hook<R>,
    ) -> IsoResult<R> {
        let mut guard = lock(cell);
        if guard.is_none() {
            *guard = Some(self.instantiate(hook)?);
        }
        let live = guard.as_mut().expect("instantiated above");
        live.store.set_epoch_deadline(CHECK_TICKS);
        live.store.data_mut().begin_call(limit, interruptible(hook));
        let result = f(&live.plugin, &mut live.store);
        // Host calls write too (WASI, SQLite): look once more at the end.
        if result.is_ok()
            && let Some(why) = live.store.data().over_quota()
        {
            *guard = None;
            return Err(self.err(
                hook,
                Kind::Stopped,
                format!("went over its disk quota and was stopped: {why}"),
            ));
        }
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.plugin_err(hook, e)),
            Err(trap) => {
                *guard = None;
                Err(self.trapped(hook, &trap, limit))
            }
        }
    }

    /// A call that wasmtime stopped, as the user's error.
    fn trapped(&self, hook: &'static str, e: &wasmtime::Error, limit: Duration) -> IsolationError {
        self.err(hook, Kind::Stopped, self.trap_message(e, limit))
    }

    /// Why a call trapped, in the user's terms, with the key that changes the limit.
    fn trap_message(&self, e: &wasmtime::Error, limit: Duration) -> String {
        let chain = format!("{e:#}");
        let name = &self.name;
        if let Some(quota) = e.downcast_ref::<QuotaExceeded>() {
            format!("went over its disk quota and was stopped: {quota}")
        } else if matches!(
            e.downcast_ref::<wasmtime::Trap>(),
            Some(wasmtime::Trap::Interrupt)
        ) {
            format!(
                "did not return within {limit:?} and was stopped (raise it with [plugins.{name}] limits = {{ call-timeout = \"...\" }} or setup-run-timeout)"
            )
        } else if e.downcast_ref::<MemoryLimitExceeded>().is_some() {
            format!(
                "tried to use more than its memory limit of {} MiB and was stopped ([plugins.{name}] limits = {{ memory = \"...\" }})",
                self.limits.memory >> 20
            )
        } else {
            // Anything else wasmtime stopped: a trap in the guest, or (its
            // error type is private, so it is not told apart here) more
            // bytes copied across the boundary than the limit allows.
            let mut msg = format!("crashed (wasm trap): {chain}");
            if msg.len() > 2000 {
                let mut cut = 2000;
                while !msg.is_char_boundary(cut) {
                    cut -= 1;
                }
                msg.truncate(cut);
            }
            msg.push_str(&format!(
                " (its limits: {} bytes across the boundary per call, {} MiB of memory: [plugins.{name}] limits = {{ boundary = \"...\", memory = \"...\" }})",
                self.limits.boundary,
                self.limits.memory >> 20
            ));
            msg
        }
    }

    fn run_info(&self, hook: &'static str) -> IsoResult<PluginRunInfo> {
        lock(&self.run_info)
            .clone()
            .ok_or_else(|| self.err(hook, Kind::Failed, "setup-run did not run".into()))
    }

    fn slot_cell(&self, index: usize) -> Cell {
        let mut slots = lock(&self.slots);
        if slots.len() <= index {
            slots.resize_with(index + 1, || Arc::new(Mutex::new(None)));
        }
        slots[index].clone()
    }
}

/// Whether Ctrl-C stops the processes a hook runs: set-up hooks yes;
/// teardown and `clean`'s sweep release what runs hold, and must finish.
fn interruptible(hook: &str) -> bool {
    hook.starts_with("setup") || hook == "reset-slot"
}

/// A Store for `state`, bounded in memory, checking the call's deadline
/// and the plugin's disk quota every [`CHECK_TICKS`] epoch ticks.
pub(super) fn new_store(engine: &wasmtime::Engine, state: HostState) -> Store<HostState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_callback(|ctx| {
        let state = ctx.data();
        if Instant::now() >= state.deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        if let Some(why) = state.over_quota() {
            return Err(wasmtime::Error::new(QuotaExceeded(why)));
        }
        Ok(UpdateDeadline::Continue(CHECK_TICKS))
    });
    store.set_epoch_deadline(CHECK_TICKS);
    store
}

impl Isolation for WasmPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_slots(&self) -> Option<usize> {
        self.max_slots.map(|n| n as usize)
    }

    fn resets_between_tests(&self) -> bool {
        self.resets
    }

    fn slots_copy_template(&self) -> bool {
        self.copies_template
    }

    fn keeps_failed_slots(&self) -> bool {
        self.grants.keep_on_failure
    }

    fn setup_run(&self, run: &RunInfo) -> IsoResult<Env> {
        let info = PluginRunInfo {
            run_id: run.run_id.clone(),
            workers: run.workers as u32,
            scratch: SCRATCH_GUEST.to_string(),
            setup: run.setup.clone(),
        };
        *lock(&self.run_info) = Some(info.clone());
        let _ = self.grants.run_id.set(run.run_id.clone());
        if let Some(setup) = &run.setup {
            let _ = self.grants.setup_key.set(setup.key.clone());
        }
        let dir = self
            .grants
            .home
            .join(format!("{RUN_SCRATCH_PREFIX}{}", run.run_id));
        std::fs::create_dir_all(&dir).map_err(|e| {
            self.err(
                "setup-run",
                Kind::Failed,
                format!("cannot create its scratch dir {}: {e}", dir.display()),
            )
        })?;
        *lock(&self.scratch) = Scratch::Run(dir);
        // A fresh instance, so that it sees the run's scratch dir.
        *lock(&self.run_cell) = None;
        let env = self.call(
            &self.run_cell,
            "setup-run",
            self.limits.setup_run,
            |p, s| p.setup_run(s, &info),
        )?;
        self.checked_env("setup-run", env)
    }

    fn setup_slot(&self, slot: &Slot) -> IsoResult<Env> {
        let run = self.run_info("setup-slot")?;
        let cell = self.slot_cell(slot.index);
        let env = self.call(&cell, "setup-slot", self.limits.call, |p, s| {
            p.setup_slot(s, &run, slot)
        })?;
        self.checked_env("setup-slot", env)
    }

    fn reset_slot(&self, slot: &Slot) -> IsoResult<()> {
        let run = self.run_info("reset-slot")?;
        let cell = self.slot_cell(slot.index);
        self.call(&cell, "reset-slot", self.limits.call, |p, s| {
            p.reset_slot(s, &run, slot)
        })
    }

    fn teardown_slot(&self, slot: &Slot, run_failed: bool) -> IsoResult<()> {
        let run = self.run_info("teardown-slot")?;
        let cell = self.slot_cell(slot.index);
        // Teardown has the longer limit: cut short, it leaves behind what
        // the slot holds (a DROP DATABASE can wait seconds on a busy server).
        let r = self.call(&cell, "teardown-slot", self.limits.setup_run, |p, s| {
            p.teardown_slot(s, &run, slot, run_failed)
        });
        *lock(&cell) = None;
        r
    }

    fn kept_setups(&self) -> IsoResult<Option<Vec<KeptSetup>>> {
        let kept = self.call(&self.run_cell, "kept-setups", self.limits.call, |p, s| {
            p.kept_setups(s)
        })?;
        // Keys are shown and compared: the plugin's text is checked here.
        Ok(kept.map(|list| list.into_iter().filter(|k| is_setup_key(&k.key)).collect()))
    }

    fn keep_setup(&self) -> IsoResult<()> {
        let run = self.run_info("keep-setup")?;
        self.call(
            &self.run_cell,
            "keep-setup",
            self.limits.setup_run,
            |p, s| p.keep_setup(s, &run),
        )
    }

    fn drop_setup(&self, key: &str) -> IsoResult<bool> {
        self.call(
            &self.run_cell,
            "drop-setup",
            self.limits.setup_run,
            |p, s| p.drop_setup(s, key),
        )
    }

    fn teardown_run(&self, run_failed: bool) -> IsoResult<()> {
        let run = self.run_info("teardown-run")?;
        let r = self.call(
            &self.run_cell,
            "teardown-run",
            self.limits.setup_run,
            |p, s| p.teardown_run(s, &run, run_failed),
        );
        *lock(&self.run_cell) = None;
        match self.release_scratch(run_failed) {
            Some(e) => r.and(Err(e)),
            None => r,
        }
    }
}

impl WasmPlugin {
    /// `partest clean`: the plugin removes what crashed runs left behind
    /// (with `dry_run`, only lists it).
    pub fn sweep(&self, dry_run: bool) -> IsoResult<Vec<String>> {
        let run = PluginRunInfo {
            run_id: String::new(),
            workers: 0,
            scratch: SCRATCH_GUEST.to_string(),
            setup: None,
        };
        let mut swept = self.sweep_scratch(dry_run);
        swept.extend(
            self.call(&self.run_cell, "sweep", self.limits.setup_run, |p, s| {
                p.sweep(s, &run, dry_run)
            })?
            .iter()
            .map(|line| super::log::printable(line)),
        );
        Ok(swept)
    }

    /// Removes the run's scratch dir (keeps it for a failed run when the
    /// table says `keep-on-failure = true`); once, whoever asks first:
    /// teardown-run, or dropping the plugin when setup-run failed.
    fn release_scratch(&self, run_failed: bool) -> Option<IsolationError> {
        let scratch = lock(&self.scratch);
        let Scratch::Run(dir) = &*scratch else {
            return None;
        };
        if self.scratch_released.swap(true, Ordering::SeqCst) {
            return None;
        }
        if run_failed && self.grants.keep_on_failure {
            (self.grants.log)(
                &self.name,
                super::LogLevel::Warn,
                &format!("kept its scratch dir for the failed run: {}", dir.display()),
            );
            return None;
        }
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some(self.err(
                "teardown-run",
                Kind::Failed,
                format!("cannot remove its scratch dir {}: {e}", dir.display()),
            )),
            _ => None,
        }
    }

    /// The scratch dirs of runs that died before their teardown.
    fn sweep_scratch(&self, dry_run: bool) -> Vec<String> {
        let mut swept = Vec::new();
        for entry in std::fs::read_dir(&self.grants.home)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(run_id) = name.strip_prefix(RUN_SCRATCH_PREFIX) else {
                continue;
            };
            if crate::runs::liveness(run_id) != crate::runs::Liveness::Dead {
                continue;
            }
            if dry_run || std::fs::remove_dir_all(entry.path()).is_ok() {
                swept.push(format!(
                    "{}{} scratch dir of dead run {run_id}: {}",
                    if dry_run { "" } else { "removed " },
                    self.name,
                    entry.path().display()
                ));
            }
        }
        swept
    }

    /// `env` if it holds only what the plugin declared and may set.
    fn checked_env(&self, hook: &'static str, env: Env) -> IsoResult<Env> {
        env::check(&env, Some(&self.env_vars)).map_err(|m| self.err(hook, Kind::Failed, m))?;
        if let Some(plugins_dir) = self.grants.home.parent() {
            env::check_values(&env, plugins_dir).map_err(|m| self.err(hook, Kind::Refused, m))?;
        }
        Ok(env)
    }
}

impl Drop for WasmPlugin {
    /// A run whose setup-run failed gets no teardown-run: its scratch dir
    /// goes here (kept, as for any failed run, with `keep-on-failure`).
    fn drop(&mut self) {
        if let Some(e) = self.release_scratch(true) {
            (self.grants.log)(&self.name, super::LogLevel::Warn, &e.message);
        }
    }
}

/// A key as partest makes them: lowercase hex, short.
fn is_setup_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A poisoned lock only means another slot's thread panicked; go on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
