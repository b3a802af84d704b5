//! The pytest adapter: one long-lived pytest worker per slot, as xdist has.
//! Each worker collects with its slot's env already set, reports its
//! collection (node ids and marker names), then runs the tests partest sends
//! it by index (see `worker.rs` and `partest_pytest.py`). `partest list`
//! starts one worker that only collects.

mod worker;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use worker::{Collection, PytestWorker, TestReply, Wait};

use super::{Adapter, Runs, TestCase};
use crate::config::{AdapterKind, Config};
use crate::error::{Error, Result};
use crate::exec::Spawner;

pub struct PytestAdapter {
    root: PathBuf,
    /// `.partest/pytest`, where partest's pytest plugin is written.
    plugin_dir: PathBuf,
    python: String,
    args: Vec<String>,
    serial_markers: Vec<String>,
    /// How long a worker may take to collect.
    pub collect_timeout: Duration,
    /// `PYTHONPATH` with the folder of our plugin first.
    python_path: String,
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
    pub fn new(config: &Config) -> Result<PytestAdapter> {
        let f = &config.file;
        let mut adapter = PytestAdapter {
            root: config.root.clone(),
            plugin_dir: config.state_dir().join("pytest"),
            python: f.pytest.python.clone(),
            args: f.pytest.args.clone(),
            serial_markers: f.serial.markers.clone(),
            collect_timeout: f.pytest.collect_timeout.0,
            python_path: String::new(),
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

    /// The worker's command line; the caller adds the slot's env and output.
    pub fn worker_command(&self, no_capture: bool) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "pytest"])
            .args(&self.args)
            .args(PYTEST_FLAGS)
            .current_dir(&self.root)
            .env("PYTHONPATH", &self.python_path);
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

    /// The tests of a worker's collection, or pytest's own error text.
    pub fn tests(&self, collection: &Collection) -> Result<Vec<TestCase>> {
        if !collection.errors.is_empty() {
            let mut text = String::new();
            for e in &collection.errors {
                text.push_str(&format!(
                    "ERROR collecting {}\n{}\n",
                    e.id,
                    e.text.trim_end()
                ));
            }
            return Err(Error::setup(format!(
                "pytest could not collect {} of the project's files:\n{}",
                collection.errors.len(),
                text.trim_end()
            )));
        }
        // One shared description per module: what filtersets and JUnit group by.
        let mut files: std::collections::HashMap<String, std::sync::Arc<super::TestMeta>> =
            std::collections::HashMap::new();
        Ok(collection
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut test = TestCase::new(id.clone());
                test.position = i as u32;
                test.markers = collection.markers.get(i).cloned().unwrap_or_default();
                test.serial_marker = test.markers.iter().any(|m| self.serial_markers.contains(m));
                let file = test.meta.file.clone();
                test.meta = files
                    .entry(file)
                    .or_insert_with(|| {
                        let mut meta = (*test.meta).clone();
                        meta.kind = "pytest".into();
                        std::sync::Arc::new(meta)
                    })
                    .clone();
                test
            })
            .collect())
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

/// Collections of two workers must address the same tests by the same
/// index. Ids may differ only inside their parameter brackets (a timestamp
/// in a parametrize id), which index addressing makes harmless.
pub fn check_same_collection(a: &Collection, b: &Collection, slot_b: &str) -> Result<()> {
    let base = |id: &str| id.split_once('[').map_or(id, |(head, _)| head).to_string();
    let differing: Vec<String> = a
        .ids
        .iter()
        .zip(&b.ids)
        .filter(|(x, y)| base(x) != base(y))
        .take(5)
        .map(|(x, y)| format!("  gw0: {x}\n  {slot_b}: {y}"))
        .collect();
    if a.ids.len() == b.ids.len() && differing.is_empty() {
        return Ok(());
    }
    Err(Error::setup(format!(
        "pytest workers collected different tests (gw0: {} tests, {slot_b}: {}); \
         the test list must not depend on the worker (random or time-based collection?){}{}",
        a.ids.len(),
        b.ids.len(),
        if differing.is_empty() {
            ""
        } else {
            "; first differences:\n"
        },
        differing.join("\n")
    )))
}

impl Adapter for PytestAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Pytest
    }

    /// For `partest list`: one worker with the user's own env, collect only.
    fn discover(&mut self) -> Result<Vec<TestCase>> {
        let log = tempfile::NamedTempFile::new_in(&self.plugin_dir)
            .map_err(|e| Error::setup(format!("cannot create a log file: {e}")))?;
        let mut cmd = self.worker_command(false);
        cmd.env("PARTEST_PYTEST_COLLECT_ONLY", "1");
        let mut worker = self
            .start_worker(cmd, Some(log.as_file()))
            .map_err(|e| Error::setup(e.to_string()))?;
        let spawner = Spawner::without_signals()
            .map_err(|e| Error::setup(format!("cannot make a pipe: {e}")))?;
        let collected = worker
            .collection(&spawner, Some(self.collect_timeout))
            .map_err(|e| Error::setup(format!("pytest collection: {e}")))?;
        let _ = worker.stop(&spawner, Some(Duration::from_secs(5)));
        match collected {
            Wait::Got(collection) => self.tests(&collection),
            Wait::Ended(end) => Err(self.early_exit(&format!("ended ({end:?})"), log.path())),
            Wait::TimedOut => Err(self.early_exit(
                &format!("did not finish collecting in {:?}", self.collect_timeout),
                log.path(),
            )),
            Wait::Interrupted => Err(Error::setup("interrupted during collection")),
        }
    }

    fn runs(&self) -> Runs<'_> {
        Runs::Worker(self)
    }
}
