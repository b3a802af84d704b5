//! The subcommands. Each reads top to bottom as the design's flow:
//! config → discover → plan → (isolation → pool → report).

mod clean;
mod diagnose;
mod list;
mod merge;
mod plugins;
mod pytest_args;
mod report;
mod run;
mod setup;

pub use clean::clean;
pub use diagnose::diagnose;
pub use list::list;
pub use merge::merge;
pub use plugins::{plugins_inspect, plugins_list};
pub use report::report;
pub use run::run;

use std::sync::Arc;

use crate::cli::SelectArgs;
use crate::config::{Config, Settings};
use crate::discover::{Adapter, DiscoverOptions, adapter_for};
use crate::error::{Error, Result};
use crate::exec::Interrupts;
use crate::exec::private_paths::{PrivatePaths, PrivatePathsError};
use crate::history::History;
use crate::isolation::wasm::PluginHost;
use crate::isolation::{Isolation, Lifecycle, TempDirs};
use crate::model::{RunIgnored, Status, TestCase};
use crate::plan::{
    Plan, PlanRules, Selection, SystemFacts, WorkerInputs, WorkerPlan, plan_workers, select,
};
use crate::shard::Sharding;

/// What discovery found, before anything is set up.
pub struct Discovered {
    pub adapter: Box<dyn Adapter>,
    /// None for `partest run` with pytest: its workers collect, each with
    /// its slot's env set.
    pub tests: Option<Vec<TestCase>>,
    pub history: History,
    pub history_warning: Option<String>,
    /// `--shard`, `--timings`: this machine's share and the shared durations.
    pub sharding: Sharding,
}

/// Finds the tests. `in_workers`: leave it to pytest's workers where the
/// adapter collects in them (`partest run`); `list` and `report` collect here.
pub fn discover(
    config: &Config,
    settings: &Settings,
    options: &DiscoverOptions,
    in_workers: bool,
) -> Result<Discovered> {
    let sharding = Sharding::resolve(settings)?;
    let mut adapter = adapter_for(config, options)?;
    let tests = if in_workers && adapter.in_workers() {
        None
    } else {
        Some(adapter.discover()?)
    };
    let (mut history, history_warning) = History::load(&config.state_dir().join("history.db"));
    // Shards split on the durations they read: one run's history written
    // before the next shard of the same machine plans would move tests
    // between shards. Their durations go to the timings file instead.
    if sharding.shard.is_some() || sharding.queue {
        history.set_read_only();
    }
    if let Some(timings) = &sharding.timings {
        history.set_fallback(
            timings
                .map
                .keys()
                .filter_map(|k| Some((k.clone(), timings.get(k)?)))
                .collect(),
        );
    }
    Ok(Discovered {
        adapter,
        tests,
        history,
        history_warning,
        sharding,
    })
}

/// The command line's selection (filters, `--skip`, `--exact`, `-E`, the
/// libtest options after `--`) and the discovery options it implies.
pub fn selection(
    args: &SelectArgs,
    sorted: &pytest_args::Sorted,
    interrupts: Option<Arc<Interrupts>>,
) -> Result<(Selection, DiscoverOptions)> {
    let sel = Selection::new(&sorted.filters, &args.skip, args.exact, &args.filterset)
        .map_err(Error::config)?;
    let run_ignored = if sel.ignored_only {
        RunIgnored::Only
    } else if sel.include_ignored && args.run_ignored.is_none() {
        RunIgnored::All
    } else {
        args.run_ignored.unwrap_or_default()
    };
    let options = DiscoverOptions {
        run_ignored,
        cargo: args.cargo.clone(),
        pytest_args: sorted.pytest.clone(),
        interrupts,
    };
    Ok((sel, options))
}

/// `list` and `report`: the selection, and the tests discovered here (pytest
/// collects in one worker). Ctrl-C stops cargo's build (in its own process
/// group) with us.
pub fn discover_here(
    config: &Config,
    settings: &Settings,
    select: &SelectArgs,
) -> Result<(Selection, Discovered)> {
    let interrupts = Interrupts::install()
        .map_err(|e| Error::setup(format!("cannot install signal handlers: {e}")))?;
    let sorted = pytest_args::Sorted::of(config, select, None)?;
    for note in &sorted.notes {
        eprintln!("partest: note: {note}");
    }
    let (selection, options) = selection(select, &sorted, Some(interrupts.clone()))?;
    let discovered = discover(config, settings, &options, false);
    if interrupts.is_set() {
        return Err(Error::Interrupted);
    }
    Ok((selection, discovered?))
}

/// Selects (profile filter, the command line's selection) and plans the
/// discovered tests.
pub fn plan(
    config: &Config,
    settings: &Settings,
    names: &Selection,
    d: &Discovered,
    tests: Vec<TestCase>,
) -> Plan {
    let by_file = d.adapter.in_workers();
    let rules = PlanRules {
        serial_filter: &config.file.serial.filter,
        groups: &config.file.groups,
        order: settings.order,
        by_file,
        failed_first: settings.failed_first || settings.last_failed,
    };
    let mut selected = select(tests, settings.filter.as_ref(), names);
    // --lf: the last run's failures only; with none recorded, everything
    // (as pytest's --lf), and the summary says so.
    let mut last_failed_note = None;
    if settings.last_failed {
        if selected.iter().any(|t| d.history.failed_last_time(&t.name)) {
            selected.retain(|t| d.history.failed_last_time(&t.name));
        } else {
            last_failed_note = Some("--lf: no test failed last time, so all ran".to_string());
        }
    }
    let (selected, split) = match d.sharding.shard {
        Some(shard) => {
            let known = d.sharding.known(&d.history);
            let split = crate::shard::split::split(selected, shard, by_file, &known);
            (split.tests, Some(split.summary))
        }
        None => (selected, None),
    };
    let mut plan = Plan::new(selected, &d.history, &rules);
    plan.shard = split;
    if last_failed_note.is_some() {
        plan.from_last_run = last_failed_note;
    } else if settings.last_failed {
        plan.from_last_run = Some(format!(
            "--lf: only the {} that failed last time",
            plan.tests.len()
        ));
    }
    if d.sharding.queue {
        let known = d.sharding.known(&d.history);
        let parallel: Vec<u32> = plan.parallel.iter().flatten().copied().collect();
        plan.queue_units = Some(crate::shard::queue::queue_units(
            &plan.tests,
            &parallel,
            &plan.serial,
            by_file,
            &known,
        ));
    }
    plan
}

