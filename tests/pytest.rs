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
    let run = Run::parse(run(&json_args(&["run", "-n", "2"]), log.path(), &[]));
    assert_eq!(run.code(), Some(0), "{}", run.both());
    let counts = run.counts();
    assert_eq!(
        (counts.passed, counts.failures(), counts.skipped),
        (14, 0, 1),
        "{counts:?}"
    );
    let passed = run.with_status(Status::Pass);
    for name in [
        "tests/test_math.py::TestStrings::test_upper",
        "tests/test_math.py::test_square[3]",
    ] {
        assert!(passed.contains(name), "{name} did not pass: {passed:?}");
    }
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
    let run = Run::parse(run(
        &json_args(&["run", "-n", "2"]),
        log.path(),
        &[("FIXTURE_FAIL", "1")],
    ));
    assert_eq!(run.code(), Some(100), "{}", run.both());
    let counts = run.counts();
    assert_eq!(
        (counts.passed, counts.failures(), counts.skipped),
        (13, 1, 1),
        "{counts:?}"
    );
    let failed = run.with_status(Status::Fail);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let name = failed.first().unwrap();
    assert!(name.ends_with("test_fails_on_request"), "{failed:?}");
    // pytest's own report of it.
    assert!(
        run.last_attempt(name).text().contains("asked to fail"),
        "{}",
        run.both()
    );
}

