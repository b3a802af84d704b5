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

use crate::config::{Config, Settings};
use crate::discover::{Adapter, DiscoverOptions, TestCase, adapter_for};
use crate::error::Result;
use crate::history::History;
use crate::isolation::wasm::PluginHost;
use crate::isolation::{Isolation, Lifecycle, TempDirs};
use crate::plan::{Plan, PlanRules, SystemFacts, WorkerInputs, WorkerPlan, plan_workers, select};

/// Everything decided before the first process starts.
pub struct Prepared {
    pub adapter: Box<dyn Adapter>,
    pub plan: Plan,
    pub workers: WorkerPlan,
    pub history: History,
    pub history_warning: Option<String>,
    pub lifecycle: Lifecycle,
}

/// Discovers, selects and plans. Plugins are loaded here (not set up) because
/// their slot limits cap the worker count.
pub fn prepare(
    config: &Config,
    settings: &Settings,
    names: &[String],
    options: &DiscoverOptions,
) -> Result<Prepared> {
    let lifecycle = Lifecycle::new(providers(config, settings)?);
    let mut adapter = adapter_for(config, options)?;
    let tests: Vec<TestCase> = select(adapter.discover()?, settings.filter.as_ref(), names);
    let (history, history_warning) = History::load(&config.state_dir().join("history.db"));
    let skipped = tests.iter().filter(|t| t.ignored).count();
    let inputs = WorkerInputs {
        requested: settings.workers,
        source: settings.workers_source.clone(),
        limits: &config.file.limits,
        test_count: tests.len() - skipped,
        plugin_slots: &lifecycle.slot_limits(),
    };
    let workers = plan_workers(&inputs, &SystemFacts::detect());
    let rules = PlanRules {
        serial_filter: &config.file.serial.filter,
        groups: &config.file.groups,
        max_batch: adapter.max_batch(),
        workers: workers.workers,
    };
    let plan = Plan::new(tests, &history, &rules);
    Ok(Prepared {
        adapter,
        plan,
        workers,
        history,
        history_warning,
        lifecycle,
    })
}

/// The isolation providers of this run: temp dirs always, then the plugins
/// (loaded, linked and configured here; set up later by the lifecycle).
fn providers(config: &Config, settings: &Settings) -> Result<Vec<Box<dyn Isolation>>> {
    let mut providers: Vec<Box<dyn Isolation>> = vec![Box::new(TempDirs::new(None))];
    if !settings.plugins.is_empty() {
        let host = PluginHost::new(&config.root, &config.state_dir())?;
        providers.extend(host.load_providers(config, &settings.plugins)?);
    }
    Ok(providers)
}
