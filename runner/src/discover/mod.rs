//! Discovery: each adapter lists a project's tests and says how to run one.
//! cargo and command run a process per test; pytest runs a long-lived worker
//! per slot, which collects the tests itself (with the slot's env set).

mod cargo;
mod command;
pub mod pytest;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

pub use cargo::CargoAdapter;
pub use command::CommandAdapter;
pub use pytest::{PytestAdapter, PytestWorker, TestReply, Wait};

use crate::cli::{CargoArgs, RunIgnored};
use crate::config::{AdapterKind, Config};
use crate::error::Result;
use crate::exec::Interrupts;

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
    /// pytest: its file's index in the workers' file list, and its offset
    /// among that file's tests (what a worker is sent).
    pub file: u32,
    pub position: u32,
    /// Where it comes from, shared by the tests of one binary or file: what
    /// filtersets and reports group by.
    pub meta: Arc<TestMeta>,
    /// pytest's markers on it (`slow`, `django_db`, ...).
    pub markers: Vec<String>,
    /// Its place in an order a plugin requires: on every worker, no test
    /// runs after one of a higher rank (pytest-django, as Django: database
    /// tests 0, transactional ones 1, the rest 2; else all 0).
    pub rank: u8,
}

/// Where a test comes from: its binary (cargo) or file (pytest, command).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestMeta {
    /// cargo: the package's name; else empty.
    pub package: String,
    /// cargo: the target's name (`integration` for tests/integration.rs);
    /// else the file.
    pub binary: String,
    /// cargo: `package`, `package::target`, `package::bin/name`, as nextest
    /// writes it; else the file. One JUnit `<testsuite>` each.
    pub binary_id: String,
    /// cargo: lib, test, bin, bench, example, proc-macro, doctest; else
    /// pytest or command.
    pub kind: String,
    /// The test's source file, relative to the project root, when known.
    pub file: String,
}

impl TestCase {
    /// A test named by its file (`tests/a.sh`) or node id (`tests/a.py::t`).
    pub fn new(name: impl Into<String>) -> TestCase {
        let name = name.into();
        let file = name.split_once("::").map_or(name.as_str(), |(f, _)| f);
        let meta = TestMeta {
            binary: file.to_string(),
            binary_id: file.to_string(),
            file: file.to_string(),
            ..TestMeta::default()
        };
        TestCase {
            target: name.clone(),
            name,
            binary: 0,
            serial_marker: false,
            ignored: false,
            file: 0,
            position: 0,
            meta: Arc::new(meta),
            markers: Vec::new(),
            rank: 0,
        }
    }

    /// pytest: the class a test belongs to (`a.py::TestX` for
    /// `a.py::TestX::test_y[p]`); `None` for a module-level test.
    pub fn class_scope(&self) -> Option<&str> {
        let id = self.name.split('[').next().unwrap_or(&self.name);
        let (scope, _) = id.rsplit_once("::")?;
        scope.contains("::").then_some(scope)
    }

    /// Whether a queue may be cut between `self` and the test after it:
    /// not inside a class, whose set-up (`setUpClass`, `setUpTestData`,
    /// class-scoped fixtures) holds for its tests together.
    pub fn unit_ends_before(&self, next: &TestCase) -> bool {
        self.class_scope().is_none() || self.class_scope() != next.class_scope()
    }

    /// The name within its binary or file, as `test()` filters and libtest
    /// `--exact` see it (the whole name for a unit that is a whole binary).
    pub fn test_name(&self) -> &str {
        if self.target.is_empty() {
            &self.name
        } else {
            &self.target
        }
    }
}

/// The process that runs one unit of work.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
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
    /// The process running it died (a pytest worker's segfault, say).
    Crash,
    /// Stopped by Ctrl-C, or never started because of it or of --fail-fast.
    Cancelled,
}

impl Status {
    /// A process-per-test adapter's verdict: the exit status is the result.
    pub fn from_end(end: ProcessEnd) -> Status {
        match end {
            ProcessEnd::Exited(0) => Status::Pass,
            ProcessEnd::Exited(_) | ProcessEnd::Signalled(_) => Status::Fail,
            ProcessEnd::TimedOut => Status::Timeout,
            ProcessEnd::Interrupted => Status::Cancelled,
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Timeout | Status::Crash)
    }
}

/// What a run needs from an adapter.
pub trait Adapter: Send + Sync {
    fn kind(&self) -> AdapterKind;

    /// Lists the tests (building them first if the adapter must).
    fn discover(&mut self) -> Result<Vec<TestCase>>;

    /// How its tests run: a process each, or in a long-lived worker per slot.
    fn runs(&self) -> Runs<'_>;

    /// A word for the summary line about what the adapter did not run
    /// (cargo: doctests without `--doctests`).
    fn note(&self) -> Option<String> {
        None
    }

    /// pytest: each slot's long-lived worker collects and runs the tests, so
    /// `partest run` does not call [`Adapter::discover`] up front.
    fn pytest(&self) -> Option<&PytestAdapter> {
        match self.runs() {
            Runs::Worker(pytest) => Some(pytest),
            Runs::Processes(_) => None,
        }
    }
}

/// How an adapter's tests are run.
pub enum Runs<'a> {
    /// One process per test (cargo, command).
    Processes(&'a dyn ProcessAdapter),
    /// A long-lived worker per slot that collects and runs them (pytest).
    Worker(&'a PytestAdapter),
}

/// An adapter that runs each test in a process of its own.
pub trait ProcessAdapter: Send + Sync {
    /// The process that runs one test.
    fn invocation(&self, test: &TestCase) -> Invocation;
}

/// Options of `run` and `list` that change what adapters find.
#[derive(Clone, Default)]
pub struct DiscoverOptions {
    pub run_ignored: RunIgnored,
    /// cargo's flags from the command line.
    pub cargo: CargoArgs,
    /// Ctrl-C during discovery stops what discovery runs (cargo's build).
    pub interrupts: Option<Arc<Interrupts>>,
}

/// The adapter for this project.
pub fn adapter_for(config: &Config, options: &DiscoverOptions) -> Result<Box<dyn Adapter>> {
    Ok(match config.adapter()? {
        AdapterKind::Command => Box::new(CommandAdapter::new(config)?),
        AdapterKind::Cargo => Box::new(CargoAdapter::new(config, options)?),
        AdapterKind::Pytest => Box::new(PytestAdapter::new(config)?),
    })
}
