//! `partest report`: the parallelization report, every factor behind the
//! worker count and the one that bound it.

use super::prepare;
use crate::cli::ReportArgs;
use crate::config::{Config, Settings};
use crate::discover::DiscoverOptions;
use crate::error::Result;

pub fn report(config: &Config, args: &ReportArgs) -> Result<String> {
    let settings = Settings::resolve(config, &args.select.overrides())?;
    let options = DiscoverOptions {
        run_ignored: args.select.run_ignored,
    };
    let p = prepare(config, &settings, &args.select.filters, &options)?;
    let profile = settings.profile.as_deref().unwrap_or("(none)");
    let mut out = format!(
        "partest report: profile {profile}, adapter {}, config {}\n\n",
        p.adapter.kind().name(),
        config.origin()
    );
    out.push_str(&p.workers.render());
    let parallel: usize = p.plan.parallel.iter().map(|u| u.tests.len()).sum();
    out.push_str(&format!(
        "tests: {parallel} parallel in {} units, {} serial, {} skipped; history knows {} tests\n",
        p.plan.parallel.len(),
        p.plan.serial.len(),
        p.plan.skipped.len(),
        p.history.len()
    ));
    Ok(out)
}
