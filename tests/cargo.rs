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
    let out = ws_run(&["run", "-n", "2"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    for name in [
        "ws-macros tests::macro_crate_tests_run",
        "ws-app tests::uses_the_macro",
        "ws-app tests::sees_cargo_variables",
    ] {
        assert!(
            text.lines().any(|l| l.contains("PASS") && l.contains(name)),
            "{name} did not pass:\n{text}"
        );
    }
    // The custom harness runs whole, with a warning naming it and why.
    assert!(
        text.lines()
            .any(|l| l.contains("PASS") && l.ends_with("ws-app::custom")),
        "{text}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("ws-app::custom") && err.contains("cannot list its tests"),
        "{err}"
    );
    // Doctests are not run without --doctests, and the summary says so.
    assert!(
        text.contains("doctests not run (2 libraries have them; --doctests runs them)"),
        "{text}"
    );
    // .partest/ keeps itself out of git status.
    let ignore = std::fs::read_to_string(workspace_fixture().join(".partest/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
}

#[test]
fn filtersets_skip_exact_and_cargo_flags_select_as_nextest_and_libtest() {
    let passed = |out: &std::process::Output| -> String {
        let text = stdout(out);
        text.lines()
            .find(|l| l.starts_with("Summary"))
            .unwrap_or_else(|| panic!("no summary:\n{}", both(out)))
            .to_string()
    };
    let out = ws_run(&["run", "-E", "package(ws-app) and test(slow)"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        passed(&out).contains(" 2 passed, 0 failed"),
        "{}",
        both(&out)
    );

    let out = ws_run(
        &[
            "run",
            "-E",
            "test(/^tests::slow_(one|two)$/) - test(=tests::slow_two)",
        ],
        &[],
    );
    assert!(passed(&out).contains(" 1 passed,"), "{}", both(&out));

    // `-- --skip slow` leaves the slow tests out, as libtest does.
    let out = ws_run(
        &["run", "-p", "ws-app", "--lib", "--", "--skip", "slow"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(!stdout(&out).contains("slow_one"), "{}", both(&out));
    assert!(
        stdout(&out).contains("tests::uses_the_macro"),
        "{}",
        both(&out)
    );

    let out = ws_run(&["run", "--exact", "tests::slow_one"], &[]);
    assert!(passed(&out).contains(" 1 passed,"), "{}", both(&out));

    // -p picks the package: the proc-macro crate's one test.
    let out = ws_run(&["run", "-p", "ws-macros"], &[]);
    assert!(passed(&out).contains(" 1 passed,"), "{}", both(&out));

    // --features reaches the build.
    let out = ws_run(&["run", "-E", "test(extra_feature)"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
    let out = ws_run(
        &[
            "run",
            "--features",
            "ws-app/extra",
            "-E",
            "test(extra_feature)",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(passed(&out).contains(" 1 passed,"), "{}", both(&out));

    // Nothing matched is not green; a bad filterset is a usage error.
    let out = ws_run(&["run", "nonexistent"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
    assert!(stderr(&out).contains("no tests to run"), "{}", both(&out));
    let out = ws_run(&["run", "-E", "test(x) and"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
}

#[test]
fn doctests_run_as_one_unit_per_library_with_the_flag() {
    let out = ws_run(&["run", "--doctests", "-E", "kind(doctest)"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.contains("PASS") && l.ends_with("ws-app::doctests")),
        "{text}"
    );
    assert!(!text.contains("doctests not run"), "{text}");
}

#[test]
fn junit_has_a_suite_per_binary_reruns_and_streams_apart_and_leaks_show() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let out = ws_run(
        &[
            "run",
            "--retries",
            "1",
            "--junit",
            junit.to_str().unwrap(),
            "-E",
            "test(writes_both) | test(leaves) | test(uses_the_macro) | package(ws-macros)",
        ],
        &[("WS_FAIL", "1"), ("WS_LEAK", "1")],
    );
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.contains("LEAK") && l.contains("leaves_a_process_when_asked")),
        "{text}"
    );
    // The failures again, under the summary.
    let summary_at = text.find("\nSummary").expect("a summary");
    assert!(
        text[summary_at..].contains("FAIL")
            && text[summary_at..].contains("tests::writes_both_streams"),
        "{text}"
    );
    assert!(text[summary_at..].contains("1 leaky"), "{text}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<&str> = suites.iter().filter_map(|s| s.attribute("name")).collect();
    assert_eq!(names.len(), 2, "one suite per binary: {names:?}\n{xml}");
    assert!(
        names.contains(&"ws-app") && names.contains(&"ws-macros"),
        "{names:?}"
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
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        for a in case.attributes() {
            assert!(
                allowed.contains(&a.name()),
                "non-standard attribute {}: {xml}",
                a.name()
            );
        }
        assert!(case.attribute("classname").is_some(), "{xml}");
        assert!(case.attribute("time").is_some(), "{xml}");
    }
    let failing = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase") && n.attribute("name") == Some("tests::writes_both_streams")
        })
        .expect("the failing test is reported");
    assert_eq!(failing.attribute("classname"), Some("ws-app"));
    let failure = failing
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("<failure>");
    assert_eq!(failure.attribute("message"), Some("asked to fail"), "{xml}");
    assert_eq!(failure.attribute("type"), Some("test failure"), "{xml}");
    assert_eq!(
        failing
            .children()
            .filter(|n| n.has_tag_name("rerunFailure"))
            .count(),
        1,
        "one rerun per retried attempt: {xml}"
    );
    let out_text = failing
        .children()
        .find(|n| n.has_tag_name("system-out"))
        .and_then(|n| n.text());
    let err_text = failing
        .children()
        .find(|n| n.has_tag_name("system-err"))
        .and_then(|n| n.text());
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
    let out = ws_run(
        &[
            "--config",
            dir.path().join("partest.toml").to_str().unwrap(),
            "run",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "-E",
            "test(leaves)",
        ],
        &[("WS_LEAK", "1")],
    );
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    assert!(stdout(&out).contains("LEAK-FAIL"), "{}", both(&out));
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
        .args([
            "partest",
            "list",
            "-n",
            "2",
            "--",
            "--skip",
            "fails_on_request",
        ])
        .current_dir(fixture())
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", fixture_target())
        .env("PARTEST_RUNS_DIR", target_dir().join("partest-e2e-runs"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("parallel: 5 tests on 2 workers"), "{text}");
}
