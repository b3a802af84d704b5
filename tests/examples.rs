//! The README's main job: the quickstart example with the embedded default
//! isolation (temp dirs + the built-in sqlite plugin), no server needed.

use partest_e2e::*;

/// Both tests run partest in examples/quickstart, and one checks that no
/// slot database is left there: one at a time.
static QUICKSTART: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_quickstart_example_passes_with_a_database_per_slot() {
    let _one_at_a_time = QUICKSTART.lock().unwrap_or_else(|e| e.into_inner());
    let dir = workspace().join("examples/quickstart");
    let run = Run::parse(
        partest(&dir)
            .args(json_args(&["run", "-n", "2"]))
            .output()
            .unwrap(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.both());
    assert_eq!(run.passed_and_failed(), (9, 0), "{}", run.both());
    assert_eq!(
        run.of_type("setup-command").count(),
        1,
        "the template was migrated once: {}",
        run.both()
    );
    // Teardown removed every slot database.
    let left: Vec<_> = files_under(&dir.join(".partest/plugins"))
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with(".db"))
        .collect();
    assert!(left.is_empty(), "slot databases left behind: {left:?}");
}

#[test]
fn the_readmes_first_command_runs_as_written() {
    // The README's command for a fresh machine, run as written (through
    // cargo, not the built binary), so that what a new user types first
    // keeps working: it broke once when a second binary made `cargo run
    // -p partest` ambiguous.
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo run -p partest"))
        .expect("the README gives a `cargo run -p partest` command");
    let words: Vec<&str> = line.split_whitespace().collect();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let _one_at_a_time = QUICKSTART.lock().unwrap_or_else(|e| e.into_inner());
    // As written, with the JSON format added at the end to read the outcome.
    let run = Run::parse(
        std::process::Command::new(cargo)
            .args(&words[1..])
            .args(["--message-format", "json"])
            .current_dir(workspace())
            .output()
            .unwrap(),
    );
    assert_eq!(run.code(), Some(0), "{line}: {}", run.both());
    assert_eq!(run.passed_and_failed(), (9, 0), "{}", run.both());
}
