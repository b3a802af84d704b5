//! Set-ups kept across runs (`[setup] inputs`) end to end, on the built-in
//! sqlite plugin and the sqlite3 program: a run reuses what an earlier run
//! built while its inputs are unchanged, rebuilds when one changes, builds
//! once when two runs start together, keeps nothing when a setup command
//! fails, and `partest clean` removes kept set-ups only with `--templates`.

use std::process::Stdio;

use partest_e2e::*;

/// A project whose setup command migrates the sqlite template from
/// `migrations/*.sql` (and notes each build in `log/builds`), and whose
/// test checks its slot's database holds the migrated rows.
fn project(extra_setup: &str) -> Project {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!(
            "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {{}}\"\n\n[plugins.sqlite]\n\n\
             [setup]\ninputs = [\"migrations/*.sql\"]\n\
             commands = [\"cat migrations/*.sql | sqlite3 \\\"$PARTEST_SQLITE_TEMPLATE\\\" && echo built >> {log}/builds\"]\n{extra_setup}",
            log = log.display()
        ),
    );
    p.file(
        "migrations/0001.sql",
        "CREATE TABLE items (name TEXT); INSERT INTO items VALUES ('a'), ('b');\n",
    );
    p.file(
        "t/rows.sh",
        "test \"$(sqlite3 \"$PARTEST_SQLITE_PATH\" 'SELECT count(*) FROM items')\" = \"$(cat expected)\"\n",
    );
    p.file("expected", "2\n");
    p
}

