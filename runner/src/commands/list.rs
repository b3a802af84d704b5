//! `partest list`: what would run, in which phase, on how many workers.

use std::fmt::Write as _;

use super::{plan, workers};
use crate::cli::ListArgs;
use crate::config::{Config, Settings};
use crate::error::Result;
use crate::model::MessageFormat;

pub fn list(config: &Config, args: &ListArgs) -> Result<String> {
    let settings = Settings::resolve(config, &args.select.overrides())?;
    // No plugin is loaded: listing needs no server.
    let (selection, mut d) = super::discover_here(config, &settings, &args.select)?;
    let tests = d.tests.take().unwrap_or_default();
    let plan = &plan(config, &settings, &selection, &d, tests);
    let workers = workers(&settings, config, Some(plan), None);
    let name = |i: &u32| plan.tests[*i as usize].name.as_str();
    let group = |i: &u32| plan.group_of[*i as usize].map(|g| plan.groups[g as usize].name.as_str());
    let mut out = String::new();
    if let Some(split) = &plan.shard
        && args.message_format == MessageFormat::Human
    {
        let _ = writeln!(out, "{}", super::shard_line(&d, split));
    }
    if args.message_format == MessageFormat::Json {
        let entry = |i: &u32, phase: &str| {
            serde_json::json!({"test": name(i), "phase": phase, "group": group(i)}).to_string()
        };
        for i in plan.parallel.iter().flatten() {
            let _ = writeln!(out, "{}", entry(i, "parallel"));
        }
        for i in &plan.serial {
            let _ = writeln!(out, "{}", entry(i, "serial"));
        }
        for i in &plan.skipped {
            let _ = writeln!(out, "{}", entry(i, "skipped"));
        }
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "parallel: {} tests on {} workers",
        plan.parallel_count(),
        workers.workers
    );
    for i in plan.parallel.iter().flatten() {
        match group(i) {
            Some(g) => writeln!(out, "  {}  [group {g}]", name(i)),
            None => writeln!(out, "  {}", name(i)),
        }
        .ok();
    }
    if !plan.serial.is_empty() {
        let _ = writeln!(
            out,
            "serial: {} tests, alone on gw0 after the parallel phase",
            plan.serial.len()
        );
        for i in &plan.serial {
            let _ = writeln!(out, "  {}", name(i));
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
