//! One slot's thread: sets its slot up, starts its executor (a process per
//! test, or the adapter's long-lived worker), then runs the tests the
//! coordinator sends and answers each over the coordinator's channel.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::PoolContext;
use crate::discover::Runs;
use crate::discover::collect::{Collected, Files};
use crate::discover::executor::{Executor, SlotError};
use crate::discover::process::ProcessExecutor;
use crate::model::{Assignment, Slot, TestFinished};

/// What the coordinator sends a slot.
pub enum Command {
    /// A worker adapter's, once before any test: import and collect these
    /// files (the slot's share of the suite).
    Collect(Vec<u32>),
    Run(Assignment),
    /// A diagnosis trial, sent only while the slot has nothing queued: stop
    /// the worker, tear the slot down and set it up again (its databases and
    /// files as new), start a fresh worker, and report `Ready`.
    Fresh,
    /// No more work: stop the worker, leave the slot set up for teardown.
    Finish,
}

/// What a slot tells the coordinator.
pub enum Report {
    /// Set up; a long-lived worker also found its test files.
    Ready {
        slot: usize,
        files: Option<Files>,
        /// Setting the slot up and starting its executor (for the trace).
        took: Duration,
    },
    /// A worker collected its share, in this long.
    Collected {
        slot: usize,
        collected: Collected,
        took: Duration,
    },
    Done(Box<TestFinished>),
    /// The slot cannot go on; the run fails with this.
    Failed {
        slot: usize,
        error: SlotError,
    },
}

/// The slot thread's body: set up, report ready, serve commands.
pub fn run_slot(
    ctx: &PoolContext,
    index: usize,
    commands: Receiver<Command>,
    reports: Sender<Report>,
) {
    let start = Instant::now();
    let (mut slot, mut executor) = match open(ctx, index) {
        Ok(opened) => opened,
        Err(error) => {
            let _ = reports.send(Report::Failed { slot: index, error });
            return;
        }
    };
    let files = executor.files();
    let collects = files.is_some();
    let _ = reports.send(Report::Ready {
        slot: index,
        files,
        took: start.elapsed(),
    });
    if collects {
        // The coordinator hands each worker its share of the files to
        // collect, then plans on what they found together.
        match commands.recv() {
            Ok(Command::Collect(share)) => match (Instant::now(), executor.collect(&share)) {
                (start, Ok(collected)) => {
                    let _ = reports.send(Report::Collected {
                        slot: index,
                        collected,
                        took: start.elapsed(),
                    });
                }
                (_, Err(error)) => {
                    let _ = reports.send(Report::Failed { slot: index, error });
                    executor.stop();
                    return;
                }
            },
            _ => {
                executor.stop();
                return;
            }
        }
    }
    // What the coordinator sent, oldest first: a long-lived worker is sent
    // the commands ahead of the one it runs, so it goes on without waiting.
    let mut queued: VecDeque<Assignment> = VecDeque::new();
    let mut finishing = false;
    let mut ran_any = false;
    loop {
        if queued.is_empty() {
            match commands.recv() {
                Ok(Command::Run(a)) if !finishing => queued.push_back(a),
                Ok(Command::Fresh) if !finishing => {
                    executor.stop();
                    let start = Instant::now();
                    match reopen(ctx, &slot) {
                        Ok((fresh, started)) => {
                            (slot, executor) = (fresh, started);
                            ran_any = false;
                            let _ = reports.send(Report::Ready {
                                slot: index,
                                files: None,
                                took: start.elapsed(),
                            });
                            continue;
                        }
                        Err(error) => {
                            let _ = reports.send(Report::Failed { slot: index, error });
                            return;
                        }
                    }
                }
                _ => break,
            }
        }
        while !finishing {
            match commands.try_recv() {
                Ok(Command::Run(a)) => queued.push_back(a),
                Ok(Command::Finish | Command::Collect(_) | Command::Fresh)
                | Err(TryRecvError::Disconnected) => finishing = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        let Some(assignment) = queued.pop_front() else {
            break;
        };
        let reset = if ran_any {
            ctx.lifecycle
                .reset_slot(&slot)
                .map_err(SlotError::Isolation)
        } else {
            Ok(())
        };
        ran_any = true;
        match reset.and_then(|()| executor.run(&assignment, &queued)) {
            Ok(done) => {
                let _ = reports.send(Report::Done(Box::new(done)));
            }
            Err(error) => {
                let _ = reports.send(Report::Failed { slot: index, error });
                break;
            }
        }
    }
    executor.stop();
}

/// Tears `slot` down and sets it up again with a fresh executor: what
/// the tests before left in its databases and files is gone.
fn reopen<'a>(
    ctx: &'a PoolContext<'a>,
    slot: &Slot,
) -> Result<(Slot, Box<dyn Executor + 'a>), SlotError> {
    if let Some(e) = ctx.lifecycle.teardown_slot(slot, false).into_iter().next() {
        return Err(SlotError::Isolation(e));
    }
    open(ctx, slot.index)
}

/// Sets the slot up and starts its executor with the slot's env.
fn open<'a>(
    ctx: &'a PoolContext<'a>,
    index: usize,
) -> Result<(Slot, Box<dyn Executor + 'a>), SlotError> {
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
    let options = &ctx.exec.options;
    let env = crate::exec::slot_env(
        &slot,
        options.workers,
        &options.run_id,
        options.shard.as_deref(),
        provided,
        &options.env,
    );
    let executor: Box<dyn Executor + 'a> = match ctx.adapter.runs() {
        Runs::Workers(workers) => workers.start(&ctx.exec, slot.clone(), env, &scratch)?,
        Runs::Processes(_) => {
            Box::new(ProcessExecutor::new(&ctx.exec, slot.clone(), env, scratch)?)
        }
    };
    Ok((slot, executor))
}
