//! The command adapter end to end: concurrency, slots, serial phase, groups,
//! failures, timeouts and Ctrl-C, asserted on what the tests themselves
//! recorded (timestamps, workers, pids, files), not on log wording alone.

use std::time::{Duration, Instant};

use partest_e2e::*;

const CONFIG: &str = "[command]\ntests = [\"t/**/*.sh\"]\nrun = \"sh {}\"\n";

#[test]
fn tests_run_concurrently_on_distinct_slots() {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", CONFIG);
    for i in 0..4 {
        p.file(
            &format!("t/s{i}.sh"),
            &traced(&log, &format!("s{i}"), "sleep 0.4"),
        );
    }
    let run = p.run_json(&["run", "-n", "2"]);
    assert_eq!(run.code(), Some(0), "{}", run.both());
    let t = traces(&log);
    assert_eq!(t.len(), 4);
    let workers: std::collections::BTreeSet<&str> = t.iter().map(|t| t.worker.as_str()).collect();
    assert_eq!(workers.into_iter().collect::<Vec<_>>(), ["gw0", "gw1"]);
    let concurrent = t
        .iter()
        .enumerate()
        .any(|(i, a)| t[i + 1..].iter().any(|b| overlaps(a, b)));
    assert!(concurrent, "no two tests overlapped: {t:?}");
    // Never two tests at once on one slot.
    for (i, a) in t.iter().enumerate() {
        for b in &t[i + 1..] {
            assert!(
                !(a.worker == b.worker && overlaps(a, b)),
                "{a:?} and {b:?} shared a slot"
            );
        }
    }
    assert_eq!(
        run.counts(),
        Counts {
            passed: 4,
            ..Counts::default()
        }
    );
}

#[test]
fn every_test_sees_its_slot_environment() {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", CONFIG);
    for i in 0..3 {
        let body = format!(
            "env | grep -E '^(PARTEST_|PYTEST_XDIST|TEST_ENV_NUMBER|TMPDIR)' | sort > {}/env{i}.txt\ntouch \"$PARTEST_TEST_TMPDIR/mine\"\n[ -d \"$TMPDIR\" ]",
            log.display()
        );
        p.file(&format!("t/e{i}.sh"), &body);
    }
    let out = p.run(&["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    for i in 0..3 {
        let env = std::fs::read_to_string(log.join(format!("env{i}.txt"))).unwrap();
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{k} missing in {env}"))
        };
        let worker = get("PARTEST_WORKER");
        assert!(worker == "gw0" || worker == "gw1", "{env}");
        assert_eq!(get("PYTEST_XDIST_WORKER"), worker);
        assert_eq!(get("PARTEST_WORKER_INDEX"), &worker[2..]);
        assert_eq!(get("PARTEST_WORKER_COUNT"), "2");
        assert_eq!(get("PYTEST_XDIST_WORKER_COUNT"), "2");
        assert_eq!(get("PARTEST_TEST_NAME"), format!("t/e{i}.sh"));
        assert_eq!(get("PARTEST_ATTEMPT"), "1");
        assert_eq!(get("TMPDIR"), get("PARTEST_TMPDIR"));
        assert!(get("TMPDIR").ends_with(worker), "{env}");
        assert!(
            get("PARTEST_TEST_TMPDIR").starts_with(get("TMPDIR")),
            "{env}"
        );
        assert_eq!(get("PARTEST_RUN_ID").len(), 8);
        // The slot's temp dir is gone after the run: teardown ran.
        assert!(!std::path::Path::new(get("TMPDIR")).exists(), "{env}");
    }
}

