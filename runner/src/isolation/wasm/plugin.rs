//! One loaded plugin as an [`Isolation`] provider: one Store (and instance)
//! for the run-level hooks and one per slot, each made from the plugin's
//! `InstancePre`, configured before its first hook, bounded in time (epoch
//! deadline), memory (StoreLimits) and bytes crossing the boundary
//! (hostcall fuel), and thrown away after a trap.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::bindings::v0_1_0::partest::plugin::types::{
    Error as WitError, Info, RunInfo as WitRunInfo, Slot as WitSlot,
};
use super::bindings::v0_1_0::{PluginWorld, PluginWorldPre};
use super::engine::ticks;
use super::state::{Grants, HostState, SCRATCH_GUEST};
use crate::isolation::{Env, IsoResult, Isolation, IsolationError, RunInfo, Slot};

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
    world: PluginWorld,
}

type Cell = Arc<Mutex<Option<Live>>>;

pub struct WasmPlugin {
    name: String,
    source: String,
    info: Info,
    /// What the configured plugin said it can serve (`max-slots`).
    max_slots: Option<u32>,
    /// Whether the configured plugin resets between tests.
    resets: bool,
    pre: PluginWorldPre<HostState>,
    grants: Arc<Grants>,
    settings: String,
    limits: Limits,
    run_info: Mutex<Option<WitRunInfo>>,
    run_cell: Cell,
    slots: Mutex<Vec<Cell>>,
}

impl WasmPlugin {
    /// Instantiates the run-level instance, asks it to describe itself and
    /// hands it its settings. The error is for the user: it names the plugin.
    pub(super) fn start(
        name: String,
        source: String,
        pre: PluginWorldPre<HostState>,
        grants: Arc<Grants>,
        settings: String,
        limits: Limits,
    ) -> Result<WasmPlugin, IsolationError> {
        let placeholder = Info {
            name: name.clone(),
            version: String::new(),
            summary: String::new(),
            max_slots: None,
            resets_between_tests: false,
            config_keys: Vec::new(),
        };
        let mut plugin = WasmPlugin {
            name,
            source,
            info: placeholder,
            max_slots: None,
            resets: false,
            pre,
            grants,
            settings,
            limits,
            run_info: Mutex::new(None),
            run_cell: Arc::new(Mutex::new(None)),
            slots: Mutex::new(Vec::new()),
        };
        let cell = plugin.run_cell.clone();
        plugin.info = plugin.call(&cell, "describe", limits.call, |w, s| {
            w.partest_plugin_plugin().call_describe(s).map(Ok)
        })?;
        // The instance is configured by now (the call above made it), so
        // the plugin can size itself from its settings or its server.
        plugin.max_slots = plugin.call(&cell, "max-slots", limits.call, |w, s| {
            w.partest_plugin_plugin().call_max_slots(s)
        })?;
        plugin.resets = plugin.call(&cell, "resets-between-tests", limits.call, |w, s| {
            w.partest_plugin_plugin()
                .call_resets_between_tests(s)
                .map(Ok)
        })?;
        Ok(plugin)
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The configured plugin's slot limit (`max-slots`, asked at load).
    pub fn configured_max_slots(&self) -> Option<u32> {
        self.max_slots
    }

    /// `built-in` or the component's path.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn err(&self, hook: &'static str, message: String) -> IsolationError {
        IsolationError {
            provider: self.name.clone(),
            hook,
            message,
        }
    }

    /// A fresh instance, configured. `configure` failing is reported as the
    /// hook the instance was made for.
    fn instantiate(&self, hook: &'static str) -> IsoResult<Live> {
        let state = HostState::new(self.grants.clone(), self.limits.memory)
            .map_err(|e| self.err(hook, format!("cannot set up its sandbox: {e:#}")))?;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_hostcall_fuel(self.limits.boundary);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(self.limits.call));
        store.data_mut().deadline = Instant::now() + self.limits.call;
        let world = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.err(hook, self.trap_message(&e, self.limits.call)))?;
        let configured = world
            .partest_plugin_plugin()
            .call_configure(&mut store, &self.settings);
        match configured {
            Ok(Ok(())) => Ok(Live { store, world }),
            Ok(Err(e)) => Err(self.err(hook, format!("configure: {}", wit_message(&e)))),
            Err(e) => Err(self.err(
                hook,
                format!("configure: {}", self.trap_message(&e, self.limits.call)),
            )),
        }
    }

    /// Runs one hook on the instance in `cell` (made first if needed) under
    /// the time limit. A trap discards the instance; a plugin error keeps it.
    fn call<R>(
        &self,
        cell: &Cell,
        hook: &'static str,
        limit: Duration,
        f: impl FnOnce(&PluginWorld, &mut Store<HostState>) -> wasmtime::Result<Result<R, WitError>>,
    ) -> IsoResult<R> {
        let mut guard = lock(cell);
        if guard.is_none() {
            *guard = Some(self.instantiate(hook)?);
        }
        let live = guard.as_mut().expect("instantiated above");
        live.store.set_epoch_deadline(ticks(limit));
        live.store.data_mut().deadline = Instant::now() + limit;
        match f(&live.world, &mut live.store) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.err(hook, wit_message(&e))),
            Err(trap) => {
                *guard = None;
                Err(self.err(hook, self.trap_message(&trap, limit)))
            }
        }
    }

    /// Why a call trapped, in the user's terms, with the key that changes the limit.
    fn trap_message(&self, e: &wasmtime::Error, limit: Duration) -> String {
        let chain = format!("{e:#}");
        let name = &self.name;
        if matches!(
            e.downcast_ref::<wasmtime::Trap>(),
            Some(wasmtime::Trap::Interrupt)
        ) {
            format!(
                "did not return within {limit:?} and was stopped (raise it with [plugins.{name}] limits = {{ call-timeout = \"...\" }} or setup-run-timeout)"
            )
        } else if chain.contains("forcing trap when growing memory")
            || chain.contains("memory growth failure")
        {
            format!(
                "tried to use more than its memory limit of {} MiB and was stopped ([plugins.{name}] limits = {{ memory = \"...\" }})",
                self.limits.memory >> 20
            )
        } else if chain.contains("fuel allocated for hostcalls has been exhausted") {
            format!(
                "tried to pass more than {} bytes to partest in one call and was stopped ([plugins.{name}] limits = {{ boundary = \"...\" }})",
                self.limits.boundary
            )
        } else {
            let mut msg = format!("crashed (wasm trap): {chain}");
            if msg.len() > 2000 {
                let mut cut = 2000;
                while !msg.is_char_boundary(cut) {
                    cut -= 1;
                }
                msg.truncate(cut);
            }
            msg
        }
    }

    fn run_info(&self, hook: &'static str) -> IsoResult<WitRunInfo> {
        lock(&self.run_info)
            .clone()
            .ok_or_else(|| self.err(hook, "setup-run did not run".into()))
    }

    fn slot_cell(&self, index: usize) -> Cell {
        let mut slots = lock(&self.slots);
        if slots.len() <= index {
            slots.resize_with(index + 1, || Arc::new(Mutex::new(None)));
        }
        slots[index].clone()
    }
}

