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
use std::thread::Scope;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use groups::GroupLimits;
use queue::{Attempt, Queue};
use slot::{Command, Report};

use crate::discover::collect::{Collected, Files, check_same_files};
use crate::discover::executor::{ExecContext, PastCosts, SlotError};
use crate::discover::{Adapter, Runs};
use crate::error::Error;
use crate::exec::Spawner;
use crate::history::History;
use crate::isolation::Lifecycle;
use crate::model::{Assignment, Ran, RunOptions, Status, TestCase, TestFinished, Trial, Work};
use crate::plan::Plan;
use crate::report::Event;
use crate::shard::queue::{Adopted, Feed};

/// What the coordinator itself decides by (the executors' options are
/// [`RunOptions`]).
pub struct PoolOptions {
    pub retries: u32,
    /// Start nothing more after this many failures (`--fail-fast`: 1,
    /// `--maxfail N`); `None`: run everything.
    pub stop_after: Option<u32>,
    /// `--shard queue`: the shared queue this machine pulls units from.
    pub queue: Option<crate::shard::queue::QueueOptions>,
    /// `[isolation]` private paths, when asked for (the probe passed).
    pub private_paths: Option<Arc<crate::exec::private_paths::PrivatePaths>>,
}

/// What the slot threads share for the run.
pub struct PoolContext<'a> {
    pub adapter: &'a dyn Adapter,
    pub lifecycle: &'a Lifecycle,
    /// Past durations: how a worker adapter's files are shared out to be collected.
    pub history: &'a History,
    pub options: PoolOptions,
    /// What every slot's executor shares.
    pub exec: ExecContext<'a>,
}

impl<'a> PoolContext<'a> {
    pub fn new(
        adapter: &'a dyn Adapter,
        lifecycle: &'a Lifecycle,
        spawner: &'a Spawner,
        history: &'a History,
        run: RunOptions,
        options: PoolOptions,
    ) -> PoolContext<'a> {
        let mut exec = ExecContext::new(spawner, run);
        exec.private_paths = options.private_paths.clone();
        PoolContext {
            adapter,
            lifecycle,
            history,
            options,
            exec,
        }
    }
}

/// How the pool's work ended, beyond the per-test events.
#[derive(Debug, Default)]
pub struct PoolOutcome {
    /// Why the run could not go on: a slot's setup, a worker, a plan.
    pub error: Option<Error>,
    /// A test failed for good: plugins' teardown hears `run_failed`
    /// (keep-on-failure).
    pub tests_failed: bool,
    /// The parallel phase's timeline: each attempt that ended, in the
    /// order they ended.
    pub timeline: Vec<Ran>,
    /// The tests that failed for good in the parallel phase, in that order.
    pub failed_in_parallel: Vec<u32>,
}

/// The running slots. [`Pool::start`] starts a thread per slot,
/// [`Pool::ready`] waits until each is set up (a worker adapter's slots then
/// collect the suite between them), and [`Pool::run`] runs the plan made
/// from that: the parallel phase, then the serial one on slot 0. Dropping
/// it lets the slots go (their workers stop); the slots stay set up, and
/// the caller tears them down through the lifecycle on every path.
pub struct Pool<'a> {
    ctx: &'a PoolContext<'a>,
    seats: Vec<Seat>,
    reports: Receiver<Report>,
    /// A worker adapter's: the slot that collected each file first (its home).
    home: Option<Vec<usize>>,
}

impl PoolOutcome {
    /// The run could not go on before any test ran.
    pub fn failed(error: Error) -> PoolOutcome {
        PoolOutcome {
            error: Some(error),
            ..PoolOutcome::default()
        }
    }
}

