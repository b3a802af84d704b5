//! The command line: clap's model of it, turned into calls on the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{NoTests, Overrides, Seconds, WorkerCount};
use crate::model::{CargoArgs, MessageFormat, RunIgnored, ShardMode};

#[derive(Parser, Debug)]
#[command(
    name = "partest",
    version,
    about = "Runs a test suite in parallel, each worker with its own copy of every shared resource"
)]
pub struct Cli {
    /// Run as if partest was started in DIR.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Read this config file instead of looking for partest.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the tests.
    Run(RunArgs),
    /// Show what would run, and in which phase.
    List(ListArgs),
    /// Show every factor behind the worker count, and which one bound it.
    Report(ReportArgs),
    /// Built-in and configured isolation plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Remove what crashed or killed runs left behind (databases, Redis
    /// claims, containers, temp dirs); never what a live run uses.
    Clean(CleanArgs),
    /// Join the shards' JUnit files (and timings files) into one.
    Merge(MergeArgs),
    /// Say why the last run's tests failed in parallel: each is run again
    /// alone, after its worker's earlier tests and beside those that ran
    /// with it, on slots of its own (what `run` does after its failures).
    Diagnose(DiagnoseArgs),
    /// Internal: a run's guard (`runs::guard`), started by `partest run`.
    #[command(name = "__guard", hide = true)]
    Guard { run_id: String },
}

#[derive(Args, Debug)]
pub struct DiagnoseArgs {
    /// The failed tests to examine (default: every test that failed in the
    /// last run's parallel phase, up to `[diagnose] max-tests`).
    #[arg(value_name = "ID")]
    pub tests: Vec<String>,
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CleanArgs {
    /// Only list what would be removed.
    #[arg(long, conflicts_with_all = ["yes", "force"])]
    pub dry_run: bool,
    /// Remove without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Remove without asking (for CI scripts; the same as --yes).
    #[arg(long)]
    pub force: bool,
    /// Also ask these plugins (beside every configured one), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub plugins: Vec<String>,
    /// Also remove the set-ups kept across runs (`[setup] inputs`), which
    /// are otherwise only listed.
    #[arg(long)]
    pub templates: bool,
}

#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// Name, version, origin (built in or a path) and slot limit of each plugin.
    List,
    /// A plugin's imports (the capabilities it asks for), which the config
    /// grants, and its settings.
    Inspect {
        /// The plugin's name, as in `[plugins.NAME]` or `--plugins`.
        name: String,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Worker count: a number or `auto`.
    #[arg(short = 'n', long = "workers", value_name = "N|auto")]
    pub workers: Option<WorkerCount>,
    /// A profile from partest.toml, or a built-in one (unit, integration, e2e).
    #[arg(long)]
    pub profile: Option<String>,
    /// Isolation plugins to enable, comma-separated (e.g. redis,sqlite).
    #[arg(long, value_delimiter = ',')]
    pub plugins: Vec<String>,
    // --- Selection and cargo's build (issue 11): kept together. ---
    /// Run #[ignore]d tests (cargo): all of them (the bare flag, or
    /// `--run-ignored=all`) or only them (`--run-ignored=only`).
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "all",
        value_name = "WHICH"
    )]
    pub run_ignored: Option<RunIgnored>,
    /// A filterset, as nextest's: test(), package(), binary(), binary_id(),
    /// kind(), file(), marker(), all(), none(), with and/or/not/-; matchers
    /// =exact, ~part, /regex/, #glob. Tests matching any -E run.
    #[arg(
        short = 'E',
        long = "filterset",
        alias = "filter-expr",
        value_name = "EXPR"
    )]
    pub filterset: Vec<String>,
    /// libtest's --skip: leave out tests whose names contain PATTERN (equal it with --exact).
    #[arg(long, value_name = "PATTERN")]
    pub skip: Vec<String>,
    /// libtest's --exact: FILTERs and --skip patterns match whole test names.
    #[arg(long)]
    pub exact: bool,
    #[command(flatten)]
    pub cargo: CargoArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Only tests whose names contain one of these strings. With the
    /// pytest adapter, a path or node id (`tests/test_a.py::test_x`) goes
    /// to pytest, which selects on every worker.
    #[arg(value_name = "FILTER")]
    pub filters: Vec<String>,
    /// pytest adapter: pytest's `-k EXPR` (a keyword expression), decided
    /// by pytest on every worker.
    #[arg(short = 'k', value_name = "EXPR")]
    pub keyword: Option<String>,
    /// pytest adapter: pytest's `-m EXPR` (a marker expression).
    #[arg(short = 'm', value_name = "EXPR")]
    pub markexpr: Option<String>,
    /// After `--`: pytest adapter, pytest's own arguments for every worker
    /// (`-- -k slow --ds=settings.test tests/`), as `pytest -n N ARGS`
    /// takes them; cargo and command, libtest's `--skip PATTERN`,
    /// `--exact`, `--ignored`, `--include-ignored` and more filters.
    #[arg(last = true, value_name = "ARGS")]
    pub passthrough: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the run as Chrome trace-event JSON here (open it in Perfetto
    /// or chrome://tracing): a track per slot, a span per test attempt.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Write the run as one self-contained HTML page here: the summary, a
    /// timeline (a row per slot, a box per attempt), failures and their
    /// output, the worker count, plugins, the slowest tests.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Run a failed test up to N more times; one that then passes is FLAKY.
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Kill a test's process group after this long (seconds, or "500ms", "2m").
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<Seconds>,
    /// Stop starting tests after the first failure (pytest's `-x` too).
    #[arg(
        short = 'x',
        long,
        visible_alias = "exitfirst",
        overrides_with = "no_fail_fast"
    )]
    pub fail_fast: bool,
    /// Stop starting tests after N failures (pytest's `--maxfail`).
    #[arg(long, value_name = "N")]
    pub maxfail: Option<u32>,
    /// Run every test whatever fails (the default).
    #[arg(long, overrides_with = "fail_fast")]
    pub no_fail_fast: bool,
    /// Start the tests that failed in the last run first (the default;
    /// `[run] failed-first = false` turns it off, this back on).
    #[arg(long = "ff", visible_alias = "failed-first")]
    pub failed_first: bool,
    /// Run only the tests that failed in the last run (everything when none
    /// did, as pytest's --lf).
    #[arg(long = "lf", visible_alias = "last-failed")]
    pub last_failed: bool,
    /// Build the set-up again even when one kept under its key is there
    /// (`[setup] inputs`); the new one replaces it.
    #[arg(long)]
    pub fresh_setup: bool,
    /// Stream test output instead of capturing it (pytest's `-s` too).
    #[arg(short = 's', long)]
    pub no_capture: bool,
    /// pytest adapter: more (`-v`, `-vv`) or less (`-q`) detail in what
    /// pytest writes for a failure, as pytest's own flags.
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[arg(short = 'q', action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// pytest adapter: pytest's traceback style for failures (auto, long,
    /// short, line, native, no).
    #[arg(long = "tb", value_name = "STYLE")]
    pub tb: Option<String>,
    /// Show the N slowest tests in the summary (pytest's `--durations`; 0: all).
    #[arg(long, value_name = "N")]
    pub durations: Option<usize>,
    /// Report failures as they are, without examining why a test failed
    /// in parallel (off too under --fail-fast, and with `[diagnose] enabled = false`).
    #[arg(long, env = "PARTEST_NO_DIAGNOSE", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_diagnose: bool,
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
    /// A run that selects no test: fail (exit 4, the default), warn or pass.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub no_tests: Option<NoTests>,
    /// pytest: replace at most N crashed or timed-out workers (default 4 per worker).
    #[arg(long, value_name = "N")]
    pub max_worker_restart: Option<usize>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Write the last run's HTML page here instead (what `run --html` writes).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

impl SelectArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            workers: self.workers,
            profile: self.profile.clone(),
            plugins: self
                .plugins
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect(),
            shard: self.shard.shard.clone(),
            timings: self.shard.timings.clone(),
            queue: (
                self.shard.queue.clone(),
                self.shard.queue_run.clone(),
                self.shard.queue_lease.map(|s| s.0),
            ),
            ..Overrides::default()
        }
    }
}

