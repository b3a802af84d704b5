//! The run's set-up: every plugin's setup-run, then `[setup] commands`
//! (migrations, fixtures) once — and, with `[setup] inputs`, once per
//! change. The inputs' contents, the commands, `[env]` and the plugins'
//! settings make a key; a run whose key a plugin kept a template for
//! clones it and skips the commands, and a run that builds one keeps it
//! under its key once every command succeeded (a half-built one never is).
//! Runs of one project that set up at once take turns on a lock file, so
//! one builds and the others reuse; at most `[setup] keep` set-ups stay,
//! the least recently used going first.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use sha2::{Digest, Sha256};

use crate::config::{Config, Filter, Settings};
use crate::error::{Error, Result};
use crate::exec::Interrupts;
use crate::exec::bounded::{BoundedCommand, Bounds};
use crate::isolation::{Lifecycle, RunInfo, SetupCache};
use crate::model::{Env, ProcessEnd};
use crate::report::{Event, SetupDone};

/// What the set-up is kept under: the project's id (8 hex digits, from its
/// root) and the hash of what shapes it (16 more).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupKey {
    pub key: String,
    /// The files the `[setup] inputs` globs matched, relative to the root.
    pub inputs: Vec<String>,
}

impl SetupKey {
    /// The key of this project's set-up; `None` without `[setup] inputs`
    /// (nothing is kept) or without `[setup] commands` (nothing to skip).
    pub fn of(config: &Config) -> Result<Option<SetupKey>> {
        let setup = &config.file.setup;
        if setup.inputs.is_empty() || setup.commands.is_empty() {
            return Ok(None);
        }
        let globs = Filter::new(&setup.inputs)
            .map_err(|e| Error::config(format!("{}: {e}", config.at(&["setup", "inputs"]))))?;
        let inputs = globs
            .matching_files(&config.root)
            .map_err(|e| Error::setup(format!("[setup] inputs: listing the project: {e}")))?;
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(b"partest setup 1");
        for command in &setup.commands {
            field(command.as_bytes());
        }
        for (name, value) in &config.file.env {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        // Every plugin's own settings: one may shape its template (a URL,
        // a mode, a template to start from).
        for (name, table) in &config.file.plugins {
            field(name.as_bytes());
            field(table.settings.to_string().as_bytes());
        }
        for rel in &inputs {
            let path = config.root.join(rel);
            let contents = std::fs::read(&path).map_err(|e| {
                Error::setup(format!(
                    "[setup] inputs: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            field(rel.as_bytes());
            field(&contents);
        }
        let key = format!("{}{}", project_id(config), hex(&hash.finalize()[..8]));
        Ok(Some(SetupKey { key, inputs }))
    }

    /// The project's part of the key: set-ups with it are this project's.
    pub fn project(&self) -> &str {
        &self.key[..8]
    }
}

/// The first 8 hex digits of every key of this project's set-ups:
/// runs, `report` and `clean` touch only the project's own.
pub fn project_id(config: &Config) -> String {
    crate::model::project_id(&config.root)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything the run needs set up before its slots: the plugins'
/// setup-run and the setup commands, or a kept set-up in their stead.
pub struct SetupRun<'a> {
    pub config: &'a Config,
    pub settings: &'a Settings,
    pub lifecycle: &'a Lifecycle,
    pub events: &'a Sender<Event>,
    pub interrupts: &'a Interrupts,
    /// `--fresh-setup`: build even when a kept set-up matches.
    pub fresh: bool,
}

impl SetupRun<'_> {
    pub fn run(&self, run: &mut RunInfo) -> Result<()> {
        let Some(key) = SetupKey::of(self.config)? else {
            let env = self.setup_run(run)?;
            return self.commands(&env);
        };
        let start = Instant::now();
        // One run of the project sets up at a time: the others wait, then
        // find what it kept.
        let _turn = SetupLock::take(
            &self.config.state_dir(),
            self.config.file.setup.timeout.0,
            self.events,
            self.interrupts,
        )?;
        let kept = self.lifecycle.kept_setups().map_err(Error::Isolation)?;
        if kept.is_empty() {
            let _ = self.events.send(Event::Warning(
                "[setup] inputs: no plugin here keeps a template (the sqlite and postgres plugins do), \
                 so the setup commands run every time"
                    .into(),
            ));
            let env = self.setup_run(run)?;
            return self.commands(&env);
        }
        let built_at = kept
            .iter()
            .map(|(_, list)| list.iter().find(|k| k.key == key.key).map(|k| k.built))
            .collect::<Option<Vec<u64>>>()
            .map(|times| times.into_iter().min().unwrap_or(0));
        if self.fresh && built_at.is_some() {
            self.lifecycle
                .drop_setup(&key.key)
                .map_err(Error::Isolation)?;
        }
        let reuse = built_at.is_some() && !self.fresh;
        run.setup = Some(SetupCache {
            key: key.key.clone(),
            reuse,
        });
        let env = self.setup_run(run)?;
        if !reuse {
            self.commands(&env)?;
            if self.interrupts.is_set() {
                return Ok(());
            }
            self.lifecycle.keep_setup().map_err(Error::Isolation)?;
            self.evict(&key);
        }
        let done = SetupDone {
            key: key.key.clone(),
            inputs: key.inputs.len(),
            reused_from: built_at.filter(|_| reuse),
            duration: start.elapsed(),
        };
        let _ = self.events.send(Event::Setup(done));
        Ok(())
    }

    /// Every plugin's setup-run, timed for the trace.
    fn setup_run(&self, run: &RunInfo) -> Result<Env> {
        let start = Instant::now();
        let env = self.lifecycle.setup_run(run).map_err(Error::Isolation);
        let _ = self.events.send(Event::Span {
            slot: None,
            name: "plugins: setup-run".into(),
            duration: start.elapsed(),
        });
        env
    }

    /// Drops this project's kept set-ups beyond `[setup] keep`, least
    /// recently used first (never the run's own). A drop that fails (another
    /// run clones from it right now) is said and tried again next time.
    fn evict(&self, key: &SetupKey) {
        let keep = self.config.file.setup.keep.max(1);
        let Ok(kept) = self.lifecycle.kept_setups() else {
            return;
        };
        let mut ours: Vec<(u64, String)> = Vec::new();
        for (_, list) in kept {
            for k in list {
                if k.key.starts_with(key.project()) && !ours.iter().any(|(_, o)| *o == k.key) {
                    ours.push((k.used, k.key));
                }
            }
        }
        ours.sort_by(|a, b| b.cmp(a));
        for (_, old) in ours
            .into_iter()
            .filter(|(_, k)| *k != key.key)
            .skip(keep - 1)
        {
            if let Err(e) = self.lifecycle.drop_setup(&old) {
                let _ = self.events.send(Event::Warning(format!(
                    "[setup] keep: could not drop the kept set-up {old}: {e}"
                )));
            }
        }
    }

    /// `[setup] commands`, once, with the env the plugins returned from
    /// setup-run: each in its own process group, bounded by `[setup]
    /// timeout`, stopped with its group on Ctrl-C.
    fn commands(&self, env: &Env) -> Result<()> {
        let config = self.config;
        let setup = &config.file.setup;
        // `[env]` reaches the setup commands too, read against setup-run's variables.
        let env = crate::exec::env::with_config_env(env.clone(), &config.file.env);
        let bounds = Bounds {
            timeout: setup.timeout.0,
            kill_grace: self.settings.kill_grace,
            output_cap: 1 << 20,
        };
        for command in &setup.commands {
            if self.interrupts.is_set() {
                return Ok(());
            }
            let start = Instant::now();
            let output = BoundedCommand::new("sh", &config.root)
                .args(["-c", command])
                .inheriting_env()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .run(bounds, Some(self.interrupts))
                .map_err(|e| {
                    Error::setup(format!("[setup] command {command:?}: cannot start sh: {e}"))
                })?;
            let how = match output.end {
                ProcessEnd::Exited(0) => None,
                ProcessEnd::Interrupted => return Ok(()),
                ProcessEnd::TimedOut => Some(format!(
                    "did not finish within [setup] timeout ({:?}); its process group was killed",
                    setup.timeout.0
                )),
                ProcessEnd::Exited(code) => Some(format!("failed (exit code {code})")),
                ProcessEnd::Signalled(sig) => Some(format!("was killed by signal {sig}")),
            };
            if let Some(how) = how {
                return Err(Error::setup(format!(
                    "[setup] command {command:?} in {} {how}:\n{}{}",
                    config.at(&["setup", "commands"]),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )));
            }
            let _ = self.events.send(Event::SetupCommand {
                command: command.clone(),
                duration: start.elapsed(),
            });
        }
        Ok(())
    }
}

/// `.partest/setup.lock`, held (flock) while a run of the project sets up:
/// the lock lasts as long as the file stays open, and goes with the process.
struct SetupLock {
    _held: File,
}

impl SetupLock {
    fn take(
        state_dir: &Path,
        timeout: Duration,
        events: &Sender<Event>,
        interrupts: &Interrupts,
    ) -> Result<SetupLock> {
        let path = state_dir.join("setup.lock");
        let cannot = |e: std::io::Error| {
            Error::setup(format!(
                "cannot open the set-up lock {}: {e}",
                path.display()
            ))
        };
        std::fs::create_dir_all(state_dir).map_err(cannot)?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(cannot)?;
        let start = Instant::now();
        let mut said = false;
        loop {
            // SAFETY: flock on a descriptor this File owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(SetupLock { _held: file });
            }
            if !said && start.elapsed() > Duration::from_secs(1) {
                said = true;
                let _ = events.send(Event::Warning(format!(
                    "waiting for another partest run of this project to finish its set-up ({})",
                    path.display()
                )));
            }
            if start.elapsed() > timeout || interrupts.is_set() {
                return Err(Error::setup(format!(
                    "another partest run held the set-up lock {} for {:?} ([setup] timeout); \
                     if no run is going, remove the file",
                    path.display(),
                    start.elapsed()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `partest report`'s lines on the set-up: the key now, the inputs it
/// matched, and what each plugin keeps.
pub fn report(config: &Config, lifecycle: &Lifecycle) -> String {
    let key = match SetupKey::of(config) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return "setup: not kept across runs ([setup] inputs and commands keep it)\n".into();
        }
        Err(e) => return format!("setup: {e}\n"),
    };
    let now = crate::report::unix_now();
    let mut out = format!(
        "setup: key {} from {} input file(s){}\n",
        key.key,
        key.inputs.len(),
        match key.inputs.first() {
            Some(first) => format!(
                " ({first}{})",
                if key.inputs.len() > 1 { ", ..." } else { "" }
            ),
            None => String::new(),
        }
    );
    match lifecycle.kept_setups() {
        Ok(kept) => {
            for (plugin, list) in kept {
                let ours: Vec<String> = list
                    .iter()
                    .filter(|k| k.key.starts_with(key.project()))
                    .map(|k| {
                        format!(
                            "{}{} (built {} ago, used {} ago)",
                            k.key,
                            if k.key == key.key { " = now" } else { "" },
                            crate::report::age(now.saturating_sub(k.built)),
                            crate::report::age(now.saturating_sub(k.used))
                        )
                    })
                    .collect();
                out.push_str(&format!(
                    "  {plugin} keeps {} of {}: {}\n",
                    ours.len(),
                    config.file.setup.keep,
                    if ours.is_empty() {
                        "none".into()
                    } else {
                        ours.join("; ")
                    }
                ));
            }
        }
        Err(e) => out.push_str(&format!("  kept set-ups: {e}\n")),
    }
    out
}
