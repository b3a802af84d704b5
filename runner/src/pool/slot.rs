//! One slot's thread: sets its slot up, starts what runs its tests (a
//! process per test, or a long-lived pytest worker), then runs the tests the
//! coordinator sends and answers each over the coordinator's channel.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::collections::VecDeque;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::PoolContext;
use crate::discover::pytest::{
    Collected, Files, Reply, TestAddress, check_same_files, check_same_tests,
};
use crate::discover::{Invocation, ProcessEnd, PytestWorker, Status, TestReply, Wait};
use crate::exec::Capture;
use crate::isolation::private_paths::SlotMounts;
use crate::isolation::{Env, IsolationError, Slot};

/// What the coordinator sends a slot.
pub enum Command {
    /// pytest, once before any test: import and collect these files (the
    /// slot's share of the suite).
    Collect(Vec<u32>),
    Run(Assignment),
    /// No more work: stop the worker, leave the slot set up for teardown.
    Finish,
}

pub struct Assignment {
    pub test: u32,
    pub attempt: u32,
    pub name: String,
    pub work: Work,
}

pub enum Work {
    Process(Invocation),
    /// A test of the worker's collection, and the one it will be sent next
    /// (pytest's `nextitem`: fixtures they share live on).
    Pytest {
        test: TestAddress,
        next: Option<TestAddress>,
    },
}

/// What a slot tells the coordinator.
pub enum Report {
    /// Set up; a pytest worker also found its test files.
    Ready {
        slot: usize,
        files: Option<Files>,
    },
    /// A pytest worker collected its share.
    Collected(Collected),
    Done(Box<Done>),
    /// The slot cannot go on; the run fails with this.
    Failed {
        slot: usize,
        error: SlotError,
    },
}

pub struct Done {
    pub slot: usize,
    pub test: u32,
    pub attempt: u32,
    pub status: Status,
    pub duration: Duration,
    pub output: Option<String>,
    /// A process test's stderr, apart from its stdout.
    pub stderr: Option<String>,
    /// It left processes in its group after it ended.
    pub leaked: bool,
    /// The test runner asked to stop the run (pytest's `-x`).
    pub stop: bool,
}

#[derive(Debug)]
pub enum SlotError {
    Isolation(IsolationError),
    /// Starting or talking to a process failed, or a pytest worker could not collect.
    Exec(String),
    Panicked(String),
}

