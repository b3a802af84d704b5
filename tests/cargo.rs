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
    let run = Run::parse(run(&json_args(&["run", "-n", "2"]), log.path(), &[]));
    assert_eq!(run.code(), Some(0), "{}", run.both());
    let passed = run.with_status(Status::Pass);
    for name in [
        "cargo-fixture tests::adds",
        "cargo-fixture::integration nested::three",
        "cargo-fixture::integration one",
    ] {
        assert!(passed.contains(name), "{name} did not pass: {passed:?}");
    }
    let skipped = run.with_status(Status::Skip);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped.iter().all(|t| t.ends_with("tests::ignored_slow")),
        "{skipped:?}"
    );
    assert!(
        !log.path().join("ignored_ran").exists(),
        "an ignored test ran"
    );
    let counts = run.counts();
    assert_eq!(
        (counts.passed, counts.failures(), counts.skipped),
        (6, 0, 1),
        "{counts:?}"
    );
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

    // With the diagnosis on: the failure is examined alone, and is real.
    let run = Run::parse(run(
        &json_args(&["run", "-n", "2"]),
        log.path(),
        &[("FIXTURE_FAIL", "1"), ("PARTEST_NO_DIAGNOSE", "0")],
    ));
    assert_eq!(run.code(), Some(100), "{}", run.both());
    let failed = run.with_status(Status::Fail);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let name = failed.first().unwrap();
    assert!(name.ends_with("fails_on_request"), "{failed:?}");
    assert!(
        run.last_attempt(name).text().contains("asked to fail"),
        "the test's panic message is kept: {}",
        run.both()
    );
    let diagnoses = run.diagnoses();
    assert_eq!(
        diagnoses.get(name).map(|d| d.verdict.as_str()),
        Some("fails-alone"),
        "{}",
        run.both()
    );
}

#[test]
fn list_shows_phases_and_ignored_tests() {
    let log = tempfile::tempdir().unwrap();
    let listed = Listed::parse(&run(&json_args(&["list", "-n", "2"]), log.path(), &[]));
    assert_eq!(listed.in_phase("parallel").len(), 6, "{listed:?}");
    let skipped = listed.in_phase("skipped");
    assert_eq!(skipped.len(), 1, "{listed:?}");
    assert!(skipped[0].ends_with("tests::ignored_slow"), "{listed:?}");
    assert!(listed.in_phase("serial").is_empty(), "{listed:?}");
}

// --- A real-shaped workspace: proc-macro member, features, a doctest, a
// custom harness, a leaky test (issue 11). ---

fn workspace_fixture() -> PathBuf {
    workspace().join("tests/fixtures/cargo-workspace")
}

fn workspace_target() -> PathBuf {
    target_dir().join("fixtures/cargo-workspace")
}

/// Builds the workspace fixture once (with and without its feature), so
/// concurrent tests never rebuild a binary another one runs.
fn workspace_built() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        for extra in [&[][..], &["--features", "ws-app/extra"][..]] {
            let status = std::process::Command::new(
                std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            )
            .args(["test", "--no-run", "--quiet", "--workspace"])
            .args(extra)
            .current_dir(workspace_fixture())
            .env("CARGO_TARGET_DIR", workspace_target())
            .status()
            .expect("building the workspace fixture");
            assert!(status.success(), "the workspace fixture does not build");
        }
    });
}

fn ws_run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    workspace_built();
    let mut cmd = partest(&workspace_fixture());
    cmd.args(args)
        .env("CARGO_TARGET_DIR", workspace_target())
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("WS_LEAK")
        .env_remove("WS_FAIL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running partest")
}

