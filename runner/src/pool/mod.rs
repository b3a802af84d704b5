//! The scheduler: N threads, each owning one slot (`gw{i}`) for the run.
//! Units are dealt longest-first into per-thread deques; an idle thread takes
//! from the global injector (where retries go), then steals from the others.
//! No lock on the per-test path: deques, atomics and one channel send.

mod groups;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use groups::GroupLimits;

use crate::discover::{Adapter, ProcessEnd, Status, TestCase};
use crate::exec::{Capture, Spawner};
use crate::isolation::{Env, IsolationError, Lifecycle, Slot};
use crate::plan::{Plan, Unit};
use crate::report::{Event, TestFinished};

pub struct PoolOptions {
    pub workers: usize,
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub fail_fast: bool,
    /// false: `--no-capture`, output streams to the terminal.
    pub capture: bool,
    pub run_id: String,
}

/// How the pool's work ended, beyond the per-test events.
#[derive(Debug, Default)]
pub struct PoolOutcome {
    /// A provider failed to set up or reset a slot: the run fails with exit 3.
    pub isolation_error: Option<IsolationError>,
    /// Could not start a process (a missing program, say).
    pub spawn_error: Option<String>,
    /// A test failed for good: plugins' teardown hears `run_failed`
    /// (keep-on-failure).
    pub tests_failed: bool,
}

pub struct Pool<'a> {
    pub plan: &'a Plan,
    pub adapter: &'a dyn Adapter,
    pub lifecycle: &'a Lifecycle,
    pub spawner: &'a Spawner,
    pub events: Sender<Event>,
    pub options: PoolOptions,
}

/// Shared by the pool threads for the parallel phase.
struct Shared {
    injector: Injector<Unit>,
    stealers: Vec<Stealer<Unit>>,
    groups: GroupLimits,
    /// Units queued or running; the phase ends when it reaches zero.
    outstanding: AtomicUsize,
    /// --fail-fast tripped, or a slot failed: take no more units.
    stop: AtomicBool,
    outcome: std::sync::Mutex<PoolOutcome>,
}

/// What one slot's thread holds for the run.
struct SlotState {
    slot: Slot,
    env: Env,
    scratch: PathBuf,
    capture: Option<Capture>,
    /// The slot's `PARTEST_TEST_TMPDIR`, while it exists and is as made.
    test_tmp: Option<TestTmp>,
    ran_any: bool,
}

