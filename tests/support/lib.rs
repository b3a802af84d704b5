//! Helpers for the end-to-end tests: find (or build) the real binary, make
//! fixture projects in temp dirs, run partest and read what it left behind.

pub mod report;
pub mod servers;

pub use report::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root (this crate lives in `tests/`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// The partest binary of this workspace, built once per test process (a
/// no-op when `cargo test --workspace` already built it).
pub fn partest_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PARTEST_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "partest", "--bin", "partest"])
            .current_dir(workspace())
            .status()
            .expect("running cargo build -p partest");
        assert!(status.success(), "cargo build -p partest failed");
        target_dir().join("debug").join("partest")
    })
}

/// A command to run partest in `dir`, isolated from the caller's CI variables
/// so that worker counts are what the test asks for.
pub fn partest(dir: &Path) -> Command {
    let mut cmd = Command::new(partest_bin());
    // A register of the tests' own, not the user's (a test that needs a
    // private one sets PARTEST_RUNS_DIR again, which wins).
    cmd.current_dir(dir)
        .env("PARTEST_RUNS_DIR", target_dir().join("partest-e2e-runs"));
    for var in ["CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI"] {
        cmd.env_remove(var);
    }
    // Nor do the shard and queue variables of a CI engine (or of a partest
    // running this suite) choose a share for the tests' own runs.
    for var in [
        "PARTEST_SHARD",
        "PARTEST_SHARD_TOTAL",
        "PARTEST_QUEUE",
        "PARTEST_QUEUE_RUN",
        "CI_NODE_INDEX",
        "CI_NODE_TOTAL",
        "CIRCLE_NODE_INDEX",
        "CIRCLE_NODE_TOTAL",
        "BUILDKITE_PARALLEL_JOB",
        "BUILDKITE_PARALLEL_JOB_COUNT",
        "JOB_COMPLETION_INDEX",
        "GITHUB_RUN_ID",
        "CI_PIPELINE_ID",
        "CIRCLE_WORKFLOW_ID",
        "BUILDKITE_BUILD_ID",
    ] {
        cmd.env_remove(var);
    }
    // The tests' failing runs report their failures as they are; those
    // about the diagnosis turn it back on (`env_remove`).
    cmd.env("PARTEST_NO_DIAGNOSE", "1");
    cmd
}

/// A fixture project in a temp dir: write files, then run partest in it.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("partest-e2e-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str, text: &str) -> &Project {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write fixture file");
        self
    }

    pub fn run(&self, args: &[&str]) -> Output {
        partest(self.path())
            .args(args)
            .output()
            .expect("running partest")
    }

    /// A folder for tests to write their traces into.
    pub fn log_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("log");
        std::fs::create_dir_all(&dir).expect("mkdir log");
        dir
    }
}

