//! The human output's wording, whole, in one place: snapshots of
//! representative runs (a passing pytest run, a run with a failure, a retry
//! and a timeout, a cargo run, `partest list`). Every other e2e test asserts
//! on the JSON events, the JUnit file and what runs leave on disk, so a
//! reworded line shows here, once, as a snapshot diff to review and accept
//! (`cargo insta review`, or INSTA_UPDATE=always), never as a broken
//! assertion elsewhere.
//!
//! One worker, fresh projects (no history to reorder them): the lines come
//! in one order. Durations, run ids and temp paths are filtered out, and
//! the names in the "Slowest" lines, which are chosen by measured time.

use std::path::PathBuf;
use std::process::Output;

use partest_e2e::*;

/// Filters for what changes from run to run.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\[ *\d+\.\d{3}s\]", "[DURATION]"),
        (r"\[run [0-9a-z]+\]", "[run RUN_ID]"),
        (r"/tmp/partest-e2e-[^/\s]+", "[PROJECT]"),
        (r"pid \d+", "pid PID"),
    ]
}

/// stdout, with the "Slowest:" block's names left out: which tests it
/// names and in which order depends on measured time.
fn stable(text: &str) -> String {
    let Some(at) = text.find("Slowest:\n") else {
        return text.to_string();
    };
    let (head, block) = text.split_at(at + "Slowest:\n".len());
    let mut out = head.to_string();
    for line in block.lines() {
        if line.starts_with("  ") && line.contains("s] ") {
            out.push_str("  [DURATION] [TEST]\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The exit code, stdout and (when `with_stderr`) stderr, as one text.
fn shown(out: &Output, with_stderr: bool) -> String {
    let mut text = format!(
        "exit code: {:?}\n--- stdout\n{}",
        out.status.code(),
        stable(&stdout(out))
    );
    if with_stderr {
        text.push_str(&format!("--- stderr\n{}", stderr(out)));
    }
    text
}

macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            filters => filters(),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $text);
        })
    };
}

const PYTEST_PROJECT: &[(&str, &str)] = &[
    (
        "pytest.ini",
        "[pytest]\nmarkers =\n    serial: runs alone\n",
    ),
    (
        "tests/test_math.py",
        r#"import pytest


def test_add():
    assert 1 + 1 == 2


@pytest.mark.parametrize("n", [1, 2, 3])
def test_square(n):
    assert n * n >= n


class TestStrings:
    def test_upper(self):
        assert "a".upper() == "A"


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.serial
def test_alone():
    pass
"#,
    ),
];

fn pytest_project() -> Project {
    let p = Project::new();
    for (path, text) in PYTEST_PROJECT {
        p.file(path, text);
    }
    p
}

fn run_python(p: &Project, args: &[&str]) -> Output {
    partest(p.path())
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running partest")
}

#[test]
fn a_passing_pytest_run() {
    if !have_pytest() {
        return;
    }
    let p = pytest_project();
    let out = run_python(&p, &["run", "-n", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    snapshot!("pytest_pass", shown(&out, true));
}

#[test]
fn partest_list_of_a_pytest_project() {
    if !have_pytest() {
        return;
    }
    let p = pytest_project();
    let out = run_python(&p, &["list", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    snapshot!("pytest_list", shown(&out, true));
}

#[test]
fn a_run_with_a_failure_a_retry_and_a_timeout() {
    let p = Project::new();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n",
    );
    p.file("t/a_ok.sh", "exit 0\n");
    p.file(
        "t/b_bad.sh",
        "echo 'expected 3, got 4' >&2\necho on-stdout\nexit 7\n",
    );
    // Fails on its first attempt only.
    p.file("t/c_flaky.sh", "[ \"$PARTEST_ATTEMPT\" -ge 2 ]\n");
    p.file("t/d_hangs.sh", "echo waiting\nexec sleep 300\n");
    let out = p.run(&["run", "-n", "1", "--retries", "1", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    snapshot!("command_failures", shown(&out, true));
}

fn cargo_fixture() -> PathBuf {
    workspace().join("tests/fixtures/cargo-project")
}

/// partest on the cargo fixture, with its config (and so its history) in a
/// fresh temp dir; the fixture is built where tests/cargo.rs builds it.
fn cargo_partest(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        home.path().join("partest.toml"),
        "[run]\nadapter = \"cargo\"\n",
    )
    .expect("write partest.toml");
    let manifest = cargo_fixture().join("Cargo.toml");
    let config = home.path().join("partest.toml");
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--manifest-path", manifest.to_str().unwrap()]);
    partest(&cargo_fixture())
        .args(all)
        .env(
            "CARGO_TARGET_DIR",
            target_dir().join("fixtures/cargo-project"),
        )
        .env("FIXTURE_LOG", home.path())
        .output()
        .expect("running partest")
}

#[test]
fn a_cargo_run() {
    // Cargo's own build lines go to stderr: only stdout is shown.
    let out = cargo_partest(&["run", "-n", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    snapshot!("cargo_pass", shown(&out, false));
}

#[test]
fn partest_list_of_a_cargo_project() {
    let out = cargo_partest(&["list", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    snapshot!("cargo_list", shown(&out, false));
}