impl Pool<'_> {
    /// Runs the parallel phase, then the serial one on slot 0. Slots stay set
    /// up; the caller tears them down through the lifecycle on every path.
    pub fn run(&self) -> PoolOutcome {
        let workers = self.options.workers.max(1);
        let locals: Vec<Worker<Unit>> = (0..workers).map(|_| Worker::new_fifo()).collect();
        // Dealt round-robin in plan order: each deque is itself longest-first.
        for (n, unit) in self.plan.parallel.iter().enumerate() {
            locals[n % workers].push(unit.clone());
        }
        let shared = Shared {
            injector: Injector::new(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            groups: GroupLimits::new(&self.plan.groups),
            outstanding: AtomicUsize::new(self.plan.parallel.len()),
            stop: AtomicBool::new(false),
            outcome: Default::default(),
        };
        let _ = self.events.send(Event::PhaseStarted { serial: false });
        let slot0 = std::thread::scope(|scope| {
            let handles: Vec<_> = locals
                .into_iter()
                .enumerate()
                .map(|(index, local)| {
                    let shared = &shared;
                    std::thread::Builder::new()
                        .name(format!("partest-gw{index}"))
                        .spawn_scoped(scope, move || self.worker(index, local, shared))
                        .expect("spawning a pool thread")
                })
                .collect();
            let mut slot0 = None;
            for (index, handle) in handles.into_iter().enumerate() {
                if let Ok(state) = handle.join()
                    && index == 0
                {
                    slot0 = state;
                }
            }
            slot0
        });
        let mut outcome = shared
            .outcome
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let stopped = shared.stop.load(Ordering::Acquire) || self.spawner.interrupts.is_set();
        if !stopped
            && !self.plan.serial.is_empty()
            && let Some(mut state) = slot0
        {
            let _ = self.events.send(Event::PhaseStarted { serial: true });
            self.serial_phase(&mut state, &mut outcome);
        }
        outcome
    }

    fn fail(&self, shared: &Shared, f: impl FnOnce(&mut PoolOutcome)) {
        shared.stop.store(true, Ordering::Release);
        let mut outcome = shared.outcome.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut outcome);
    }

    /// One pool thread: set its slot up, then run units until none is left.
    fn worker(&self, index: usize, local: Worker<Unit>, shared: &Shared) -> Option<SlotState> {
        let mut state = match self.open_slot(index) {
            Ok(state) => state,
            Err(SlotError::Isolation(e)) => {
                self.fail(shared, |o| {
                    o.isolation_error.get_or_insert(e);
                });
                return None;
            }
            Err(SlotError::Io(e)) => {
                self.fail(shared, |o| {
                    o.spawn_error.get_or_insert(e);
                });
                return None;
            }
        };
        let _ = self.events.send(Event::SlotReady { slot: index });
        let mut idle_rounds = 0u32;
        loop {
            if shared.stop.load(Ordering::Acquire) || self.spawner.interrupts.is_set() {
                break;
            }
            let Some(unit) = find_unit(&local, &shared.injector, &shared.stealers) else {
                if shared.outstanding.load(Ordering::Acquire) == 0 {
                    break;
                }
                // Others are still running units that may be retried: wait a little.
                idle_rounds += 1;
                std::thread::sleep(Duration::from_micros(500 * u64::from(idle_rounds.min(8))));
                continue;
            };
            if !shared.groups.try_enter(unit.group) {
                // Its group is full: put it back and look for other work.
                shared.injector.push(unit);
                idle_rounds += 1;
                std::thread::sleep(Duration::from_micros(200 * u64::from(idle_rounds.min(10))));
                continue;
            }
            idle_rounds = 0;
            let result = self.run_unit(&mut state, &unit);
            shared.groups.leave(unit.group);
            match result {
                Ok(UnitDone { retries, failed }) => {
                    if failed {
                        let mut o = shared.outcome.lock().unwrap_or_else(|p| p.into_inner());
                        o.tests_failed = true;
                    }
                    for retry in retries {
                        shared.outstanding.fetch_add(1, Ordering::AcqRel);
                        shared.injector.push(retry);
                    }
                    if failed && self.options.fail_fast {
                        shared.stop.store(true, Ordering::Release);
                    }
                }
                Err(SlotError::Isolation(e)) => self.fail(shared, |o| {
                    o.isolation_error.get_or_insert(e);
                }),
                Err(SlotError::Io(e)) => self.fail(shared, |o| {
                    o.spawn_error.get_or_insert(e);
                }),
            }
            shared.outstanding.fetch_sub(1, Ordering::AcqRel);
        }
        Some(state)
    }

    fn serial_phase(&self, state: &mut SlotState, outcome: &mut PoolOutcome) {
        let mut queue: std::collections::VecDeque<Unit> =
            self.plan.serial.iter().cloned().collect();
        while let Some(unit) = queue.pop_front() {
            if self.spawner.interrupts.is_set() {
                break;
            }
            match self.run_unit(state, &unit) {
                Ok(done) => {
                    outcome.tests_failed |= done.failed;
                    // A retried serial test runs again at once, still alone.
                    for retry in done.retries.into_iter().rev() {
                        queue.push_front(retry);
                    }
                    if done.failed && self.options.fail_fast {
                        break;
                    }
                }
                Err(SlotError::Isolation(e)) => {
                    outcome.isolation_error.get_or_insert(e);
                    break;
                }
                Err(SlotError::Io(e)) => {
                    outcome.spawn_error.get_or_insert(e);
                    break;
                }
            }
        }
    }

    fn open_slot(&self, index: usize) -> Result<SlotState, SlotError> {
        let slot = Slot::new(index);
        let provided = self
            .lifecycle
            .setup_slot(&slot)
            .map_err(SlotError::Isolation)?;
        let scratch = provided
            .iter()
            .find(|(k, _)| k == "PARTEST_TMPDIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(std::env::temp_dir);
        let count = self.options.workers.to_string();
        let mut env: Env = vec![
            ("PARTEST_WORKER".into(), slot.name.clone()),
            ("PARTEST_WORKER_INDEX".into(), index.to_string()),
            ("PARTEST_WORKER_COUNT".into(), count.clone()),
            ("PARTEST_RUN_ID".into(), self.options.run_id.clone()),
            // Drop-in for conftests written for pytest-xdist and parallel_tests.
            ("PYTEST_XDIST_WORKER".into(), slot.name.clone()),
            ("PYTEST_XDIST_WORKER_COUNT".into(), count),
            (
                "TEST_ENV_NUMBER".into(),
                if index == 0 {
                    String::new()
                } else {
                    (index + 1).to_string()
                },
            ),
        ];
        env.extend(provided);
        let capture = if self.options.capture {
            Some(Capture::new(&scratch).map_err(|e| {
                SlotError::Io(format!(
                    "cannot create the output file of {} in {}: {e}",
                    slot.name,
                    scratch.display()
                ))
            })?)
        } else {
            None
        };
        Ok(SlotState {
            slot,
            env,
            scratch,
            capture,
            test_tmp: None,
            ran_any: false,
        })
    }

    /// Runs one unit on a slot and reports each of its tests.
    fn run_unit(&self, state: &mut SlotState, unit: &Unit) -> Result<UnitDone, SlotError> {
        if state.ran_any {
            self.lifecycle
                .reset_slot(&state.slot)
                .map_err(SlotError::Isolation)?;
        }
        state.ran_any = true;
        let tests: Vec<&TestCase> = unit
            .tests
            .iter()
            .map(|&i| &self.plan.tests[i as usize])
            .collect();
        let test_tmp = state.scratch.join("test");
        if state.test_tmp.is_none() {
            state.test_tmp = TestTmp::create(&test_tmp);
        }
        let mut env = state.env.clone();
        env.push(("PARTEST_TEST_NAME".into(), tests[0].name.clone()));
        env.push(("PARTEST_ATTEMPT".into(), unit.attempt.to_string()));
        env.push((
            "PARTEST_TEST_TMPDIR".into(),
            test_tmp.to_string_lossy().into_owned(),
        ));
        let invocation = self.adapter.invocation(&tests, &state.scratch);
        for &test in &unit.tests {
            let _ = self.events.send(Event::TestStarted {
                test,
                slot: state.slot.index,
                attempt: unit.attempt,
            });
        }
        let timeout = self.options.timeout.map(|t| t * tests.len() as u32);
        let finished = self
            .spawner
            .run(&invocation, &env, state.capture.as_mut(), timeout)
            .map_err(|e| {
                SlotError::Io(format!(
                    "cannot run {} (for {}): {e}",
                    invocation.program.to_string_lossy(),
                    tests[0].name
                ))
            });
        // Removed after the test, unless it is still empty and as made.
        match state.test_tmp.take() {
            Some(made) if made.untouched(&test_tmp) => state.test_tmp = Some(made),
            _ => remove_test_tmp(&test_tmp),
        }
        let finished = finished?;
        let results = self.adapter.results(&tests, finished.end, &invocation);
        let any_failed = results.iter().any(|r| r.status.is_failure());
        let unit_output = match (&mut state.capture, any_failed) {
            (Some(capture), true) => Some(capture.read()),
            _ => None,
        };
        let mut done = UnitDone {
            retries: Vec::new(),
            failed: false,
        };
        for (&test, result) in unit.tests.iter().zip(results) {
            let will_retry = result.status.is_failure() && unit.attempt <= self.options.retries;
            if will_retry {
                done.retries.push(Unit {
                    tests: vec![test],
                    group: unit.group,
                    attempt: unit.attempt + 1,
                });
            } else if result.status.is_failure() {
                done.failed = true;
            }
            let output = result
                .status
                .is_failure()
                .then(|| describe_failure(result.output, &unit_output, finished.end));
            let duration = result
                .duration
                .unwrap_or(finished.duration / tests.len() as u32);
            let _ = self.events.send(Event::TestFinished(Box::new(TestFinished {
                test,
                slot: state.slot.index,
                attempt: unit.attempt,
                status: if finished.end == ProcessEnd::Interrupted {
                    Status::Cancelled
                } else {
                    result.status
                },
                duration,
                output,
                will_retry: will_retry && finished.end != ProcessEnd::Interrupted,
            })));
        }
        if finished.end == ProcessEnd::Interrupted {
            done.retries.clear();
        }
        Ok(done)
    }
}