#[test]
fn serial_tests_run_alone_after_the_parallel_phase() {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!("{CONFIG}[serial]\nfilter = [\"t/serial/**\"]\n"),
    );
    for i in 0..4 {
        p.file(
            &format!("t/p{i}.sh"),
            &traced(&log, &format!("p{i}"), "sleep 0.2"),
        );
    }
    for i in 0..2 {
        p.file(
            &format!("t/serial/s{i}.sh"),
            &traced(&log, &format!("serial{i}"), "sleep 0.2"),
        );
    }
    let run = p.run_json(&["run", "-n", "2"]);
    assert_eq!(run.code(), Some(0), "{}", run.both());
    let started = run.started();
    assert_eq!(
        (started.workers, started.parallel, started.serial),
        (2, 4, 2)
    );
    let t = traces(&log);
    assert_eq!(t.len(), 6);
    for s in t.iter().filter(|t| t.name.starts_with("serial")) {
        assert_eq!(s.worker, "gw0", "serial tests run on slot 0");
        for other in t.iter().filter(|o| o.name != s.name) {
            assert!(!overlaps(s, other), "serial {s:?} overlapped {other:?}");
        }
        let last_parallel = t
            .iter()
            .filter(|t| t.name.starts_with('p'))
            .map(|t| t.end)
            .fold(0.0, f64::max);
        assert!(
            s.start >= last_parallel,
            "serial test started before the parallel phase ended"
        );
    }
    let listed = p.list_json(&["list", "-n", "2"]);
    assert_eq!(listed.in_phase("parallel").len(), 4, "{listed:?}");
    // The order inside a phase follows the history of the run above
    // (longest first), so compare the members.
    let mut serial = listed.in_phase("serial");
    serial.sort();
    assert_eq!(serial, ["t/serial/s0.sh", "t/serial/s1.sh"], "{listed:?}");
}

