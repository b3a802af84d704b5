//! `partest list`: what would run, in which phase, on how many workers.

use std::fmt::Write as _;

use super::prepare;
use crate::cli::{ListArgs, MessageFormat};
use crate::config::{Config, Settings};
use crate::discover::DiscoverOptions;
use crate::error::Result;

pub fn list(config: &Config, args: &ListArgs) -> Result<String> {
    let settings = Settings::resolve(config, &args.select.overrides())?;
    let options = DiscoverOptions {
        run_ignored: args.select.run_ignored,
    };
    let p = prepare(config, &settings, &args.select.filters, &options)?;
    let plan = &p.plan;
    let name = |i: &u32| plan.tests[*i as usize].name.as_str();
    let group = |g: Option<u16>| g.map(|g| plan.groups[g as usize].name.as_str());
    let mut out = String::new();
    if args.message_format == MessageFormat::Json {
        let entry = |i: &u32, phase: &str, g: Option<u16>| {
            serde_json::json!({"test": name(i), "phase": phase, "group": group(g)}).to_string()
        };
        for unit in &plan.parallel {
            for i in &unit.tests {
                let _ = writeln!(out, "{}", entry(i, "parallel", unit.group));
            }
        }
        for unit in &plan.serial {
            let _ = writeln!(out, "{}", entry(&unit.tests[0], "serial", None));
        }
        for i in &plan.skipped {
            let _ = writeln!(out, "{}", entry(i, "skipped", None));
        }
        return Ok(out);
    }
    let parallel: usize = plan.parallel.iter().map(|u| u.tests.len()).sum();
    let _ = writeln!(
        out,
        "parallel: {parallel} tests on {} workers",
        p.workers.workers
    );
    for unit in &plan.parallel {
        for i in &unit.tests {
            match group(unit.group) {
                Some(g) => writeln!(out, "  {}  [group {g}]", name(i)),
                None => writeln!(out, "  {}", name(i)),
            }
            .ok();
        }
    }
    if !plan.serial.is_empty() {
        let _ = writeln!(
            out,
            "serial: {} tests, alone on gw0 after the parallel phase",
            plan.serial.len()
        );
        for unit in &plan.serial {
            let _ = writeln!(out, "  {}", name(&unit.tests[0]));
        }
    }
    if !plan.skipped.is_empty() {
        let _ = writeln!(
            out,
            "skipped: {} ignored tests (--run-ignored runs them)",
            plan.skipped.len()
        );
        for i in &plan.skipped {
            let _ = writeln!(out, "  {}", name(i));
        }
    }
    Ok(out)
}