impl<'a> Pool<'a> {
    /// Starts a thread per slot in `scope`; each sets its slot up.
    pub fn start(scope: &'a Scope<'a, '_>, ctx: &'a PoolContext<'a>) -> Result<Pool<'a>, Error> {
        let workers = ctx.exec.options.workers.max(1);
        let (report_tx, reports) = crossbeam_channel::unbounded();
        let mut seats = Vec::with_capacity(workers);
        for index in 0..workers {
            let (tx, rx) = crossbeam_channel::unbounded();
            let report_tx = report_tx.clone();
            std::thread::Builder::new()
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
                })
                .map_err(|e| Error::setup(format!("cannot start a pool thread: {e}")))?;
            seats.push(Seat {
                commands: tx,
                sent: VecDeque::new(),
                next: None,
                alive: true,
            });
        }
        Ok(Pool {
            ctx,
            seats,
            reports,
            home: None,
        })
    }

    /// Waits until every slot is set up. A worker adapter's workers must
    /// find the same files; each then collects its share of them, and
    /// what they found together is returned to plan on (None: the adapter
    /// listed the tests up front).
    pub fn ready(&mut self, events: &Sender<Event>) -> Result<Option<Vec<TestCase>>, Error> {
        let (ctx, reports, seats) = (self.ctx, &self.reports, &mut self.seats);
        let mut lists: Vec<Option<Files>> = vec![None; seats.len()];
        let mut error = None;
        for _ in 0..seats.len() {
            let Ok(report) = reports.recv() else { break };
            match report {
                Report::Ready { slot, files, took } => {
                    let _ = events.send(Event::Span {
                        slot: Some(slot),
                        name: "slot set-up and worker start".into(),
                        duration: took,
                    });
                    let _ = events.send(Event::SlotReady { slot });
                    lists[slot] = files;
                }
                Report::Failed { slot, error: e } => {
                    seats[slot].alive = false;
                    error.get_or_insert(slot_error(slot, e));
                }
                Report::Done(_) | Report::Collected { .. } => {}
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        let Runs::Workers(workers) = ctx.adapter.runs() else {
            return Ok(None);
        };
        let Some(Some(files)) = lists.first() else {
            return Err(Error::setup("slot gw0 reported no test files"));
        };
        for (slot, other) in lists.iter().enumerate().skip(1) {
            if let Some(other) = other {
                check_same_files(files, other, &format!("gw{slot}"))?;
            }
        }
        let past = PastCosts {
            tests: ctx.history.file_totals(),
            collect: ctx.history.collect_times(),
        };
        let shares = workers.shares(&files.files, seats.len(), &past);
        let mut home = vec![0; files.files.len()];
        for (slot, share) in shares.iter().enumerate() {
            for &f in share {
                home[f as usize] = slot;
            }
            let _ = seats[slot].commands.send(Command::Collect(share.clone()));
        }
        let mut collected: Vec<Collected> = Vec::with_capacity(seats.len());
        for _ in 0..seats.len() {
            let Ok(report) = reports.recv() else { break };
            match report {
                Report::Collected {
                    slot,
                    collected: c,
                    took,
                } => {
                    let _ = events.send(Event::Span {
                        slot: Some(slot),
                        name: format!("collection ({} file(s))", c.files.len()),
                        duration: took,
                    });
                    collected.push(c);
                }
                Report::Failed { slot, error: e } => {
                    seats[slot].alive = false;
                    error.get_or_insert(slot_error(slot, e));
                }
                Report::Ready { .. } | Report::Done(_) => {}
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        // Every worker deselects the same tests: gw0's count, and in share
        // mode the sum over the shares each worker collected.
        let deselected = files.deselected + collected.iter().map(|c| c.deselected).sum::<usize>();
        if deselected > 0 {
            let _ = events.send(Event::Deselected { tests: deselected });
        }
        let merged = workers.merge(&ctx.exec, files, collected)?;
        let times: Vec<(&str, Duration)> = merged
            .collect_times
            .iter()
            .map(|(f, d)| (f.as_str(), *d))
            .collect();
        if let Some(warning) = ctx.history.save_collect_times(&times) {
            let _ = events.send(Event::Warning(warning));
        }
        let tests = merged.tests?;
        self.home = Some(home);
        Ok(Some(tests))
    }

    /// Runs `plan`'s tests: the parallel phase, then the serial one on slot 0.
    pub fn run(&mut self, plan: &Plan, events: &Sender<Event>) -> PoolOutcome {
        let ctx = self.ctx;
        let workers = self.seats.len();
        let mut outcome = PoolOutcome::default();
        let home_of_queue = self.home.take().map(|home| {
            plan.parallel
                .iter()
                .map(|q| {
                    q.first()
                        .and_then(|&t| home.get(plan.tests[t as usize].file as usize))
                        .copied()
                })
                .collect()
        });
        let feed = match start_feed(ctx, plan) {
            Ok(feed) => feed,
            Err(e) => {
                outcome.error.get_or_insert(e);
                return outcome;
            }
        };
        let queue = if feed.is_some() {
            Queue::empty(plan, workers)
        } else {
            Queue::new(plan, workers, home_of_queue)
        };
        let in_workers = matches!(ctx.adapter.runs(), Runs::Workers(_));
        let mut coordinator = Coordinator {
            ctx,
            queue,
            feed,
            drained: false,
            groups: GroupLimits::new(&plan.groups),
            plan,
            workers: vec![0; self.seats.len()],
            seats: &mut self.seats,
            events,
            reports: &self.reports,
            stop: false,
            started: Instant::now(),
            serial: false,
            failures: 0,
            lookahead: in_workers,
            // A long-lived worker has two tests queued behind the one it
            // runs, so it never waits for us between tests even when its
            // slot thread is slow to wake (the workers keep both cores
            // busy); not when a plugin resets the slot between tests, nor
            // when failures stop the run (which then would start tests too many).
            depth: if in_workers
                && ctx.options.stop_after.is_none()
                && !ctx.lifecycle.resets_between_tests()
            {
                WORKER_DEPTH
            } else {
                1
            },
            outcome: &mut outcome,
        };
        coordinator.run();
        let feed = coordinator.feed.take();
        drop(coordinator);
        if let Some(feed) = feed
            && let Err(e) = feed.finish()
        {
            outcome.error.get_or_insert(e);
        }
        outcome
    }
}

impl Pool<'_> {
    /// One diagnosis trial, after the run: each lane's slot is torn down
    /// and set up again with a fresh worker, then runs its tests in order,
    /// all lanes at once. Nothing is reported as the run's. The status of
    /// `victim`'s run; `None` when it did not run (Ctrl-C, a slot that
    /// could not be set up again: the slot is then out for good).
    pub fn trial(&mut self, plan: &Plan, trial: &Trial, victim: u32) -> Option<Status> {
        let lanes: Vec<_> = trial
            .lanes
            .iter()
            .filter(|l| self.seats.get(l.slot).is_some_and(|s| s.alive))
            .collect();
        if lanes.len() < trial.lanes.len() {
            return None;
        }
        // Per slot: what it still owes (its Ready, then one Done per test).
        let mut owed = vec![0usize; self.seats.len()];
        for lane in &lanes {
            if self.seats[lane.slot].commands.send(Command::Fresh).is_err() {
                self.seats[lane.slot].alive = false;
                return None;
            }
            owed[lane.slot] = 1;
        }
        let mut fresh = true;
        self.await_owed(&mut owed, |_| {})?;
        for lane in &lanes {
            let first = |test| Attempt { test, attempt: 1 };
            for (i, &test) in lane.tests.iter().enumerate() {
                let next = lane.tests.get(i + 1).copied().map(first);
                let assignment = assignment(self.ctx, plan, first(test), next);
                if self.seats[lane.slot]
                    .commands
                    .send(Command::Run(assignment))
                    .is_err()
                {
                    fresh = false;
                    break;
                }
                owed[lane.slot] += 1;
            }
        }
        let mut status = None;
        self.await_owed(&mut owed, |done| {
            if done.test == victim {
                status = Some(done.status);
            }
        })?;
        status.filter(|s| fresh && *s != Status::Cancelled)
    }

    /// Waits until every slot has answered what it `owed`; `None` when a
    /// slot failed meanwhile (what the others owed is still awaited).
    fn await_owed(
        &mut self,
        owed: &mut [usize],
        mut on_done: impl FnMut(&TestFinished),
    ) -> Option<()> {
        let mut failed = false;
        while owed.iter().any(|&n| n > 0) {
            let Ok(report) = self.reports.recv() else {
                return None;
            };
            match report {
                Report::Ready { slot, .. } => owed[slot] = owed[slot].saturating_sub(1),
                Report::Done(done) => {
                    owed[done.slot] = owed[done.slot].saturating_sub(1);
                    on_done(&done);
                }
                Report::Failed { slot, .. } => {
                    owed[slot] = 0;
                    self.seats[slot].alive = false;
                    failed = true;
                }
                Report::Collected { .. } => {}
            }
        }
        (!failed).then_some(())
    }
}

/// What a slot is sent to run `current` (with `next` as the test after it).
fn assignment(
    ctx: &PoolContext,
    plan: &Plan,
    current: Attempt,
    next: Option<Attempt>,
) -> Assignment {
    let test = &plan.tests[current.test as usize];
    let work = match ctx.adapter.runs() {
        Runs::Workers(_) => Work::Item {
            test: test.address(),
            next: next.map(|n| plan.tests[n.test as usize].address()),
        },
        Runs::Processes(adapter) => Work::Process(adapter.invocation(test)),
    };
    Assignment {
        test: current.test,
        attempt: current.attempt,
        name: test.name.clone(),
        work,
    }
}

impl Drop for Pool<'_> {
    fn drop(&mut self) {
        for seat in &self.seats {
            let _ = seat.commands.send(Command::Finish);
        }
    }
}

/// `--shard queue`: joins the shared queue with the plan's units.
fn start_feed(ctx: &PoolContext, plan: &Plan) -> Result<Option<Feed>, Error> {
    let (Some(options), Some(units)) = (&ctx.options.queue, &plan.queue_units) else {
        return Ok(None);
    };
    let tests: usize = units.iter().map(|u| u.tests.len()).sum();
    let feed = Feed::start(options.clone(), &plan.tests, units.clone())?;
    eprintln!(
        "partest: queue {} on {}: {} units ({tests} tests) shared by every machine; this one {} it and runs what it pulls",
        options.run,
        crate::shard::queue::shown_url(&options.url),
        units.len(),
        if feed.initializer { "filled" } else { "joined" },
    );
    Ok(Some(feed))
}

/// One slot, as the coordinator sees it.
struct Seat {
    commands: Sender<Command>,
    /// Sent to the slot and not finished yet, oldest (running) first.
    sent: VecDeque<Attempt>,
    /// Promised to this slot as its next test (a worker's lookahead).
    next: Option<Attempt>,
    /// It has not failed: it takes work.
    alive: bool,
}

/// Tests sent to a long-lived worker at once (the one it runs and those
/// queued behind it).
const WORKER_DEPTH: usize = 3;

/// A test is queued behind those a slot runs only while they are known to
/// take less than this: queueing saves a round trip per test, worth it for
/// short tests, while a long test queued on a busy slot can lengthen the tail.
const QUEUE_BEHIND_BELOW: Duration = Duration::from_millis(50);

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
    /// `--shard queue`: where more units come from once `queue` runs dry.
    feed: Option<Feed>,
    /// The shared queue had nothing the last time it was asked.
    drained: bool,
    groups: GroupLimits,
    /// Per slot, which of its workers runs now (one replaced after a crash
    /// or a timeout starts afresh): the timeline's `worker`.
    workers: Vec<u32>,
    seats: &'b mut [Seat],
    events: &'b Sender<Event>,
    reports: &'b Receiver<Report>,
    /// fail-fast tripped, or a slot failed: start nothing more.
    stop: bool,
    /// Promise each slot its next test (a long-lived worker keeps the
    /// fixtures the next test shares).
    lookahead: bool,
    /// How many tests a slot is sent at once.
    depth: usize,
    outcome: &'b mut PoolOutcome,
    /// The run's clock, for the timeline.
    started: Instant,
    /// In the serial phase (not on the timeline: nothing runs beside it).
    serial: bool,
    /// Tests that failed for good so far (`stop_after` counts them).
    failures: u32,
}