#[test]
fn list_shows_serial_tests_from_markers() {
    if !have_pytest() {
        return;
    }
    let log = tempfile::tempdir().unwrap();
    let listed = Listed::parse(&run(&json_args(&["list", "-n", "2"]), log.path(), &[]));
    let serial = listed.in_phase("serial");
    assert_eq!(serial.len(), 2, "{listed:?}");
    for name in ["test_migration_alone", "test_global_state_alone"] {
        assert!(
            serial.iter().any(|t| t.ends_with(name)),
            "{name} is not serial: {listed:?}"
        );
    }
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
    let run = Run::parse(run_in(&p, &json_args(&["run", "-n", "2"])));
    assert_eq!(run.code(), Some(0), "{}", run.both());
    assert_eq!(run.passed_and_failed(), (14, 0), "{}", run.both());
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
    let run = Run::parse(run_in(&p, &json_args(&["run", "-n", "2"])));
    assert_eq!(run.code(), Some(0), "{}", run.both());
    assert_eq!(run.passed_and_failed(), (8, 0), "{}", run.both());
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
fn pytest_cov_is_combined_at_the_end_as_pytest_cov_reports_it_serially() {
    if !have_pytest() {
        return;
    }
    if !python_has("pytest_cov", "pytest-cov", "the pytest-cov test") {
        return;
    }
    // pytest-cov takes partest's workers for xdist workers (they have a
    // workerinput): each saves its data; partest combines them at the end
    // and writes the reports asked for, as xdist's master would.
    let p = project(&[
        ("tests/test_a.py", MANY_TESTS),
        ("tests/test_b.py", MANY_TESTS),
        (
            "app.py",
            "def double(n):\n    return 2 * n\n\ndef unused(n):\n    if n:\n        return 1\n    return 0\n",
        ),
        (
            "tests/test_app.py",
            "import app\n\ndef test_double():\n    assert app.double(2) == 4\n",
        ),
    ]);
    let ini = |extra: &str| {
        p.file(
            "pytest.ini",
            &format!(
                "[pytest]\npythonpath = .\naddopts = --cov=app --cov-report=term-missing --cov-report=xml:cov.xml {extra}\n"
            ),
        );
    };
    ini("");
    let total = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("TOTAL"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let serial = std::process::Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(p.path())
        .env("FIXTURE_LOG", p.log_dir())
        .output()
        .expect("pytest");
    let want = total(&stdout(&serial)).expect("pytest --cov's TOTAL line");
    let _ = std::fs::remove_file(p.path().join("cov.xml"));

    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(total(&stdout(&out)), Some(want.clone()), "{}", both(&out));
    assert!(p.path().join("cov.xml").is_file(), "the xml report");
    let left: Vec<String> = std::fs::read_dir(p.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".coverage."))
        .collect();
    assert!(left.is_empty(), "worker data left behind: {left:?}");

    // --cov-fail-under fails the run, passing tests or not.
    ini("--cov-fail-under=80");
    let out = run_in(&p, &["run", "-n", "2"]);
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    assert!(
        stdout(&out).contains("--cov-fail-under=80"),
        "{}",
        both(&out)
    );
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
    let run = Run::parse(run_in(
        &p,
        &json_args(&["run", "-n", "2", "--timeout", "3"]),
    ));
    assert_eq!(run.code(), Some(100), "{}", run.both());
    let segfault = "tests/test_bad.py::test_segfault";
    let outcomes = run.outcomes();
    assert_eq!(outcomes[segfault], Status::Crash, "{}", run.both());
    assert_eq!(
        outcomes["tests/test_bad.py::test_hangs"],
        Status::Timeout,
        "{}",
        run.both()
    );
    // The worker's output up to its death: pytest's faulthandler names the
    // test's frame (what the test printed went down with pytest's capture).
    let text = run.last_attempt(segfault).text();
    assert!(
        text.contains("Segmentation fault") && text.contains("test_bad.py"),
        "{text}"
    );
    assert!(text.contains("signal 11"), "{text}");
    // Every good test still ran and passed.
    let counts = run.counts();
    assert_eq!(
        (
            counts.passed,
            counts.failed,
            counts.crashed,
            counts.timed_out
        ),
        (12, 0, 1, 1),
        "{counts:?}"
    );
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
    // The tests that passed (and that they were all that ran).
    let passed = |args: &[&str]| {
        let run = Run::parse(run_in(&p, &json_args(args)));
        let passed = run.passed();
        assert_eq!(run.tests(), passed, "{}", run.both());
        passed
    };
    let set = |names: &[&str]| -> std::collections::BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    };
    // marker() and file() (partest's additions), with nextest's operators.
    assert_eq!(
        passed(&[
            "run",
            "-n",
            "1",
            "-E",
            "marker(slow) | file(tests/test_b.py)",
        ]),
        set(&["tests/test_a.py::test_slow", "tests/test_b.py::test_other"])
    );
    // --skip (before `--`: after it, arguments are pytest's): everything
    // but what contains it.
    assert_eq!(
        passed(&["run", "-n", "1", "--skip", "test_a.py"]),
        set(&["tests/test_b.py::test_other"])
    );
    assert_eq!(
        passed(&["run", "-n", "1", "-E", "test(/TestGroup::/)"]),
        set(&["tests/test_a.py::TestGroup::test_inside"])
    );
    let out = run_in(&p, &["run", "-n", "1", "-E", "marker(nonexistent)"]);
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));

    // JUnit: a suite per module, classnames as pytest writes them.
    let junit = p.path().join("junit.xml");
    let out = run_in(&p, &["run", "-n", "1", "--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let junit = read_junit(&junit);
    assert_eq!(
        junit.suite_names(),
        ["tests/test_a.py", "tests/test_b.py"],
        "{}",
        junit.xml
    );
    assert_eq!(
        junit.case("test_inside").classname.as_deref(),
        Some("tests.test_a.TestGroup"),
        "{}",
        junit.xml
    );
    assert_eq!((junit.tests, junit.failures, junit.errors), (4, 0, 0));
}

/// A project to select in: markers, a class, parametrized tests.
fn selection_project() -> Project {
    project(&[
        (
            "pytest.ini",
            "[pytest]\nmarkers =\n    slow: slow\n    db: db\n",
        ),
        (
            "tests/test_a.py",
            r#"
import pytest

def test_fast():
    pass

@pytest.mark.slow
def test_slow():
    pass

class TestDb:
    @pytest.mark.db
    def test_read(self):
        pass

    @pytest.mark.db
    @pytest.mark.slow
    def test_write(self):
        pass
"#,
        ),
        (
            "tests/test_b.py",
            r#"
import pytest

def test_b1():
    pass

@pytest.mark.parametrize("v", ["x", "y"])
def test_b2(v):
    pass
"#,
        ),
    ])
}

/// The node ids pytest itself selects with `args`, and how many it deselects.
fn pytest_selects(p: &Project, args: &[&str]) -> (std::collections::BTreeSet<String>, u64) {
    let out = std::process::Command::new("python3")
        .args([
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .args(args)
        .current_dir(p.path())
        .env("FIXTURE_LOG", p.log_dir())
        .output()
        .expect("python3 -m pytest");
    let text = stdout(&out);
    let ids = text
        .lines()
        .filter(|l| l.contains("::"))
        .map(str::to_string)
        .collect();
    let deselected = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[1].starts_with("deselected"))
        .and_then(|w| w[0].trim_start_matches('(').parse().ok())
        .unwrap_or(0);
    (ids, deselected)
}

#[test]
fn pytests_own_selection_arguments_select_what_pytest_selects() {
    if !have_pytest() {
        return;
    }
    let p = selection_project();
    let cases: [(&[&str], &[&str]); 6] = [
        (&["-k", "fast"], &["-k", "fast"]),
        (&["-m", "slow and not db"], &["-m", "slow and not db"]),
        (&["tests/test_a.py::TestDb"], &["tests/test_a.py::TestDb"]),
        (&["tests/test_b.py"], &["tests/test_b.py"]),
        (
            &[
                "--",
                "-k",
                "b1 or read or b2",
                "--deselect",
                "tests/test_b.py::test_b2[x]",
            ],
            &[
                "-k",
                "b1 or read or b2",
                "--deselect",
                "tests/test_b.py::test_b2[x]",
            ],
        ),
        (
            &["-m", "db", "--", "tests/test_a.py"],
            &["-m", "db", "tests/test_a.py"],
        ),
    ];
    for (partest_args, pytest_args) in cases {
        let (want, deselected) = pytest_selects(&p, pytest_args);
        assert!(!want.is_empty(), "{pytest_args:?} selects something");
        let mut args = vec!["run", "-n", "2", "--message-format", "json"];
        let at = partest_args.iter().position(|a| *a == "--");
        args.extend(&partest_args[..at.unwrap_or(partest_args.len())]);
        if let Some(at) = at {
            args.extend(&partest_args[at..]);
        }
        let run = Run::parse(run_in(&p, &args));
        assert_eq!(run.passed(), want, "{partest_args:?}: {}", run.both());
        let finished = run.of_type("run-finished").next().unwrap().clone();
        assert_eq!(
            finished["deselected"].as_u64(),
            Some(deselected),
            "{partest_args:?}: {}",
            run.both()
        );
    }
}

#[test]
fn pytest_habits_stop_show_and_refuse_as_pytest_users_expect() {
    if !have_pytest() {
        return;
    }
    let p = project(&[(
        "tests/test_f.py",
        "import time\n\ndef test_1():\n    assert 0\n\ndef test_2():\n    assert 0\n\ndef test_3():\n    assert 0\n\ndef test_4():\n    time.sleep(0.05)\n",
    )]);
    let counts = |args: &[&str]| {
        let mut all = vec!["run", "--message-format", "json"];
        all.extend(args);
        let run = Run::parse(run_in(&p, &all));
        assert_eq!(run.code(), Some(100), "{args:?}: {}", run.both());
        run.counts()
    };
    // -x stops at the first failure, --maxfail 2 at the second (one worker).
    let c = counts(&["-n", "1", "-x"]);
    assert_eq!((c.failures(), c.cancelled), (1, 3), "{c:?}");
    let c = counts(&["-n", "1", "--maxfail", "2"]);
    assert_eq!((c.failures(), c.cancelled), (2, 2), "{c:?}");
    // After `--`, pytest's -x is taken over the same way.
    let c = counts(&["-n", "1", "--", "-x"]);
    assert_eq!(c.failures(), 1, "{c:?}");
    // --durations N lists N slowest; -s streams the output.
    let human = run_in(&p, &["run", "-n", "1", "--durations", "1"]);
    let text = stdout(&human);
    let slowest = text.split("Slowest:").nth(1).unwrap_or_default();
    assert_eq!(
        slowest.lines().filter(|l| l.contains("::")).count(),
        1,
        "{text}"
    );
    // xdist's -n after `--` is dropped with a note; --pdb is refused (exit 2).
    let dropped = run_in(&p, &["run", "-n", "1", "--", "-n", "4", "-k", "test_4"]);
    assert_eq!(dropped.status.code(), Some(0), "{}", both(&dropped));
    assert!(stderr(&dropped).contains("xdist"), "{}", both(&dropped));
    let pdb = run_in(&p, &["run", "--", "--pdb"]);
    assert_eq!(pdb.status.code(), Some(2), "{}", both(&pdb));
    assert!(stderr(&pdb).contains("--pdb"), "{}", both(&pdb));
}

/// Started in a folder under the project, partest runs what `pytest` there
/// would: that folder's tests, paths relative to it; and pytest's own
/// reason when it stops before collecting.
#[test]
fn from_a_subfolder_pytest_selects_as_it_would_there_and_says_why_it_stopped() {
    if !have_pytest() {
        return;
    }
    let p = project(&[
        ("pytest.ini", "[pytest]\n"),
        (
            "tests/a/test_x.py",
            "def test_a1():\n    pass\n\ndef test_a2():\n    pass\n",
        ),
        ("tests/b/test_y.py", "def test_b1():\n    pass\n"),
    ]);
    p.file("partest.toml", "[run]\nadapter = \"pytest\"\n");
    let sub = p.path().join("tests/a");
    let run = |args: &[&str]| {
        let out = partest(&sub)
            .args(args)
            .env("FIXTURE_LOG", p.log_dir())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("partest");
        Run::parse(out)
    };
    let set = |names: &[&str]| -> std::collections::BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    };
    let all_here = run(&["run", "-n", "2", "--message-format", "json"]);
    assert_eq!(
        all_here.passed(),
        set(&["tests/a/test_x.py::test_a1", "tests/a/test_x.py::test_a2"])
    );
    let one = run(&[
        "run",
        "-n",
        "1",
        "--message-format",
        "json",
        "test_x.py::test_a2",
    ]);
    assert_eq!(one.passed(), set(&["tests/a/test_x.py::test_a2"]));
    let missing = run(&["run", "-n", "1", "--message-format", "json", "nope.py"]);
    assert_eq!(missing.code(), Some(3), "{}", missing.both());
    assert!(
        missing
            .stderr()
            .contains("file or directory not found: nope.py"),
        "{}",
        missing.both()
    );
}
