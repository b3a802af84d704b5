//! The shared nouns of a run: tests and where they come from, how a test
//! process ends and what a test's result is, the process that runs it, the
//! slots and their env, and the options of the command line that the layers
//! below it read. Every other module builds on these; this one imports
//! nothing of the crate.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

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

    /// Where it is in a long-lived worker's collection.
    pub fn address(&self) -> TestAddress {
        TestAddress {
            file: self.file,
            offset: self.position,
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

/// Where a test is in a long-lived worker's collection: its file's index in
/// the file list every worker shares, and its offset among that file's tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestAddress {
    pub file: u32,
    pub offset: u32,
}

/// One attempt of a test, as the coordinator sends it to a slot.
pub struct Assignment {
    pub test: u32,
    pub attempt: u32,
    pub name: String,
    pub work: Work,
}

/// What runs an assignment.
pub enum Work {
    /// A process of its own (cargo, command).
    Process(Invocation),
    /// A test of the slot worker's collection, and the one it will be sent
    /// next (pytest's `nextitem`: the fixtures they share live on).
    Item {
        test: TestAddress,
        next: Option<TestAddress>,
    },
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

    /// How it ended, in words: `exit code 1`, `killed by signal 9`.
    pub fn describe(self) -> String {
        match self {
            ProcessEnd::Exited(code) => format!("exit code {code}"),
            ProcessEnd::Signalled(sig) => format!("killed by signal {sig}"),
            ProcessEnd::TimedOut => "timed out".into(),
            ProcessEnd::Interrupted => "interrupted".into(),
        }
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

/// How one attempt of a test ended: what a slot's executor answers and
/// the reporter shows.
#[derive(Debug)]
pub struct TestFinished {
    pub test: u32,
    pub slot: usize,
    pub attempt: u32,
    pub status: Status,
    pub duration: Duration,
    /// Kept for failures (and for JUnit); `None` for most passes. A process
    /// test's stdout; a pytest test's report and captured output.
    pub output: Option<String>,
    /// A process test's stderr, kept apart from its stdout.
    pub stderr: Option<String>,
    /// It left processes running in its group after it ended (LEAK).
    pub leaked: bool,
    /// This failure will be retried (the coordinator decides).
    pub will_retry: bool,
    /// The test runner asked to stop the run (pytest's `-x`).
    pub stop: bool,
}

/// Environment variables a provider hands to processes, in order.
pub type Env = Vec<(String, String)>;

/// One worker slot: `gw0` … `gwN-1`, owned by one pool thread for the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub index: usize,
    pub name: String,
}

impl Slot {
    pub fn new(index: usize) -> Slot {
        Slot {
            index,
            name: format!("gw{index}"),
        }
    }
}

/// The options of a run that every slot's executor reads.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub workers: usize,
    pub timeout: Option<Duration>,
    /// false: `--no-capture`, output streams to the terminal.
    pub capture: bool,
    pub run_id: String,
    /// Long-lived workers that may be replaced after a crash or timeout.
    pub max_worker_restart: usize,
    /// pytest-django uses each slot's database as it is (a migrated clone
    /// from the postgres plugin's template) instead of making its own.
    pub django_slot_db: bool,
    /// `PARTEST_SHARD` for every test: `K/N`, or `queue`.
    pub shard: Option<String>,
    /// `[run] leak = "fail"`: a test that leaves processes behind fails.
    pub leak_fails: bool,
    /// `[env]`, laid over each slot's variables.
    pub env: BTreeMap<String, String>,
}

/// `--run-ignored`: which #[ignore]d tests run.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RunIgnored {
    /// Ignored tests are listed and skipped.
    #[default]
    Default,
    /// Only the ignored tests run.
    Only,
    /// Ignored tests run with the others.
    All,
}

/// cargo's own flags, passed to `cargo test --no-run` (the cargo adapter).
/// Lists given here replace the same `[cargo]` keys; switches add to them.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Cargo options")]
pub struct CargoArgs {
    /// Package to test (repeatable).
    #[arg(short = 'p', long = "package", value_name = "SPEC")]
    pub package: Vec<String>,
    /// Test all packages in the workspace.
    #[arg(long)]
    pub workspace: bool,
    /// Exclude packages from --workspace.
    #[arg(long, value_name = "SPEC")]
    pub exclude: Vec<String>,
    /// Features to activate (space- or comma-separated, repeatable).
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Activate all available features.
    #[arg(long)]
    pub all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long)]
    pub no_default_features: bool,
    /// Build in release mode (cargo's --release).
    #[arg(short = 'r', long)]
    pub release: bool,
    /// Build with this cargo profile (cargo's --profile).
    #[arg(long, value_name = "NAME")]
    pub cargo_profile: Option<String>,
    /// Build for this target triple.
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Test only the library's unit tests.
    #[arg(long)]
    pub lib: bool,
    /// Test all binaries.
    #[arg(long)]
    pub bins: bool,
    /// Test this binary (repeatable).
    #[arg(long, value_name = "NAME")]
    pub bin: Vec<String>,
    /// Test all integration tests.
    #[arg(long)]
    pub tests: bool,
    /// Test this integration test target (repeatable).
    #[arg(long, value_name = "NAME")]
    pub test: Vec<String>,
    /// Test all targets (cargo's --all-targets; doctests are separate).
    #[arg(long)]
    pub all_targets: bool,
    /// Path to Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Require Cargo.lock to be up to date.
    #[arg(long)]
    pub locked: bool,
    /// Run without accessing the network.
    #[arg(long)]
    pub offline: bool,
    /// Both --locked and --offline.
    #[arg(long)]
    pub frozen: bool,
    /// Also run doctests: one unit per library (`cargo test --doc -p NAME`).
    #[arg(long)]
    pub doctests: bool,
}

