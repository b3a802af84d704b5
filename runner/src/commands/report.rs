//! `partest report`: the parallelization report, every factor behind the
//! worker count and the one that bound it.

use super::{discover, load_isolation, plan, workers};
use crate::cli::ReportArgs;
use crate::config::{Config, Settings};
use crate::error::Result;

pub fn report(config: &Config, args: &ReportArgs) -> Result<String> {
    let settings = Settings::resolve(config, &args.select.overrides())?;
    // Ctrl-C stops cargo's build (in its own process group) with us.
    let interrupts = crate::exec::Interrupts::install()
        .map_err(|e| crate::error::Error::setup(format!("cannot install signal handlers: {e}")))?;
    let (selection, options) = super::selection(&args.select, Some(interrupts.clone()))?;
    let discovered = discover(config, &settings, &options, false);
    if interrupts.is_set() {
        return Err(crate::error::Error::Interrupted);
    }
    let mut d = discovered?;
    let tests = d.tests.take().unwrap_or_default();
    let plan = plan(config, &settings, &selection, &d, tests);
    // Plugins are loaded (not set up): their slot limits cap the count.
    let lifecycle = load_isolation(config, &settings)?;
    let workers = workers(&settings, config, Some(&plan), Some(&lifecycle));
    let profile = settings.profile.as_deref().unwrap_or("(none)");
    let mut out = format!(
        "partest report: profile {profile}, adapter {}, config {}\n\n",
        d.adapter.kind().name(),
        config.origin()
    );
    out.push_str(&workers.render());
    out.push_str(&format!(
        "tests: {} parallel in {} queues, {} serial, {} skipped; history knows {} tests\n",
        plan.parallel_count(),
        plan.parallel.len(),
        plan.serial.len(),
        plan.skipped.len(),
        d.history.len()
    ));
    out.push_str(&super::shard_report(&d, &plan));
    Ok(out)
}
