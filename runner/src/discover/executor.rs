//! What the pool drives, knowing no adapter: one [`Executor`] per slot runs
//! the tests that slot is sent. A process adapter's executor starts a
//! process per test ([`super::process`]); a [`WorkerAdapter`]'s keeps one
//! long-lived worker per slot, which collects its share of the suite and runs
//! the tests it is sent with one of lookahead.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use super::collect::{Collected, FileTests, Files};
use crate::error::{Error, IsolationError};
use crate::exec::Spawner;
use crate::exec::private_paths::{PrivatePaths, SlotMounts};
use crate::model::{Assignment, Env, RunOptions, Slot, TestCase, TestFinished};

/// What every slot's executor shares for the run.
pub struct ExecContext<'a> {
    pub spawner: &'a Spawner,
    pub options: RunOptions,
    /// Workers that may still be replaced after a crash or timeout.
    pub restarts_left: AtomicUsize,
    /// Every file's tests as first collected, what the run is planned on; a
    /// worker that collects a file again must agree.
    pub planned: OnceLock<Vec<FileTests>>,
    /// `[isolation]` private paths, when asked for (the probe passed).
    pub private_paths: Option<std::sync::Arc<PrivatePaths>>,
}

impl<'a> ExecContext<'a> {
    pub fn new(spawner: &'a Spawner, options: RunOptions) -> ExecContext<'a> {
        ExecContext {
            spawner,
            restarts_left: AtomicUsize::new(options.max_worker_restart),
            options,
            planned: OnceLock::new(),
            private_paths: None,
        }
    }
}

impl ExecContext<'_> {
    /// The `[isolation]` namespace every process of a slot enters, with the
    /// slot's copies made under `scratch`; `None` without the table.
    pub fn slot_mounts(
        &self,
        slot: &Slot,
        scratch: &Path,
    ) -> Result<Option<SlotMounts>, SlotError> {
        self.private_paths
            .as_ref()
            .map(|paths| paths.for_slot(scratch))
            .transpose()
            .map_err(|e| {
                SlotError::Exec(format!(
                    "{}: cannot set up [isolation] private paths in {}: {e}",
                    slot.name,
                    scratch.display()
                ))
            })
    }
}

/// Why a slot cannot go on; the run fails with it.
#[derive(Debug)]
pub enum SlotError {
    Isolation(IsolationError),
    /// Starting or talking to a process failed, or a worker could not collect.
    Exec(String),
    Panicked(String),
}

/// Runs one slot's tests, on that slot's thread.
pub trait Executor: Send {
    /// The test files its worker found before importing any, when it
    /// collects the suite itself (every slot's must agree).
    fn files(&self) -> Option<Files> {
        None
    }

    /// Imports and collects these files (the slot's share of the suite).
    fn collect(&mut self, _share: &[u32]) -> Result<Collected, SlotError> {
        Err(SlotError::Exec(
            "asked to collect by an executor that does not collect".into(),
        ))
    }

    /// Runs `a`; `ahead` are the assignments queued behind it, which a
    /// worker may be sent now so that it never waits between tests.
    fn run(
        &mut self,
        a: &Assignment,
        ahead: &VecDeque<Assignment>,
    ) -> Result<TestFinished, SlotError>;

    /// No more work: stops its worker (session fixtures tear down).
    fn stop(self: Box<Self>) {}
}

/// What each file cost a worker before: its tests' recorded time, and what
/// importing and collecting it took.
pub struct PastCosts<'a> {
    pub tests: HashMap<&'a str, Duration>,
    pub collect: &'a HashMap<String, Duration>,
}

/// What the slots' workers collected together.
pub struct Merged {
    /// How long each file took to import and collect, to remember.
    pub collect_times: Vec<(String, Duration)>,
    /// The run's tests, in file order (or why some file is missing).
    pub tests: Result<Vec<TestCase>, Error>,
}

/// An adapter whose tests run in one long-lived worker per slot that
/// collects the suite itself, with the slot's env set (pytest).
pub trait WorkerAdapter: Send + Sync {
    /// Starts `slot`'s worker with the slot's env; it lists the test files.
    fn start<'a>(
        &'a self,
        ctx: &'a ExecContext<'a>,
        slot: Slot,
        env: Env,
        scratch: &Path,
    ) -> Result<Box<dyn Executor + 'a>, SlotError>;

    /// Which of `files` each of `slots` collects first: shares of about
    /// equal cost, so that each module is imported by one worker rather
    /// than by all of them.
    fn shares(&self, files: &[String], slots: usize, past: &PastCosts) -> Vec<Vec<u32>>;

    /// The run's tests from what each slot collected; records them in
    /// `ctx.planned`.
    fn merge(
        &self,
        ctx: &ExecContext,
        files: &Files,
        collected: Vec<Collected>,
    ) -> Result<Merged, Error>;
}
