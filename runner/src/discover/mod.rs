//! Discovery: each adapter lists a project's tests and says how to run a
//! unit of them (one test, or a batch for pytest) and how to read the result.

mod cargo;
mod command;
mod pytest;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cargo::CargoAdapter;
pub use command::CommandAdapter;
pub use pytest::PytestAdapter;

use crate::config::{AdapterKind, Config};
use crate::error::Result;

/// One test, as partest schedules and reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
    /// Unique within the run; what reports, filters and history use.
    pub name: String,
    /// What the adapter passes to its runner: a path, a node id, a libtest name.
    pub target: String,
    /// For the cargo adapter, which test binary holds it.
    pub binary: u32,
    /// The adapter found a serial marker on it.
    pub serial_marker: bool,
    /// `#[ignore]`d: listed, skipped unless `--run-ignored`.
    pub ignored: bool,
}

impl TestCase {
    pub fn new(name: impl Into<String>) -> TestCase {
        let name = name.into();
        TestCase {
            target: name.clone(),
            name,
            binary: 0,
            serial_marker: false,
            ignored: false,
        }
    }
}

/// The process that runs one unit of work.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// A file the process writes its per-test results to (pytest's JUnit XML).
    pub report_file: Option<PathBuf>,
    /// Variables the test's own runner would set (cargo's `CARGO_MANIFEST_DIR`).
    pub env: Vec<(String, String)>,
}

/// How a test process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessEnd {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    Interrupted,
}

impl ProcessEnd {
    pub fn success(self) -> bool {
        self == ProcessEnd::Exited(0)
    }
}

/// The result of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    Timeout,
    /// Stopped by Ctrl-C, or never started because of it or of --fail-fast.
    Cancelled,
}

impl Status {
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Timeout)
    }
}

/// One test's outcome inside a unit's result.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub status: Status,
    /// The test's own time when the runner reports it (JUnit), else the unit's.
    pub duration: Option<Duration>,
    /// What to show for this test, when it differs from the unit's output.
    pub output: Option<String>,
}

impl TestResult {
    pub fn from_end(end: ProcessEnd) -> TestResult {
        let status = match end {
            ProcessEnd::Exited(0) => Status::Pass,
            ProcessEnd::Exited(_) | ProcessEnd::Signalled(_) => Status::Fail,
            ProcessEnd::TimedOut => Status::Timeout,
            ProcessEnd::Interrupted => Status::Cancelled,
        };
        TestResult {
            status,
            duration: None,
            output: None,
        }
    }
}

/// What a run needs from an adapter.
pub trait Adapter: Send + Sync {
    fn kind(&self) -> AdapterKind;

    /// Lists the tests (building them first if the adapter must).
    fn discover(&mut self) -> Result<Vec<TestCase>>;

    /// The most tests one process may run; 1 means one process per test.
    fn max_batch(&self) -> usize {
        1
    }

    /// The process for `tests` (one, or a batch); `scratch` is a folder of
    /// the slot's where report files may go.
    fn invocation(&self, tests: &[&TestCase], scratch: &Path) -> Invocation;

    /// Each test's result, in the order of `tests`, from how the process ended.
    fn results(
        &self,
        tests: &[&TestCase],
        end: ProcessEnd,
        invocation: &Invocation,
    ) -> Vec<TestResult> {
        let _ = invocation;
        tests.iter().map(|_| TestResult::from_end(end)).collect()
    }
}

/// Options of `run` and `list` that change what adapters find.
#[derive(Clone, Debug, Default)]
pub struct DiscoverOptions {
    pub run_ignored: bool,
}

/// The adapter for this project.
pub fn adapter_for(config: &Config, options: &DiscoverOptions) -> Result<Box<dyn Adapter>> {
    Ok(match config.adapter()? {
        AdapterKind::Command => Box::new(CommandAdapter::new(config)?),
        AdapterKind::Cargo => Box::new(CargoAdapter::new(config, options)),
        AdapterKind::Pytest => Box::new(PytestAdapter::new(config)),
    })
}
