//! The diagnosis end to end: after the parallel phase, each test that
//! failed there runs again with nothing else running, on fresh slots, and
//! gets a verdict — fails alone, order-dependent (with the culprit found by
//! halving what its worker ran before it), concurrent (with the test that
//! ran beside it) or flaky — in JSON, JUnit and the human summary, for the
//! command and pytest adapters (cargo: tests/cargo.rs). The exit code stays
//! the run's.

use partest_e2e::*;

const CONFIG: &str = "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n";

/// `partest ARGS --message-format json` with the diagnosis on (the other
/// e2e tests turn it off).
fn run_diagnosed(p: &Project, args: &[&str]) -> Run {
    let out = partest(p.path())
        .args(json_args(args))
        .env_remove("PARTEST_NO_DIAGNOSE")
        .output()
        .expect("running partest");
    Run::parse(out)
}

fn verdict(run: &Run, test: &str) -> Diagnosed {
    run.diagnoses()
        .remove(test)
        .unwrap_or_else(|| panic!("no diagnosis of {test}: {}", run.both()))
}

#[test]
fn command_failures_get_a_verdict_and_the_polluter_is_found() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    // The polluter leaves a file in the slot's temp dir; the victim, run
    // after it on the same slot, trips over it.
    p.file("t/a_pollutes.sh", "touch \"$TMPDIR/polluted\"\n");
    p.file("t/b_other.sh", "true\n");
    p.file("t/c_victim.sh", "test ! -e \"$TMPDIR/polluted\"\n");
    p.file("t/d_broken.sh", "echo broken; exit 1\n");
    // Fails the first time it ever runs, then passes.
    p.file(
        "t/e_once.sh",
        "[ -e ran_before ] || { touch ran_before; exit 1; }\n",
    );
    let run = run_diagnosed(&p, &["run", "-n", "1", "--junit", "junit.xml"]);
    assert_eq!(
        run.code(),
        Some(100),
        "a failure is still a failure: {}",
        run.both()
    );
    let failed = run.with_status(Status::Fail);
    assert_eq!(
        failed.iter().map(String::as_str).collect::<Vec<_>>(),
        ["t/c_victim.sh", "t/d_broken.sh", "t/e_once.sh"],
        "{}",
        run.both()
    );

    let victim = verdict(&run, "t/c_victim.sh");
    assert_eq!(victim.verdict, "order-dependent", "{}", run.both());
    assert_eq!(victim.culprits, ["t/a_pollutes.sh"], "{}", run.both());
    // Alone, after both predecessors, then after the nearer half (passes)
    // and the farther one (fails).
    assert_eq!(victim.reruns, 4, "{}", run.both());

    let broken = verdict(&run, "t/d_broken.sh");
    assert_eq!(
        (
            broken.verdict.as_str(),
            broken.culprits.len(),
            broken.reruns
        ),
        ("fails-alone", 0, 1)
    );
    let once = verdict(&run, "t/e_once.sh");
    assert_eq!(once.verdict, "flaky", "{}", run.both());

    // JUnit carries the verdict on the test case.
    let junit = read_junit(&p.path().join("junit.xml"));
    let props = &junit.case("t/c_victim.sh").properties;
    assert!(
        props.contains(&("partest.diagnosis.verdict".into(), "order-dependent".into()))
            && props.contains(&(
                "partest.diagnosis.culprits".into(),
                "t/a_pollutes.sh".into()
            )),
        "{props:?}"
    );
    // The results of the trials are not the run's: one attempt each.
    assert_eq!(run.of_type("test-finished").count(), 5, "{}", run.both());

    // Later, from the run's record: the same verdicts, one test or all.
    let later = run_diagnosed(&p, &["diagnose", "t/c_victim.sh"]);
    assert_eq!(later.code(), Some(0), "{}", later.both());
    assert_eq!(later.diagnoses().len(), 1, "{}", later.both());
    assert_eq!(verdict(&later, "t/c_victim.sh"), victim);
    let later = run_diagnosed(&p, &["diagnose"]);
    assert_eq!(later.code(), Some(0), "{}", later.both());
    assert_eq!(
        later
            .diagnoses()
            .iter()
            .map(|(t, d)| (t.as_str(), d.verdict.as_str()))
            .collect::<Vec<_>>(),
        [
            ("t/c_victim.sh", "order-dependent"),
            ("t/d_broken.sh", "fails-alone"),
            ("t/e_once.sh", "flaky")
        ],
        "{}",
        later.both()
    );
    assert_eq!(
        later.of_type("test-finished").count(),
        0,
        "{}",
        later.both()
    );
    // A test that did not fail is named as such.
    let out = p.run(&["diagnose", "t/b_other.sh"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stderr(&out).contains("t/b_other.sh did not fail"),
        "{}",
        both(&out)
    );
}

