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
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use groups::GroupLimits;
use queue::{Attempt, Queue};
use slot::{Assignment, Command, Done, Report, SlotError, Work};

use crate::discover::pytest::{FileTests, Files, TestAddress, check_same_files};
use crate::discover::{Adapter, Runs, Status, TestCase};
use crate::error::Error;
use crate::exec::Spawner;
use crate::history::History;
use crate::isolation::Lifecycle;
use crate::plan::Plan;
use crate::report::{Event, TestFinished};
use crate::shard::queue::{Adopted, Feed};

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
    /// `PARTEST_SHARD` for every test: `K/N`, or `queue`.
    pub shard: Option<String>,
    /// `--shard queue`: the shared queue this machine pulls units from.
    pub queue: Option<crate::shard::queue::QueueOptions>,
    /// `[run] leak = "fail"`: a test that leaves processes behind fails.
    pub leak_fails: bool,
    /// `[env]`, laid over each slot's variables.
    pub env: std::collections::BTreeMap<String, String>,
    /// `[isolation]` private paths, when asked for (the probe passed).
    pub private_paths: Option<Arc<crate::isolation::private_paths::PrivatePaths>>,
}

/// What the slot threads share for the run.
pub struct PoolContext<'a> {
    pub adapter: &'a dyn Adapter,
    pub lifecycle: &'a Lifecycle,
    pub spawner: &'a Spawner,
    /// Past durations: how pytest's files are shared out to be collected.
    pub history: &'a History,
    pub options: PoolOptions,
    /// pytest workers that may still be replaced.
    restarts_left: AtomicUsize,
    /// pytest: every file's tests as first collected, what the run is
    /// planned on; a worker that collects a file again must agree.
    planned_files: OnceLock<Vec<FileTests>>,
}

