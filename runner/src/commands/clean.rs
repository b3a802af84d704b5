//! `partest clean`: remove what crashed or killed runs left behind — their
//! processes (found by the `PARTEST_RUN_ID` they inherited), temp
//! directories, and whatever each configured plugin made (databases, Redis
//! claims, containers). Only runs that are dead count (the register of runs
//! says so; see [`crate::runs`]), and only what carries partest's run-id
//! marker: a live run's resources and anything partest did not make are
//! never touched.
//!
//! First everything is listed (each plugin's sweep in dry-run mode); then,
//! after `--yes` (or `--force` in CI, or a "y" at the prompt on a terminal),
//! removed. `--dry-run` only lists.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};

use crate::cli::CleanArgs;
use crate::config::{Config, Overrides, Settings};
use crate::error::{Error, Result, exit};
use crate::isolation::wasm::{PluginHost, WasmPlugin};
use crate::isolation::{Isolation, TempDirs};

/// Lists, confirms and removes; returns the exit code.
pub fn clean(config: &Config, args: &CleanArgs) -> Result<i32> {
    let (plugins, mut failed, elsewhere) = load_plugins(config, args)?;

    // 1. List.
    let dirs = TempDirs::sweep(None);
    // Processes first: a test left running by a killed run may hold what
    // the plugins are about to drop (a database connection, a file).
    let mut dead: BTreeSet<String> = crate::runs::dead_runs().into_iter().collect();
    dead.extend(dirs.iter().map(|d| d.run_id.clone()));
    let processes = crate::runs::processes_of(&dead);
    let mut found: Vec<(String, String)> = processes
        .iter()
        .map(|p| {
            (
                "process".to_string(),
                format!("pid {} of dead run {}: {}", p.pid, p.run_id, p.command),
            )
        })
        .collect();
    found.extend(dirs.iter().map(|d| {
        let pid = d.pid.map_or("no pid".into(), |p| format!("pid {p} gone"));
        (
            "tempdir".to_string(),
            format!("{} (run {}, {pid})", d.dir.display(), d.run_id),
        )
    }));
    for p in &plugins {
        match p.sweep(true) {
            Ok(lines) => found.extend(lines.into_iter().map(|l| (p.info().name.clone(), l))),
            Err(e) => {
                failed = true;
                eprintln!("partest: clean: {e}");
            }
        }
    }
    // Set-ups kept across runs are no leftovers: listed apart, removed
    // only with --templates.
    let mut kept: Vec<(&WasmPlugin, String, String)> = Vec::new();
    let now = crate::report::unix_now();
    let project = super::setup::project_id(config);
    for p in &plugins {
        match p.kept_setups() {
            Ok(list) => kept.extend(
                list.into_iter()
                    .flatten()
                    .filter(|k| k.key.starts_with(&project))
                    .map(|k| {
                        let line = format!(
                            "set-up {} (built {} ago, used {} ago)",
                            k.key,
                            crate::report::age(now.saturating_sub(k.built)),
                            crate::report::age(now.saturating_sub(k.used))
                        );
                        (p, k.key, line)
                    }),
            ),
            Err(e) => {
                failed = true;
                eprintln!("partest: clean: {e}");
            }
        }
    }
    let width = found
        .iter()
        .map(|(w, _)| w.len())
        .chain(kept.iter().map(|(p, _, _)| p.info().name.len()))
        .max()
        .unwrap_or(0);
    if found.is_empty() {
        println!("partest clean: nothing left behind by dead runs");
    } else {
        println!(
            "partest clean: {} thing(s) left behind by dead runs:",
            found.len()
        );
        for (who, what) in &found {
            println!("  {who:<width$}  {what}");
        }
    }
    if !kept.is_empty() {
        println!(
            "partest clean: {} set-up(s) of this project kept across runs ([setup] inputs){}",
            kept.len(),
            if args.templates {
                ":"
            } else {
                ", removed only with --templates:"
            }
        );
        for (p, _, line) in &kept {
            println!("  {:<width$}  {line}", p.info().name);
        }
    }
    if !args.templates {
        kept.clear();
    }
    if args.dry_run || (found.is_empty() && kept.is_empty()) {
        if !args.dry_run && !failed {
            forget_dead_runs(&[], &elsewhere);
        }
        return Ok(if failed { exit::SETUP } else { exit::OK });
    }

    // 2. Confirm.
    if !(args.yes || args.force || confirm()?) {
        println!("nothing removed (pass --yes, or --force in CI, to remove without asking)");
        return Ok(exit::OK);
    }

    // 3. Remove.
    for p in &processes {
        match crate::runs::kill(p) {
            Ok(()) => println!("  {:<width$}  killed pid {}", "process", p.pid),
            Err(e) => {
                failed = true;
                eprintln!("partest: clean: cannot kill pid {}: {e}", p.pid);
            }
        }
    }
    for d in &dirs {
        match TempDirs::remove_dead(d) {
            Ok(()) => println!("  {:<width$}  removed {}", "tempdir", d.dir.display()),
            Err(e) => {
                failed = true;
                eprintln!("partest: clean: tempdir: {e}");
            }
        }
    }
    for p in &plugins {
        match p.sweep(false) {
            Ok(lines) => {
                for l in lines {
                    println!("  {:<width$}  {l}", p.info().name);
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("partest: clean: {e}");
            }
        }
    }
    for (p, key, _) in &kept {
        match p.drop_setup(key) {
            Ok(_) => println!("  {:<width$}  removed set-up {key}", p.info().name),
            Err(e) => {
                failed = true;
                eprintln!("partest: clean: {e}");
            }
        }
    }
    if !failed {
        let ids: Vec<String> = dirs.iter().map(|d| d.run_id.clone()).collect();
        forget_dead_runs(&ids, &elsewhere);
    }
    if failed {
        return Err(Error::setup(
            "some leftovers could not be removed; see the messages above",
        ));
    }
    Ok(exit::OK)
}

/// The plugins `clean` asks: every configured one and those named with
/// `--plugins`. One that cannot start (its server is down) is reported and
/// skipped, so the others still clean; the flag says one was skipped. The
/// names last: custom plugins of another project's dead runs, which only a
/// clean there can load (not a failure here).
fn load_plugins(config: &Config, args: &CleanArgs) -> Result<(Vec<WasmPlugin>, bool, Vec<String>)> {
    // Configured plugins, those named now, and those dead runs enabled
    // (on the command line, say): each is asked for what it left.
    let mut named = args.plugins.clone();
    let mut recorded = Vec::new();
    for id in crate::runs::dead_runs() {
        recorded.extend(crate::runs::plugins_of(&id));
    }
    named.extend(recorded.iter().cloned());
    let overrides = Overrides {
        plugins: named,
        ..Overrides::default()
    };
    let names = Settings::resolve(config, &overrides)?.plugins;
    if names.is_empty() {
        return Ok((Vec::new(), false, Vec::new()));
    }
    let host = PluginHost::new(&config.root, &config.state_dir())?;
    let mut plugins = Vec::new();
    let mut failed = false;
    let mut elsewhere = Vec::new();
    for name in names {
        match host.load(config, std::slice::from_ref(&name)) {
            Ok(loaded) => plugins.extend(loaded),
            // A name from a dead run's record that this project cannot load
            // (another project's custom plugin): say so, keep the record.
            Err(e @ Error::Config(_))
                if !recorded.contains(&name)
                    || args.plugins.contains(&name)
                    || config.file.plugins.contains_key(&name) =>
            {
                return Err(e);
            }
            Err(Error::Config(_)) => {
                eprintln!(
                    "partest: clean: plugin {name}, enabled by a dead run, is not configured \
                     here: its run's record stays for a clean that can load it (this project's \
                     own: name it with --plugins {name})"
                );
                elsewhere.push(name);
            }
            Err(e) => {
                failed = true;
                eprintln!("partest: clean: skipping plugin {name}: {e}");
            }
        }
    }
    Ok((plugins, failed, elsewhere))
}

/// Drops the records of dead runs once every sweep succeeded (each dead
/// run's own plugins were loaded from its record), so the register does not
/// grow and no run is forgotten before its leftovers are gone: a run that
/// enabled a plugin only another project can load (`elsewhere`) stays.
fn forget_dead_runs(also: &[String], elsewhere: &[String]) {
    let mut ids: BTreeSet<String> = crate::runs::dead_runs().into_iter().collect();
    ids.extend(also.iter().cloned());
    for id in ids {
        if crate::runs::plugins_of(&id)
            .iter()
            .any(|p| elsewhere.contains(p))
        {
            continue;
        }
        crate::runs::forget(&id);
    }
}

/// Asks on the terminal; without one, the answer is no.
fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("remove them? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::config(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
