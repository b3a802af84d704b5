//! The pytest adapter on real pytest: one long-lived worker per slot, tests
//! addressed by index, serial markers from the items, whatever the user's
//! pytest configuration says, and workers that crash or hang replaced. Needs
//! pytest: CI installs it; on a laptop without it these tests say so and pass.

use std::path::PathBuf;

use partest_e2e::*;

fn fixture() -> PathBuf {
    workspace().join("tests/fixtures/pytest-project")
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
fn one_worker_per_slot_runs_in_parallel_and_serial_markers_run_alone() {
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
    // One pytest process per slot for the whole run, serial phase included.
    let pids: std::collections::BTreeSet<(&str, &String)> =
        t.iter().map(|t| (t.worker.as_str(), &t.extra[0])).collect();
    let workers: std::collections::BTreeSet<&str> = pids.iter().map(|(w, _)| *w).collect();
    assert_eq!(workers.len(), 2, "both slots ran tests: {t:?}");
    assert_eq!(pids.len(), 2, "one process per slot: {pids:?}");
}

#[test]
fn a_failing_test_is_reported_alone_with_pytests_text() {
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

/// A project in a temp dir with `conftest.py` recording every test and every
/// module-fixture setup (name, worker, pid) into `log/`.
fn project(files: &[(&str, &str)]) -> Project {
    let p = Project::new();
    p.file(
        "tests/conftest.py",
        r#"
import os, time, pytest

LOG = os.environ["FIXTURE_LOG"]

def _record(kind, name):
    with open(os.path.join(LOG, f"{kind}-{os.getpid()}-{time.time_ns()}.seen"), "w") as f:
        f.write(f"{kind} {name} {os.environ.get('PYTEST_XDIST_WORKER', '-')} {os.getpid()}\n")

@pytest.fixture(autouse=True, scope="module")
def module_setup(request):
    _record("module", request.module.__name__)
    yield

@pytest.fixture(autouse=True)
def each_test(request):
    yield
    _record("test", request.node.nodeid.replace(" ", "_"))
"#,
    );
    for (path, text) in files {
        p.file(path, text);
    }
    p.log_dir();
    p
}

fn run_in(p: &Project, args: &[&str]) -> std::process::Output {
    partest(p.path())
        .args(args)
        .env("FIXTURE_LOG", p.log_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running partest")
}

fn rows(p: &Project, kind: &str) -> Vec<Vec<String>> {
    seen(&p.log_dir())
        .into_iter()
        .filter(|r| r[0] == kind)
        .collect()
}

const MANY_TESTS: &str = r#"
import pytest

@pytest.mark.parametrize("n", range(12))
def test_n(n):
    assert n >= 0
"#;

#[test]
fn verbose_addopts_and_strict_markers_do_not_touch_the_protocol() {
    if !have_pytest() {
        return;
    }
    let p = project(&[
        (
            "pytest.ini",
            "[pytest]\naddopts = -v --tb=short -ra --strict-markers -p no:randomly\nstrict = true\nmarkers =\n    slow: slow tests\n",
        ),
        ("tests/test_a.py", MANY_TESTS),
        (
            "tests/test_b.py",
            "import pytest\n\n@pytest.mark.slow\ndef test_slow():\n    pass\n\ndef test_plain():\n    pass\n",
        ),
    ]);
    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        stdout(&out).contains("14 passed, 0 failed"),
        "{}",
        both(&out)
    );
    assert_eq!(rows(&p, "test").len(), 14);
}

#[test]
fn ids_that_change_between_processes_run_by_index() {
    if !have_pytest() {
        return;
    }
    let p = project(&[(
        "tests/test_time.py",
        "import time, pytest\n\n@pytest.mark.parametrize('stamp', [time.time_ns(), time.time_ns() + 1])\ndef test_stamp(stamp):\n    assert stamp > 0\n\n@pytest.mark.parametrize('n', range(6))\ndef test_n(n):\n    pass\n",
    )]);
    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        stdout(&out).contains("8 passed, 0 failed"),
        "{}",
        both(&out)
    );
}

#[test]
fn module_fixtures_set_up_once_per_worker_and_module() {
    if !have_pytest() {
        return;
    }
    let files: Vec<(String, String)> = (0..4)
        .map(|i| (format!("tests/test_m{i}.py"), MANY_TESTS.to_string()))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let p = project(&files);
    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(rows(&p, "test").len(), 48);
    let setups = rows(&p, "module");
    // Once per (module, worker process) at most: never once per test.
    let distinct: std::collections::BTreeSet<(String, String)> = setups
        .iter()
        .map(|r| (r[1].clone(), r[3].clone()))
        .collect();
    assert_eq!(
        distinct.len(),
        setups.len(),
        "a module set up twice in one worker: {setups:?}"
    );
    assert!(setups.len() <= 8, "{setups:?}");
}

#[test]
fn a_worker_still_runs_session_teardown_sessionfinish_and_atexit_handlers() {
    if !have_pytest() {
        return;
    }
    // A worker skips the interpreter's own teardown of every module when it
    // exits, but nothing that pytest, plugins or tests asked to run at the end.
    let p = project(&[
        ("tests/test_a.py", MANY_TESTS),
        ("tests/test_b.py", MANY_TESTS),
        (
            "tests/conftest_end.py",
            r#"
import atexit, os, pytest
from conftest import _record

@pytest.fixture(autouse=True, scope="session")
def session_resource():
    yield
    _record("session-teardown", "-")

def pytest_sessionfinish(session, exitstatus):
    _record("sessionfinish", str(int(exitstatus)))

atexit.register(lambda: _record("atexit", "-"))
"#,
        ),
    ]);
    p.file(
        "pytest.ini",
        "[pytest]
pythonpath = tests
",
    );
    p.file(
        "tests/conftest.py",
        &(std::fs::read_to_string(p.path().join("tests/conftest.py")).unwrap()
            + "\nfrom conftest_end import *\n"),
    );
    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(rows(&p, "test").len(), 24, "{}", both(&out));
    let workers = |kind| {
        rows(&p, kind)
            .iter()
            .map(|r| r[3].clone())
            .collect::<std::collections::BTreeSet<String>>()
    };
    for kind in ["session-teardown", "sessionfinish", "atexit"] {
        assert_eq!(workers(kind), workers("test"), "{kind}: {}", both(&out));
    }
}

#[test]
fn pytest_cov_in_addopts_runs_and_each_worker_saves_its_coverage() {
    if !have_pytest() {
        return;
    }
    if !python_has("pytest_cov", "pytest-cov", "the pytest-cov test") {
        return;
    }
    // pytest-cov takes partest's workers for xdist workers (they have a
    // workerinput): it must find what it reads there, not crash them.
    let p = project(&[
        ("tests/test_a.py", MANY_TESTS),
        ("tests/test_b.py", MANY_TESTS),
        ("app.py", "def double(n):\n    return 2 * n\n"),
        (
            "tests/test_app.py",
            "import app\n\ndef test_double():\n    assert app.double(2) == 4\n",
        ),
    ]);
    p.file(
        "pytest.ini",
        "[pytest]\npythonpath = .\naddopts = --cov=app --cov-report=\n",
    );
    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(stdout(&out).contains("25 passed"), "{}", both(&out));
    let data: Vec<String> = std::fs::read_dir(p.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".coverage"))
        .collect();
    assert!(!data.is_empty(), "no coverage data: {}", both(&out));
}