#[test]
fn diagnose_without_a_recorded_run_says_so() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    p.file(
        "t/a.sh", "true
",
    );
    let out = p.run(&["diagnose"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stderr(&out).contains("partest run` first"),
        "{}",
        both(&out)
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let out = p.run(&["diagnose"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        stderr(&out).contains("nothing to diagnose"),
        "{}",
        both(&out)
    );
}

#[test]
fn a_test_that_fails_beside_another_is_concurrent_with_it() {
    let p = Project::new();
    p.file("partest.toml", CONFIG);
    // Both use `busy` in the project root, which partest does not isolate.
    p.file("t/x_holds.sh", "touch busy; sleep 1.5; rm -f busy\n");
    p.file("t/y_victim.sh", "sleep 0.3; test ! -e busy\n");
    let run = run_diagnosed(&p, &["run", "-n", "2"]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    let d = verdict(&run, "t/y_victim.sh");
    assert_eq!(d.verdict, "concurrent", "{}", run.both());
    assert_eq!(d.culprits, ["t/x_holds.sh"], "{}", run.both());
    assert_eq!(run.diagnoses().len(), 1, "{}", run.both());

    // The human summary says why, with the advice.
    let out = partest(p.path())
        .args(["run", "-n", "2"])
        .env_remove("PARTEST_NO_DIAGNOSE")
        .output()
        .unwrap();
    let text = both(&out);
    assert_eq!(out.status.code(), Some(100), "{text}");
    assert!(text.contains("Why these failed"), "{text}");
    assert!(text.contains("t/x_holds.sh"), "{text}");
    assert!(text.contains("private-paths"), "{text}");
}

#[test]
fn the_budget_the_flag_and_fail_fast_are_honoured_and_said() {
    let p = Project::new();
    p.file(
        "partest.toml",
        &format!("{CONFIG}\n[diagnose]\nmax-tests = 1\n"),
    );
    p.file("t/a.sh", "exit 1\n");
    p.file("t/b.sh", "exit 1\n");
    let run = run_diagnosed(&p, &["run", "-n", "2"]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    assert_eq!(run.diagnoses().len(), 1, "{}", run.both());
    let left: Vec<_> = run.of_type("not-diagnosed").collect();
    assert_eq!(left.len(), 1, "{}", run.both());
    assert_eq!(left[0]["tests"].as_array().map(Vec::len), Some(1));
    assert!(
        left[0]["why"].as_str().unwrap().contains("max-tests"),
        "{}",
        run.both()
    );

    let run = run_diagnosed(&p, &["run", "-n", "2", "--no-diagnose"]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    assert_eq!(run.of_type("diagnosis").count(), 0, "{}", run.both());

    let run = run_diagnosed(&p, &["run", "-n", "1", "--fail-fast"]);
    assert_eq!(run.code(), Some(100), "{}", run.both());
    assert_eq!(run.of_type("diagnosis").count(), 0, "{}", run.both());
    let why: Vec<_> = run
        .of_type("not-diagnosed")
        .map(|e| e["why"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        why.iter().any(|w| w.contains("--fail-fast")),
        "{}",
        run.both()
    );

    p.file(
        "partest.toml",
        &format!("{CONFIG}\n[diagnose]\nenabled = false\n"),
    );
    let run = run_diagnosed(&p, &["run", "-n", "2"]);
    assert_eq!(run.of_type("diagnosis").count(), 0, "{}", run.both());
}

#[test]
fn pytest_failures_get_a_verdict_on_fresh_workers() {
    if !have_pytest() {
        return;
    }
    let p = Project::new();
    p.file("partest.toml", "[run]\nadapter = \"pytest\"\n");
    p.file("pytest.ini", "[pytest]\n");
    // A test that changes the worker process's environment for those after it.
    p.file(
        "test_order.py",
        "import os\n\n\
         def test_a_pollutes():\n    os.environ['POLLUTED'] = '1'\n\n\
         def test_b_other():\n    pass\n\n\
         def test_c_victim():\n    assert 'POLLUTED' not in os.environ\n\n\
         def test_d_broken():\n    assert 1 == 2\n",
    );
    for _ in 0..2 {
        // The second run has history: the verdicts stand.
        let run = run_diagnosed(&p, &["run", "-n", "1"]);
        assert_eq!(run.code(), Some(100), "{}", run.both());
        let victim = verdict(&run, "test_order.py::test_c_victim");
        assert_eq!(victim.verdict, "order-dependent", "{}", run.both());
        assert_eq!(
            victim.culprits,
            ["test_order.py::test_a_pollutes"],
            "{}",
            run.both()
        );
        let broken = verdict(&run, "test_order.py::test_d_broken");
        assert_eq!(broken.verdict, "fails-alone", "{}", run.both());
    }
}
