//! `[isolation] private-paths` and `private-tmp` end to end: two tests on
//! two slots write the same in-repo path and the same /tmp file at the same
//! time; each must read back its own marker. They pass with the setting and
//! fail without it; the originals stay as they were, partest's mount point
//! and temp dirs are gone after the run, and where no namespace can be made
//! the run stops before any test with exit 3.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use partest_e2e::*;

const ISOLATION: &str =
    "[isolation]\nprivate-paths = [\"shared\", \"made/here\"]\nprivate-tmp = true\n";

/// Each test writes its marker into `shared/` (in the repo), `made/here/`
/// (missing before the run) and a /tmp file named after the project, waits
/// until the other test has written too, and reads all three back.
const COMMAND_TEST: &str = r#"set -e
me=$(basename "$0" .sh)
tmpfile="/tmp/$(basename "$PWD").marker"
[ "$(cat shared/seed)" = original ]
echo "$me" > shared/marker
echo "$me" > "$tmpfile"
[ ! -d made/here ] || echo "$me" > made/here/marker
touch "log/started-$me"
i=0
while [ "$(ls log | grep -c '^started-')" -lt 2 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
[ "$(cat shared/marker)" = "$me" ] || { echo "shared/marker holds $(cat shared/marker), not $me"; exit 1; }
[ "$(cat "$tmpfile")" = "$me" ] || { echo "$tmpfile holds $(cat "$tmpfile"), not $me"; exit 1; }
[ ! -d made/here ] || [ "$(cat made/here/marker)" = "$me" ]
[ -d "$TMPDIR" ] && touch "$PARTEST_TEST_TMPDIR/scratch"
"#;

const PYTEST_CONFTEST: &str = r#"
import os, pathlib, time

def check_own(me):
    root = pathlib.Path.cwd()
    tmpfile = pathlib.Path("/tmp") / (root.name + ".marker")
    assert (root / "shared" / "seed").read_text() == "original"
    (root / "shared" / "marker").write_text(me)
    tmpfile.write_text(me)
    (root / "log" / ("started-" + me)).touch()
    for _ in range(200):
        if len(list((root / "log").glob("started-*"))) >= 2:
            break
        time.sleep(0.05)
    assert (root / "shared" / "marker").read_text() == me
    assert tmpfile.read_text() == me
"#;

/// A project whose two tests share `shared/` and a /tmp file; with
/// `isolation` its partest.toml asks for private paths.
fn project(adapter: &str, isolation: bool) -> Project {
    let p = Project::new();
    p.log_dir();
    p.file("shared/seed", "original");
    let table = if isolation { ISOLATION } else { "" };
    if adapter == "pytest" {
        p.file(
            "partest.toml",
            &format!("[run]\nadapter = \"pytest\"\n{table}"),
        );
        p.file("pytest.ini", "[pytest]\n");
        p.file("tests/conftest.py", PYTEST_CONFTEST);
        // Four modules: a worker is sent the next test ahead, and with two
        // it may take both before the other worker is ready.
        for me in ["a", "b", "c", "d"] {
            p.file(
                &format!("tests/test_{me}.py"),
                &format!(
                    "from conftest import check_own\n\ndef test_{me}():\n    check_own({me:?})\n"
                ),
            );
        }
    } else {
        p.file(
            "partest.toml",
            &format!("[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {{}}\"\n{table}"),
        );
        p.file("t/a.sh", COMMAND_TEST);
        p.file("t/b.sh", COMMAND_TEST);
    }
    p
}

/// The /tmp file the tests write when /tmp is shared.
fn tmp_marker(p: &Project) -> PathBuf {
    let name = p.path().file_name().unwrap().to_string_lossy().into_owned();
    PathBuf::from("/tmp").join(format!("{name}.marker"))
}

/// partest with a temp base of its own, so what its slots leave is seen.
fn run(p: &Project, base: &Path) -> Output {
    partest(p.path())
        .args(["run", "-n", "2"])
        .env("TMPDIR", base)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running partest")
}

fn check_isolated_and_clean(adapter: &str, tests: usize) {
    let p = project(adapter, true);
    let base = tempfile::tempdir().unwrap();
    let out = run(&p, base.path());
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        stdout(&out).contains(&format!("{tests} passed, 0 failed")),
        "{}",
        both(&out)
    );
    // The originals were never written: the seed alone, as it was.
    let shared = files_under(&p.path().join("shared"));
    assert_eq!(shared, [p.path().join("shared/seed")], "{}", both(&out));
    assert_eq!(
        std::fs::read_to_string(p.path().join("shared/seed")).unwrap(),
        "original"
    );
    assert!(!tmp_marker(&p).exists(), "the host's /tmp was written");
    // The mount point partest made is gone, and so are the slots' copies.
    assert!(!p.path().join("made").exists(), "{}", both(&out));
    let left: Vec<_> = std::fs::read_dir(base.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in the temp base: {left:?}");
}

fn check_fails_without_it(adapter: &str) {
    let p = project(adapter, false);
    let base = tempfile::tempdir().unwrap();
    let out = run(&p, base.path());
    let _ = std::fs::remove_file(tmp_marker(&p));
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    assert!(stdout(&out).contains("FAIL"), "{}", both(&out));
}

#[test]
fn two_slots_writing_one_path_each_see_their_own_with_private_paths() {
    check_isolated_and_clean("command", 2);
}

#[test]
fn two_slots_writing_one_path_clash_without_private_paths() {
    check_fails_without_it("command");
}

#[test]
fn pytest_workers_see_their_own_paths_with_private_paths() {
    if have_pytest() {
        check_isolated_and_clean("pytest", 4);
    }
}

#[test]
fn pytest_workers_clash_without_private_paths() {
    if have_pytest() {
        check_fails_without_it("pytest");
    }
}

#[test]
fn report_says_whether_private_paths_are_available() {
    let p = project("command", true);
    let out = p.run(&["report"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        stdout(&out).contains("private paths: available here"),
        "{}",
        both(&out)
    );
}

#[test]
fn unknown_isolation_keys_are_refused_with_file_and_line() {
    let p = project("command", false);
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n[isolation]\nprivate-path = [\"x\"]\n",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let err = stderr(&out);
    assert!(
        err.contains("partest.toml") && err.contains("line 5") && err.contains("private-path"),
        "{err}"
    );
}

/// No namespace of either kind, for real: partest runs as root of a user
/// namespace of its own that allows no further user namespaces
/// (`user.max_user_namespaces = 0` there only; the host's is untouched),
/// with every capability dropped, so a mount namespace is refused too.
#[test]
fn without_any_namespace_the_run_stops_before_any_test_with_exit_3() {
    let sandbox = |script: &str| {
        Command::new("unshare")
            .args(["--user", "--map-root-user", "sh", "-c", script])
            .output()
    };
    let can = sandbox(
        "echo 0 > /proc/sys/user/max_user_namespaces && setpriv --bounding-set=-all --inh-caps=-all true",
    );
    if !can.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(!in_ci(), "CI must be able to run unshare --user: {can:?}");
        eprintln!("skipping: cannot run unshare --user and setpriv here: {can:?}");
        return;
    }
    let p = project("command", true);
    // The env and folder of `partest(...)`, started through unshare.
    let mut sandboxed = Command::new("unshare");
    sandboxed
        .args([
            "--user",
            "--map-root-user",
            "sh",
            "-c",
            "echo 0 > /proc/sys/user/max_user_namespaces && \
             exec setpriv --bounding-set=-all --inh-caps=-all \"$0\" run -n 2",
        ])
        .arg(partest_bin())
        .current_dir(p.path());
    for (name, value) in partest(p.path()).get_envs() {
        match value {
            Some(value) => sandboxed.env(name, value),
            None => sandboxed.env_remove(name),
        };
    }
    let out = sandboxed.output().expect("running partest under unshare");
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let err = stderr(&out);
    assert!(err.contains("user.max_user_namespaces = 0"), "{err}");
    assert!(err.contains("unshare(CLONE_NEWNS) failed"), "{err}");
    assert!(err.contains("[isolation]"), "{err}");
    let started = std::fs::read_dir(p.log_dir()).unwrap().count();
    assert_eq!(started, 0, "a test ran");
    assert!(!p.path().join("made").exists());
}
