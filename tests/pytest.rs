//! The pytest adapter on a real fixture project: collection, serial markers,
//! batches, per-test outcomes from JUnit. Needs pytest: CI installs it; on a
//! laptop without it these tests say so and pass.

use std::path::PathBuf;
use std::process::Command;

use partest_e2e::*;

fn fixture() -> PathBuf {
    workspace().join("tests/fixtures/pytest-project")
}

fn have_pytest() -> bool {
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

fn run(args: &[&str], log: &std::path::Path, extra_env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = partest(&fixture());
    cmd.args(args)
        .env("FIXTURE_LOG", log)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("running partest")
}

#[test]
fn batches_run_in_parallel_and_serial_markers_run_alone() {
    if !have_pytest() {
        return;
    }
    let log = tempfile::tempdir().unwrap();
    let out = run(&["run", "-n", "2"], log.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("14 passed, 0 failed, 1 skipped"), "{text}");
    assert!(
        text.contains("tests/test_math.py::TestStrings::test_upper"),
        "{text}"
    );
    assert!(
        text.contains("tests/test_math.py::test_square[3]"),
        "{text}"
    );
    let t = traces(log.path());
    assert_eq!(t.len(), 14, "{t:?}");
    let serial: Vec<&Trace> = t.iter().filter(|t| t.name.contains("alone")).collect();
    assert_eq!(serial.len(), 2);
    for s in &serial {
        assert_eq!(s.worker, "gw0");
        for other in t.iter().filter(|o| o.name != s.name) {
            assert!(!overlaps(s, other), "{s:?} overlapped {other:?}");
        }
    }
    // Batches: fewer pytest processes than tests; both slots used.
    let pids: std::collections::BTreeSet<&String> = t.iter().map(|t| &t.extra[0]).collect();
    assert!(pids.len() < t.len(), "each test had its own process: {t:?}");
    let workers: std::collections::BTreeSet<&str> = t.iter().map(|t| t.worker.as_str()).collect();
    assert!(workers.contains("gw0") && workers.contains("gw1"), "{t:?}");
}

#[test]
fn a_failing_test_in_a_batch_is_reported_alone() {
    if !have_pytest() {
        return;
    }
    let log = tempfile::tempdir().unwrap();
    let out = run(&["run", "-n", "2"], log.path(), &[("FIXTURE_FAIL", "1")]);
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("13 passed, 1 failed, 1 skipped"), "{text}");
    assert!(
        text.contains("FAIL") && text.contains("test_fails_on_request"),
        "{text}"
    );
    assert!(text.contains("asked to fail"), "{text}");
}

#[test]
fn list_shows_serial_tests_from_markers() {
    if !have_pytest() {
        return;
    }
    let log = tempfile::tempdir().unwrap();
    let out = run(&["list", "-n", "2"], log.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("serial: 2 tests"), "{text}");
    let serial_part = &text[text.find("serial:").unwrap()..];
    assert!(
        serial_part.contains("test_migration_alone")
            && serial_part.contains("test_global_state_alone"),
        "{text}"
    );
}