fn wit_slot(slot: &Slot) -> WitSlot {
    WitSlot {
        index: slot.index as u32,
        name: slot.name.clone(),
    }
}

pub(super) fn wit_message(e: &WitError) -> String {
    match e {
        WitError::BadConfig(m) => format!("bad config: {m}"),
        WitError::Unavailable(m) => format!("unavailable: {m}"),
        WitError::Refused(m) => format!("refused: {m}"),
        WitError::Failed(m) => m.clone(),
    }
}

/// Whether a plugin error is the user's config (exit 2) rather than the environment.
pub(super) fn is_bad_config(e: &IsolationError) -> bool {
    e.message.starts_with("configure: bad config:")
        || (e.hook == "max-slots" && e.message.starts_with("bad config:"))
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

    fn setup_run(&self, run: &RunInfo) -> IsoResult<Env> {
        let info = WitRunInfo {
            run_id: run.run_id.clone(),
            workers: run.workers as u32,
            scratch: SCRATCH_GUEST.to_string(),
        };
        *lock(&self.run_info) = Some(info.clone());
        self.call(
            &self.run_cell,
            "setup-run",
            self.limits.setup_run,
            |w, s| w.partest_plugin_plugin().call_setup_run(s, &info),
        )
    }

    fn setup_slot(&self, slot: &Slot) -> IsoResult<Env> {
        let run = self.run_info("setup-slot")?;
        let cell = self.slot_cell(slot.index);
        self.call(&cell, "setup-slot", self.limits.call, |w, s| {
            w.partest_plugin_plugin()
                .call_setup_slot(s, &run, &wit_slot(slot))
        })
    }

    fn reset_slot(&self, slot: &Slot) -> IsoResult<()> {
        let run = self.run_info("reset-slot")?;
        let cell = self.slot_cell(slot.index);
        self.call(&cell, "reset-slot", self.limits.call, |w, s| {
            w.partest_plugin_plugin()
                .call_reset_slot(s, &run, &wit_slot(slot))
        })
    }

    fn teardown_slot(&self, slot: &Slot, run_failed: bool) -> IsoResult<()> {
        let run = self.run_info("teardown-slot")?;
        let cell = self.slot_cell(slot.index);
        let r = self.call(&cell, "teardown-slot", self.limits.call, |w, s| {
            w.partest_plugin_plugin()
                .call_teardown_slot(s, &run, &wit_slot(slot), run_failed)
        });
        *lock(&cell) = None;
        r
    }

    fn teardown_run(&self, run_failed: bool) -> IsoResult<()> {
        let run = self.run_info("teardown-run")?;
        let r = self.call(
            &self.run_cell,
            "teardown-run",
            self.limits.setup_run,
            |w, s| {
                w.partest_plugin_plugin()
                    .call_teardown_run(s, &run, run_failed)
            },
        );
        *lock(&self.run_cell) = None;
        r
    }
}

impl WasmPlugin {
    /// `partest clean`: the plugin removes what crashed runs left behind
    /// (with `dry_run`, only lists it).
    pub fn sweep(&self, dry_run: bool) -> IsoResult<Vec<String>> {
        let run = WitRunInfo {
            run_id: String::new(),
            workers: 0,
            scratch: SCRATCH_GUEST.to_string(),
        };
        self.call(&self.run_cell, "sweep", self.limits.setup_run, |w, s| {
            w.partest_plugin_plugin().call_sweep(s, &run, dry_run)
        })
    }
}

/// A poisoned lock only means another slot's thread panicked; go on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
