//! The pytest adapter: one long-lived pytest worker per slot, as xdist has.
//! Each worker collects with its slot's env already set, reports its
//! collection (node ids and marker names), then runs the tests partest sends
//! it by index (see `worker.rs` and `partest_pytest.py`). `partest list`
//! starts one worker that only collects.

mod coverage;
mod share;
mod slot;
mod worker;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use worker::{PytestWorker, Reply, Wait};

use super::collect::{CollectError, CoverageAsked, FileTests};
use super::{Adapter, Runs};
use crate::config::{AdapterKind, CollectMode, Config};
use crate::error::{Error, Result};
use crate::exec::Spawner;
use crate::model::{TestCase, TestMeta};

pub struct PytestAdapter {
    root: PathBuf,
    /// Where the workers run: where partest was started, so that paths,
    /// and what pytest collects without any, are what `pytest` there takes.
    cwd: PathBuf,
    /// `.partest/pytest`, where partest's pytest plugin is written.
    plugin_dir: PathBuf,
    python: String,
    args: Vec<String>,
    serial_markers: Vec<String>,
    /// How long a worker may take to collect.
    pub collect_timeout: Duration,
    collect: CollectMode,
    /// `PYTHONPATH` with the folder of our plugin first.
    python_path: String,
    /// What pytest-cov measures for, as the first worker said.
    coverage: std::sync::Mutex<Option<CoverageAsked>>,
}

/// The module name of [`PLUGIN`] on `PYTHONPATH`.
const PLUGIN_MODULE: &str = "partest_pytest";
/// partest's pytest plugin: the worker protocol and the xdist stand-in.
const PLUGIN: &str = include_str!("partest_pytest.py");

/// Arguments of every pytest partest starts: xdist blocked (partest is the
/// scheduler), our plugin loaded, and no cache writes from parallel processes.
const PYTEST_FLAGS: [&str; 6] = [
    "-p",
    "no:xdist",
    "-p",
    PLUGIN_MODULE,
    "-p",
    "no:cacheprovider",
];

impl PytestAdapter {
    /// The adapter, with partest's pytest plugin written where the
    /// workers' `PYTHONPATH` finds it.
    pub fn new(config: &Config, cli_args: &[String]) -> Result<PytestAdapter> {
        let f = &config.file;
        let mut adapter = PytestAdapter {
            root: config.root.clone(),
            cwd: config.invoked_in.clone(),
            plugin_dir: config.state_dir().join("pytest"),
            python: f.pytest.python.clone(),
            args: f.pytest.args.iter().chain(cli_args).cloned().collect(),
            serial_markers: f.serial.markers.clone(),
            collect_timeout: f.pytest.collect_timeout.0,
            collect: f.pytest.collect,
            python_path: String::new(),
            coverage: std::sync::Mutex::new(None),
        };
        adapter.install_plugin()?;
        Ok(adapter)
    }

