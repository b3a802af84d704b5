//! `partest run`: the whole flow of one run, top to bottom: discover → plan
//! → load plugins and set up → pool → teardown → report. Teardown runs on
//! every path out of it: success, test failure, setup or plugin failure, and
//! Ctrl-C.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::IsTerminal;

use crossbeam_channel::Sender;

use super::pytest_args::Sorted;
use super::setup::SetupRun;
use super::{Discovered, discover, load_isolation, plan, workers};
use crate::cli::RunArgs;
use crate::config::{Config, NoTests, Settings};
use crate::diagnose;
use crate::error::{Error, Result, exit};
use crate::exec::{Interrupts, Spawner};
use crate::history::Record;
use crate::isolation::{Lifecycle, RunInfo};
use crate::model::{MessageFormat, RunOptions};
use crate::plan::Plan;
use crate::plan::Selection;
use crate::pool::{Pool, PoolContext, PoolOptions, PoolOutcome};
use crate::report::{self, Event, ReporterOptions};

pub use crate::diagnose::Replay;

/// Runs the tests; returns the exit code.
pub fn run(config: &Config, args: &RunArgs) -> Result<i32> {
    run_with(config, args, None, false)
}

/// A run, or with `replay` (`partest diagnose`) the diagnosis of a recorded
/// one: everything is set up as for a run, the recorded parallel phase
/// stands for the pool's, and each failure named is examined (`explicit`:
/// named on the command line, so `[diagnose] max-tests` does not cut it).
pub fn run_with(
    config: &Config,
    args: &RunArgs,
    replay: Option<Replay>,
    explicit: bool,
) -> Result<i32> {
    // The run's id comes first: every process partest starts (discovery,
    // setup commands, tests, plugins' programs) inherits it as
    // PARTEST_RUN_ID, which is how `partest clean` finds what a killed run
    // left running.
    let run_id = new_run_id();
    let started_at = std::time::SystemTime::now();
    // SAFETY: called from main before any thread exists (the signal thread
    // starts just below), so nothing reads the environment meanwhile.
    unsafe { std::env::set_var("PARTEST_RUN_ID", &run_id) };
    // Nothing the run starts outlives it, even when partest is killed: the
    // guard kills what names the run once partest is gone.
    let _guard = crate::runs::start_guard(&run_id)
        .map_err(|e| Error::setup(format!("cannot start the run's guard process: {e}")))?;
    let interrupts = Interrupts::install()
        .map_err(|e| Error::setup(format!("cannot install signal handlers: {e}")))?;
    let sorted = Sorted::of(config, &args.select, Some(args))?;
    for note in &sorted.notes {
        eprintln!("partest: note: {note}");
    }
    let mut overrides = args.overrides();
    sorted.apply(&mut overrides);
    let settings = Settings::resolve(config, &overrides)?;
    // Probed and its mount points made before anything runs: where no
    // namespace can be made, the run stops here (exit 3).
    let private_paths = super::private_paths(config)?.map(std::sync::Arc::new);
    // Marks the run alive for `partest clean` and plugins' reclaim checks,
    // from before its first child process.
    let mut registration = crate::runs::register(&run_id, &settings.plugins).map_err(|e| {
        Error::setup(format!(
            "cannot record the run in {}: {e}",
            crate::runs::runs_dir().display()
        ))
    })?;
    let (selection, options) = super::selection(&args.select, &sorted, Some(interrupts.clone()))?;
    let names = &selection;

    // Discover and plan before anything is set up; pytest's workers collect
    // later, each with its slot's env (settings that read DATABASE_URL at
    // import see the slot's database).
    let discovered = discover(config, &settings, &options, true);
    // Ctrl-C during discovery also kills cargo, which then "fails".
    if interrupts.is_set() {
        eprintln!("Interrupted: during discovery, before anything was set up");
        return Ok(exit::INTERRUPTED);
    }
    let mut discovered = discovered?;
    let early_plan = discovered
        .tests
        .take()
        .map(|tests| plan(config, &settings, names, &discovered, tests));
    if let Some(plan) = &early_plan {
        super::announce_shard(&discovered, plan);
    }
    if let Some(plan) = &early_plan
        && let Err(e) = check_selection(plan, &settings, names)
    {
        if settings.no_tests == NoTests::Warn {
            eprintln!("partest: warning: {e}");
            return Ok(exit::OK);
        }
        return Err(e);
    }

    let lifecycle = load_isolation(config, &settings)?;
    if interrupts.is_set() {
        eprintln!("Interrupted: while loading plugins, before anything was set up");
        return Ok(exit::INTERRUPTED);
    }
    let worker_plan = workers(&settings, config, early_plan.as_ref(), Some(&lifecycle));
    let workers = worker_plan.workers;

    let format = args.message_format;
    let (events, reporter) = report::start(ReporterOptions {
        format,
        junit: settings.junit.clone(),
        progress: format == MessageFormat::Human
            && std::io::stderr().is_terminal()
            && !args.no_capture,
        captured: !args.no_capture,
        heartbeat: (format == MessageFormat::Human && !std::io::stderr().is_terminal())
            .then(progress_interval)
            .flatten(),
        slowest: args.durations.unwrap_or(5),
        trace: args.trace.as_ref().map(|t| config.root.join(t)),
        html: args.html.as_ref().map(|h| config.root.join(h)),
        page: (replay.is_none()).then(|| {
            let limits = lifecycle.slot_limits();
            let plugins = lifecycle
                .providers()
                .map(|p| {
                    let limit = limits.iter().find(|(n, _)| n == p.name());
                    match limit {
                        Some((_, n)) => format!("{} (at most {n} slots)", p.name()),
                        None => p.name().to_string(),
                    }
                })
                .collect();
            (
                report::html::PageContext {
                    workers_report: worker_plan.render(),
                    plugins,
                },
                config.state_dir(),
            )
        }),
        note: discovered.adapter.note(),
    })
    .map_err(|e| Error::setup(format!("cannot start the reporter thread: {e}")))?;
    if let Some(warning) = &discovered.history_warning {
        let _ = events.send(Event::Warning(warning.clone()));
    }

    let mut run_info = RunInfo {
        run_id: run_id.clone(),
        workers,
        root: config.root.clone(),
        state_dir: config.state_dir(),
        setup: None,
    };
    let spawner = Spawner {
        interrupts: interrupts.clone(),
        kill_grace: settings.kill_grace,
    };
    let setup = SetupRun {
        config,
        settings: &settings,
        lifecycle: &lifecycle,
        events: &events,
        interrupts: &interrupts,
        fresh: args.fresh_setup,
    }
    .run(&mut run_info);

    let mut failure: Option<Error> = setup.err();
    let mut tests_failed = false;
    let mut adapter_failed = false;
    let mut ran_plan = None;
    if failure.is_none() && !interrupts.is_set() {
        let ctx = PoolContext::new(
            discovered.adapter.as_ref(),
            &lifecycle,
            &spawner,
            &discovered.history,
            RunOptions {
                workers,
                timeout: settings.timeout,
                capture: !args.no_capture,
                run_id: run_id.clone(),
                max_worker_restart: settings.max_worker_restart.unwrap_or(4 * workers),
                django_slot_db: slots_copy_migrated_template(config, &lifecycle),
                shard: discovered.sharding.env_value(),
                leak_fails: settings.leak_fails,
                env: config.file.env.clone(),
            },
            PoolOptions {
                retries: settings.retries,
                stop_after: if settings.fail_fast {
                    Some(1)
                } else {
                    settings.max_fail
                },
                queue: discovered.sharding.queue_options.clone(),
                private_paths: private_paths.clone(),
            },
        );
        // The slots start and set up; a worker adapter's workers collect the
        // tests, which are planned here; then the pool runs the plan.
        let (planned, outcome) = std::thread::scope(|scope| {
            let mut pool = match Pool::start(scope, &ctx) {
                Ok(pool) => pool,
                Err(e) => return (None, PoolOutcome::failed(e)),
            };
            let planned = pool
                .ready(&events)
                .and_then(|collected| match (early_plan, collected) {
                    (Some(plan), _) => Ok(plan),
                    (None, Some(tests)) => {
                        let plan = plan(config, &settings, names, &discovered, tests);
                        super::announce_shard(&discovered, &plan);
                        check_selection(&plan, &settings, names)?;
                        Ok(plan)
                    }
                    (None, None) => Err(Error::setup("the adapter found no tests to plan")),
                });
            match planned {
                Ok(plan) => {
                    let (outcome, skip) = match &replay {
                        None => (
                            pool.run(&plan, &events),
                            diagnosis_skipped(config, &settings, args, &lifecycle),
                        ),
                        Some(replay) => (replay.outcome(&plan, &events), None),
                    };
                    if !interrupts.is_set() {
                        let mut budget = diagnose_budget(config);
                        if explicit {
                            budget.max_tests = usize::MAX;
                        }
                        diagnose::after_run(&mut pool, &plan, &outcome, budget, skip, &events);
                    }
                    (Some(plan), outcome)
                }
                Err(e) => (None, PoolOutcome::failed(e)),
            }
        });
        tests_failed = outcome.tests_failed;
        // The workers are gone: what they left for the end (pytest-cov's
        // data) is the adapter's to finish.
        if planned.is_some()
            && !interrupts.is_set()
            && let Some(done) = discovered.adapter.finish(started_at)
        {
            adapter_failed |= done.failure.is_some();
            let _ = events.send(Event::AdapterFinished {
                text: done.text,
                failure: done.failure,
            });
        }
        if replay.is_none()
            && outcome.error.is_none()
            && let Some(plan) = &planned
            && let Some(warning) =
                diagnose::record(plan, &outcome, workers).save(&config.state_dir())
        {
            let _ = events.send(Event::Warning(warning));
        }
        failure = outcome.error;
        ran_plan = planned;
    }
    let announced = interrupts.is_set();
    if announced {
        let _ = events.send(Event::Interrupted);
    }
    let run_failed = failure.is_some() || tests_failed;
    // A signal during teardown does not stop it (it releases what the run
    // holds); it is said once it is over.
    let teardown_errors = teardown(&lifecycle, run_failed, &events);
    if interrupts.is_set() && !announced {
        let _ = events.send(Event::Interrupted);
    }
    if let Some(Error::NoTests(reason)) = &failure
        && settings.no_tests != NoTests::Fail
    {
        if settings.no_tests == NoTests::Warn {
            let _ = events.send(Event::Warning(reason.clone()));
        }
        failure = None;
    }
    drop(events);
    let summary = reporter
        .join()
        .map_err(|_| Error::setup("the reporter thread panicked"))?;

    if let Some(plan) = &ran_plan
        && replay.is_none()
    {
        save_history(&discovered, plan, &summary);
        super::save_timings(&discovered, plan, &summary);
    }
    // What teardown failed to release stays this run's: its record is
    // kept, so once we exit the run is dead and `partest clean` removes it.
    let teardown_failed = teardown_errors.first().map(|first| {
        registration.keep();
        let more = match teardown_errors.len() {
            1 => String::new(),
            n => format!(" (and {} more teardown step(s), above)", n - 1),
        };
        format!(
            "teardown did not release everything: {first}{more}; \
             once that is fixed, `partest clean` removes what this run left"
        )
    });
    if summary.interrupted || interrupts.is_set() {
        if let Some(note) = &teardown_failed {
            eprintln!("partest: {note}");
        }
        return Ok(exit::INTERRUPTED);
    }
    if let Some(e) = failure {
        if let Some(note) = &teardown_failed {
            eprintln!("partest: {note}");
        }
        return Err(e);
    }
    if let Some(note) = teardown_failed {
        return Err(Error::setup(note));
    }
    Ok(if summary.any_failed() || adapter_failed {
        exit::TEST_FAILED
    } else {
        exit::OK
    })
}

