//! One slot's pytest worker as the pool's [`Executor`]: started with the
//! slot's env, it collects its share of the files, runs the tests it is sent
//! (written ahead, one command per write, each with its `nextitem`) and is
//! replaced when it dies or times out.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::PytestAdapter;
use super::worker::{PytestWorker, Reply, TestReply, Wait};
use crate::discover::collect::{Collected, Files, check_same_files, check_same_tests};
use crate::discover::executor::{ExecContext, Executor, SlotError};
use crate::exec::private_paths::SlotMounts;
use crate::model::{Assignment, Env, ProcessEnd, Slot, Status, TestAddress, TestFinished, Work};

/// A slot's pytest worker, and what it takes to replace it.
pub(super) struct PytestSlot<'a> {
    adapter: &'a PytestAdapter,
    ctx: &'a ExecContext<'a>,
    slot: Slot,
    env: Env,
    worker: Option<PytestWorker>,
    /// Commands written to the worker whose replies are not read yet, oldest first.
    pending: VecDeque<Pending>,
    /// The files the current worker has collected (or was told to).
    collected: Vec<bool>,
    /// The worker's stdout and stderr (None: `--no-capture`, inherited).
    log: Option<(File, PathBuf)>,
    /// The test files the slot's first worker found; a fresh one must agree.
    files: Files,
    /// `[isolation]`: the namespace every process of the slot enters.
    private: Option<SlotMounts>,
}

/// A command written to a pytest worker, awaiting its reply.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Collect(Vec<u32>),
    Run(TestAddress),
}