impl Default for Project {
    fn default() -> Self {
        Project::new()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Both streams, for assertion messages.
pub fn both(o: &Output) -> String {
    format!("--- stdout\n{}--- stderr\n{}", stdout(o), stderr(o))
}

/// What a test traced: one line `name start end worker` per file in `log`.
#[derive(Debug, Clone)]
pub struct Trace {
    pub name: String,
    pub start: f64,
    pub end: f64,
    pub worker: String,
    pub extra: Vec<String>,
}

pub fn traces(log: &Path) -> Vec<Trace> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(log).expect("read log dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read trace");
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 4 {
                out.push(Trace {
                    name: f[0].to_string(),
                    start: f[1].parse().expect("start"),
                    end: f[2].parse().expect("end"),
                    worker: f[3].to_string(),
                    extra: f[4..].iter().map(|s| s.to_string()).collect(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.start.total_cmp(&b.start));
    out
}

pub fn overlaps(a: &Trace, b: &Trace) -> bool {
    a.start < b.end && b.start < a.end
}

/// A shell test body that records `name start end $PARTEST_WORKER` into `log`
/// around `body`.
pub fn traced(log: &Path, name: &str, body: &str) -> String {
    format!(
        "#!/bin/sh\nstart=$(date +%s.%N)\n{body}\nend=$(date +%s.%N)\necho \"{name} $start $end $PARTEST_WORKER\" > {log}/{name}.trace\n",
        log = log.display()
    )
}

/// The fields of `/proc/PID/stat` after the parenthesised command name
/// (which may hold spaces): the state is `[0]`, the start time `[19]`.
/// None when there is no such process.
pub fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether a process still runs. A zombie does not: it is dead, waiting for
/// a parent (here often a PID 1 that never reaps) to collect its status.
pub fn pid_alive(pid: i32) -> bool {
    u32::try_from(pid)
        .ok()
        .and_then(proc_stat)
        .is_some_and(|f| f.first().is_some_and(|s| !s.starts_with(['Z', 'X'])))
}

/// A run-register entry (`PID START`) that names this test process, so
/// that partest takes the run as live.
pub fn live_run_entry() -> String {
    let me = std::process::id();
    let stat = proc_stat(me).expect("/proc/self/stat");
    format!("{me} {}\n", stat[19])
}

/// Whether `program arg` (a version flag) runs; skips (in CI: fails) when not.
pub fn have(test: &str, program: &str, arg: &str) -> bool {
    let ok = Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(!in_ci(), "{test}: CI=true but `{program} {arg}` failed");
        eprintln!("skipping {test}: `{program} {arg}` failed; install it");
    }
    ok
}

/// Whether python3 can import `modules`; skips (in CI: fails) when not.
pub fn python_has(modules: &str, install: &str, what: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!in_ci(), "CI=true but {modules} is missing for {what}");
        eprintln!("skipping: python3 -m pip install {install} to run {what}");
    }
    ok
}

/// Every file under `dir`, at any depth (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Whether a CI run requires every service-backed test to run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The rows tests wrote as `*.seen` files in `log`: one whitespace-split
/// line each, sorted.
pub fn seen(log: &Path) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = std::fs::read_dir(log)
        .expect("read log dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seen"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .expect("read a .seen file")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

/// Starts `partest run -n WORKERS` in the background (its run register in
/// `runs_dir`, its TMPDIR `runs_dir/tmp`, so that no one else's `partest
/// clean` sweeps its temp dir) and waits until every slot's test wrote its
/// `.seen` row.
/// Returns the child, to be signalled and waited for, and those rows.
#[allow(clippy::zombie_processes)]
pub fn start_long_run(
    p: &Project,
    runs_dir: &Path,
    workers: usize,
) -> (std::process::Child, Vec<Vec<String>>) {
    let tmp = runs_dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("mkdir tmp");
    let child = partest(p.path())
        .args(["run", "-n", &workers.to_string()])
        .env("PARTEST_RUNS_DIR", runs_dir)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting partest");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let rows = seen(&p.log_dir());
        // A test's line may be read while it is still being written: every
        // row whole (worker, url, database) before the run counts as started.
        if rows.len() >= workers && rows.iter().all(|r| r.len() >= 3) {
            return (child, rows);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tests did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// How SQLAlchemy reads a database URL: (backend, database), or None when
/// SQLAlchemy is not installed (CI installs it: a missing one fails there).
pub fn sqlalchemy_reads(url: &str) -> Option<(String, String)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; from sqlalchemy.engine import make_url; u = make_url(sys.argv[1]); print(u.get_backend_name()); print(u.database)",
            url,
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            !(in_ci() && text.contains("No module named")),
            "CI=true but SQLAlchemy is missing (.ci/run installs it)"
        );
        assert!(
            text.contains("No module named"),
            "SQLAlchemy refused {url}: {text}"
        );
        eprintln!("note: SQLAlchemy is not installed; {url} not checked with it");
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    Some((lines.next()?.to_string(), lines.next()?.to_string()))
}

/// Whether python3 has pytest: CI must (`.ci/run` installs it); on a laptop
/// without it the pytest tests say so and pass.
pub fn have_pytest() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pytest"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !in_ci(),
            "pytest is not installed, and CI must run the pytest tests (.ci/run installs it)"
        );
        eprintln!("skipping: pytest is not installed (python3 -m pip install pytest)");
    }
    ok
}
