//! The subcommands. Each reads top to bottom as the design's flow:
//! config → discover → plan → (isolation → pool → report).

mod clean;
mod list;
mod plugins;
mod report;
mod run;

pub use clean::clean;
pub use list::list;
pub use plugins::{plugins_inspect, plugins_list};
pub use report::report;
pub use run::run;

use std::sync::Arc;

use crate::cli::{RunIgnored, SelectArgs};
use crate::config::{Config, Settings};
use crate::discover::{Adapter, DiscoverOptions, TestCase, adapter_for};
use crate::error::{Error, Result};
use crate::exec::Interrupts;
use crate::history::History;
use crate::isolation::wasm::PluginHost;
use crate::isolation::{Isolation, Lifecycle, TempDirs};
use crate::plan::{
    Plan, PlanRules, Selection, SystemFacts, WorkerInputs, WorkerPlan, plan_workers, select,
};

/// What discovery found, before anything is set up.
pub struct Discovered {
    pub adapter: Box<dyn Adapter>,
    /// None for `partest run` with pytest: its workers collect, each with
    /// its slot's env set.
    pub tests: Option<Vec<TestCase>>,
    pub history: History,
    pub history_warning: Option<String>,
}

/// Finds the tests. `in_workers`: leave it to pytest's workers where the
/// adapter collects in them (`partest run`); `list` and `report` collect here.
pub fn discover(
    config: &Config,
    options: &DiscoverOptions,
    in_workers: bool,
) -> Result<Discovered> {
    let mut adapter = adapter_for(config, options)?;
    let tests = if in_workers && adapter.pytest().is_some() {
        None
    } else {
        Some(adapter.discover()?)
    };
    let (history, history_warning) = History::load(&config.state_dir().join("history.db"));
    Ok(Discovered {
        adapter,
        tests,
        history,
        history_warning,
    })
}

/// The command line's selection (filters, `--skip`, `--exact`, `-E`, the
/// libtest options after `--`) and the discovery options it implies.
pub fn selection(
    args: &SelectArgs,
    interrupts: Option<Arc<Interrupts>>,
) -> Result<(Selection, DiscoverOptions)> {
    let sel = Selection::new(&args.filters, &args.skip, args.exact, &args.filterset)
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
        interrupts,
    };
    Ok((sel, options))
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
    let rules = PlanRules {
        serial_filter: &config.file.serial.filter,
        groups: &config.file.groups,
        order: settings.order,
        by_file: d.adapter.pytest().is_some(),
    };
    Plan::new(
        select(tests, settings.filter.as_ref(), names),
        &d.history,
        &rules,
    )
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
