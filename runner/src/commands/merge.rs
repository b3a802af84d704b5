//! `partest merge --junit OUT FILE...`: the shards' JUnit files joined into
//! one report, and their timings files into the shared one, so that the next
//! run balances on all of them.

use std::path::{Path, PathBuf};

use crate::cli::MergeArgs;
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::shard::Timings;
use crate::shard::merge::merge_files;

pub fn merge(config: &Config, args: &MergeArgs) -> Result<i32> {
    let (timings_files, junit_files): (Vec<&PathBuf>, Vec<&PathBuf>) =
        args.files.iter().partition(|p| is_json(p));
    let junit: Vec<&Path> = junit_files.iter().map(|p| p.as_path()).collect();
    if junit.is_empty() {
        return Err(Error::config(
            "partest merge: no JUnit file among the FILEs (timings files alone need --junit inputs too)",
        ));
    }
    let merged = merge_files(&junit, &args.junit).map_err(Error::config)?;
    println!(
        "partest merge: {} JUnit files → {}: {} tests in {} suites",
        merged.files,
        args.junit.display(),
        merged.tests,
        merged.suites
    );
    if !merged.duplicates.is_empty() {
        eprintln!(
            "partest: warning: {} testcases appear in more than one file (a test ran on two machines):",
            merged.duplicates.len()
        );
        for d in merged.duplicates.iter().take(20) {
            eprintln!("  {d}");
        }
    }
    if timings_files.is_empty() {
        return Ok(exit::OK);
    }
    let target = args
        .timings
        .clone()
        .or_else(|| config.file.run.timings.as_ref().map(|t| config.root.join(t)))
        .ok_or_else(|| {
            Error::config(
                "partest merge: timings files were given but no target: pass --timings FILE (or set [run] timings)",
            )
        })?;
    let mut base = Timings::load(&target).map_err(Error::config)?;
    let mut others = Vec::new();
    for path in timings_files {
        others.push(Timings::load(path).map_err(Error::config)?);
    }
    base.merge(&others);
    base.save(&target).map_err(Error::config)?;
    println!(
        "partest merge: {} timings files → {}: {} tests",
        others.len(),
        target.display(),
        base.len()
    );
    Ok(exit::OK)
}

/// A timings file: named *.json, or starting with `{`.
fn is_json(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        return true;
    }
    std::fs::read(path)
        .ok()
        .and_then(|b| b.iter().copied().find(|c| !c.is_ascii_whitespace()))
        == Some(b'{')
}
