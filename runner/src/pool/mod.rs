//! The scheduler, shaped as nextest's dispatcher: one coordinator (the
//! calling thread) owns the run state — the queue, the groups, retries,
//! fail-fast, the serial phase and the events — and one thread per slot runs
//! the tests it is sent and answers over a channel. The coordinator sleeps on
//! that channel: no lock, no polling, and a slot that fails or panics is an
//! answer too, so the run never hangs on it.

mod groups;
mod queue;
mod slot;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use groups::GroupLimits;
use queue::{Attempt, Queue};
use slot::{Assignment, Command, Done, Report, SlotError, Work};

use crate::discover::pytest::check_same_collection;
use crate::discover::{Adapter, Runs, Status, TestCase};
use crate::error::Error;
use crate::exec::Spawner;
use crate::isolation::Lifecycle;
use crate::plan::Plan;
use crate::report::{Event, TestFinished};

pub struct PoolOptions {
    pub workers: usize,
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub fail_fast: bool,
    /// false: `--no-capture`, output streams to the terminal.
    pub capture: bool,
    pub run_id: String,
    /// pytest workers that may be replaced after a crash or timeout.
    pub max_worker_restart: usize,
    /// pytest-django uses each slot's database as it is (a migrated clone
    /// from the postgres plugin's template) instead of making its own.
    pub django_slot_db: bool,
    /// `[run] leak = "fail"`: a test that leaves processes behind fails.
    pub leak_fails: bool,
}

/// What the slot threads share for the run.
pub struct PoolContext<'a> {
    pub adapter: &'a dyn Adapter,
    pub lifecycle: &'a Lifecycle,
    pub spawner: &'a Spawner,
    pub options: PoolOptions,
    /// pytest workers that may still be replaced.
    restarts_left: AtomicUsize,
}

impl<'a> PoolContext<'a> {
    pub fn new(
        adapter: &'a dyn Adapter,
        lifecycle: &'a Lifecycle,
        spawner: &'a Spawner,
        options: PoolOptions,
    ) -> PoolContext<'a> {
        PoolContext {
            adapter,
            lifecycle,
            spawner,
            restarts_left: AtomicUsize::new(options.max_worker_restart),
            options,
        }
    }
}

/// How the pool's work ended, beyond the per-test events.
#[derive(Debug, Default)]
pub struct PoolOutcome {
    /// The plan the tests ran by (None when the slots never got ready).
    pub plan: Option<Arc<Plan>>,
    /// Why the run could not go on: a slot's setup, a worker, a plan.
    pub error: Option<Error>,
    /// A test failed for good: plugins' teardown hears `run_failed`
    /// (keep-on-failure).
    pub tests_failed: bool,
}

/// Starts every slot, waits until all are set up (pytest workers: collected),
/// asks `make_plan` for the plan (given the workers' collection, for pytest),
/// runs the parallel phase and then the serial one on slot 0, and stops the
/// slots' workers. Slots stay set up: the caller tears them down through the
/// lifecycle on every path.
pub fn run(
    ctx: &PoolContext,
    events: &Sender<Event>,
    make_plan: impl FnOnce(Option<Vec<TestCase>>) -> Result<Plan, Error>,
) -> PoolOutcome {
    let workers = ctx.options.workers.max(1);
    let (report_tx, reports) = crossbeam_channel::unbounded();
    std::thread::scope(|scope| {
        let mut seats = Vec::with_capacity(workers);
        for index in 0..workers {
            let (tx, rx) = crossbeam_channel::unbounded();
            let report_tx = report_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("partest-gw{index}"))
                .spawn_scoped(scope, move || {
                    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        slot::run_slot(ctx, index, rx, report_tx.clone())
                    }));
                    if let Err(panic) = panicked {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        let _ = report_tx.send(Report::Failed {
                            slot: index,
                            error: SlotError::Panicked(message),
                        });
                    }
                });
            if let Err(e) = spawned {
                return PoolOutcome {
                    error: Some(Error::setup(format!("cannot start a pool thread: {e}"))),
                    ..PoolOutcome::default()
                };
            }
            seats.push(Seat {
                commands: tx,
                sent: VecDeque::new(),
                next: None,
                alive: true,
            });
        }
        drop(report_tx);
        let mut outcome = PoolOutcome::default();
        match ready(ctx, &reports, &mut seats, events).and_then(make_plan) {
            Ok(plan) => {
                let plan = Arc::new(plan);
                outcome.plan = Some(plan.clone());
                let mut coordinator = Coordinator {
                    ctx,
                    queue: Queue::new(&plan, workers),
                    groups: GroupLimits::new(&plan.groups),
                    plan: &plan,
                    seats: &mut seats,
                    events,
                    reports: &reports,
                    stop: false,
                    lookahead: ctx.adapter.pytest().is_some(),
                    // A pytest worker is sent its next test while it runs one,
                    // so it never waits for us between tests; not when a
                    // plugin resets the slot between tests, nor with
                    // fail-fast (which then would start one test too many).
                    depth: if ctx.adapter.pytest().is_some()
                        && !ctx.options.fail_fast
                        && !ctx.lifecycle.resets_between_tests()
                    {
                        2
                    } else {
                        1
                    },
                    outcome: &mut outcome,
                };
                coordinator.run();
            }
            Err(e) => {
                outcome.error.get_or_insert(e);
            }
        }
        for seat in &seats {
            let _ = seat.commands.send(Command::Finish);
        }
        outcome
    })
}

