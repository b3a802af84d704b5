//! Isolation: what gives each worker slot its own copy of a shared resource.
//!
//! Every provider — the built-in temp-dir one and each Wasm plugin — sits
//! behind [`Isolation`]. [`Lifecycle`] drives them all in the order of the
//! design (setup_run → setup commands → setup_slot → reset_slot between tests →
//! teardown_slot → teardown_run) and remembers what it set up, so that
//! teardown runs for exactly that on every exit path.

mod lifecycle;
mod tempdir;
pub mod wasm;

use std::path::PathBuf;

pub use lifecycle::{Lifecycle, SlotEnv};
pub use tempdir::TempDirs;

pub use crate::error::{IsolationError, IsolationErrorKind};
use crate::model::{Env, Slot};

/// What a provider knows of the run when it sets up.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Short, unique, lowercase alphanumeric: safe inside database names.
    pub run_id: String,
    pub workers: usize,
    /// The project root.
    pub root: PathBuf,
    /// `<root>/.partest`: partest's own state (history, run records).
    pub state_dir: PathBuf,
    /// Set when the run keeps its set-up across runs (`[setup] inputs`).
    pub setup: Option<SetupCache>,
}

/// A run's set-up, kept across runs under a key (`[setup] inputs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupCache {
    /// Lowercase hex: the project's id, then the hash of what shapes the set-up.
    pub key: String,
    /// The template kept under `key` is there: nothing is built, the setup
    /// commands do not run, and the slots clone it. Otherwise setup-run
    /// builds as usual and the template is kept once the commands succeed.
    pub reuse: bool,
}

/// A set-up a provider keeps across runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptSetup {
    pub key: String,
    /// Seconds since the Unix epoch.
    pub built: u64,
    pub used: u64,
}

pub type IsoResult<T> = Result<T, IsolationError>;

/// One isolation provider. Methods take `&self` because slots are set up,
/// reset and torn down from their own pool threads; providers keep per-slot
/// state behind their own locks (one per slot, never shared between slots).
pub trait Isolation: Send + Sync {
    /// Shown in messages and `partest report`.
    fn name(&self) -> &str;

    /// The most slots this provider can serve (a Redis server has 16
    /// databases); caps the worker count. `None`: no limit.
    fn max_slots(&self) -> Option<usize> {
        None
    }

    /// Once per run, before the setup commands; the env returned is given
    /// to those commands (a template database's URL, say).
    fn setup_run(&self, run: &RunInfo) -> IsoResult<Env>;

    /// Once per slot; the env returned is given to every test on that slot.
    fn setup_slot(&self, slot: &Slot) -> IsoResult<Env>;

    /// Whether [`Isolation::reset_slot`] must run between tests.
    fn resets_between_tests(&self) -> bool {
        false
    }

    /// Whether each slot's database is a copy of the template the setup
    /// commands migrate (the postgres plugin in database mode).
    fn slots_copy_template(&self) -> bool {
        false
    }

    /// Whether a failed run's slots are kept to look at (`keep-on-failure`):
    /// nothing may set them up again after a failure.
    fn keeps_failed_slots(&self) -> bool {
        false
    }

    /// Between two tests on a slot (FLUSHDB, say).
    fn reset_slot(&self, _slot: &Slot) -> IsoResult<()> {
        Ok(())
    }

    /// The set-ups this provider keeps across runs; `None`: it keeps none
    /// (it has no template), so it never stands in the way of a reuse.
    fn kept_setups(&self) -> IsoResult<Option<Vec<KeptSetup>>> {
        Ok(None)
    }

    /// Once the setup commands succeeded in a run that builds its set-up:
    /// keep the template under the run's key.
    fn keep_setup(&self) -> IsoResult<()> {
        Ok(())
    }

    /// Removes the set-up kept under `key`; `false` when there was none.
    fn drop_setup(&self, _key: &str) -> IsoResult<bool> {
        Ok(false)
    }

    /// Undo `setup_slot`; called only for slots whose setup succeeded.
    fn teardown_slot(&self, slot: &Slot, run_failed: bool) -> IsoResult<()>;

    /// Undo `setup_run`; called only when it succeeded.
    fn teardown_run(&self, run_failed: bool) -> IsoResult<()>;
}