#[test]
fn by_default_every_worker_imports_every_module_before_its_first_test() {
    if !have_pytest() {
        return;
    }
    // As under pytest and xdist, a test may rely on another test module
    // having been imported (here: a registry it fills at import).
    let mut files = vec![(
        "tests/registry.py".to_string(),
        "NAMES = set()\n".to_string(),
    )];
    for i in 0..6 {
        files.push((
            format!("tests/test_r{i}.py"),
            format!(
                "import registry\nregistry.NAMES.add('r{i}')\n\ndef test_sees_every_module():\n    assert len(registry.NAMES) == 6, registry.NAMES\n"
            ),
        ));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let p = project(&files);
    p.file("pytest.ini", "[pytest]\npythonpath = tests\n");
    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(rows(&p, "test").len(), 6, "{}", both(&out));
}

#[test]
fn with_collect_share_each_module_is_imported_by_about_one_worker() {
    if !have_pytest() {
        return;
    }
    // Each module records its import; xdist's workers would import all 8 each.
    let module = format!(
        "import os, time\nwith open(os.path.join(os.environ['FIXTURE_LOG'], f'import-{{os.getpid()}}-{{time.time_ns()}}.seen'), 'w') as f:\n    f.write(f'import {{__name__}} {{os.environ.get(\"PYTEST_XDIST_WORKER\")}} {{os.getpid()}}\\n')\n{MANY_TESTS}"
    );
    let files: Vec<(String, String)> = (0..8)
        .map(|i| (format!("tests/test_m{i}.py"), module.clone()))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let p = project(&files);
    // -k deselects per file, as pytest would over the whole suite.
    p.file("pytest.ini", "[pytest]\naddopts = -k \"not test_n[3]\"\n");
    p.file("partest.toml", "[pytest]\ncollect = \"share\"\n");
    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(rows(&p, "test").len(), 8 * 11, "{}", both(&out));
    let imports = rows(&p, "import");
    let modules: std::collections::BTreeSet<&String> = imports.iter().map(|r| &r[1]).collect();
    assert_eq!(modules.len(), 8, "every module imported: {imports:?}");
    let workers: std::collections::BTreeSet<&String> = imports.iter().map(|r| &r[2]).collect();
    assert_eq!(
        workers.len(),
        2,
        "both workers imported a share: {imports:?}"
    );
    // Stealing at the tail may import a module a second time; never all of them.
    assert!(imports.len() < 16, "{imports:?}");
}

#[test]
fn a_crashing_and_a_hanging_test_are_reported_and_their_workers_replaced() {
    if !have_pytest() {
        return;
    }
    let p = project(&[
        (
            "tests/test_bad.py",
            "import os, signal, time\n\ndef test_segfault():\n    print('about to crash')\n    os.kill(os.getpid(), signal.SIGSEGV)\n\ndef test_hangs():\n    time.sleep(600)\n",
        ),
        ("tests/test_good.py", MANY_TESTS),
    ]);
    let out = run_in(&p, &["run", "-n", "2", "--timeout", "3"]);
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    let text = stdout(&out);
    assert!(
        text.contains("CRASH") && text.contains("test_segfault"),
        "{text}"
    );
    assert!(
        text.contains("TIMEOUT") && text.contains("test_hangs"),
        "{text}"
    );
    // The worker's output up to its death: pytest's faulthandler names the
    // test's frame (what the test printed went down with pytest's capture).
    assert!(
        text.contains("Segmentation fault") && text.contains("test_bad.py"),
        "{text}"
    );
    assert!(text.contains("signal 11"), "{text}");
    // Every good test still ran and passed.
    assert!(text.contains("12 passed, 2 failed"), "{text}");
    assert_eq!(rows(&p, "test").len(), 12);
    // The hanging test's process is gone (no pytest left sleeping).
    let left = std::process::Command::new("pgrep")
        .args(["-f", "test_bad.py"])
        .output()
        .map(|o| stdout(&o))
        .unwrap_or_default();
    let alive: Vec<i32> = left
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid| pid_alive(*pid))
        .collect();
    assert!(alive.is_empty(), "left running: {alive:?}");
}