#[test]
fn a_proc_macro_workspace_runs_with_cargos_library_path_and_variables() {
    let run = Run::parse(ws_run(&json_args(&["run", "-n", "2"]), &[]));
    assert_eq!(run.code(), Some(0), "{}", run.both());
    let passed = run.with_status(Status::Pass);
    // The custom harness runs whole, with a warning naming it and why.
    for name in [
        "ws-macros tests::macro_crate_tests_run",
        "ws-app tests::uses_the_macro",
        "ws-app tests::sees_cargo_variables",
        "ws-app::custom",
    ] {
        assert!(passed.contains(name), "{name} did not pass: {passed:?}");
    }
    let err = run.stderr();
    assert!(
        err.contains("ws-app::custom") && err.contains("cannot list its tests"),
        "{err}"
    );
    // Doctests are not run without --doctests, and the summary says so.
    let note = run.counts().note.unwrap_or_default();
    assert!(
        note.contains("doctests not run (2 libraries have them; --doctests runs them)"),
        "{note}"
    );
    // .partest/ keeps itself out of git status.
    let ignore = std::fs::read_to_string(workspace_fixture().join(".partest/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
}

#[test]
fn filtersets_skip_exact_and_cargo_flags_select_as_nextest_and_libtest() {
    // The tests that passed; none failed.
    let passed = |args: &[&str]| Run::parse(ws_run(&json_args(args), &[])).passed();
    let both_slow = passed(&["run", "-E", "package(ws-app) and test(slow)"]);
    assert_eq!(both_slow.len(), 2, "{both_slow:?}");
    assert!(
        both_slow.iter().all(|t| t.contains("tests::slow_")),
        "{both_slow:?}"
    );

    let one = passed(&[
        "run",
        "-E",
        "test(/^tests::slow_(one|two)$/) - test(=tests::slow_two)",
    ]);
    assert_eq!(one.len(), 1, "{one:?}");
    assert!(
        one.iter().all(|t| t.ends_with("tests::slow_one")),
        "{one:?}"
    );

    // `-- --skip slow` leaves the slow tests out, as libtest does.
    let lib = passed(&["run", "-p", "ws-app", "--lib", "--", "--skip", "slow"]);
    assert!(!lib.iter().any(|t| t.contains("slow_one")), "{lib:?}");
    assert!(lib.contains("ws-app tests::uses_the_macro"), "{lib:?}");

    let exact = passed(&["run", "--exact", "tests::slow_one"]);
    assert_eq!(exact.len(), 1, "{exact:?}");

    // -p picks the package: the proc-macro crate's one test.
    assert_eq!(
        passed(&["run", "-p", "ws-macros"]),
        ["ws-macros tests::macro_crate_tests_run".to_string()].into()
    );

    // --features reaches the build.
    let out = ws_run(&["run", "-E", "test(extra_feature)"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
    let extra = passed(&[
        "run",
        "--features",
        "ws-app/extra",
        "-E",
        "test(extra_feature)",
    ]);
    assert_eq!(extra.len(), 1, "{extra:?}");

    // Nothing matched is not green; a bad filterset is a usage error.
    let out = ws_run(&["run", "nonexistent"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
    assert!(stderr(&out).contains("no tests to run"), "{}", both(&out));
    let out = ws_run(&["run", "-E", "test(x) and"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
}

#[test]
fn doctests_run_as_one_unit_per_library_with_the_flag() {
    let run = Run::parse(ws_run(
        &json_args(&["run", "--doctests", "-E", "kind(doctest)"]),
        &[],
    ));
    assert_eq!(run.code(), Some(0), "{}", run.both());
    assert!(
        run.with_status(Status::Pass).contains("ws-app::doctests"),
        "{}",
        run.both()
    );
    let note = run.counts().note;
    assert!(
        !note.as_deref().unwrap_or("").contains("doctests not run"),
        "{note:?}"
    );
}

#[test]
fn junit_has_a_suite_per_binary_reruns_and_streams_apart_and_leaks_show() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let run = Run::parse(ws_run(
        &json_args(&[
            "run",
            "--retries",
            "1",
            "--junit",
            junit.to_str().unwrap(),
            "-E",
            "test(writes_both) | test(leaves) | test(uses_the_macro) | package(ws-macros)",
        ]),
        &[("WS_FAIL", "1"), ("WS_LEAK", "1")],
    ));
    assert_eq!(run.code(), Some(100), "{}", run.both());
    // The leaky test passed, leaving a process behind.
    let leaky = run.last_attempt("ws-app tests::leaves_a_process_when_asked");
    assert!(leaky.status == Status::Pass && leaky.leaked, "{leaky:?}");
    assert_eq!(
        run.outcomes()["ws-app tests::writes_both_streams"],
        Status::Fail,
        "{}",
        run.both()
    );
    let counts = run.counts();
    assert_eq!((counts.failed, counts.leaked), (1, 1), "{counts:?}");

    let junit = read_junit(&junit);
    let xml = &junit.xml;
    let mut names = junit.suite_names();
    names.sort();
    assert_eq!(
        names,
        ["ws-app", "ws-macros"],
        "one suite per binary: {xml}"
    );
    let allowed = [
        "name",
        "classname",
        "time",
        "timestamp",
        "assertions",
        "file",
        "line",
    ];
    for case in junit.cases() {
        for a in &case.attributes {
            assert!(
                allowed.contains(&a.as_str()),
                "non-standard attribute {a}: {xml}"
            );
        }
        assert!(case.classname.is_some(), "{xml}");
        assert!(case.time.is_some(), "{xml}");
    }
    let failing = junit.case("tests::writes_both_streams");
    assert_eq!(failing.classname.as_deref(), Some("ws-app"));
    assert_eq!(failing.result, CaseResult::Failed, "{xml}");
    assert_eq!(failing.message.as_deref(), Some("asked to fail"), "{xml}");
    assert_eq!(failing.kind.as_deref(), Some("test failure"), "{xml}");
    assert_eq!(failing.reruns, 1, "one rerun per retried attempt: {xml}");
    let out_text = failing.system_out.as_deref();
    let err_text = failing.system_err.as_deref();
    assert!(
        out_text.is_some_and(|t| t.contains("to stdout") && !t.contains("to stderr")),
        "{xml}"
    );
    assert!(
        err_text.is_some_and(|t| t.contains("to stderr") && !t.contains("to stdout")),
        "{xml}"
    );
}

#[test]
fn leak_fail_makes_a_leaky_test_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("partest.toml"),
        "[run]\nadapter = \"cargo\"\nleak = \"fail\"\n",
    )
    .unwrap();
    let manifest = workspace_fixture().join("Cargo.toml");
    let run = Run::parse(ws_run(
        &json_args(&[
            "--config",
            dir.path().join("partest.toml").to_str().unwrap(),
            "run",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "-E",
            "test(leaves)",
        ]),
        &[("WS_LEAK", "1")],
    ));
    assert_eq!(run.code(), Some(100), "{}", run.both());
    let leaky = run.last_attempt("ws-app tests::leaves_a_process_when_asked");
    assert!(leaky.status == Status::Fail && leaky.leaked, "{leaky:?}");
    assert_eq!(run.counts().leaked, 1, "{}", run.both());
    // The state dir is out of git's way there too.
    assert!(dir.path().join(".partest/.gitignore").is_file());
}

#[test]
fn ctrl_c_or_sigterm_during_the_build_stops_cargos_group_and_exits_130() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        interrupt_during_the_build(signal);
    }
}

fn interrupt_during_the_build(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("cargo.pid");
    let fake = dir.path().join("fake-cargo");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nsleep 60 &\necho $! > '{}.tmp'\nmv '{0}.tmp' '{0}'\nwait\n",
            pidfile.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let child = partest(&workspace_fixture())
        .args(["run"])
        .env("CARGO", &fake)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !pidfile.exists() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("the fake cargo started")
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signalling the partest process we spawned.
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "signal {signal}: {}",
        both(&out)
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !pid_alive(pid),
        "signal {signal}: cargo's child {pid} outlived the interrupt"
    );
}

#[test]
fn cargo_partest_works_as_a_cargo_subcommand() {
    built();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "partest",
            "--bin",
            "cargo-partest",
        ])
        .current_dir(workspace())
        .status()
        .expect("building cargo-partest");
    assert!(status.success());
    let bin_dir = target_dir().join("debug");
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let out = std::process::Command::new(&cargo)
        .args(json_args(&[
            "partest",
            "list",
            "-n",
            "2",
            "--",
            "--skip",
            "fails_on_request",
        ]))
        .current_dir(fixture())
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", fixture_target())
        .env("PARTEST_RUNS_DIR", target_dir().join("partest-e2e-runs"))
        .output()
        .unwrap();
    let listed = Listed::parse(&out);
    let parallel = listed.in_phase("parallel");
    assert_eq!(parallel.len(), 5, "{listed:?}");
    assert!(
        !parallel.iter().any(|t| t.contains("fails_on_request")),
        "{listed:?}"
    );
}