/// `--message-format`: how the run's events are shown.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessageFormat {
    #[default]
    Human,
    Json,
}

/// What `--shard` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardMode {
    /// Shard `index` (1-based) of `total`.
    Static { index: u32, total: u32 },
    /// Read the index and total from the CI engine's variables.
    Auto,
    /// Pull units from a shared Redis queue.
    Queue,
}

impl FromStr for ShardMode {
    type Err = String;

    fn from_str(s: &str) -> Result<ShardMode, String> {
        match s.trim() {
            "auto" => Ok(ShardMode::Auto),
            "queue" => Ok(ShardMode::Queue),
            other => {
                let (index, total) = parse_fraction(other)?;
                Ok(ShardMode::Static { index, total })
            }
        }
    }
}

/// `K/N` with 1 ≤ K ≤ N.
/// Folders of a project that hold no tests and no set-up inputs, and can be
/// huge: walks over the project skip them.
pub const UNSCANNED_DIRS: &[&str] = &[
    ".git",
    ".partest",
    "target",
    "node_modules",
    "__pycache__",
    ".venv",
];

pub fn parse_fraction(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?}: expected K/N (1 ≤ K ≤ N, e.g. 2/3), auto or queue");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let k: u32 = k.trim().parse().map_err(|_| bad())?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// What examining a failed test found (the diagnose layer examines the tests that failed only in parallel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    FailsAlone,
    OrderDependent,
    Concurrent,
    Flaky,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::FailsAlone => "fails-alone",
            Verdict::OrderDependent => "order-dependent",
            Verdict::Concurrent => "concurrent",
            Verdict::Flaky => "flaky",
        }
    }

    /// One line of advice.
    pub fn advice(self) -> &'static str {
        match self {
            Verdict::FailsAlone => {
                "it fails on its own too, on a fresh slot: not a failure of running in parallel \
                 (if it passes outside partest, a variable a plugin sets, such as REDIS_URL or \
                 DATABASE_URL, changes what it reads)"
            }
            Verdict::OrderDependent => {
                "a test its worker ran before it leaves state behind: make the culprit clean up \
                 (or give the victim a fixture of its own), or mark the victim serial"
            }
            Verdict::Concurrent => {
                "it fails while the culprit runs on another worker: both use something partest \
                 does not isolate (a path, a port, a Redis DB, a database): isolate it \
                 ([isolation] private-paths, a plugin) or put both in [serial]"
            }
            Verdict::Flaky => {
                "it passed alone, after its worker's earlier tests and beside the tests that ran \
                 with it: it fails by chance (timing, randomness, the network)"
            }
        }
    }
}

/// One failed test's diagnosis.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    pub test: u32,
    pub verdict: Verdict,
    /// The tests that make it fail (order-dependent, concurrent).
    pub culprits: Vec<u32>,
    /// Trials run for it.
    pub reruns: u32,
    pub seconds: f64,
    /// The budget ran out before the culprits were narrowed down: they are
    /// the smallest set found so far.
    pub unfinished: bool,
}

/// One test's run in the parallel phase, as the run's timeline recorded it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ran {
    pub test: u32,
    pub slot: usize,
    /// Which worker of the slot ran it (a replaced worker starts afresh).
    pub worker: u32,
    /// Since the run started.
    pub start: Duration,
    pub end: Duration,
}

/// What to run in one trial: per slot, tests in order on a fresh worker,
/// all lanes started together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trial {
    pub lanes: Vec<Lane>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lane {
    pub slot: usize,
    pub tests: Vec<u32>,
}

/// The project rooted at `root`, as 8 hex digits: the first part of its
/// set-ups' keys, so that runs, `report`, `clean` and the plugin host tell
/// this project's kept set-ups from others'.
pub fn project_id(root: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(root.as_os_str().as_encoded_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