#[test]
fn a_collection_error_shows_pytests_text_and_exits_3() {
    if !have_pytest() {
        return;
    }
    let p = project(&[
        ("tests/test_ok.py", MANY_TESTS),
        (
            "tests/test_broken.py",
            "import not_a_module_anywhere\n\ndef test_x():\n    pass\n",
        ),
    ]);
    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let text = both(&out);
    assert!(text.contains("test_broken.py"), "{text}");
    assert!(text.contains("not_a_module_anywhere"), "{text}");
    assert!(rows(&p, "test").is_empty(), "nothing ran");
}

#[test]
fn an_empty_selection_is_not_a_pass() {
    if !have_pytest() {
        return;
    }
    let p = project(&[("tests/test_ok.py", MANY_TESTS)]);
    let out = run_in(&p, &["run", "-n", "2", "no_such_test"]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
    assert!(stderr(&out).contains("no tests to run"), "{}", both(&out));
    let out = run_in(&p, &["run", "-n", "2", "no_such_test", "--no-tests=warn"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let empty = project(&[("tests/test_none.py", "x = 1\n")]);
    let out = run_in(&empty, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
}

#[test]
fn sigint_and_sigterm_stop_the_workers_tear_down_and_exit_130() {
    if !have_pytest() {
        return;
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let p = project(&[(
            "tests/test_long.py",
            r#"
import os, subprocess, time, pytest

@pytest.mark.parametrize("n", range(4))
def test_long(n, tmp_path):
    log = os.environ["FIXTURE_LOG"]
    child = subprocess.Popen(["sleep", "300"])
    with open(os.path.join(log, f"pids-{os.getpid()}-{n}.txt"), "w") as f:
        f.write(f"{os.getpid()} {child.pid} {os.environ['TMPDIR']}\n")
    time.sleep(300)
"#,
        )]);
        let log = p.log_dir();
        let child = partest(p.path())
            .args(["run", "-n", "2"])
            .env("FIXTURE_LOG", &log)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting partest");
        let started = |log: &std::path::Path| {
            std::fs::read_dir(log)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with("pids-"))
                        .count()
                })
                .unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while started(&log) < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the tests never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // SAFETY: signalling the partest process this test spawned.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().expect("waiting for partest");
        assert_eq!(
            out.status.code(),
            Some(130),
            "signal {signal}: {}",
            both(&out)
        );
        for entry in std::fs::read_dir(&log).unwrap().flatten() {
            if !entry.file_name().to_string_lossy().starts_with("pids-") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let fields: Vec<&str> = text.split_whitespace().collect();
            for pid in &fields[..2] {
                let pid: i32 = pid.parse().unwrap();
                assert!(!pid_alive(pid), "signal {signal}: {pid} still running");
            }
            assert!(
                !std::path::Path::new(fields[2]).exists(),
                "signal {signal}: the slot's temp dir {} was left",
                fields[2]
            );
        }
    }
}

#[test]
fn filtersets_skip_and_junit_work_for_pytest_tests_too() {
    if !have_pytest() {
        return;
    }
    let p = project(&[
        (
            "tests/test_a.py",
            "import pytest\n\n@pytest.mark.slow\ndef test_slow():\n    pass\n\ndef test_quick():\n    pass\n\nclass TestGroup:\n    def test_inside(self):\n        pass\n",
        ),
        ("tests/test_b.py", "def test_other():\n    pass\n"),
    ]);
    let summary = |out: &std::process::Output| {
        stdout(out)
            .lines()
            .find(|l| l.starts_with("Summary"))
            .unwrap_or_else(|| panic!("no summary:\n{}", both(out)))
            .to_string()
    };
    // marker() and file() (partest's additions), with nextest's operators.
    let out = run_in(
        &p,
        &[
            "run",
            "-n",
            "1",
            "-E",
            "marker(slow) | file(tests/test_b.py)",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(summary(&out).contains(" 2 passed,"), "{}", both(&out));
    // libtest's --skip: everything but what contains it.
    let out = run_in(&p, &["run", "-n", "1", "--", "--skip", "test_a.py"]);
    assert!(summary(&out).contains(" 1 passed,"), "{}", both(&out));
    let out = run_in(&p, &["run", "-n", "1", "-E", "test(/TestGroup::/)"]);
    assert!(summary(&out).contains(" 1 passed,"), "{}", both(&out));
    let out = run_in(&p, &["run", "-n", "1", "-E", "marker(nonexistent)"]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));

    // JUnit: a suite per module, classnames as pytest writes them.
    let junit = p.path().join("junit.xml");
    let out = run_in(&p, &["run", "-n", "1", "--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testsuite name="tests/test_a.py""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testsuite name="tests/test_b.py""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testcase name="test_inside" classname="tests.test_a.TestGroup""#),
        "{xml}"
    );
}