#[test]
fn a_groups_cap_is_never_exceeded() {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!("{CONFIG}[groups.db]\nfilter = [\"t/db/**\"]\nmax-workers = 1\n"),
    );
    for i in 0..4 {
        p.file(
            &format!("t/db/d{i}.sh"),
            &traced(&log, &format!("db{i}"), "sleep 0.25"),
        );
        p.file(
            &format!("t/free{i}.sh"),
            &traced(&log, &format!("free{i}"), "sleep 0.1"),
        );
    }
    let out = p.run(&["run", "-n", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let t = traces(&log);
    assert_eq!(t.len(), 8);
    let db: Vec<&Trace> = t.iter().filter(|t| t.name.starts_with("db")).collect();
    for (i, a) in db.iter().enumerate() {
        for b in &db[i + 1..] {
            assert!(!overlaps(a, b), "group cap 1 exceeded: {a:?} and {b:?}");
        }
    }
    // The cap did not stall the pool: ungrouped tests ran beside the group.
    let free_beside_db = t
        .iter()
        .filter(|t| t.name.starts_with("free"))
        .any(|f| db.iter().any(|d| overlaps(f, d)));
    assert!(
        free_beside_db,
        "no free test ran while a db test ran: {t:?}"
    );
}

#[test]
fn a_failing_test_exits_100_and_shows_its_output() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    p.file("t/ok.sh", "exit 0\n");
    p.file(
        "t/bad.sh",
        "echo 'expected 3, got 4' >&2\necho on-stdout\nexit 7\n",
    );
    let junit = p.path().join("out/junit.xml");
    let run = p.run_json(&["run", "-n", "2", "--junit", junit.to_str().unwrap()]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    assert_eq!(
        run.with_status(Status::Fail),
        ["t/bad.sh".to_string()].into()
    );
    assert_eq!(
        run.with_status(Status::Pass),
        ["t/ok.sh".to_string()].into()
    );
    // Its stdout and stderr apart, and how it ended.
    let bad = run.last_attempt("t/bad.sh");
    assert!(
        bad.stderr
            .as_deref()
            .unwrap_or("")
            .contains("expected 3, got 4"),
        "{bad:?}"
    );
    let output = bad.output.as_deref().unwrap_or("");
    assert!(
        output.contains("on-stdout") && output.contains("exit code 7"),
        "{bad:?}"
    );
    assert_eq!(
        run.counts(),
        Counts {
            passed: 1,
            failed: 1,
            ..Counts::default()
        }
    );
    let junit = read_junit(&junit);
    assert_eq!((junit.tests, junit.failures, junit.errors), (2, 1, 0));
    assert_eq!(junit.case("t/bad.sh").result, CaseResult::Failed);
    assert_eq!(junit.case("t/ok.sh").result, CaseResult::Passed);
}

#[test]
fn a_hanging_test_is_killed_at_the_timeout_with_its_process_group() {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", CONFIG);
    // The test starts a grandchild that would outlive a naive kill of the test alone.
    p.file(
        "t/hang.sh",
        &format!(
            "sleep 300 &\necho $! > {log}/child.pid\necho $$ > {log}/test.pid\nsleep 300\n",
            log = log.display()
        ),
    );
    p.file("t/quick.sh", "exit 0\n");
    // Without the timeout this run would take 300 s and report a PASS.
    let run = p.run_json(&["run", "-n", "2", "--timeout", "1"]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    assert_eq!(
        run.outcomes()["t/hang.sh"],
        Status::Timeout,
        "{}",
        run.both()
    );
    assert_eq!(run.counts().timed_out, 1, "{}", run.both());
    for file in ["child.pid", "test.pid"] {
        let pid: i32 = std::fs::read_to_string(log.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            !pid_alive(pid),
            "{file}: process {pid} outlived the timeout"
        );
    }
}

#[test]
fn retries_mark_a_test_that_passes_later_as_flaky() {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", CONFIG);
    // Fails on its first attempt only, using the attempt number partest passes.
    p.file(
        "t/flaky.sh",
        &format!(
            "echo $PARTEST_ATTEMPT >> {}/attempts\n[ \"$PARTEST_ATTEMPT\" -ge 2 ]\n",
            log.display()
        ),
    );
    let run = p.run_json(&["run", "-n", "1", "--retries", "2"]);
    assert_eq!(run.code(), Some(0), "{}", run.both());
    assert_eq!(
        std::fs::read_to_string(log.join("attempts")).unwrap(),
        "1\n2\n"
    );
    // A retried failure, then a pass: flaky.
    let attempts: Vec<(u64, Status, bool)> = run
        .attempts()
        .iter()
        .map(|a| (a.attempt, a.status, a.will_retry))
        .collect();
    assert_eq!(
        attempts,
        [(1, Status::Fail, true), (2, Status::Pass, false)],
        "{}",
        run.both()
    );
    assert_eq!(
        run.counts(),
        Counts {
            flaky: 1,
            ..Counts::default()
        }
    );
}

#[test]
fn fail_fast_stops_starting_tests() {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", CONFIG);
    p.file("t/a_bad.sh", "exit 1\n");
    for i in 0..5 {
        p.file(
            &format!("t/b{i}.sh"),
            &traced(&log, &format!("b{i}"), "sleep 0.1"),
        );
    }
    let run = p.run_json(&["run", "-n", "1", "--fail-fast"]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    let ran = traces(&log).len();
    assert!(ran < 5, "fail-fast still ran everything");
    // What did not run is counted as such.
    let counts = run.counts();
    assert_eq!(
        (counts.failed, counts.passed),
        (1, ran as u64),
        "{counts:?}"
    );
    assert_eq!(counts.cancelled, 5 - ran as u64, "{counts:?}");
}

#[test]
fn sigint_mid_run_tears_down_and_exits_130() {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", CONFIG);
    for i in 0..3 {
        p.file(
            &format!("t/long{i}.sh"),
            &format!(
                "echo $TMPDIR > {log}/tmp{i}\nsleep 300 &\necho $! > {log}/child{i}.pid\necho $$ > {log}/test{i}.pid\nwait\n",
                log = log.display()
            ),
        );
    }
    let child = partest(p.path())
        .args(json_args(&["run", "-n", "2"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(log.join("child0.pid").exists() || log.join("child1.pid").exists())
        || count_pids(&log) < 2
    {
        assert!(Instant::now() < deadline, "tests never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: sending SIGINT to the partest process we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let run = Run::parse(child.wait_with_output().unwrap());
    assert_eq!(run.code(), Some(130), "{}", run.both());
    assert_eq!(run.of_type("interrupted").count(), 1, "{}", run.both());
    // The two running tests stopped, the third never started: none passed.
    assert_eq!(
        run.counts(),
        Counts {
            cancelled: 3,
            interrupted: true,
            ..Counts::default()
        },
        "{}",
        run.both()
    );
    for entry in std::fs::read_dir(&log).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.ends_with(".pid") {
            let pid: i32 = text.trim().parse().unwrap();
            assert!(!pid_alive(pid), "{name}: {pid} still running after SIGINT");
        } else if name.starts_with("tmp") {
            assert!(
                !std::path::Path::new(text.trim()).exists(),
                "slot dir {text} left behind"
            );
        }
    }
}

fn count_pids(log: &std::path::Path) -> usize {
    std::fs::read_dir(log)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("child")
        })
        .count()
}

#[test]
fn a_setup_command_past_its_timeout_is_killed_with_its_children() {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!(
            "{CONFIG}\n[setup]\ncommands = [\"sleep 300 & echo $! > {log}/child.pid; wait\"]\ntimeout = \"1s\"\n",
            log = log.display()
        ),
    );
    p.file("t/a.sh", &format!("touch {}/ran\n", log.display()));
    let out = p.run(&["run", "-n", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(stderr(&out).contains("[setup] timeout"), "{}", both(&out));
    let pid: i32 = std::fs::read_to_string(log.join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !pid_alive(pid),
        "the setup command's child {pid} outlived it"
    );
    assert!(
        !log.join("ran").exists(),
        "no test runs after a failed setup"
    );
}

#[test]
fn filtersets_skip_and_exact_select_command_tests() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    for name in ["t/unit/a.sh", "t/unit/b.sh", "t/e2e/c.sh"] {
        p.file(name, "true");
    }
    // Which tests ran, and that they passed.
    let passed = |args: &[&str]| p.run_json(args).passed();
    let only = |test: &str| std::collections::BTreeSet::from([test.to_string()]);
    assert_eq!(
        passed(&["run", "-n", "1", "-E", "file(t/unit/*) - test(b.sh)"]),
        only("t/unit/a.sh")
    );
    assert_eq!(
        passed(&["run", "-n", "1", "--skip", "unit"]),
        only("t/e2e/c.sh")
    );
    assert_eq!(
        passed(&["run", "-n", "1", "--exact", "t/unit/a.sh"]),
        only("t/unit/a.sh")
    );
    assert_eq!(
        passed(&[
            "run",
            "-n",
            "1",
            "-E",
            "kind(command) and not file(t/unit/**)",
        ]),
        only("t/e2e/c.sh")
    );
    let out = p.run(&["run", "-n", "1", "unit/z"]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
    assert!(stderr(&out).contains("no tests to run"), "{}", both(&out));
}

#[test]
fn last_runs_failures_start_first_and_lf_runs_only_them() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    p.file("t/a_long.sh", "sleep 0.3\n");
    p.file("t/b_broken.sh", "test ! -e broken\n");
    p.file("t/c.sh", "true\n");
    p.file("broken", "");
    let first_started = |run: &Run| {
        run.of_type("test-started")
            .next()
            .and_then(|e| e["test"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let said = |run: &Run| {
        run.of_type("planned")
            .next()
            .and_then(|e| e["from_last_run"].as_str().map(str::to_string))
    };
    let run = p.run_json(&["run", "-n", "1"]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    // Longest first, but what failed last time before it.
    let run = p.run_json(&["run", "-n", "1"]);
    assert_eq!(first_started(&run), "t/b_broken.sh", "{}", run.both());
    assert_eq!(
        said(&run).as_deref(),
        Some("started first: the module or test of 1 test that failed last time")
    );
    // --lf: only the last run's failures.
    let run = p.run_json(&["run", "-n", "1", "--lf"]);
    assert_eq!(
        run.tests(),
        ["t/b_broken.sh".to_string()].into(),
        "{}",
        run.both()
    );
    std::fs::remove_file(p.path().join("broken")).unwrap();
    let run = p.run_json(&["run", "-n", "1", "--lf"]);
    assert_eq!(run.code(), Some(0), "{}", run.both());
    // Nothing failed last time: --lf runs everything, and says so.
    let run = p.run_json(&["run", "-n", "1", "--lf"]);
    assert_eq!(run.tests().len(), 3, "{}", run.both());
    assert!(
        said(&run).is_some_and(|s| s.contains("no test failed last time")),
        "{}",
        run.both()
    );
    // Off in the file: longest first again, even after a failure.
    p.file("broken", "");
    p.file(
        "partest.toml",
        &format!("[run]\nfailed-first = false\n\n{CONFIG}"),
    );
    let run = p.run_json(&["run", "-n", "1"]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    let run = p.run_json(&["run", "-n", "1"]);
    assert_eq!(first_started(&run), "t/a_long.sh", "{}", run.both());
    // --ff turns it back on.
    let run = p.run_json(&["run", "-n", "1", "--ff"]);
    assert_eq!(first_started(&run), "t/b_broken.sh", "{}", run.both());
}

/// Without a terminal (a CI log), a long run says where it stands every
/// interval: done/total, failures so far, and the time left once the
/// history knows the tests.
#[test]
fn a_run_without_a_terminal_prints_a_progress_line_every_interval() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    p.file("t/fail.sh", "exit 1\n");
    for i in 0..3 {
        p.file(&format!("t/slow{i}.sh"), "sleep 1.2\n");
    }
    let run = |interval: &str| {
        let out = partest(p.path())
            .args(["run", "-n", "1"])
            .env("PARTEST_PROGRESS_INTERVAL", interval)
            .output()
            .expect("partest");
        assert_eq!(out.status.code(), Some(100), "{}", both(&out));
        stdout(&out)
    };
    let first = run("1");
    let lines: Vec<&str> = first.lines().filter(|l| l.contains(" done, ")).collect();
    assert!(lines.len() >= 2, "a line a second over ~4 s: {first}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("/4 done, ") && !l.contains(" left")),
        "no history yet, no time left: {first}"
    );
    // With the history, the time left; the failure counted once it ran.
    let second = run("1");
    let lines: Vec<&str> = second.lines().filter(|l| l.contains(" done, ")).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("1 failed") && l.contains(" left")),
        "{second}"
    );
    // 0 turns it off.
    assert!(!run("0").contains(" done, "));
}

/// `--trace FILE`: Chrome trace-event JSON with a track per slot, a span
/// per test attempt on its slot's track, and the run's own steps.
#[test]
fn trace_writes_a_track_per_slot_and_a_span_per_attempt() {
    let p = Project::new();
    p.file(
        "partest.toml",
        &format!("{CONFIG}\n[setup]\ncommands = [\"true\"]\n"),
    );
    for i in 0..4 {
        p.file(&format!("t/ok{i}.sh"), "sleep 0.1\n");
    }
    p.file("t/bad.sh", "exit 1\n");
    let out = p.run(&[
        "run",
        "-n",
        "2",
        "--retries",
        "1",
        "--trace",
        "out/trace.json",
    ]);
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    let text = std::fs::read_to_string(p.path().join("out/trace.json")).expect("the trace");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    let tracks: std::collections::BTreeMap<u64, String> = events
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        tracks.values().cloned().collect::<Vec<_>>(),
        ["run", "gw0", "gw1"],
        "{tracks:?}"
    );
    let tests: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "test")
        .collect();
    // 4 passes and the failing test's 2 attempts, each on a slot's track.
    assert_eq!(tests.len(), 6, "{text}");
    for t in &tests {
        let tid = t["tid"].as_u64().unwrap();
        assert!(tid == 1 || tid == 2, "{t}");
        assert!(t["dur"].as_u64().unwrap() > 0 && t["ts"].is_u64(), "{t}");
    }
    let bad: Vec<u64> = tests
        .iter()
        .filter(|t| t["name"] == "t/bad.sh")
        .map(|t| t["args"]["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(bad, [1, 2]);
    let steps: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["tid"] == 0)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for step in ["plugins: setup-run", "[setup] true", "teardown"] {
        assert!(steps.contains(&step), "{step} missing from {steps:?}");
    }
}
