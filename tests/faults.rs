//! The fault matrix, end to end on the real binary: SIGINT, SIGTERM and
//! SIGKILL (then `partest clean`) in every phase of a run — discovery,
//! setup-run, a setup command, setup-slot, a test, the serial phase and
//! teardown — and Redis and PostgreSQL stopped, restarted or cutting
//! partest's connections mid-run.
//!
//! Every cell runs a small suite with the sqlite, redis and postgres
//! plugins on private servers it starts (a redis-server on a spare port, a
//! PostgreSQL cluster in a temp dir), a private TMPDIR and run register.
//! The signal lands in the intended phase without sleeping on luck: the
//! step that is to be interrupted (a test, a setup command, a plugin hook
//! through the `test-faults` plugin, `cargo` itself for discovery) writes a
//! file saying it started, then waits for a release file. Each cell checks
//! the exit code, that the output says what happened once and clearly, and
//! that nothing is left: no database, no Redis key, no temp or slot
//! directory, no SQLite file, no run record, no process of the run.
//!
//! Docker is not in the matrix: tests/docker.rs covers SIGINT and kill -9
//! then `partest clean` for containers and compose projects.

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use partest_e2e::servers::{Postgres, Redis};
use partest_e2e::*;

/// Where in a run the fault lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `cargo test --no-run` (a stand-in cargo that waits).
    Discovery,
    /// A plugin's setup-run (after the built-in plugins' own).
    SetupRun,
    /// A `[setup]` command.
    SetupCommand,
    /// A plugin's setup-slot (after the built-in plugins claimed the slot's
    /// database, Redis database and file).
    SetupSlot,
    /// A test of the parallel phase.
    Test,
    /// A test of the serial phase.
    Serial,
    /// A plugin's teardown-slot (before the built-in plugins release theirs).
    Teardown,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Discovery => "discovery",
            Phase::SetupRun => "setup-run",
            Phase::SetupCommand => "setup-command",
            Phase::SetupSlot => "setup-slot",
            Phase::Test => "test",
            Phase::Serial => "serial",
            Phase::Teardown => "teardown",
        }
    }
}

/// A fault-matrix cell: a project, its private servers, TMPDIR and run
/// register, and a marker every process of its runs inherits.
struct Cell {
    name: String,
    project: Project,
    redis: Redis,
    pg: Postgres,
    tmp: tempfile::TempDir,
    runs: tempfile::TempDir,
    /// `FAULT_CELL=<marker>` is in the environment of every process a run
    /// of this cell starts (unless it clears its environment).
    marker: String,
}

/// The test plugin whose hooks run a script (built with partest).
fn faults_plugin() -> PathBuf {
    partest_bin();
    target_dir()
        .join("partest-guests/wasm32-wasip2/release")
        .join("test_faults.wasm")
}

/// A test body: writes to the slot's SQLite file, Redis database and
/// PostgreSQL database, so that anything not torn down would show.
const WRITE: &str = r#"set -e
sqlite3 "$PARTEST_SQLITE_PATH" "CREATE TABLE IF NOT EXISTS hits (w TEXT); INSERT INTO hits VALUES ('$PARTEST_WORKER')"
[ "$(redis-cli -u "$REDIS_URL" SET "${REDIS_KEY_PREFIX}hit" 1)" = OK ]
psql "$DATABASE_URL" -XAtqc "CREATE TABLE IF NOT EXISTS hits (w text); INSERT INTO hits VALUES ('$PARTEST_WORKER')"
"#;

