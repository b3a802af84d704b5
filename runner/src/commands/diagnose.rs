//! `partest diagnose [ID…]`: the diagnosis a run does after its failures,
//! later, from the last run's record: the suite is discovered and its slots
//! set up as for that run (as many), and each failure is examined.

use std::num::NonZeroUsize;

use super::run::{self, Replay};
use crate::cli::{DiagnoseArgs, RunArgs, SelectArgs};
use crate::config::{Config, WorkerCount};
use crate::error::{Error, Result, exit};
use crate::history::LastRun;

pub fn diagnose(config: &Config, args: &DiagnoseArgs) -> Result<i32> {
    let state_dir = config.state_dir();
    let Some(record) = LastRun::load(&state_dir).map_err(Error::config)? else {
        return Err(Error::config(format!(
            "no run's record in {}: `partest run` first",
            state_dir.display()
        )));
    };
    for id in &args.tests {
        if !record.failed.contains(id) {
            return Err(Error::config(format!(
                "{id} did not fail in the last run's parallel phase; its failures: {}",
                if record.failed.is_empty() {
                    "none".to_string()
                } else {
                    record.failed.join(", ")
                }
            )));
        }
    }
    let examine = if args.tests.is_empty() {
        record.failed.clone()
    } else {
        args.tests.clone()
    };
    if examine.is_empty() {
        eprintln!(
            "partest: the last run had no failures in its parallel phase: nothing to diagnose"
        );
        return Ok(exit::OK);
    }
    let workers = NonZeroUsize::new(record.workers).unwrap_or(NonZeroUsize::MIN);
    let run_args = RunArgs {
        select: SelectArgs {
            workers: Some(WorkerCount::Fixed(workers)),
            ..SelectArgs::default()
        },
        message_format: args.message_format,
        ..RunArgs::default()
    };
    let explicit = !args.tests.is_empty();
    run::run_with(
        config,
        &run_args,
        Some(Replay { record, examine }),
        explicit,
    )
}