struct UnitDone {
    retries: Vec<Unit>,
    /// A test failed for good (no retry left).
    failed: bool,
}

enum SlotError {
    Isolation(IsolationError),
    Io(String),
}

/// The text shown for a failed test: the runner's own report of it (pytest's
/// traceback) or the process output, and how the process ended.
fn describe_failure(own: Option<String>, unit_output: &Option<String>, end: ProcessEnd) -> String {
    let mut text = own.or_else(|| unit_output.clone()).unwrap_or_default();
    let how = match end {
        ProcessEnd::Exited(0) => None,
        ProcessEnd::Exited(code) => Some(format!("exit code {code}")),
        ProcessEnd::Signalled(sig) => Some(format!("killed by signal {sig}")),
        ProcessEnd::TimedOut => Some("timed out: its process group was killed".to_string()),
        ProcessEnd::Interrupted => Some("interrupted".to_string()),
    };
    if let Some(how) = how {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("[partest] {how}"));
    }
    text
}

/// A test's private temp dir (`PARTEST_TEST_TMPDIR`). Most tests never touch
/// it, and an rmdir + mkdir pair per test is not free: on ext4 here it cost
/// ~2 ms, more than starting a small test process. So an empty dir whose
/// mode and owner are as we made them is kept for the slot's next test; any
/// other is removed after its test, as before, and made anew.
struct TestTmp {
    /// Mode, owner and group right after creation.
    made: (u32, u32, u32),
}