impl Cell {
    /// A cell whose run blocks in `phase` (None: nowhere; the test drives
    /// the servers itself). `extra_serial` is added to the serial test,
    /// which runs alone, last.
    fn new(test: &str, phase: Option<Phase>, extra_serial: &str) -> Option<Cell> {
        for (program, arg) in [("sqlite3", "--version"), ("psql", "--version")] {
            if !have(test, program, arg) {
                return None;
            }
        }
        let redis = Redis::start(test)?;
        let pg = Postgres::start(test)?;
        let project = Project::new();
        let marker = format!("{test}-{}", std::process::id());
        let log = project.log_dir();
        // block.sh NAME: says it is in NAME (with the run id), then waits
        // for the release file, at most a minute.
        project.file(
            "block.sh",
            &format!(
                "echo \"$PARTEST_RUN_ID\" > {log}/ready-$1.tmp && mv {log}/ready-$1.tmp {log}/ready-$1\n\
                 i=0\n\
                 while [ ! -e {log}/release ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n",
                log = log.display()
            ),
        );
        let block = |what: &str| format!("sh {} {what}", project.path().join("block.sh").display());
        let hook = |p: Phase, key: &str| {
            if phase == Some(p) {
                format!("{key} = {:?}\n", block(p.name()))
            } else {
                String::new()
            }
        };
        let setup = if phase == Some(Phase::SetupCommand) {
            format!("[setup]\ncommands = [{:?}]\n\n", block("setup-command"))
        } else {
            String::new()
        };
        let adapter = if phase == Some(Phase::Discovery) {
            "[run]\nadapter = \"cargo\"\n".to_string()
        } else {
            "[run]\n[command]\ntests = [\"t/**/*.sh\"]\nrun = \"sh {}\"\n\n[serial]\nfilter = [\"t/serial/**\"]\n"
                .to_string()
        };
        let adapter = adapter.replacen(
            "[run]\n",
            "[run]\nplugins = [\"sqlite\", \"redis\", \"postgres\", \"faults\"]\n",
            1,
        );
        project.file(
            "partest.toml",
            &format!(
                "{adapter}\n{setup}\
                 [plugins.sqlite]\nvar = \"SQLITE_URL\"\n\n\
                 [plugins.redis]\nurl = {:?}\ndatabases = \"1-4\"\n\n\
                 [plugins.postgres]\nurl = {:?}\n\n\
                 [plugins.faults]\npath = {:?}\nallow = {{ process = [\"sh\"], env = [\"FAULT_RUN_ID\", \"FAULT_SLOT\"] }}\n\
                 limits = {{ call-timeout = \"90s\" }}\n{}{}{}\n",
                redis.url(),
                pg.url(),
                faults_plugin(),
                hook(Phase::SetupRun, "setup-run"),
                hook(Phase::SetupSlot, "setup-slot"),
                hook(Phase::Teardown, "teardown-slot"),
            ),
        );
        let test_block = if phase == Some(Phase::Test) {
            block("test")
        } else {
            String::new()
        };
        project.file("t/a.sh", &format!("{WRITE}{test_block}\n"));
        project.file("t/b.sh", WRITE);
        let serial_block = if phase == Some(Phase::Serial) {
            block("serial")
        } else {
            String::new()
        };
        project.file(
            "t/serial/s.sh",
            &format!("{WRITE}{extra_serial}\n{serial_block}\n"),
        );
        // Discovery: a stand-in for cargo that waits where the build would.
        project.file(
            "fake-cargo.sh",
            &format!("#!/bin/sh\n{}\nexit 1\n", block("discovery")),
        );
        let tmp = tempfile::Builder::new()
            .prefix("partest-e2e-tmp-")
            .tempdir()
            .unwrap();
        let runs = tempfile::Builder::new()
            .prefix("partest-e2e-runs-")
            .tempdir()
            .unwrap();
        Some(Cell {
            name: test.to_string(),
            project,
            redis,
            pg,
            tmp,
            runs,
            marker,
        })
    }

    fn log(&self) -> PathBuf {
        self.project.path().join("log")
    }

