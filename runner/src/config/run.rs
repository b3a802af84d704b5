//! `[run]`: how a plain `partest run` behaves.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::{Seconds, WorkerCount};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    Pytest,
    Cargo,
    Command,
}

impl AdapterKind {
    pub fn name(self) -> &'static str {
        match self {
            AdapterKind::Pytest => "pytest",
            AdapterKind::Cargo => "cargo",
            AdapterKind::Command => "command",
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunTable {
    /// Auto-detected from the project's files when absent.
    pub adapter: Option<AdapterKind>,
    pub workers: Option<WorkerCount>,
    pub retries: Option<u32>,
    /// Per-test wall-clock limit; the whole process group is killed past it.
    pub timeout: Option<Seconds>,
    pub fail_fast: Option<bool>,
    pub junit: Option<PathBuf>,
    /// Plugins enabled for every run, in addition to the `[plugins.*]` tables.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Time a test group gets between SIGTERM and SIGKILL.
    pub kill_grace: Option<Seconds>,
    /// Start the tests that failed in the last run first (their whole
    /// module or class): the answer to "is it fixed?" comes first.
    pub failed_first: Option<bool>,
    /// The order tests are dealt in.
    pub order: Option<Order>,
    /// What a run that selects no test is.
    pub no_tests: Option<NoTests>,
    /// How many crashed or timed-out pytest workers are replaced in a run
    /// (default: 4 per worker, as pytest-xdist).
    pub max_worker_restart: Option<usize>,
    /// A portable timings file (JSON, test id → seconds) that balances
    /// `--shard` and is written back merged after each run.
    pub timings: Option<PathBuf>,
    /// A test that leaves processes running: a pass marked LEAK, or a failure.
    pub leak: Option<Leak>,
    /// Which exit codes `partest run` uses: its own, or pytest's for CI
    /// scripts written for pytest.
    #[serde(default)]
    pub exit_codes: ExitCodes,
}

/// `[run] exit-codes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitCodes {
    /// 0, 100 tests failed, 2 usage, 3 set-up, 4 no tests, 130 interrupted.
    #[default]
    Partest,
    /// pytest's: 0, 1 tests failed, 2 interrupted, 3 internal error, 4
    /// usage, 5 no tests collected.
    Pytest,
}

impl ExitCodes {
    /// partest's `code` in this scheme.
    pub fn map(self, code: i32) -> i32 {
        use crate::error::exit;
        match (self, code) {
            (ExitCodes::Partest, code) => code,
            (ExitCodes::Pytest, exit::OK) => 0,
            (ExitCodes::Pytest, exit::TEST_FAILED) => 1,
            (ExitCodes::Pytest, exit::INTERRUPTED) => 2,
            (ExitCodes::Pytest, exit::USAGE) => 4,
            (ExitCodes::Pytest, exit::NO_TESTS) => 5,
            (ExitCodes::Pytest, _) => 3,
        }
    }
}

/// `[run] leak`: what a test that leaves processes behind is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Leak {
    /// Its own result, marked LEAK (nextest's default).
    #[default]
    Pass,
    /// A failure (LEAK-FAIL).
    Fail,
}

/// `[run] order`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Units (a pytest module, else a test) longest first from history,
    /// never-seen ones first; a unit's tests always in collection order.
    #[default]
    History,
    /// As `history` in the parallel phase; the serial phase in declared
    /// order.
    File,
}

/// `--no-tests` / `[run] no-tests`: a run that selects nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NoTests {
    Pass,
    Warn,
    /// Exit 4, as nextest does.
    #[default]
    Fail,
}
