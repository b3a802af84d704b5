//! The executor of the process adapters (cargo, command): one process per
//! test, in its own process group, with the slot's env, its own temp dir and
//! its output captured.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::executor::{ExecContext, Executor, SlotError};
use crate::exec::Capture;
use crate::exec::private_paths::SlotMounts;
use crate::model::{Assignment, Env, ProcessEnd, Slot, Status, TestFinished, Work};

pub struct ProcessExecutor<'a> {
    ctx: &'a ExecContext<'a>,
    slot: Slot,
    env: Env,
    scratch: PathBuf,
    capture: Option<Capture>,
    /// The slot's `PARTEST_TEST_TMPDIR`, while it exists and is as made.
    test_tmp: Option<TestTmp>,
    /// `[isolation]`: the namespace every process of the slot enters.
    private: Option<SlotMounts>,
}

impl<'a> ProcessExecutor<'a> {
    pub fn new(
        ctx: &'a ExecContext<'a>,
        slot: Slot,
        env: Env,
        scratch: PathBuf,
    ) -> Result<ProcessExecutor<'a>, SlotError> {
        let capture = if ctx.options.capture {
            Some(Capture::new(&scratch).map_err(|e| {
                SlotError::Exec(format!(
                    "cannot create the output file for {} in {}: {e}",
                    slot.name,
                    scratch.display()
                ))
            })?)
        } else {
            None
        };
        let private = ctx.slot_mounts(&slot, &scratch)?;
        Ok(ProcessExecutor {
            ctx,
            private,
            slot,
            env,
            scratch,
            capture,
            test_tmp: None,
        })
    }
}

impl Executor for ProcessExecutor<'_> {
    fn run(
        &mut self,
        a: &Assignment,
        _ahead: &VecDeque<Assignment>,
    ) -> Result<TestFinished, SlotError> {
        let Work::Process(invocation) = &a.work else {
            return Err(SlotError::Exec(format!(
                "{}: work of the wrong kind for this adapter",
                self.slot.name
            )));
        };
        let ctx = self.ctx;
        let capture = &mut self.capture;
        let test_tmp = &mut self.test_tmp;
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
        let leaked = finished.leaked;
        if leaked && status == Status::Pass && ctx.options.leak_fails {
            status = Status::Fail;
        }
        let mut stderr = None;
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
        Ok(TestFinished {
            test: a.test,
            slot: self.slot.index,
            attempt: a.attempt,
            status,
            duration: finished.duration,
            output,
            stderr,
            leaked,
            will_retry: false,
            stop: false,
        })
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
        other => other.describe(),
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
    fn create(dir: &Path) -> Option<TestTmp> {
        let _ = std::fs::create_dir(dir);
        Self::observe(dir)
    }

    /// How `dir` looks now (None if it is not a directory).
    fn observe(dir: &Path) -> Option<TestTmp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(dir).ok().filter(|m| m.is_dir())?;
        Some(TestTmp {
            made: (m.mode(), m.uid(), m.gid()),
        })
    }

    /// Still a directory, empty, with the mode and owner it was made with.
    fn untouched(&self, dir: &Path) -> bool {
        Self::observe(dir).is_some_and(|now| now.made == self.made)
            && std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
    }
}

/// A test's private temp dir goes after it; an empty one costs one rmdir.
fn remove_test_tmp(dir: &Path) {
    if std::fs::remove_dir(dir).is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