/// The worker count and every factor behind it.
pub fn workers(
    settings: &Settings,
    config: &Config,
    plan: Option<&Plan>,
    lifecycle: Option<&Lifecycle>,
) -> WorkerPlan {
    let slots = lifecycle.map(Lifecycle::slot_limits).unwrap_or_default();
    let inputs = WorkerInputs {
        requested: settings.workers,
        source: settings.workers_source.clone(),
        limits: &config.file.limits,
        test_count: plan.map(Plan::parallel_count),
        plugin_slots: &slots,
    };
    plan_workers(&inputs, &SystemFacts::detect())
}

/// The isolation providers of this run: temp dirs always, then the plugins
/// (loaded, linked and configured here; set up later by the lifecycle).
pub fn load_isolation(config: &Config, settings: &Settings) -> Result<Lifecycle> {
    let mut providers: Vec<Box<dyn Isolation>> = vec![Box::new(TempDirs::new(None))];
    if !settings.plugins.is_empty() {
        let host = PluginHost::new(&config.root, &config.state_dir())?;
        providers.extend(host.load_providers(config, &settings.plugins)?);
    }
    Ok(Lifecycle::new(providers))
}

/// `[isolation]` resolved, probed and its mount points made; `None` when
/// the table asks for nothing.
pub fn private_paths(config: &Config) -> Result<Option<PrivatePaths>> {
    let table = &config.file.isolation;
    PrivatePaths::new(
        &table.private_paths,
        table.private_tmp,
        &config.root,
        &std::env::temp_dir(),
    )
    .map_err(|e| match e {
        PrivatePathsError::Path { .. } => Error::config(format!(
            "{}: {e}",
            config.at(&["isolation", "private-paths"])
        )),
        PrivatePathsError::Unavailable(_) | PrivatePathsError::Io(_) => {
            Error::setup(format!("{}: {e}", config.at(&["isolation"])))
        }
    })
}

/// Says on stderr which share of the selection this machine runs.
pub fn announce_shard(d: &Discovered, plan: &Plan) {
    if let Some(split) = &plan.shard {
        eprintln!("partest: {}", shard_line(d, split));
    } else if d.sharding.shard.is_none() && !d.sharding.source.is_empty() && !d.sharding.queue {
        eprintln!(
            "partest: --shard auto found {}: running the whole selection",
            d.sharding.source
        );
    }
}

/// Writes this run's durations into the timings file, merged with what it
/// held (tests this machine did not run keep their entries).
pub fn save_timings(d: &Discovered, plan: &Plan, summary: &crate::report::Summary) {
    let (Some(path), Some(timings)) = (&d.sharding.timings_path, &d.sharding.timings) else {
        return;
    };
    let mut timings = timings.clone();
    timings.record(
        summary
            .results
            .iter()
            .filter(|(_, r)| {
                r.attempts > 0 && !matches!(r.status, Status::Cancelled | Status::Skip)
            })
            .map(|(i, r)| (plan.tests[*i as usize].name.as_str(), r.duration)),
    );
    if let Err(e) = timings.save(path) {
        eprintln!("partest: warning: {e}; continuing");
    }
}

/// `partest report`'s lines about sharding: what `--shard auto` finds in
/// this environment, the split in force, and the timings file.
pub fn shard_report(d: &Discovered, plan: &Plan) -> String {
    let mut out = String::new();
    let auto = match crate::shard::detect_from_env() {
        Ok(found) => match found.shard {
            Some(shard) => format!("{shard} from {}", found.source),
            None => format!("nothing: {}", found.source),
        },
        Err(e) => format!("an error: {e}"),
    };
    out.push_str(&format!("shard: --shard auto finds {auto}\n"));
    if let Some(split) = &plan.shard {
        out.push_str(&format!("       {}\n", shard_line(d, split)));
    } else if d.sharding.queue {
        out.push_str(
            "       --shard queue: units are pulled from the shared queue as the run goes\n",
        );
    }
    if let (Some(path), Some(t)) = (&d.sharding.timings_path, &d.sharding.timings) {
        out.push_str(&format!(
            "timings: {} ({} tests)\n",
            path.display(),
            t.len()
        ));
    }
    out
}

/// The split of this shard, and where its shard and durations came from.
pub fn shard_line(d: &Discovered, split: &crate::shard::split::SplitSummary) -> String {
    let from = match &d.sharding.timings_path {
        Some(path) => format!("; durations from {}", path.display()),
        None if split.by_time => {
            "; durations from this machine's history (--timings FILE shares them between machines)"
                .to_string()
        }
        None => String::new(),
    };
    format!("{} ({}{from})", split.describe(), d.sharding.source)
}