    /// partest in the project, with the cell's TMPDIR, register and marker.
    fn partest(&self, args: &[&str]) -> Command {
        let mut cmd = partest(self.project.path());
        cmd.args(args)
            .env("TMPDIR", self.tmp.path())
            .env("PARTEST_RUNS_DIR", self.runs.path())
            .env("FAULT_CELL", &self.marker)
            .env("CARGO", self.project.path().join("fake-cargo.sh"));
        cmd
    }

    /// `partest run -n 2`, in the background, its output going to files
    /// (not pipes: a child partest leaves behind could hold those open).
    fn spawn(&self) -> Run {
        use std::os::unix::fs::PermissionsExt;
        let fake = self.project.path().join("fake-cargo.sh");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = self.project.path().join("partest.out");
        let err = self.project.path().join("partest.err");
        let child = self
            .partest(&["run", "-n", "2"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("starting partest");
        Run { child, out, err }
    }

    /// Waits until the step of `phase` says it started; returns the run id
    /// it saw. Panics with partest's output if the run ends first.
    fn wait_ready(&self, child: &mut Run, phase: Phase) -> String {
        let ready = self.log().join(format!("ready-{}", phase.name()));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                return text.trim().to_string();
            }
            if let Ok(Some(status)) = child.child.try_wait() {
                let out = child.finish();
                panic!(
                    "{}: partest ended ({status}) before reaching {}: {}",
                    self.name,
                    phase.name(),
                    both(&out)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: {} never started",
                self.name,
                phase.name()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets every waiting step go on.
    fn release(&self) {
        std::fs::write(self.log().join("release"), "").unwrap();
    }

    fn clean(&self) -> Output {
        self.partest(&["clean", "--yes"])
            .output()
            .expect("running partest clean")
    }

    /// Everything a run could have left, by kind; empty when nothing is.
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        left.extend(
            self.redis
                .all_keys()
                .into_iter()
                .map(|k| format!("redis key {k}")),
        );
        left.extend(
            self.pg
                .databases()
                .into_iter()
                .map(|d| format!("postgres database {d}")),
        );
        for e in std::fs::read_dir(self.tmp.path()).unwrap().flatten() {
            left.push(format!("temp dir entry {}", e.path().display()));
        }
        for f in files_under(&self.project.path().join(".partest/plugins")) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            // What a plugin keeps between runs (its cache) is not a leftover.
            if !f.components().any(|c| c.as_os_str() == "cache") {
                left.push(format!("plugin file {} ({name})", f.display()));
            }
        }
        for e in std::fs::read_dir(self.runs.path()).unwrap().flatten() {
            left.push(format!("run record {}", e.path().display()));
        }
        for pid in processes_with(&format!("FAULT_CELL={}", self.marker)) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            left.push(format!("process {pid}: {cmd}"));
        }
        left
    }

    /// Nothing left, allowing a moment for processes that are exiting.
    fn assert_nothing_left(&self, context: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            // Only processes may still be on their way out.
            if Instant::now() > deadline || left.iter().any(|l| !l.starts_with("process ")) {
                panic!(
                    "{}: left behind {context}:\n  {}",
                    self.name,
                    left.join("\n  ")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A partest run in the background, its output in two files.
struct Run {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Run {
    /// Its status and output, once it exited.
    fn finish(&mut self) -> Output {
        let status = self.child.wait().expect("waiting for partest");
        Output {
            status,
            stdout: std::fs::read(&self.out).unwrap_or_default(),
            stderr: std::fs::read(&self.err).unwrap_or_default(),
        }
    }

    /// Waits for it to exit within `limit`; its output.
    fn wait_exit(&mut self, limit: Duration, what: &str) -> Output {
        let deadline = Instant::now() + limit;
        while self.child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let out = self.finish();
                panic!(
                    "{what}: partest did not exit within {limit:?}: {}",
                    both(&out)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finish()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling the partest process this test spawned.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

/// Live processes (not zombies) with `var=value` in their environment.
fn processes_with(entry: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == entry.as_bytes()) && pid_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// One line of the output says the run was interrupted, and nothing
/// reads as a crash or an error.
fn assert_interrupted_cleanly(out: &Output, cell: &str) {
    assert_eq!(out.status.code(), Some(130), "{cell}: {}", both(out));
    let text = format!("{}{}", stdout(out), stderr(out));
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Interrupted:"))
        .collect();
    assert_eq!(
        said.len(),
        1,
        "{cell}: one 'Interrupted:' line: {}",
        both(out)
    );
    for bad in ["panicked", "error:", "teardown:", "failed in"] {
        assert!(
            !text.contains(bad),
            "{cell}: {bad:?} in the output: {}",
            both(out)
        );
    }
}

/// SIGINT or SIGTERM in `phase`: the run stops (a step waiting in teardown
/// is let finish: teardown is never cut short), exits 130 with one line
/// saying so, and leaves nothing.
fn interrupt_in(test: &str, phase: Phase, sig: i32) {
    let Some(cell) = Cell::new(test, Some(phase), "") else {
        return;
    };
    let mut child = cell.spawn();
    cell.wait_ready(&mut child, phase);
    child.signal(sig);
    if phase == Phase::Teardown {
        // Teardown goes on through the signal: the step is still waiting.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.child.try_wait().unwrap().is_none(),
            "{test}: a signal cut teardown short"
        );
        cell.release();
    }
    let out = child.wait_exit(Duration::from_secs(30), test);
    cell.release();
    // Shown with --nocapture: what a user sees in that phase.
    eprintln!("== {test}\n{}", both(&out));
    assert_interrupted_cleanly(&out, test);
    cell.assert_nothing_left("after the interrupted run");
}

/// SIGKILL in `phase`, then `partest clean --yes`: clean names what the
/// dead run left and removes all of it; a second clean finds nothing.
fn kill_in(test: &str, phase: Phase) {
    let Some(cell) = Cell::new(test, Some(phase), "") else {
        return;
    };
    let mut child = cell.spawn();
    let run_id = cell.wait_ready(&mut child, phase);
    child.signal(libc::SIGKILL);
    let _ = child.finish();
    let out = cell.clean();
    eprintln!("== {test}: partest clean --yes\n{}", both(&out));
    assert_eq!(out.status.code(), Some(0), "{test}: clean: {}", both(&out));
    let text = stdout(&out);
    if phase == Phase::Discovery {
        // Only cargo ran, and the run's guard ended it with partest.
        assert!(
            text.contains("nothing left behind by dead runs"),
            "{test}: the guard left clean nothing: {}",
            both(&out)
        );
    } else {
        assert!(
            text.contains("left behind by dead runs") && text.contains(&run_id),
            "{test}: clean names the dead run {run_id}: {}",
            both(&out)
        );
    }
    assert!(!stderr(&out).contains("error"), "{test}: {}", both(&out));
    cell.assert_nothing_left("after kill -9 and partest clean");
    let again = cell.clean();
    assert_eq!(again.status.code(), Some(0), "{}", both(&again));
    assert!(
        stdout(&again).contains("nothing left behind by dead runs"),
        "{test}: a second clean: {}",
        both(&again)
    );
    cell.release();
}

macro_rules! cells {
    ($($phase:ident: $int:ident, $term:ident, $kill:ident;)*) => {$(
        #[test]
        fn $int() {
            interrupt_in(stringify!($int), Phase::$phase, libc::SIGINT);
        }
        #[test]
        fn $term() {
            interrupt_in(stringify!($term), Phase::$phase, libc::SIGTERM);
        }
        #[test]
        fn $kill() {
            kill_in(stringify!($kill), Phase::$phase);
        }
    )*};
}

// Discovery: cargo runs through the bounded spawner (its own process
// group, stopped on Ctrl-C) on branch cargo-parity (issue 11); until that
// is merged, partest waits for cargo to end before it stops.
#[test]
fn sigint_in_discovery() {
    interrupt_in("sigint_in_discovery", Phase::Discovery, libc::SIGINT);
}

#[test]
fn sigterm_in_discovery() {
    interrupt_in("sigterm_in_discovery", Phase::Discovery, libc::SIGTERM);
}

#[test]
fn sigkill_in_discovery() {
    kill_in("sigkill_in_discovery", Phase::Discovery);
}

cells! {
    SetupRun: sigint_in_setup_run, sigterm_in_setup_run, sigkill_in_setup_run;
    SetupCommand: sigint_in_a_setup_command, sigterm_in_a_setup_command, sigkill_in_a_setup_command;
    SetupSlot: sigint_in_setup_slot, sigterm_in_setup_slot, sigkill_in_setup_slot;
    Test: sigint_in_a_test, sigterm_in_a_test, sigkill_in_a_test;
    Serial: sigint_in_the_serial_phase, sigterm_in_the_serial_phase, sigkill_in_the_serial_phase;
    Teardown: sigint_in_teardown, sigterm_in_teardown, sigkill_in_teardown;
}

/// A run whose serial test (the last one) waits, for the server cells:
/// started, with its run id.
fn start_blocked(cell: &Cell) -> (Run, String) {
    let mut child = cell.spawn();
    let run_id = cell.wait_ready(&mut child, Phase::Serial);
    (child, run_id)
}

/// Exit 3, and the error (one line on stderr) names what failed and says
/// that `partest clean` removes what is left.
fn assert_teardown_failed(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(3), "{}", both(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {}", both(out));
    assert!(
        lines[0].starts_with("partest: error: teardown did not release everything")
            && lines[0].contains(what)
            && lines[0].contains("`partest clean` removes what this run left"),
        "{}",
        both(out)
    );
}

/// Redis shut down mid-run (its data saved) and back only after the run:
/// teardown cannot release the Redis databases, so the run exits 3 with
/// one message naming Redis and `partest clean`, and keeps its record; once
/// Redis is back, `partest clean` releases them.
#[test]
fn redis_stopped_mid_run_then_clean_releases_its_databases() {
    let test = "redis_stopped_mid_run_then_clean_releases_its_databases";
    let Some(mut cell) = Cell::new(test, Some(Phase::Serial), "") else {
        return;
    };
    let (mut child, run_id) = start_blocked(&cell);
    cell.redis.shutdown_saving();
    cell.release();
    let out = child.wait_exit(Duration::from_secs(60), test);
    assert_teardown_failed(&out, "redis failed in teardown");
    cell.redis.restart();
    let owners: Vec<String> = cell
        .redis
        .all_keys()
        .into_iter()
        .filter(|k| k.ends_with(":partest:owner"))
        .collect();
    assert!(!owners.is_empty(), "the claims were saved with the server");
    let clean = cell.clean();
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
    assert!(stdout(&clean).contains(&run_id), "{}", both(&clean));
    cell.assert_nothing_left("after Redis came back and partest clean");
}

/// Redis restarted mid-run with its data: partest's connections are gone;
/// teardown reconnects and releases everything, and the run passes.
#[test]
fn redis_restarted_mid_run_teardown_reconnects() {
    let test = "redis_restarted_mid_run_teardown_reconnects";
    let Some(mut cell) = Cell::new(test, Some(Phase::Serial), "") else {
        return;
    };
    let (mut child, _) = start_blocked(&cell);
    cell.redis.shutdown_saving();
    cell.redis.restart();
    cell.release();
    let out = child.wait_exit(Duration::from_secs(60), test);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    cell.assert_nothing_left("after the run");
}

/// PostgreSQL stopped mid-run and back only after the run: teardown cannot
/// drop the databases (exit 3, one message, the record kept); once it is
/// back, `partest clean` drops them.
#[test]
fn postgres_stopped_mid_run_then_clean_drops_its_databases() {
    let test = "postgres_stopped_mid_run_then_clean_drops_its_databases";
    let Some(mut cell) = Cell::new(test, Some(Phase::Serial), "") else {
        return;
    };
    let (mut child, run_id) = start_blocked(&cell);
    cell.pg.stop();
    cell.release();
    let out = child.wait_exit(Duration::from_secs(60), test);
    assert_teardown_failed(&out, "postgres failed in teardown");
    cell.pg.restart();
    assert!(
        cell.pg.databases().iter().any(|d| d.contains(&run_id)),
        "the run's databases outlived it: {:?}",
        cell.pg.databases()
    );
    let clean = cell.clean();
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
    cell.assert_nothing_left("after PostgreSQL came back and partest clean");
}

/// PostgreSQL restarted mid-run: teardown reconnects and drops everything.
#[test]
fn postgres_restarted_mid_run_teardown_reconnects() {
    let test = "postgres_restarted_mid_run_teardown_reconnects";
    let Some(mut cell) = Cell::new(test, Some(Phase::Serial), "") else {
        return;
    };
    let (mut child, _) = start_blocked(&cell);
    cell.pg.restart();
    cell.release();
    let out = child.wait_exit(Duration::from_secs(60), test);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    cell.assert_nothing_left("after the run");
}

/// A test that kills every Redis client (`CLIENT KILL TYPE normal`) also
/// kills partest's own connections; teardown reconnects, releases every
/// database it claimed, and the run passes (issue 13.10).
#[test]
fn a_test_killing_every_redis_client_does_not_break_teardown() {
    let test = "a_test_killing_every_redis_client_does_not_break_teardown";
    let kill = "redis-cli -u \"$REDIS_URL\" CLIENT KILL TYPE normal SKIPME yes >/dev/null";
    let Some(cell) = Cell::new(test, None, kill) else {
        return;
    };
    let mut child = cell.spawn();
    let out = child.wait_exit(Duration::from_secs(60), test);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    cell.assert_nothing_left("after the run");
}

/// The same for PostgreSQL: a test that terminates every other backend.
#[test]
fn a_test_terminating_every_postgres_backend_does_not_break_teardown() {
    let test = "a_test_terminating_every_postgres_backend_does_not_break_teardown";
    let kill = "psql \"$DATABASE_URL\" -XAtqc \"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'\" >/dev/null";
    let Some(cell) = Cell::new(test, None, kill) else {
        return;
    };
    let mut child = cell.spawn();
    let out = child.wait_exit(Duration::from_secs(60), test);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    cell.assert_nothing_left("after the run");
}

/// Whether `pid` still runs (a zombie does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

#[test]
fn sigkill_mid_test_leaves_no_process_of_the_run_alive() {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n",
    );
    // Each test starts a daemon in a session of its own (out of its
    // process group) and a child, then waits.
    for i in 0..2 {
        p.file(
            &format!("t/t{i}.sh"),
            &format!(
                "setsid sleep 60 </dev/null >/dev/null 2>&1 &\necho $! >> {log}/pids\n\
                 sleep 60 &\necho $! >> {log}/pids\necho $$ >> {log}/pids\nwait\n",
                log = log.display()
            ),
        );
    }
    let mut child = partest(p.path())
        .args(["run", "-n", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pids_file = log.join("pids");
    let deadline = Instant::now() + Duration::from_secs(60);
    let pids = loop {
        let pids: Vec<i32> = std::fs::read_to_string(&pids_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.len() == 6 {
            break pids;
        }
        assert!(
            Instant::now() < deadline,
            "the tests never started: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(pids.iter().all(|&pid| alive(pid)), "{pids:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|&pid| alive(pid)) {
        let left: Vec<i32> = pids.iter().copied().filter(|&pid| alive(pid)).collect();
        assert!(
            Instant::now() < deadline,
            "processes of the killed run still alive after 2 s: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