impl<'a> PytestSlot<'a> {
    /// Starts the slot's worker and waits for its list of test files.
    pub(super) fn open(
        adapter: &'a PytestAdapter,
        ctx: &'a ExecContext<'a>,
        slot: Slot,
        env: Env,
        scratch: &Path,
    ) -> Result<PytestSlot<'a>, SlotError> {
        let log = if ctx.options.capture {
            let path = scratch.join("pytest-worker.log");
            let file = File::options()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)
                .map_err(|e| {
                    SlotError::Exec(format!(
                        "cannot create the pytest worker's log for {} in {}: {e}",
                        slot.name,
                        scratch.display()
                    ))
                })?;
            Some((file, path))
        } else {
            None
        };
        let private = ctx.slot_mounts(&slot, scratch)?;
        let mut pytest = PytestSlot {
            private,
            adapter,
            ctx,
            slot,
            env,
            worker: None,
            pending: VecDeque::new(),
            collected: Vec::new(),
            log,
            files: Files::default(),
        };
        pytest.files = pytest.start()?;
        pytest.collected = vec![false; pytest.files.files.len()];
        Ok(pytest)
    }

    /// Starts a worker and waits for its list of test files.
    fn start(&mut self) -> Result<Files, SlotError> {
        let pytest = self.adapter;
        let mut cmd = pytest.worker_command(!self.ctx.options.capture);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(private) = &self.private {
            private.apply(&mut cmd);
        }
        if self.ctx.options.django_slot_db {
            cmd.env("PARTEST_PYTEST_DJANGO_DB", "slot");
        }
        let mut worker = pytest
            .start_worker(cmd, self.log.as_ref().map(|(f, _)| f))
            .map_err(|e| SlotError::Exec(e.to_string()))?;
        let waited = worker
            .files(self.ctx.spawner, Some(pytest.collect_timeout))
            .map_err(|e| SlotError::Exec(format!("{}: {e}", self.slot.name)))?;
        let files = match waited {
            Wait::Got(files) => files,
            other => return Err(self.collect_failed(other)),
        };
        if !files.errors.is_empty() {
            return Err(SlotError::Exec(
                pytest.collect_errors(&files.errors).to_string(),
            ));
        }
        pytest.coverage_asked(&files.coverage);
        self.worker = Some(worker);
        self.pending.clear();
        Ok(files)
    }

    /// Why a worker stopped before it answered a collection: its output.
    fn collect_failed<T>(&self, how: Wait<T>) -> SlotError {
        let pytest = self.adapter;
        let log_path = self
            .log
            .as_ref()
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let how = match how {
            Wait::Ended(end) => format!("ended ({})", end.describe()),
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
    fn read_collected(&mut self) -> Result<Option<Collected>, SlotError> {
        let pytest = self.adapter;
        let Some(worker) = self.worker.as_mut() else {
            return Ok(None);
        };
        self.pending.pop_front();
        let waited = worker
            .reply(self.ctx.spawner, Some(pytest.collect_timeout))
            .map_err(|e| SlotError::Exec(format!("{}: {e}", self.slot.name)))?;
        let collected = match waited {
            Wait::Got(Reply::Collected(c)) => c,
            Wait::Got(_) => {
                return Err(SlotError::Exec(format!(
                    "{}: the pytest worker answered `collect` with something else",
                    self.slot.name
                )));
            }
            other => {
                let error = self.collect_failed(other);
                self.gone();
                return match self.ctx.planned.get() {
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
        if let Some(planned) = self.ctx.planned.get() {
            for got in &collected.files {
                if let Some(reference) = planned.get(got.file as usize) {
                    check_same_tests(reference, got, &self.slot.name)
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
    fn run_item(
        &mut self,
        a: &Assignment,
        ahead: &VecDeque<Assignment>,
    ) -> Result<(Status, Duration, Option<String>, bool), SlotError> {
        let ctx = self.ctx;
        // Ctrl-C killed the worker under a test queued behind: no new one.
        if self.worker.is_none() && ctx.spawner.interrupts.is_set() {
            return Ok((Status::Cancelled, Duration::ZERO, None, false));
        }
        if self.worker.is_none() {
            self.replace()?;
        }
        let log_start = self.log_len();
        let &Work::Item { test, .. } = &a.work else {
            return Err(SlotError::Exec(format!(
                "{}: work of the wrong kind",
                self.slot.name
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
            let Work::Item { test, next } = queued.work else {
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
            if self.read_collected()?.is_none() {
                break;
            }
        }
        let started = std::time::Instant::now();
        let waited = match self.worker.as_mut() {
            Some(worker) if self.pending.front() == Some(&Pending::Run(test)) => {
                self.pending.pop_front();
                worker
                    .reply(ctx.spawner, ctx.options.timeout)
                    .map_err(|e| SlotError::Exec(format!("{}: {e}", self.slot.name)))?
            }
            Some(_) => {
                return Err(SlotError::Exec(format!(
                    "{}: the pytest worker's replies are out of step with its commands",
                    self.slot.name
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
                    self.slot.name
                )));
            }
            Wait::Ended(end) => {
                self.gone();
                let text = format!(
                    "{}[partest] the pytest worker running this test died ({}); a new one takes the slot",
                    self.log_since(log_start),
                    end.describe()
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
    fn replace(&mut self) -> Result<(), SlotError> {
        let budget =
            self.ctx
                .restarts_left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if budget.is_err() {
            return Err(SlotError::Exec(format!(
                "pytest workers crashed or timed out {} times: no more replacements (--max-worker-restart)",
                self.ctx.options.max_worker_restart
            )));
        }
        let files = self.start()?;
        check_same_files(&self.files, &files, &self.slot.name)
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

impl Executor for PytestSlot<'_> {
    fn files(&self) -> Option<Files> {
        Some(self.files.clone())
    }

    fn collect(&mut self, share: &[u32]) -> Result<Collected, SlotError> {
        self.write_collect(share);
        match self.read_collected()? {
            Some(collected) => Ok(collected),
            None => Err(SlotError::Exec(format!(
                "{}: the pytest worker ended while it collected its files",
                self.slot.name
            ))),
        }
    }

    fn run(
        &mut self,
        a: &Assignment,
        ahead: &VecDeque<Assignment>,
    ) -> Result<TestFinished, SlotError> {
        let (status, duration, output, stop) = self.run_item(a, ahead)?;
        Ok(TestFinished {
            test: a.test,
            slot: self.slot.index,
            attempt: a.attempt,
            status,
            duration,
            output,
            stderr: None,
            leaked: false,
            will_retry: false,
            stop,
        })
    }

    fn stop(mut self: Box<Self>) {
        if let Some(worker) = self.worker.take() {
            // Session fixtures tear down now; a stuck teardown gets the
            // test timeout (else five minutes), then the group is killed.
            let limit = self.ctx.options.timeout.unwrap_or(Duration::from_secs(300));
            let _ = worker.stop(self.ctx.spawner, Some(limit));
        }
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
