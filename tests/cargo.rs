//! The cargo adapter on a real fixture crate: build, list, one process per
//! test, `#[ignore]` honoured, failures reported.

use std::path::PathBuf;

use partest_e2e::*;

fn fixture() -> PathBuf {
    workspace().join("tests/fixtures/cargo-project")
}

fn fixture_target() -> PathBuf {
    target_dir().join("fixtures/cargo-project")
}

/// Builds the fixture once, so the tests (run concurrently) never race to
/// rebuild a binary another one is running.
fn built() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status =
            std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["test", "--no-run", "--quiet"])
                .current_dir(fixture())
                .env("CARGO_TARGET_DIR", fixture_target())
                .status()
                .expect("building the cargo fixture");
        assert!(status.success(), "the cargo fixture does not build");
    });
}

fn run(args: &[&str], log: &std::path::Path, extra_env: &[(&str, &str)]) -> std::process::Output {
    built();
    let mut cmd = partest(&fixture());
    cmd.args(args)
        .env(
            "CARGO_TARGET_DIR",
            target_dir().join("fixtures/cargo-project"),
        )
        .env("FIXTURE_LOG", log);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("running partest")
}

#[test]
fn runs_each_test_in_its_own_process_and_skips_ignored_ones() {
    let log = tempfile::tempdir().unwrap();
    let out = run(&["run", "-n", "2"], log.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    for name in [
        "cargo-fixture tests::adds",
        "cargo-fixture::integration nested::three",
        "cargo-fixture::integration one",
    ] {
        assert!(text.contains(name), "{name} not reported:\n{text}");
    }
    assert!(
        text.contains("SKIP") && text.contains("tests::ignored_slow"),
        "{text}"
    );
    assert!(
        !log.path().join("ignored_ran").exists(),
        "an ignored test ran"
    );
    assert!(text.contains("6 passed, 0 failed, 1 skipped"), "{text}");
    let t = traces(log.path());
    assert_eq!(t.len(), 3, "{t:?}");
    let pids: std::collections::BTreeSet<&String> = t.iter().map(|t| &t.extra[0]).collect();
    assert_eq!(pids.len(), 3, "one process per test: {t:?}");
}

#[test]
fn run_ignored_runs_them_and_failures_exit_100() {
    let log = tempfile::tempdir().unwrap();
    let out = run(
        &["run", "-n", "2", "--run-ignored", "ignored_slow"],
        log.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        log.path().join("ignored_ran").exists(),
        "--run-ignored did not run it: {}",
        both(&out)
    );

    let out = run(&["run", "-n", "2"], log.path(), &[("FIXTURE_FAIL", "1")]);
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL") && text.contains("fails_on_request"),
        "{text}"
    );
    assert!(
        text.contains("asked to fail"),
        "the test's panic message is shown:\n{text}"
    );
}

#[test]
fn list_shows_phases_and_ignored_tests() {
    let log = tempfile::tempdir().unwrap();
    let out = run(&["list", "-n", "2"], log.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("parallel: 6 tests on 2 workers"), "{text}");
    assert!(text.contains("skipped: 1 ignored"), "{text}");
}