impl<'a> PoolContext<'a> {
    pub fn new(
        adapter: &'a dyn Adapter,
        lifecycle: &'a Lifecycle,
        spawner: &'a Spawner,
        history: &'a History,
        options: PoolOptions,
    ) -> PoolContext<'a> {
        PoolContext {
            adapter,
            lifecycle,
            spawner,
            history,
            restarts_left: AtomicUsize::new(options.max_worker_restart),
            options,
            planned_files: OnceLock::new(),
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

/// Starts every slot, waits until all are set up (pytest workers: each has
/// collected its share of the files), asks `make_plan` for the plan (given
/// the workers' collection, for pytest),
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
        let ready = ready(ctx, &reports, &mut seats, events);
        let home = ready.as_ref().ok().and_then(|r| r.home.clone());
        match ready.and_then(|r| make_plan(r.tests)) {
            Ok(plan) => {
                let plan = Arc::new(plan);
                outcome.plan = Some(plan.clone());
                let home_of_queue = home.map(|home| {
                    plan.parallel
                        .iter()
                        .map(|q| {
                            q.first()
                                .and_then(|&t| home.get(plan.tests[t as usize].file as usize))
                                .copied()
                        })
                        .collect()
                });
                let feed = match start_feed(ctx, &plan) {
                    Ok(feed) => feed,
                    Err(e) => {
                        outcome.error.get_or_insert(e);
                        for seat in &seats {
                            let _ = seat.commands.send(Command::Finish);
                        }
                        return outcome;
                    }
                };
                let queue = if feed.is_some() {
                    Queue::empty(&plan, workers)
                } else {
                    Queue::new(&plan, workers, home_of_queue)
                };
                let mut coordinator = Coordinator {
                    ctx,
                    queue,
                    feed,
                    drained: false,
                    groups: GroupLimits::new(&plan.groups),
                    plan: &plan,
                    seats: &mut seats,
                    events,
                    reports: &reports,
                    stop: false,
                    lookahead: ctx.adapter.pytest().is_some(),
                    // A pytest worker has two tests queued behind the one it
                    // runs, so it never waits for us between tests even when
                    // its slot thread is slow to wake (the workers keep both
                    // cores busy); not when a plugin resets the slot between
                    // tests, nor with fail-fast (which then would start
                    // tests too many).
                    depth: if ctx.adapter.pytest().is_some()
                        && !ctx.options.fail_fast
                        && !ctx.lifecycle.resets_between_tests()
                    {
                        PYTEST_DEPTH
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

/// Where a pytest test is in its worker's collection.
fn address(test: &TestCase) -> TestAddress {
    TestAddress {
        file: test.file,
        offset: test.position,
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
    /// Promised to this slot as its next test (pytest's `nextitem`).
    next: Option<Attempt>,
    /// It has not failed: it takes work.
    alive: bool,
}

/// Tests sent to a pytest worker at once (the one it runs and those queued
/// behind it).
const PYTEST_DEPTH: usize = 3;

/// A test is queued behind those a slot runs only while they are known to
/// take less than this: queueing saves a round trip per test, worth it for
/// short tests, while a long test queued on a busy slot can lengthen the tail.
const QUEUE_BEHIND_BELOW: Duration = Duration::from_millis(50);

/// What the slots found once set up.
struct Ready {
    /// pytest: the tests the workers collected together.
    tests: Option<Vec<TestCase>>,
    /// pytest: the slot that collected each file first (its home).
    home: Option<Vec<usize>>,
}

/// Waits until every slot is set up. pytest: the workers' file lists must
/// agree; each worker then collects its share of the files, so each module
/// is imported by one worker rather than by all of them.
fn ready(
    ctx: &PoolContext,
    reports: &Receiver<Report>,
    seats: &mut [Seat],
    events: &Sender<Event>,
) -> Result<Ready, Error> {
    let mut lists: Vec<Option<Files>> = vec![None; seats.len()];
    let mut error = None;
    for _ in 0..seats.len() {
        let Ok(report) = reports.recv() else { break };
        match report {
            Report::Ready { slot, files } => {
                let _ = events.send(Event::SlotReady { slot });
                lists[slot] = files;
            }
            Report::Failed { slot, error: e } => {
                seats[slot].alive = false;
                error.get_or_insert(slot_error(slot, e));
            }
            Report::Done(_) | Report::Collected(_) => {}
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    let Some(pytest) = ctx.adapter.pytest() else {
        return Ok(Ready {
            tests: None,
            home: None,
        });
    };
    let Some(Some(files)) = lists.first() else {
        return Err(Error::setup("slot gw0 reported no test files"));
    };
    for (slot, other) in lists.iter().enumerate().skip(1) {
        if let Some(other) = other {
            check_same_files(files, other, &format!("gw{slot}"))?;
        }
    }
    let shares = share_files(ctx, &files.files, seats.len());
    let mut home = vec![0; files.files.len()];
    for (slot, share) in shares.iter().enumerate() {
        for &f in share {
            home[f as usize] = slot;
        }
        let _ = seats[slot]
            .commands
            .send(slot::Command::Collect(share.clone()));
    }
    let mut found: Vec<Option<FileTests>> = vec![None; files.files.len()];
    let mut errors = Vec::new();
    for _ in 0..seats.len() {
        let Ok(report) = reports.recv() else { break };
        match report {
            Report::Collected(collected) => {
                errors.extend(collected.errors);
                for f in collected.files {
                    let at = f.file as usize;
                    if at < found.len() {
                        found[at] = Some(f);
                    }
                }
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
    if !errors.is_empty() {
        return Err(pytest.collect_errors(&errors));
    }
    let times: Vec<(&str, Duration)> = found
        .iter()
        .flatten()
        .filter_map(|f| {
            let secs = Duration::try_from_secs_f64(f.secs?).ok()?;
            Some((files.files.get(f.file as usize)?.as_str(), secs))
        })
        .collect();
    if let Some(warning) = ctx.history.save_collect_times(&times) {
        let _ = events.send(Event::Warning(warning));
    }
    let planned: Vec<FileTests> = found
        .into_iter()
        .enumerate()
        .map(|(f, tests)| {
            tests.ok_or_else(|| {
                Error::setup(format!("no pytest worker collected {}", files.files[f]))
            })
        })
        .collect::<Result<_, _>>()?;
    let tests = pytest.tests(&planned);
    let _ = ctx.planned_files.set(planned);
    Ok(Ready {
        tests: Some(tests),
        home: Some(home),
    })
}

/// Which files each slot collects first: longest-processing-time over what
/// each file cost a worker before (history: its tests' expected time plus
/// what importing and collecting it took), else the files' size on disk, so
/// that the slots' shares take about as long and a slot seldom has to import
/// another's file to keep busy.
fn share_files(ctx: &PoolContext, files: &[String], slots: usize) -> Vec<Vec<u32>> {
    let tests = ctx.history.file_totals();
    let collect = ctx.history.collect_times();
    let weights: Vec<f64> = if tests.is_empty() && collect.is_empty() {
        let root = ctx.adapter.pytest().map(|p| p.root().to_path_buf());
        files
            .iter()
            .map(|f| {
                root.as_ref()
                    .and_then(|r| std::fs::metadata(r.join(f)).ok())
                    .map_or(1.0, |m| m.len().max(1) as f64)
            })
            .collect()
    } else {
        let mean = |known: Vec<f64>| known.iter().sum::<f64>() / known.len().max(1) as f64;
        let tests_mean = mean(tests.values().map(Duration::as_secs_f64).collect());
        let collect_mean = mean(collect.values().map(Duration::as_secs_f64).collect());
        files
            .iter()
            .map(|f| {
                tests
                    .get(f.as_str())
                    .map_or(tests_mean, Duration::as_secs_f64)
                    + collect.get(f).map_or(collect_mean, Duration::as_secs_f64)
            })
            .collect()
    };
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut load = vec![0.0_f64; slots.max(1)];
    let mut shares = vec![Vec::new(); slots.max(1)];
    for f in order {
        let slot = (0..load.len())
            .min_by(|&a, &b| load[a].total_cmp(&load[b]))
            .unwrap_or(0);
        load[slot] += weights[f];
        shares[slot].push(f as u32);
    }
    for share in &mut shares {
        share.sort_unstable();
    }
    shares
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
    /// `--shard queue`: where more units come from once `queue` runs dry.
    feed: Option<Feed>,
    /// The shared queue had nothing the last time it was asked.
    drained: bool,
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
        // In queue mode, what this machine will run is not known ahead.
        let total = match &self.feed {
            Some(_) => 0,
            None => plan.runnable() + plan.skipped.len(),
        };
        let _ = self.events.send(Event::Planned {
            tests: Arc::new(plan.tests.clone()),
            total,
        });
        let _ = self.events.send(Event::RunStarted {
            run_id: self.ctx.options.run_id.clone(),
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
                Report::Ready { .. } | Report::Collected(_) => {}
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
                    Ok(Report::Ready { .. } | Report::Collected(_)) => {}
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
        let test = &self.plan.tests[current.test as usize];
        let work = match self.ctx.adapter.runs() {
            Runs::Worker(_) => Work::Pytest {
                test: address(test),
                next: next.map(|n| address(&self.plan.tests[n.test as usize])),
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
        if !will_retry
            && status != Status::Cancelled
            && let Some(feed) = self.feed.as_mut()
        {
            feed.ended(done.test, status, done.duration);
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