impl TestTmp {
    fn create(dir: &std::path::Path) -> Option<TestTmp> {
        let _ = std::fs::create_dir(dir);
        Self::observe(dir)
    }

    /// How `dir` looks now (None if it is not a directory).
    fn observe(dir: &std::path::Path) -> Option<TestTmp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(dir).ok().filter(|m| m.is_dir())?;
        Some(TestTmp {
            made: (m.mode(), m.uid(), m.gid()),
        })
    }

    /// Still a directory, empty, with the mode and owner it was made with.
    fn untouched(&self, dir: &std::path::Path) -> bool {
        Self::observe(dir).is_some_and(|now| now.made == self.made)
            && std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
    }
}

/// A test's private temp dir goes after it; an empty one costs one rmdir.
fn remove_test_tmp(dir: &std::path::Path) {
    if std::fs::remove_dir(dir).is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The crossbeam-deque recipe: own deque, then a batch from the injector,
/// then a steal from another thread.
fn find_unit(
    local: &Worker<Unit>,
    injector: &Injector<Unit>,
    stealers: &[Stealer<Unit>],
) -> Option<Unit> {
    local.pop().or_else(|| {
        std::iter::repeat_with(|| {
            injector
                .steal_batch_and_pop(local)
                .or_else(|| stealers.iter().map(Stealer::steal).collect())
        })
        .find(|s| !s.is_retry())
        .and_then(Steal::success)
    })
}