/// The slot thread's body: set up, report ready, serve commands.
pub fn run_slot(
    ctx: &PoolContext,
    index: usize,
    commands: Receiver<Command>,
    reports: Sender<Report>,
) {
    let mut executor = match Executor::open(ctx, index) {
        Ok(executor) => executor,
        Err(error) => {
            let _ = reports.send(Report::Failed { slot: index, error });
            return;
        }
    };
    let files = executor.files();
    let is_pytest = files.is_some();
    let _ = reports.send(Report::Ready { slot: index, files });
    if is_pytest {
        // The coordinator hands each worker its share of the files to
        // collect, then plans on what they found together.
        match commands.recv() {
            Ok(Command::Collect(share)) => match executor.collect_share(ctx, &share) {
                Ok(collected) => {
                    let _ = reports.send(Report::Collected(collected));
                }
                Err(error) => {
                    let _ = reports.send(Report::Failed { slot: index, error });
                    executor.finish(ctx);
                    return;
                }
            },
            _ => {
                executor.finish(ctx);
                return;
            }
        }
    }
    // What the coordinator sent, oldest first: a pytest worker is sent the
    // commands ahead of the one it runs, so it goes on without waiting.
    let mut queued: VecDeque<Assignment> = VecDeque::new();
    let mut finishing = false;
    loop {
        if queued.is_empty() {
            match commands.recv() {
                Ok(Command::Run(a)) if !finishing => queued.push_back(a),
                _ => break,
            }
        }
        while !finishing {
            match commands.try_recv() {
                Ok(Command::Run(a)) => queued.push_back(a),
                Ok(Command::Finish | Command::Collect(_)) | Err(TryRecvError::Disconnected) => {
                    finishing = true
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let Some(assignment) = queued.pop_front() else {
            break;
        };
        match executor.run(ctx, &assignment, &queued) {
            Ok(done) => {
                let _ = reports.send(Report::Done(Box::new(done)));
            }
            Err(error) => {
                let _ = reports.send(Report::Failed { slot: index, error });
                break;
            }
        }
    }
    executor.finish(ctx);
}

struct Executor {
    slot: Slot,
    env: Env,
    scratch: PathBuf,
    ran_any: bool,
    kind: ExecutorKind,
    /// `[isolation]`: the namespace every process of the slot enters.
    private: Option<SlotMounts>,
}

enum ExecutorKind {
    Process {
        capture: Option<Capture>,
        /// The slot's `PARTEST_TEST_TMPDIR`, while it exists and is as made.
        test_tmp: Option<TestTmp>,
    },
    // Boxed: a worker and its queues dwarf the process variant.
    Pytest(Box<PytestSlot>),
}

/// A slot's pytest worker, and what it takes to replace it.
struct PytestSlot {
    worker: Option<PytestWorker>,
    /// Commands written to the worker whose replies are not read yet, oldest first.
    pending: VecDeque<Pending>,
    /// The files the current worker has collected (or was told to).
    collected: Vec<bool>,
    /// The worker's stdout and stderr (None: `--no-capture`, inherited).
    log: Option<(File, PathBuf)>,
    /// The test files the slot's first worker found; a fresh one must agree.
    files: Files,
    private: Option<SlotMounts>,
}

/// A command written to a pytest worker, awaiting its reply.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Collect(Vec<u32>),
    Run(TestAddress),
}

impl Executor {
    fn open(ctx: &PoolContext, index: usize) -> Result<Executor, SlotError> {
        let slot = Slot::new(index);
        let provided = ctx
            .lifecycle
            .setup_slot(&slot)
            .map_err(SlotError::Isolation)?;
        let scratch = provided
            .iter()
            .find(|(k, _)| k == "PARTEST_TMPDIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(std::env::temp_dir);
        let env = crate::exec::slot_env(
            &slot,
            ctx.options.workers,
            &ctx.options.run_id,
            ctx.options.shard.as_deref(),
            provided,
            &ctx.options.env,
        );
        let exec_err = |what: &str, e: std::io::Error| {
            SlotError::Exec(format!(
                "cannot {what} for {} in {}: {e}",
                slot.name,
                scratch.display()
            ))
        };
        let private = match &ctx.options.private_paths {
            Some(paths) => Some(
                paths
                    .for_slot(&scratch)
                    .map_err(|e| exec_err("set up [isolation] private paths", e))?,
            ),
            None => None,
        };
        let kind = match ctx.adapter.pytest() {
            Some(_) => {
                let log = if ctx.options.capture {
                    let path = scratch.join("pytest-worker.log");
                    let file = File::options()
                        .create(true)
                        .append(true)
                        .read(true)
                        .open(&path)
                        .map_err(|e| exec_err("create the pytest worker's log", e))?;
                    Some((file, path))
                } else {
                    None
                };
                let mut slot_pytest = PytestSlot {
                    worker: None,
                    pending: VecDeque::new(),
                    collected: Vec::new(),
                    log,
                    files: Files::default(),
                    private: private.clone(),
                };
                slot_pytest.files = slot_pytest.start(ctx, &slot, &env)?;
                slot_pytest.collected = vec![false; slot_pytest.files.files.len()];
                ExecutorKind::Pytest(Box::new(slot_pytest))
            }
            None => ExecutorKind::Process {
                capture: if ctx.options.capture {
                    Some(
                        Capture::new(&scratch)
                            .map_err(|e| exec_err("create the output file", e))?,
                    )
                } else {
                    None
                },
                test_tmp: None,
            },
        };
        Ok(Executor {
            slot,
            env,
            scratch,
            ran_any: false,
            kind,
            private,
        })
    }

    fn files(&self) -> Option<Files> {
        match &self.kind {
            ExecutorKind::Pytest(p) => Some(p.files.clone()),
            ExecutorKind::Process { .. } => None,
        }
    }

    /// pytest: the worker imports and collects its share of the files.
    fn collect_share(&mut self, ctx: &PoolContext, share: &[u32]) -> Result<Collected, SlotError> {
        let ExecutorKind::Pytest(p) = &mut self.kind else {
            return Err(SlotError::Exec(format!(
                "{}: asked to collect without a pytest worker",
                self.slot.name
            )));
        };
        p.write_collect(share);
        match p.read_collected(ctx, &self.slot)? {
            Some(collected) => Ok(collected),
            None => Err(SlotError::Exec(format!(
                "{}: the pytest worker ended while it collected its files",
                self.slot.name
            ))),
        }
    }

    /// Runs `a`; `ahead` are the assignments queued after it.
    fn run(
        &mut self,
        ctx: &PoolContext,
        a: &Assignment,
        ahead: &VecDeque<Assignment>,
    ) -> Result<Done, SlotError> {
        if self.ran_any {
            ctx.lifecycle
                .reset_slot(&self.slot)
                .map_err(SlotError::Isolation)?;
        }
        self.ran_any = true;
        let slot = self.slot.index;
        let mut stderr = None;
        let mut leaked = false;
        let (status, duration, output, stop) = match (&mut self.kind, &a.work) {
            (ExecutorKind::Process { capture, test_tmp }, Work::Process(invocation)) => {
                let dir = self.scratch.join("test");
                if test_tmp.is_none() {
                    *test_tmp = TestTmp::create(&dir);
                }
                let mut env = self.env.clone();
                env.push(("PARTEST_TEST_NAME".into(), a.name.clone()));
                env.push(("PARTEST_ATTEMPT".into(), a.attempt.to_string()));
                env.push((
                    "PARTEST_TEST_TMPDIR".into(),
                    dir.to_string_lossy().into_owned(),
                ));
                let finished = ctx.spawner.run(
                    invocation,
                    &env,
                    capture.as_mut(),
                    ctx.options.timeout,
                    self.private.as_ref(),
                );
                // Removed after the test, unless it is still empty and as made.
                match test_tmp.take() {
                    Some(made) if made.untouched(&dir) => *test_tmp = Some(made),
                    _ => remove_test_tmp(&dir),
                }
                let finished = finished.map_err(|e| {
                    SlotError::Exec(format!(
                        "cannot run {} (for {}): {e}",
                        invocation.program.to_string_lossy(),
                        a.name
                    ))
                })?;
                let mut status = Status::from_end(finished.end);
                leaked = finished.leaked;
                if leaked && status == Status::Pass && ctx.options.leak_fails {
                    status = Status::Fail;
                }
                let output = (status.is_failure()).then(|| {
                    let text = capture.as_mut().map(Capture::read).unwrap_or_default();
                    stderr = capture.as_mut().map(Capture::read_stderr);
                    let mut text = with_end(text, finished.end);
                    if leaked {
                        if !text.is_empty() && !text.ends_with('\n') {
                            text.push('\n');
                        }
                        text.push_str(
                            "[partest] the test left processes running in its group; they were killed",
                        );
                    }
                    text
                });
                (status, finished.duration, output, false)
            }
            (ExecutorKind::Pytest(p), Work::Pytest { .. }) => {
                p.run(ctx, &self.slot, &self.env, a, ahead)?
            }
            _ => {
                return Err(SlotError::Exec(format!(
                    "{}: work of the wrong kind for this adapter",
                    self.slot.name
                )));
            }
        };
        Ok(Done {
            slot,
            test: a.test,
            attempt: a.attempt,
            status,
            duration,
            output,
            stderr,
            leaked,
            stop,
        })
    }

    fn finish(self, ctx: &PoolContext) {
        if let ExecutorKind::Pytest(mut p) = self.kind
            && let Some(worker) = p.worker.take()
        {
            // Session fixtures tear down now; a stuck teardown gets the
            // test timeout (else five minutes), then the group is killed.
            let limit = ctx.options.timeout.unwrap_or(Duration::from_secs(300));
            let _ = worker.stop(ctx.spawner, Some(limit));
        }
    }
}

impl PytestSlot {
    /// Starts a worker and waits for its list of test files.
    fn start(&mut self, ctx: &PoolContext, slot: &Slot, env: &Env) -> Result<Files, SlotError> {
        let pytest = ctx
            .adapter
            .pytest()
            .expect("a pytest slot has the pytest adapter");
        let mut cmd = pytest.worker_command(!ctx.options.capture);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(private) = &self.private {
            private.apply(&mut cmd);
        }
        if ctx.options.django_slot_db {
            cmd.env("PARTEST_PYTEST_DJANGO_DB", "slot");
        }
        let mut worker = pytest
            .start_worker(cmd, self.log.as_ref().map(|(f, _)| f))
            .map_err(|e| SlotError::Exec(e.to_string()))?;
        let waited = worker
            .files(ctx.spawner, Some(pytest.collect_timeout))
            .map_err(|e| SlotError::Exec(format!("{}: {e}", slot.name)))?;
        let files = match waited {
            Wait::Got(files) => files,
            other => return Err(self.collect_failed(ctx, other)),
        };
        if !files.errors.is_empty() {
            return Err(SlotError::Exec(
                pytest.collect_errors(&files.errors).to_string(),
            ));
        }
        self.worker = Some(worker);
        self.pending.clear();
        Ok(files)
    }

    /// Why a worker stopped before it answered a collection: its output.
    fn collect_failed<T>(&self, ctx: &PoolContext, how: Wait<T>) -> SlotError {
        let pytest = ctx
            .adapter
            .pytest()
            .expect("a pytest slot has the pytest adapter");
        let log_path = self
            .log
            .as_ref()
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let how = match how {
            Wait::Ended(end) => format!("ended ({})", describe_end(end)),
            Wait::TimedOut => format!(
                "did not finish collecting within [pytest] collect-timeout ({:?})",
                pytest.collect_timeout
            ),
            Wait::Interrupted | Wait::Got(_) => return SlotError::Exec("interrupted".into()),
        };
        SlotError::Exec(pytest.early_exit(&how, &log_path).to_string())
    }

    /// Writes `collect` for the files among `files` the worker lacks.
    fn write_collect(&mut self, files: &[u32]) {
        let missing: Vec<u32> = files
            .iter()
            .copied()
            .filter(|&f| !self.collected.get(f as usize).copied().unwrap_or(true))
            .collect();
        let Some(worker) = self.worker.as_mut() else {
            return;
        };
        if (missing.is_empty() && !files.is_empty()) || !worker.collect(&missing) {
            return;
        }
        for &f in &missing {
            self.collected[f as usize] = true;
        }
        self.pending.push_back(Pending::Collect(missing));
    }

    /// Reads the reply to the oldest pending `collect`, checking each file
    /// against the collection the run was planned on (once there is one).
    /// `None`: the worker is gone (crashed, timed out, interrupted).
    fn read_collected(
        &mut self,
        ctx: &PoolContext,
        slot: &Slot,
    ) -> Result<Option<Collected>, SlotError> {
        let pytest = ctx
            .adapter
            .pytest()
            .expect("a pytest slot has the pytest adapter");
        let Some(worker) = self.worker.as_mut() else {
            return Ok(None);
        };
        self.pending.pop_front();
        let waited = worker
            .reply(ctx.spawner, Some(pytest.collect_timeout))
            .map_err(|e| SlotError::Exec(format!("{}: {e}", slot.name)))?;
        let collected = match waited {
            Wait::Got(Reply::Collected(c)) => c,
            Wait::Got(_) => {
                return Err(SlotError::Exec(format!(
                    "{}: the pytest worker answered `collect` with something else",
                    slot.name
                )));
            }
            other => {
                let error = self.collect_failed(ctx, other);
                self.gone();
                return match ctx.planned_files.get() {
                    // During the run, a worker that dies importing a file
                    // is a crash of the test it was about to run.
                    Some(_) => Ok(None),
                    None => Err(error),
                };
            }
        };
        if !collected.errors.is_empty() {
            return Err(SlotError::Exec(
                pytest.collect_errors(&collected.errors).to_string(),
            ));
        }
        if let Some(planned) = ctx.planned_files.get() {
            for got in &collected.files {
                if let Some(reference) = planned.get(got.file as usize) {
                    check_same_tests(reference, got, &slot.name)
                        .map_err(|e| SlotError::Exec(e.to_string()))?;
                }
            }
        }
        Ok(Some(collected))
    }

    /// The worker is gone: what was written to it died with it.
    fn gone(&mut self) {
        self.worker = None;
        self.pending.clear();
        self.collected.iter_mut().for_each(|c| *c = false);
    }

    /// Runs `a` (writing it, and what is queued after it, to the worker
    /// first, each after the files it needs) and waits for its result.
    fn run(
        &mut self,
        ctx: &PoolContext,
        slot: &Slot,
        env: &Env,
        a: &Assignment,
        ahead: &VecDeque<Assignment>,
    ) -> Result<(Status, Duration, Option<String>, bool), SlotError> {
        // Ctrl-C killed the worker under a test queued behind: no new one.
        if self.worker.is_none() && ctx.spawner.interrupts.is_set() {
            return Ok((Status::Cancelled, Duration::ZERO, None, false));
        }
        if self.worker.is_none() {
            self.replace(ctx, slot, env)?;
        }
        let log_start = self.log_len();
        let &Work::Pytest { test, .. } = &a.work else {
            return Err(SlotError::Exec(format!(
                "{}: work of the wrong kind",
                slot.name
            )));
        };
        // `a` was written already when runs are pending; write it and those
        // queued behind it.
        let written = self
            .pending
            .iter()
            .filter(|p| matches!(p, Pending::Run(_)))
            .count();
        for queued in std::iter::once(a).chain(ahead).skip(written) {
            let Work::Pytest { test, next } = queued.work else {
                break;
            };
            let mut needs = vec![test.file];
            needs.extend(next.map(|n| n.file).filter(|&f| f != test.file));
            self.write_collect(&needs);
            let Some(worker) = self.worker.as_mut() else {
                break;
            };
            if !worker.run(test, next, queued.attempt) {
                break;
            }
            self.pending.push_back(Pending::Run(test));
        }
        // Files collected on the way come first, in the order written.
        while let Some(Pending::Collect(_)) = self.pending.front() {
            if self.read_collected(ctx, slot)?.is_none() {
                break;
            }
        }
        let started = std::time::Instant::now();
        let waited = match self.worker.as_mut() {
            Some(worker) if self.pending.front() == Some(&Pending::Run(test)) => {
                self.pending.pop_front();
                worker
                    .reply(ctx.spawner, ctx.options.timeout)
                    .map_err(|e| SlotError::Exec(format!("{}: {e}", slot.name)))?
            }
            Some(_) => {
                return Err(SlotError::Exec(format!(
                    "{}: the pytest worker's replies are out of step with its commands",
                    slot.name
                )));
            }
            // It died while collecting a file for this test.
            None => Wait::Ended(ProcessEnd::Exited(-1)),
        };
        let elapsed = started.elapsed();
        Ok(match waited {
            Wait::Got(Reply::Result(reply))
                if reply.file == test.file && reply.offset == test.offset =>
            {
                let (status, output) = outcome(&reply);
                let duration = Duration::try_from_secs_f64(reply.duration).unwrap_or(elapsed);
                (status, duration, output, reply.stop)
            }
            Wait::Got(_) => {
                return Err(SlotError::Exec(format!(
                    "{}: the pytest worker answered with another test's result",
                    slot.name
                )));
            }
            Wait::Ended(end) => {
                self.gone();
                let text = format!(
                    "{}[partest] the pytest worker running this test died ({}); a new one takes the slot",
                    self.log_since(log_start),
                    describe_end(end)
                );
                (Status::Crash, elapsed, Some(text), false)
            }
            Wait::TimedOut => {
                self.gone();
                let text = format!(
                    "{}[partest] timed out after {:?}: the worker's process group was killed; a new one takes the slot",
                    self.log_since(log_start),
                    ctx.options.timeout.unwrap_or_default()
                );
                (Status::Timeout, elapsed, Some(text), false)
            }
            Wait::Interrupted => {
                self.gone();
                (Status::Cancelled, elapsed, None, false)
            }
        })
    }

    /// A fresh worker for one that crashed or timed out, within the budget.
    /// It finds the same files and collects them as its tests need them.
    fn replace(&mut self, ctx: &PoolContext, slot: &Slot, env: &Env) -> Result<(), SlotError> {
        let budget = ctx
            .restarts_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if budget.is_err() {
            return Err(SlotError::Exec(format!(
                "pytest workers crashed or timed out {} times: no more replacements (--max-worker-restart)",
                ctx.options.max_worker_restart
            )));
        }
        let files = self.start(ctx, slot, env)?;
        check_same_files(&self.files, &files, &slot.name)
            .map_err(|e| SlotError::Exec(e.to_string()))
    }

    fn log_len(&self) -> u64 {
        self.log
            .as_ref()
            .and_then(|(f, _)| f.metadata().ok())
            .map_or(0, |m| m.len())
    }

    /// What the worker printed since `start` (at most the last 64 KiB).
    fn log_since(&self, start: u64) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let Some((file, _)) = &self.log else {
            return String::new();
        };
        let Ok(mut file) = file.try_clone() else {
            return String::new();
        };
        let end = self.log_len();
        let from = start.max(end.saturating_sub(64 * 1024));
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let _ = file.take(end - from).read_to_end(&mut bytes);
        }
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

/// A pytest outcome as partest's status, with the text to show.
fn outcome(reply: &TestReply) -> (Status, Option<String>) {
    let text = reply.text.clone();
    match reply.outcome.as_str() {
        "passed" | "xpassed" => (Status::Pass, None),
        "skipped" | "xfailed" => (Status::Skip, text),
        "error" => (
            Status::Fail,
            Some(format!(
                "[partest] error in {}\n{}",
                reply.when,
                text.unwrap_or_default()
            )),
        ),
        _ => (Status::Fail, text),
    }
}

fn describe_end(end: ProcessEnd) -> String {
    match end {
        ProcessEnd::Exited(code) => format!("exit code {code}"),
        ProcessEnd::Signalled(sig) => format!("killed by signal {sig}"),
        ProcessEnd::TimedOut => "timed out".into(),
        ProcessEnd::Interrupted => "interrupted".into(),
    }
}

/// The process output, then how the process ended when that is news.
fn with_end(mut text: String, end: ProcessEnd) -> String {
    if end == ProcessEnd::Exited(0) {
        return text;
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let how = match end {
        ProcessEnd::TimedOut => "timed out: its process group was killed".to_string(),
        other => describe_end(other),
    };
    text.push_str(&format!("[partest] {how}"));
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