fn builds(p: &Project) -> usize {
    std::fs::read_to_string(p.log_dir().join("builds"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The run's `setup` event: (outcome, key).
fn setup_event(run: &Run) -> (String, String) {
    let events: Vec<_> = run.of_type("setup").collect();
    assert_eq!(events.len(), 1, "one setup event: {}", run.both());
    (
        events[0]["outcome"].as_str().expect("outcome").to_string(),
        events[0]["key"].as_str().expect("key").to_string(),
    )
}

fn run_passes(p: &Project, args: &[&str]) -> Run {
    let run = p.run_json(args);
    assert_eq!(run.passed().len(), 1, "{}", run.both());
    run
}

#[test]
fn a_kept_setup_is_reused_until_an_input_changes() {
    let p = project("");
    let first = run_passes(&p, &["run", "-n", "2"]);
    let (outcome, key) = setup_event(&first);
    assert_eq!(outcome, "built");
    assert_eq!(builds(&p), 1);

    // Unchanged inputs: the commands do not run, the slots are still migrated.
    for _ in 0..2 {
        let again = run_passes(&p, &["run", "-n", "2"]);
        assert_eq!(setup_event(&again), ("reused".to_string(), key.clone()));
        assert_eq!(builds(&p), 1, "{}", again.both());
    }

    // A changed input: built again under another key.
    p.file("migrations/0002.sql", "INSERT INTO items VALUES ('c');\n");
    p.file("expected", "3\n");
    let changed = run_passes(&p, &["run", "-n", "2"]);
    let (outcome, new_key) = setup_event(&changed);
    assert_eq!(outcome, "built");
    assert_ne!(new_key, key);
    assert_eq!(builds(&p), 2);

    // --fresh-setup builds once more, under the same key; then it is reused.
    let fresh = run_passes(&p, &["run", "-n", "1", "--fresh-setup"]);
    assert_eq!(setup_event(&fresh), ("built".to_string(), new_key.clone()));
    assert_eq!(builds(&p), 3);
    let reused = run_passes(&p, &["run", "-n", "1"]);
    assert_eq!(setup_event(&reused), ("reused".to_string(), new_key));

    // The human header says so.
    let human = p.run(&["run", "-n", "1"]);
    assert_eq!(human.status.code(), Some(0), "{}", both(&human));
    assert!(
        both(&human).contains("setup reused (key"),
        "{}",
        both(&human)
    );
}

#[test]
fn a_failing_setup_command_keeps_nothing() {
    let p = project("");
    // The migration half-applies, then fails.
    p.file(
        "migrations/0002.sql",
        "INSERT INTO items VALUES ('c'); THIS IS NOT SQL;\n",
    );
    let failed = p.run_json(&["run", "-n", "1"]);
    assert_eq!(failed.code(), Some(3), "{}", failed.both());
    assert_eq!(failed.of_type("setup").count(), 0, "{}", failed.both());
    let listed = p.run(&["clean", "--dry-run"]);
    assert!(
        !stdout(&listed).contains("kept across runs"),
        "a failed set-up was kept: {}",
        both(&listed)
    );
    // Fixed, it builds from scratch (nothing half-built is reused).
    p.file("migrations/0002.sql", "INSERT INTO items VALUES ('c');\n");
    p.file("expected", "3\n");
    let fixed = run_passes(&p, &["run", "-n", "1"]);
    assert_eq!(setup_event(&fixed).0, "built");
}

#[test]
fn two_runs_that_start_together_build_once() {
    // A slow migration, so that the second run arrives while the first builds.
    let p = project("");
    p.file("migrations/0000.sql", ".shell sleep 2\n");
    let start = || {
        partest(p.path())
            .args(["run", "-n", "1", "--message-format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start partest")
    };
    let (a, b) = (start(), start());
    let runs = [a, b].map(|c| Run::parse(c.wait_with_output().expect("wait")));
    let mut outcomes: Vec<String> = runs
        .iter()
        .map(|r| {
            assert_eq!(r.passed().len(), 1, "{}", r.both());
            setup_event(r).0
        })
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["built", "reused"]);
    assert_eq!(builds(&p), 1);
}

#[test]
fn clean_removes_kept_setups_only_with_templates_and_keep_bounds_them() {
    let p = project("keep = 2\n");
    // Three inputs in turn: three builds, of which two stay.
    for n in 3..6 {
        p.file(
            "migrations/0002.sql",
            &format!("DELETE FROM items; INSERT INTO items SELECT 'x' FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5) LIMIT {n};\n"),
        );
        p.file("expected", &format!("{n}\n"));
        assert_eq!(setup_event(&run_passes(&p, &["run", "-n", "1"])).0, "built");
    }
    let kept_lines = |out: &std::process::Output| {
        stdout(out)
            .lines()
            .filter(|l| l.contains("set-up ") && l.contains("built"))
            .count()
    };
    let listed = p.run(&["clean", "--dry-run"]);
    assert_eq!(kept_lines(&listed), 2, "{}", both(&listed));

    // A plain clean leaves them: the next run still reuses.
    let cleaned = p.run(&["clean", "--yes"]);
    assert_eq!(cleaned.status.code(), Some(0), "{}", both(&cleaned));
    assert!(
        stdout(&cleaned).contains("removed only with --templates"),
        "{}",
        both(&cleaned)
    );
    assert_eq!(
        setup_event(&run_passes(&p, &["run", "-n", "1"])).0,
        "reused"
    );

    // --templates removes them: the next run builds.
    let removed = p.run(&["clean", "--yes", "--templates"]);
    assert_eq!(removed.status.code(), Some(0), "{}", both(&removed));
    assert_eq!(
        stdout(&removed).matches("removed set-up").count(),
        2,
        "{}",
        both(&removed)
    );
    assert_eq!(kept_lines(&p.run(&["clean", "--dry-run"])), 0);
    assert_eq!(setup_event(&run_passes(&p, &["run", "-n", "1"])).0, "built");

    // `partest report` names the key and what is kept.
    let report = p.run(&["report"]);
    let text = stdout(&report);
    assert!(text.contains("setup: key "), "{}", both(&report));
    assert!(text.contains("sqlite keeps 1 of 2"), "{}", both(&report));
}