    fn install_plugin(&mut self) -> Result<()> {
        let dir = &self.plugin_dir;
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join(format!("{PLUGIN_MODULE}.py")), PLUGIN))
            .map_err(|e| {
                Error::setup(format!(
                    "cannot write partest's pytest plugin into {}: {e}",
                    dir.display()
                ))
            })?;
        let mut path = dir.to_string_lossy().into_owned();
        if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
            path.push(':');
            path.push_str(&existing.to_string_lossy());
        }
        self.python_path = path;
        Ok(())
    }

    /// A worker said what pytest-cov measures for: the run's end combines it.
    fn coverage_asked(&self, asked: &Option<CoverageAsked>) {
        if let Some(asked) = asked {
            let mut held = self.coverage.lock().unwrap_or_else(|p| p.into_inner());
            held.get_or_insert_with(|| asked.clone());
        }
    }

    /// Where the workers run: node ids are relative to it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The worker's command line; the caller adds the slot's env and output.
    pub fn worker_command(&self, no_capture: bool) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "pytest"])
            .args(&self.args)
            .args(PYTEST_FLAGS)
            .current_dir(&self.cwd)
            .env("PYTHONPATH", &self.python_path);
        if self.collect == CollectMode::Share {
            cmd.env("PARTEST_PYTEST_COLLECT", "share");
        }
        if no_capture {
            cmd.arg("-s");
        }
        cmd
    }

    /// Starts a worker; `log` takes its stdout and stderr (None: inherited).
    pub fn start_worker(
        &self,
        mut cmd: Command,
        log: Option<&std::fs::File>,
    ) -> std::io::Result<PytestWorker> {
        if let Some(log) = log {
            cmd.stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log.try_clone()?));
        }
        PytestWorker::start(cmd).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot run `{} -m pytest` in {}: {e}; set [pytest] python to an interpreter that has pytest",
                    self.python,
                    self.root.display()
                ),
            )
        })
    }

    /// pytest's own text for collection errors, as the error that ends the run.
    pub fn collect_errors(&self, errors: &[CollectError]) -> Error {
        let mut text = String::new();
        for e in errors {
            text.push_str(&format!(
                "ERROR collecting {}\n{}\n",
                e.id,
                e.text.trim_end()
            ));
        }
        Error::setup(format!(
            "pytest could not collect {} of the project's files:\n{}",
            errors.len(),
            text.trim_end()
        ))
    }

    /// The tests of every file, in file order, each addressed by its file
    /// and its offset in it.
    pub fn tests(&self, files: &[FileTests]) -> Vec<TestCase> {
        // One shared description per module: what filtersets and JUnit group by.
        let mut metas: std::collections::HashMap<String, std::sync::Arc<TestMeta>> =
            std::collections::HashMap::new();
        files
            .iter()
            .flat_map(|f| f.ids.iter().enumerate().map(move |(i, id)| (f, i, id)))
            .map(|(f, i, id)| {
                let mut test = TestCase::new(id.clone());
                test.file = f.file;
                test.position = i as u32;
                test.markers = f.markers.get(i).cloned().unwrap_or_default();
                test.rank = f
                    .ranks
                    .as_ref()
                    .and_then(|r| r.get(i))
                    .copied()
                    .unwrap_or(0);
                test.serial_marker = test.markers.iter().any(|m| self.serial_markers.contains(m));
                let file = test.meta.file.clone();
                test.meta = metas
                    .entry(file)
                    .or_insert_with(|| {
                        let mut meta = (*test.meta).clone();
                        meta.kind = "pytest".into();
                        std::sync::Arc::new(meta)
                    })
                    .clone();
                test
            })
            .collect()
    }

    /// Why a worker ended before it collected: its own output, which holds
    /// pytest's message (a usage error, a conftest that fails to import).
    pub fn early_exit(&self, how: &str, log: &Path) -> Error {
        let output = std::fs::read(log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let tail: String = {
            let lines: Vec<&str> = output.trim_end().lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        Error::setup(format!(
            "pytest ({} -m pytest in {}) {how} before it collected:\n{tail}",
            self.python,
            self.root.display()
        ))
    }
}

impl Adapter for PytestAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Pytest
    }

    fn finish(&self, since: std::time::SystemTime) -> Option<super::Finished> {
        let asked = self
            .coverage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        Some(coverage::finish(&self.python, &self.cwd, &asked, since))
    }

    /// For `partest list`: one worker with the user's own env collects
    /// every file, then stops.
    fn discover(&mut self) -> Result<Vec<TestCase>> {
        let log = tempfile::NamedTempFile::new_in(&self.plugin_dir)
            .map_err(|e| Error::setup(format!("cannot create a log file: {e}")))?;
        let mut worker = self
            .start_worker(self.worker_command(false), Some(log.as_file()))
            .map_err(|e| Error::setup(e.to_string()))?;
        let spawner = Spawner::without_signals()
            .map_err(|e| Error::setup(format!("cannot make a pipe: {e}")))?;
        let failed = |how: Wait<()>, log: &Path| match how {
            Wait::Ended(end) => self.early_exit(&format!("ended ({end:?})"), log),
            Wait::TimedOut => self.early_exit(
                &format!("did not finish collecting in {:?}", self.collect_timeout),
                log,
            ),
            _ => Error::setup("interrupted during collection"),
        };
        let io = |e: std::io::Error| Error::setup(format!("pytest collection: {e}"));
        let files = match worker
            .files(&spawner, Some(self.collect_timeout))
            .map_err(io)?
        {
            Wait::Got(files) => files,
            Wait::Ended(e) => return Err(failed(Wait::Ended(e), log.path())),
            Wait::TimedOut => return Err(failed(Wait::TimedOut, log.path())),
            Wait::Interrupted => return Err(failed(Wait::Interrupted, log.path())),
        };
        if !files.errors.is_empty() {
            return Err(self.collect_errors(&files.errors));
        }
        let all: Vec<u32> = (0..files.files.len() as u32).collect();
        let collected = if worker.collect(&all) {
            worker
                .reply(&spawner, Some(self.collect_timeout))
                .map_err(io)?
        } else {
            Wait::Ended(worker.kill(&spawner).map_err(io)?)
        };
        let _ = worker.stop(&spawner, Some(Duration::from_secs(5)));
        match collected {
            Wait::Got(Reply::Collected(c)) if c.errors.is_empty() => Ok(self.tests(&c.files)),
            Wait::Got(Reply::Collected(c)) => Err(self.collect_errors(&c.errors)),
            Wait::Got(_) => Err(Error::setup(
                "the pytest worker answered `collect` with something else",
            )),
            Wait::Ended(e) => Err(failed(Wait::Ended(e), log.path())),
            Wait::TimedOut => Err(failed(Wait::TimedOut, log.path())),
            Wait::Interrupted => Err(failed(Wait::Interrupted, log.path())),
        }
    }

    fn runs(&self) -> Runs<'_> {
        Runs::Workers(self)
    }
}
