//! `partest run`: the whole flow of one run. Teardown runs on every path out
//! of it: success, test failure, setup or plugin failure, and Ctrl-C.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::IsTerminal;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::prepare;
use crate::cli::RunArgs;
use crate::config::{Config, Settings};
use crate::discover::DiscoverOptions;
use crate::error::{Error, Result, exit};
use crate::exec::{Interrupts, Spawner};
use crate::history::Record;
use crate::isolation::{Env, Lifecycle, RunInfo};
use crate::pool::{Pool, PoolOptions};
use crate::report::{self, Event, ReporterOptions};

/// Runs the tests; returns the exit code.
pub fn run(config: &Config, args: &RunArgs) -> Result<i32> {
    let interrupts = Interrupts::install()
        .map_err(|e| Error::setup(format!("cannot install signal handlers: {e}")))?;
    let settings = Settings::resolve(config, &args.overrides())?;
    let options = DiscoverOptions {
        run_ignored: args.select.run_ignored,
    };
    let prepared = prepare(config, &settings, &args.select.filters, &options);
    // Ctrl-C during discovery also kills cargo or pytest, which then "fail".
    if interrupts.is_set() {
        return Ok(exit::INTERRUPTED);
    }
    let prepared = prepared?;
    let plan = &prepared.plan;
    let workers = prepared.workers.workers;
    let run_id = new_run_id();
    // Marks the run alive for `partest clean` and plugins' reclaim checks.
    let _registration = crate::runs::register(&run_id).map_err(|e| {
        Error::setup(format!(
            "cannot record the run in {}: {e}",
            crate::runs::runs_dir().display()
        ))
    })?;

    let tests = Arc::new(plan.tests.clone());
    let format = args.message_format.into();
    let reporter_options = ReporterOptions {
        format,
        junit: settings.junit.clone(),
        progress: format == report::Format::Human
            && std::io::stderr().is_terminal()
            && !args.no_capture,
        captured: !args.no_capture,
    };
    let (events, reporter) = report::start(
        tests,
        plan.runnable() + plan.skipped.len(),
        reporter_options,
    );
    let _ = events.send(Event::RunStarted {
        run_id: run_id.clone(),
        workers,
        parallel: plan.parallel.iter().map(|u| u.tests.len()).sum(),
        serial: plan.serial.len(),
        skipped: plan.skipped.len(),
    });
    if let Some(warning) = &prepared.history_warning {
        let _ = events.send(Event::Warning(warning.clone()));
    }
    for &test in &plan.skipped {
        let _ = events.send(Event::TestSkipped { test });
    }

    let lifecycle = &prepared.lifecycle;
    let run_info = RunInfo {
        run_id: run_id.clone(),
        workers,
        root: config.root.clone(),
        state_dir: config.state_dir(),
    };
    let spawner = Spawner {
        interrupts: interrupts.clone(),
        kill_grace: settings.kill_grace,
    };
    let setup = lifecycle
        .setup_run(&run_info)
        .map_err(|e| Error::setup(e.to_string()))
        .and_then(|env| run_setup_commands(config, &env, &events, &interrupts));

    let mut failure: Option<Error> = setup.err();
    let mut tests_failed = false;
    if failure.is_none() && !interrupts.is_set() {
        let pool = Pool {
            plan,
            adapter: prepared.adapter.as_ref(),
            lifecycle,
            spawner: &spawner,
            events: events.clone(),
            options: PoolOptions {
                workers,
                retries: settings.retries,
                timeout: settings.timeout,
                fail_fast: settings.fail_fast,
                capture: !args.no_capture,
                run_id: run_id.clone(),
            },
        };
        let outcome = pool.run();
        tests_failed = outcome.tests_failed;
        failure = outcome
            .isolation_error
            .map(|e| Error::setup(e.to_string()))
            .or(outcome.spawn_error.map(Error::setup));
    }
    if interrupts.is_set() {
        let _ = events.send(Event::Interrupted);
    }
    let run_failed = failure.is_some() || tests_failed;
    let teardown_errors = teardown(lifecycle, run_failed, &events);
    drop(events);
    let summary = reporter
        .join()
        .map_err(|_| Error::setup("the reporter thread panicked"))?;

    let records = summary
        .results
        .iter()
        .filter(|(_, r)| r.attempts > 0)
        .map(|(i, r)| Record {
            name: &plan.tests[*i as usize].name,
            duration: r.duration,
            status: r.status,
        });
    if let Some(warning) = prepared.history.save(records) {
        eprintln!("partest: warning: {warning}");
    }

    if summary.interrupted || interrupts.is_set() {
        return Ok(exit::INTERRUPTED);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if teardown_errors > 0 {
        return Err(Error::setup(format!(
            "{teardown_errors} teardown step(s) failed; see the warnings above"
        )));
    }
    Ok(if summary.any_failed() {
        exit::TEST_FAILED
    } else {
        exit::OK
    })
}

/// Tears everything down, reporting each failure; returns how many failed.
fn teardown(lifecycle: &Lifecycle, run_failed: bool, events: &Sender<Event>) -> usize {
    let errors = lifecycle.teardown(run_failed);
    for e in &errors {
        let _ = events.send(Event::Warning(format!("teardown: {e}")));
    }
    errors.len()
}

/// `[setup] commands`, once, with the env the plugins returned from setup-run.
fn run_setup_commands(
    config: &Config,
    env: &Env,
    events: &Sender<Event>,
    interrupts: &Interrupts,
) -> Result<()> {
    for command in &config.file.setup.commands {
        if interrupts.is_set() {
            return Ok(());
        }
        let start = Instant::now();
        let output = Command::new("sh")
            .args(["-c", command])
            .current_dir(&config.root)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Error::setup(format!("[setup] command {command:?}: cannot start sh: {e}"))
            })?;
        if !output.status.success() {
            return Err(Error::setup(format!(
                "[setup] command {command:?} in {} failed ({}):\n{}{}",
                config.origin(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let _ = events.send(Event::SetupCommand {
            command: command.clone(),
            duration: start.elapsed(),
        });
    }
    Ok(())
}

/// Eight lowercase hex digits: unique enough per machine, and safe inside
/// database names, Redis keys and container labels.
fn new_run_id() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:08x}", h.finish() as u32)
}