impl Coordinator<'_, '_> {
    fn run(&mut self) {
        let plan = self.plan;
        // In queue mode, what this machine will run is not known ahead.
        let total = match &self.feed {
            Some(_) => 0,
            None => plan.runnable() + plan.skipped.len(),
        };
        let _ = self.events.send(Event::Planned {
            tests: Arc::new(plan.tests.clone()),
            total,
            from_last_run: plan.from_last_run.clone(),
            estimate: Arc::new(if plan.known.iter().any(|&k| k) {
                plan.estimate.clone()
            } else {
                Vec::new()
            }),
        });
        let _ = self.events.send(Event::RunStarted {
            run_id: self.ctx.exec.options.run_id.clone(),
            workers: self.seats.len(),
            parallel: plan.parallel_count(),
            serial: plan.serial.len(),
            skipped: plan.skipped.len(),
        });
        // Ignored tests are reported once: by the machine that filled the queue.
        if self.feed.as_ref().is_none_or(|f| f.initializer) {
            for &test in &plan.skipped {
                let _ = self.events.send(Event::TestSkipped { test });
            }
        }
        let _ = self.events.send(Event::PhaseStarted { serial: false });
        loop {
            self.parallel_phase();
            if !self.halted() && self.seats[0].alive {
                self.serial_phase();
            }
            if self.halted() || self.feed.is_none() || !self.wait_for_others() {
                return;
            }
        }
    }

