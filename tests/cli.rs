//! Bad input gets a message naming what and where, and exit 2; `report`
//! shows the factors behind the worker count.

use partest_e2e::*;

#[test]
fn config_errors_name_the_file_and_the_key_and_exit_2() {
    let p = Project::new();
    p.file("partest.toml", "[run]\nworkers = 0\n");
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let err = stderr(&out);
    assert!(
        err.contains("partest.toml") && err.contains("workers") && err.contains("≥ 1"),
        "{err}"
    );

    p.file(
        "partest.toml",
        "[command]\ntests = [\"*.sh\"]\nrunn = \"sh {}\"\n",
    );
    let out = p.run(&["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("runn") && stderr(&out).contains("line 3"),
        "{}",
        both(&out)
    );
}

#[test]
fn bad_flags_exit_2_without_a_panic() {
    let p = Project::new();
    for args in [
        &["run", "-n", "zero"][..],
        &["run", "--timeout", "soon"],
        &["run", "--bogus"],
        &["frobnicate"],
    ] {
        let out = p.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", both(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", both(&out));
    }
    let out = p.run(&["-C", "/no/such/dir", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/no/such/dir"));
}

#[test]
fn no_config_and_no_project_says_how_to_choose_an_adapter() {
    let p = Project::new();
    let out = p.run(&["list"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("[run] adapter"), "{}", both(&out));
}

#[test]
fn report_marks_the_binding_factor() {
    let p = Project::new();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\n[limits]\nci-max-workers = 1\n",
    );
    p.file("t/a.sh", "true\n");
    p.file("t/b.sh", "true\n");
    p.file("t/c.sh", "true\n");
    let out = partest(p.path())
        .env("CI", "true")
        .args(["report"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    for factor in [
        "usable cores",
        "memory ÷ memory-per-worker",
        "CI cap",
        "container cap",
        "tests",
    ] {
        assert!(text.contains(factor), "{factor} missing:\n{text}");
    }
    assert!(text.contains("workers = 1  (bound by: CI cap)"), "{text}");
    let out = p.run(&["report", "--profile", "integration"]);
    assert!(
        stdout(&out).contains("workers = 2 (profile integration)"),
        "{}",
        both(&out)
    );
}

#[test]
fn json_events_are_one_object_per_line() {
    let p = Project::new();
    p.file("partest.toml", "[command]\ntests = [\"t/*.sh\"]\n");
    p.file("t/a.sh", "true\n");
    p.file("t/b.sh", "false\n");
    let out = p.run(&["run", "-n", "2", "--message-format", "json"]);
    assert_eq!(out.status.code(), Some(100));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "test-finished")
        .collect();
    assert_eq!(finished.len(), 2);
    assert!(
        finished
            .iter()
            .any(|e| e["test"] == "t/b.sh" && e["status"] == "fail")
    );
    let last = events.last().unwrap();
    assert_eq!(
        (
            last["type"].as_str(),
            last["passed"].as_u64(),
            last["failed"].as_u64()
        ),
        (Some("run-finished"), Some(1), Some(1))
    );
}

#[test]
fn history_orders_the_next_run_longest_first() {
    let p = Project::new();
    let log = p.log_dir();
    p.file("partest.toml", "[command]\ntests = [\"t/*.sh\"]\n");
    p.file("t/a_short.sh", &traced(&log, "short", "true"));
    p.file("t/z_long.sh", &traced(&log, "long", "sleep 0.5"));
    assert_eq!(p.run(&["run", "-n", "1"]).status.code(), Some(0));
    assert!(p.path().join(".partest/history.db").exists());
    let listed = p.list_json(&["list", "-n", "1"]);
    assert_eq!(
        listed.in_phase("parallel"),
        ["t/z_long.sh", "t/a_short.sh"],
        "the long test should be listed first now"
    );
    // A corrupt history is reported and ignored.
    std::fs::write(
        p.path().join(".partest/history.db"),
        "garbage garbage garbage garbage garbage",
    )
    .unwrap();
    let run = p.run_json(&["run", "-n", "1"]);
    assert_eq!(run.code(), Some(0), "{}", run.both());
    assert!(
        run.warnings()
            .iter()
            .any(|w| w.contains("history") && w.contains("unreadable")),
        "{}",
        run.both()
    );
}

/// `[run] exit-codes = "pytest"`: a CI script written for pytest sees 0, 1
/// for failed tests and 5 for none, where partest's own are 0, 100 and 4.
#[test]
fn exit_codes_pytest_maps_the_runs_outcome_to_pytests_codes() {
    let p = Project::new();
    let config = "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n";
    p.file("t/ok.sh", "true\n").file("t/bad.sh", "exit 1\n");
    let code = |extra: &str, args: &[&str]| {
        p.file(
            "partest.toml",
            &format!("{config}[run]\nadapter = \"command\"\n{extra}"),
        );
        let out = p.run(args);
        (out.status.code(), both(&out))
    };
    let cases: [(&[&str], i32, i32); 3] = [
        (&["run", "-n", "1", "ok"], 0, 0),
        (&["run", "-n", "1"], 100, 1),
        (&["run", "-n", "1", "no-such-test"], 4, 5),
    ];
    for (args, partest, pytest) in cases {
        let (got, out) = code("", args);
        assert_eq!(got, Some(partest), "{args:?}: {out}");
        let (got, out) = code("exit-codes = \"pytest\"\n", args);
        assert_eq!(got, Some(pytest), "{args:?}: {out}");
    }
}