impl RunArgs {
    pub fn overrides(&self) -> Overrides {
        let fail_fast = if self.fail_fast {
            Some(true)
        } else if self.no_fail_fast {
            Some(false)
        } else {
            None
        };
        Overrides {
            retries: self.retries,
            timeout: self.timeout.map(|s| s.0),
            fail_fast,
            max_fail: self.maxfail.map(|n| n.max(1)),
            failed_first: self.failed_first.then_some(true),
            last_failed: self.last_failed,
            junit: self.junit.clone(),
            no_tests: self.no_tests,
            max_worker_restart: self.max_worker_restart,
            ..self.select.overrides()
        }
    }
}

// Beyond one machine (shards, timings, the shared queue, merge): kept
// together here.

/// How this machine's share of the selection is chosen.
#[derive(Args, Debug, Clone, Default)]
pub struct ShardArgs {
    /// One machine's share: K/N (1-based, balanced by recorded durations),
    /// `auto` (K and N from the CI engine's variables), or `queue` (pull
    /// from the shared queue given by --queue).
    #[arg(long, value_name = "K/N|auto|queue")]
    pub shard: Option<ShardMode>,
    /// A portable timings file (JSON, test id → seconds): read to balance
    /// the shards, and written back merged with this run's durations.
    #[arg(long, value_name = "FILE")]
    pub timings: Option<PathBuf>,
    /// --shard queue: the Redis holding the queue, redis://host:port/db.
    #[arg(long, value_name = "URL", env = "PARTEST_QUEUE")]
    pub queue: Option<String>,
    /// --shard queue: the id every machine of one CI run shares (by
    /// default from the CI engine's pipeline or build id).
    #[arg(long, value_name = "ID", env = "PARTEST_QUEUE_RUN")]
    pub queue_run: Option<String>,
    /// --shard queue: how long a machine's claim lives without its
    /// heartbeat before other machines take its units back (default 30s).
    #[arg(long, value_name = "SECS")]
    pub queue_lease: Option<Seconds>,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Write the merged JUnit XML here.
    #[arg(long, value_name = "OUT")]
    pub junit: PathBuf,
    /// Merge the timings files among FILE into this one (its current
    /// contents are the base every shard started from); default: the
    /// `[run] timings` of partest.toml.
    #[arg(long, value_name = "FILE")]
    pub timings: Option<PathBuf>,
    /// The shards' JUnit files, and their timings files (*.json).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}