/// How often a run without a terminal prints its progress line: 30 s, or
/// `PARTEST_PROGRESS_INTERVAL` (seconds; `0` turns it off).
fn progress_interval() -> Option<std::time::Duration> {
    let secs = std::env::var("PARTEST_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .unwrap_or(30.0);
    (secs > 0.0).then(|| std::time::Duration::from_secs_f64(secs))
}

/// Why the run's failures are not examined after the parallel phase, if
/// they are not.
fn diagnosis_skipped(
    config: &Config,
    settings: &Settings,
    args: &RunArgs,
    lifecycle: &Lifecycle,
) -> Option<diagnose::Skip> {
    if args.no_diagnose || !config.file.diagnose.enabled {
        // Said by the flag or the file: nothing to report.
        return Some(diagnose::Skip(""));
    }
    if settings.fail_fast {
        return Some(diagnose::Skip("--fail-fast stops at the first failure"));
    }
    if settings.max_fail.is_some() {
        return Some(diagnose::Skip("--maxfail stops the run after its failures"));
    }
    if lifecycle.keeps_failed_slots() {
        return Some(diagnose::Skip(
            "a plugin keeps the failed slots to look at (keep-on-failure); trials would set them up again",
        ));
    }
    None
}

fn diagnose_budget(config: &Config) -> diagnose::Budget {
    let table = &config.file.diagnose;
    diagnose::Budget {
        max_tests: table.max_tests,
        max_seconds: table.max_seconds.0,
    }
}

/// A plugin's slot databases are copies of a template that `[setup]
/// commands` migrated: each is ready to test on as it is.
fn slots_copy_migrated_template(config: &Config, lifecycle: &Lifecycle) -> bool {
    lifecycle.slots_copy_template() && !config.file.setup.commands.is_empty()
}

/// A run that selects no test is not a pass: it says why (nothing found, or
/// everything filtered out) and, with `--no-tests=fail` (the default), exits 4.
fn check_selection(plan: &Plan, settings: &Settings, names: &Selection) -> Result<()> {
    if plan.runnable() > 0 || settings.no_tests == NoTests::Pass {
        return Ok(());
    }
    // More shards than units: an empty share of a non-empty selection is fine.
    if plan.shard.as_ref().is_some_and(|s| s.selected > 0) {
        return Ok(());
    }
    let reason = if plan.tests.is_empty() && names.is_empty() && settings.filter.is_none() {
        "no tests to run: the adapter found none".to_string()
    } else if plan.tests.is_empty() {
        let mut why = Vec::new();
        if let Some(profile) = &settings.profile {
            why.push(format!("profile {profile}'s filter"));
        }
        why.extend(names.describe());
        format!("no tests to run: none matches {}", why.join(" and "))
    } else {
        format!(
            "no tests to run: all {} selected tests are ignored (--run-ignored runs them)",
            plan.tests.len()
        )
    };
    Err(Error::NoTests(format!(
        "{reason} (--no-tests=warn or pass to allow an empty run)"
    )))
}

fn save_history(discovered: &Discovered, plan: &Plan, summary: &report::Summary) {
    let records = summary
        .results
        .iter()
        .filter(|(_, r)| r.attempts > 0)
        .map(|(i, r)| Record {
            name: &plan.tests[*i as usize].name,
            duration: r.duration,
            status: r.status,
        });
    if let Some(warning) = discovered.history.save(records) {
        eprintln!("partest: warning: {warning}");
    }
}

/// Tears everything down, reporting each failure; returns the failures.
fn teardown(
    lifecycle: &Lifecycle,
    run_failed: bool,
    events: &Sender<Event>,
) -> Vec<crate::error::IsolationError> {
    let start = std::time::Instant::now();
    let errors = lifecycle.teardown(run_failed);
    let _ = events.send(Event::Span {
        slot: None,
        name: "teardown".into(),
        duration: start.elapsed(),
    });
    for e in &errors {
        let _ = events.send(Event::Warning(format!("teardown: {e}")));
    }
    errors
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