    /// `--shard queue`, this machine out of work: looks at the queue until
    /// every unit is done (false) or units came back from a dead machine
    /// (true: pull again). A dead machine's results are reported here.
    fn wait_for_others(&mut self) -> bool {
        loop {
            if self.halted() {
                return false;
            }
            let Some(feed) = self.feed.as_mut() else {
                return false;
            };
            let round = match feed.round() {
                Ok(round) => round,
                Err(e) => {
                    self.fail(e);
                    return false;
                }
            };
            for adopted in round.adopted {
                self.adopt(adopted);
            }
            if round.finished {
                return false;
            }
            if round.more {
                self.drained = false;
                return true;
            }
            if let Some(feed) = &self.feed {
                feed.pause();
            }
        }
    }

    /// A test that ended on a machine that then died: its result, reported once.
    fn adopt(&mut self, a: Adopted) {
        if a.status.is_failure() {
            self.outcome.tests_failed = true;
        }
        let _ = self.events.send(Event::TestFinished(Box::new(TestFinished {
            test: a.test,
            slot: 0,
            attempt: 1,
            status: a.status,
            duration: a.duration,
            output: Some(format!(
                "ran on machine {}, which then stopped answering; its result is reported by this one\n",
                a.machine
            )),
            stderr: None,
            leaked: false,
            will_retry: false,
            stop: false,
        })));
    }

