//! `partest report`: the parallelization report, every factor behind the
//! worker count and the one that bound it.

use super::{load_isolation, plan, workers};
use crate::cli::ReportArgs;
use crate::config::{Config, Settings};
use crate::error::{Error, Result};

pub fn report(config: &Config, args: &ReportArgs) -> Result<String> {
    if let Some(path) = &args.html {
        let page =
            crate::report::html::RunPage::load(&config.state_dir()).map_err(Error::config)?;
        let path = config.root.join(path);
        page.write(&path).map_err(|e| {
            Error::setup(format!(
                "cannot write the HTML report {}: {e}",
                path.display()
            ))
        })?;
        return Ok(format!(
            "partest report: the last run ({}) as a page: {}\n",
            page.run_id,
            path.display()
        ));
    }
    let settings = Settings::resolve(config, &args.select.overrides())?;
    let (selection, mut d) = super::discover_here(config, &settings, &args.select)?;
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
    out.push_str(&super::setup::report(config, &lifecycle));
    let isolation = &config.file.isolation;
    out.push_str(&crate::plan::private_paths_line(
        !isolation.private_paths.is_empty() || isolation.private_tmp,
    ));
    Ok(out)
}