/// One slot, as the coordinator sees it.
struct Seat {
    commands: Sender<Command>,
    /// Sent to the slot and not finished yet, oldest (running) first.
    sent: VecDeque<Attempt>,
    /// Promised to this slot as its next test (pytest's `nextitem`).
    next: Option<Attempt>,
    /// It has not failed: it takes work.
    alive: bool,
}

/// Waits until every slot is set up; for pytest, the workers' collections
/// must agree, and the first one's tests are returned.
fn ready(
    ctx: &PoolContext,
    reports: &Receiver<Report>,
    seats: &mut [Seat],
    events: &Sender<Event>,
) -> Result<Option<Vec<TestCase>>, Error> {
    let mut collections = vec![None; seats.len()];
    let mut answered = 0;
    let mut error = None;
    while answered < seats.len() {
        let Ok(report) = reports.recv() else { break };
        answered += 1;
        match report {
            Report::Ready { slot, collection } => {
                let _ = events.send(Event::SlotReady { slot });
                collections[slot] = collection;
            }
            Report::Failed { slot, error: e } => {
                seats[slot].alive = false;
                error.get_or_insert(slot_error(slot, e));
            }
            Report::Done(_) => {}
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    let Some(pytest) = ctx.adapter.pytest() else {
        return Ok(None);
    };
    let mut collections = collections.into_iter().enumerate();
    let Some((_, Some(first))) = collections.next() else {
        return Err(Error::setup("slot gw0 reported no collection"));
    };
    for (slot, other) in collections {
        if let Some(other) = other {
            check_same_collection(&first, &other, &format!("gw{slot}"))?;
        }
    }
    pytest.tests(&first).map(Some)
}

fn slot_error(slot: usize, error: SlotError) -> Error {
    match error {
        SlotError::Isolation(e) => Error::Isolation(e),
        SlotError::Exec(e) => Error::setup(e),
        SlotError::Panicked(message) => Error::setup(format!(
            "partest's thread for slot gw{slot} panicked: {message} (a bug in partest: please report it)"
        )),
    }
}

struct Coordinator<'a, 'b> {
    ctx: &'a PoolContext<'a>,
    plan: &'b Plan,
    queue: Queue<'b>,
    groups: GroupLimits,
    seats: &'b mut [Seat],
    events: &'b Sender<Event>,
    reports: &'b Receiver<Report>,
    /// fail-fast tripped, or a slot failed: start nothing more.
    stop: bool,
    /// Promise each slot its next test (pytest workers keep fixtures the
    /// next test shares).
    lookahead: bool,
    /// How many tests a slot is sent at once.
    depth: usize,
    outcome: &'b mut PoolOutcome,
}

impl Coordinator<'_, '_> {
    fn run(&mut self) {
        let plan = self.plan;
        let _ = self.events.send(Event::Planned {
            tests: Arc::new(plan.tests.clone()),
            total: plan.runnable() + plan.skipped.len(),
        });
        let _ = self.events.send(Event::RunStarted {
            run_id: self.ctx.options.run_id.clone(),
            workers: self.seats.len(),
            parallel: plan.parallel_count(),
            serial: plan.serial.len(),
            skipped: plan.skipped.len(),
        });
        for &test in &plan.skipped {
            let _ = self.events.send(Event::TestSkipped { test });
        }
        let _ = self.events.send(Event::PhaseStarted { serial: false });
        self.parallel_phase();
        if !self.halted() && !plan.serial.is_empty() && self.seats[0].alive {
            let _ = self.events.send(Event::PhaseStarted { serial: true });
            self.serial_phase();
        }
    }

    fn halted(&self) -> bool {
        self.stop || self.ctx.spawner.interrupts.is_set()
    }

    fn parallel_phase(&mut self) {
        for slot in 0..self.seats.len() {
            self.assign(slot);
        }
        while self.seats.iter().any(|s| !s.sent.is_empty()) {
            let Ok(report) = self.reports.recv() else {
                // Every slot thread is gone: what they ran is lost.
                self.fail(Error::setup("every slot thread ended unexpectedly"));
                return;
            };
            match report {
                Report::Done(done) => {
                    if let Some(retry) = self.finished(&done) {
                        self.queue.retry(retry);
                    }
                    // A slot came free, and perhaps a group place or a retry:
                    // every idle slot may now have work.
                    for slot in 0..self.seats.len() {
                        self.assign(slot);
                    }
                }
                Report::Failed { slot, error } => {
                    self.seats[slot].alive = false;
                    for a in std::mem::take(&mut self.seats[slot].sent) {
                        self.groups.leave(self.plan.group_of[a.test as usize]);
                    }
                    self.fail(slot_error(slot, error));
                }
                Report::Ready { .. } => {}
            }
        }
    }

    fn serial_phase(&mut self) {
        let mut list: VecDeque<Attempt> = self
            .plan
            .serial
            .iter()
            .map(|&test| Attempt { test, attempt: 1 })
            .collect();
        while let Some(current) = list.pop_front() {
            if self.halted() {
                break;
            }
            self.send(0, current, list.front().copied());
            loop {
                match self.reports.recv() {
                    Ok(Report::Done(done)) => {
                        if let Some(retry) = self.finished(&done) {
                            // A retried serial test runs again at once, still alone.
                            list.push_front(retry);
                        }
                        break;
                    }
                    Ok(Report::Failed { slot, error }) => {
                        self.seats[slot].alive = false;
                        self.fail(slot_error(slot, error));
                        return;
                    }
                    Ok(Report::Ready { .. }) => {}
                    Err(_) => {
                        self.fail(Error::setup("slot gw0's thread ended unexpectedly"));
                        return;
                    }
                }
            }
        }
    }

    fn group(&self, test: u32) -> Option<u16> {
        self.plan.group_of[test as usize]
    }

    /// Tops a slot up to `depth` tests sent, each promising the one after.
    fn assign(&mut self, slot: usize) {
        while !self.halted() && self.seats[slot].alive && self.seats[slot].sent.len() < self.depth {
            let current = match self.seats[slot].next.take() {
                Some(promised) => promised,
                None => match self.queue.take(slot, &self.groups) {
                    Some(a) => {
                        self.groups.enter(self.group(a.test));
                        a
                    }
                    None => return,
                },
            };
            let next = if self.lookahead {
                self.queue.take(slot, &self.groups).inspect(|a| {
                    self.groups.enter(self.plan.group_of[a.test as usize]);
                })
            } else {
                None
            };
            self.seats[slot].next = next;
            self.send(slot, current, next);
        }
    }

    fn send(&mut self, slot: usize, current: Attempt, next: Option<Attempt>) {
        let test = &self.plan.tests[current.test as usize];
        let work = match self.ctx.adapter.runs() {
            Runs::Worker(_) => Work::Pytest {
                position: test.position,
                next: next.map(|n| self.plan.tests[n.test as usize].position),
            },
            Runs::Processes(adapter) => Work::Process(adapter.invocation(test)),
        };
        let assignment = Assignment {
            test: current.test,
            attempt: current.attempt,
            name: test.name.clone(),
            work,
        };
        let _ = self.events.send(Event::TestStarted {
            test: current.test,
            slot,
            attempt: current.attempt,
        });
        self.seats[slot].sent.push_back(current);
        if self.seats[slot]
            .commands
            .send(Command::Run(assignment))
            .is_err()
        {
            self.seats[slot].sent.clear();
            self.seats[slot].alive = false;
            self.fail(Error::setup(format!("slot gw{slot}'s thread is gone")));
        }
    }

    /// Records a finished test; returns its retry, if it gets one.
    fn finished(&mut self, done: &Done) -> Option<Attempt> {
        let seat = &mut self.seats[done.slot];
        if let Some(at) = seat
            .sent
            .iter()
            .position(|a| a.test == done.test && a.attempt == done.attempt)
        {
            seat.sent.remove(at);
        }
        self.groups.leave(self.plan.group_of[done.test as usize]);
        let interrupted = self.ctx.spawner.interrupts.is_set();
        let status = if interrupted && done.status.is_failure() {
            Status::Cancelled
        } else {
            done.status
        };
        let will_retry = status.is_failure() && done.attempt <= self.ctx.options.retries;
        if status.is_failure() && !will_retry {
            self.outcome.tests_failed = true;
            if self.ctx.options.fail_fast {
                self.halt();
            }
        }
        if done.stop {
            self.halt();
        }
        let _ = self.events.send(Event::TestFinished(Box::new(TestFinished {
            test: done.test,
            slot: done.slot,
            attempt: done.attempt,
            status,
            duration: done.duration,
            output: done.output.clone(),
            stderr: done.stderr.clone(),
            leaked: done.leaked,
            will_retry,
        })));
        will_retry.then_some(Attempt {
            test: done.test,
            attempt: done.attempt + 1,
        })
    }

    /// Start nothing more; promised tests are let go (reported as not run).
    fn halt(&mut self) {
        self.stop = true;
        for seat in self.seats.iter_mut() {
            if let Some(next) = seat.next.take() {
                self.groups.leave(self.plan.group_of[next.test as usize]);
            }
        }
    }

    fn fail(&mut self, error: Error) {
        self.outcome.error.get_or_insert(error);
        self.halt();
    }
}