    /// The next test for `slot`; in queue mode a unit is pulled from the
    /// shared queue first when the slot would otherwise steal.
    fn take(&mut self, slot: usize) -> Option<Attempt> {
        if !self.drained && self.queue.would_steal(slot) {
            let claimed = self.feed.as_mut().map(Feed::claim_parallel);
            match claimed {
                Some(Ok(Some(tests))) => self.queue.add(tests),
                Some(Ok(None)) => self.drained = true,
                Some(Err(e)) => {
                    self.fail(e);
                    return None;
                }
                None => {}
            }
        }
        self.queue.take(slot, &self.groups)
    }

    fn halted(&self) -> bool {
        self.stop || self.ctx.exec.spawner.interrupts.is_set()
    }

    fn parallel_phase(&mut self) {
        self.serial = false;
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
                    if let Some(retry) = self.finished(done) {
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
                Report::Ready { .. } | Report::Collected { .. } => {}
            }
        }
    }

    fn serial_phase(&mut self) {
        let first = |test: u32| Attempt { test, attempt: 1 };
        let mut list: VecDeque<Attempt> = match &self.feed {
            Some(_) => VecDeque::new(),
            None => self.plan.serial.iter().copied().map(first).collect(),
        };
        let mut announced = false;
        loop {
            if self.halted() {
                break;
            }
            if list.is_empty()
                && let Some(feed) = self.feed.as_mut()
            {
                match feed.claim_serial() {
                    Ok(Some(tests)) => list.extend(tests.into_iter().map(first)),
                    Ok(None) => {}
                    Err(e) => {
                        self.fail(e);
                        return;
                    }
                }
            }
            let Some(current) = list.pop_front() else {
                break;
            };
            if !announced {
                let _ = self.events.send(Event::PhaseStarted { serial: true });
                announced = true;
                self.serial = true;
            }
            self.send(0, current, list.front().copied());
            loop {
                match self.reports.recv() {
                    Ok(Report::Done(done)) => {
                        if let Some(retry) = self.finished(done) {
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
                    Ok(Report::Ready { .. } | Report::Collected { .. }) => {}
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
            if !self.seats[slot].sent.is_empty() && !self.worth_queueing(slot) {
                return;
            }
            let current = match self.seats[slot].next.take() {
                Some(promised) => promised,
                None => match self.take(slot) {
                    Some(a) => {
                        self.groups.enter(self.group(a.test));
                        a
                    }
                    None => return,
                },
            };
            let next = if self.lookahead {
                self.take(slot).inspect(|a| {
                    self.groups.enter(self.plan.group_of[a.test as usize]);
                })
            } else {
                None
            };
            self.seats[slot].next = next;
            self.send(slot, current, next);
        }
    }

    /// Whether to queue another test behind what `slot` runs: yes while its
    /// tests are known to be short; for tests the history has not seen, only
    /// while plenty of work is left, so that a few long unknown tests are not
    /// all committed to one slot at the end.
    fn worth_queueing(&self, slot: usize) -> bool {
        let seat = &self.seats[slot];
        let committed = seat.sent.iter().chain(&seat.next);
        if committed.clone().all(|a| self.plan.known[a.test as usize]) {
            let expected: Duration = committed.map(|a| self.plan.estimate[a.test as usize]).sum();
            expected < QUEUE_BEHIND_BELOW
        } else {
            self.queue.pending() >= 4 * self.depth * self.seats.len()
        }
    }

    fn send(&mut self, slot: usize, current: Attempt, next: Option<Attempt>) {
        let assignment = assignment(self.ctx, self.plan, current, next);
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

    /// Records a finished test and reports it; returns its retry, if it
    /// gets one.
    fn finished(&mut self, mut done: Box<TestFinished>) -> Option<Attempt> {
        let seat = &mut self.seats[done.slot];
        if let Some(at) = seat
            .sent
            .iter()
            .position(|a| a.test == done.test && a.attempt == done.attempt)
        {
            seat.sent.remove(at);
        }
        self.groups.leave(self.plan.group_of[done.test as usize]);
        let interrupted = self.ctx.exec.spawner.interrupts.is_set();
        if interrupted && done.status.is_failure() {
            done.status = Status::Cancelled;
        }
        let status = done.status;
        let will_retry = status.is_failure() && done.attempt <= self.ctx.options.retries;
        if !self.serial && status != Status::Cancelled {
            let end = self.started.elapsed();
            self.outcome.timeline.push(Ran {
                test: done.test,
                slot: done.slot,
                worker: self.workers[done.slot],
                start: end.saturating_sub(done.duration),
                end,
            });
            if matches!(status, Status::Crash | Status::Timeout) {
                self.workers[done.slot] += 1;
            }
        }
        if status.is_failure() && !will_retry {
            self.outcome.tests_failed = true;
            if !self.serial {
                self.outcome.failed_in_parallel.push(done.test);
            }
            self.failures += 1;
            if self
                .ctx
                .options
                .stop_after
                .is_some_and(|n| self.failures >= n)
            {
                self.halt();
            }
        }
        if done.stop {
            self.halt();
        }
        if !will_retry
            && status != Status::Cancelled
            && let Some(feed) = self.feed.as_mut()
        {
            feed.ended(done.test, status, done.duration);
        }
        done.will_retry = will_retry;
        let retry = will_retry.then_some(Attempt {
            test: done.test,
            attempt: done.attempt + 1,
        });
        let _ = self.events.send(Event::TestFinished(done));
        retry
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
