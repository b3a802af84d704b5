//! Hostile plugins against the real binary: each attack ends the run with
//! exit 3 and a message naming the plugin and what it did, partest itself
//! stays up (it exits normally, no panic), and the teardown of what was set
//! up (the temp-dir provider's run directory) still ran.

use std::path::PathBuf;
use std::process::Output;

use partest_e2e::*;

fn guest(name: &str) -> PathBuf {
    // Built by runner/build.rs with the partest binary.
    partest_bin();
    target_dir()
        .join("partest-guests/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}

/// Runs a two-test suite with `plugin_table` as `[plugins.evil]`; TMPDIR is
/// private so that leftovers of the temp-dir provider can be looked for.
fn run_with(plugin_table: &str) -> (Output, tempfile::TempDir) {
    let p = Project::new();
    p.file(
        "partest.toml",
        &format!("[command]\ntests = [\"t/*.sh\"]\n\n[plugins.evil]\n{plugin_table}\n"),
    );
    p.file("t/a.sh", "true\n");
    p.file("t/b.sh", "true\n");
    let tmp = tempfile::tempdir().unwrap();
    let out = partest(p.path())
        .args(["run", "-n", "2"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    (out, tmp)
}

fn assert_failed_cleanly(out: &Output, tmp: &tempfile::TempDir, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(3), "{}", both(out));
    let err = stderr(out);
    assert!(!err.contains("panicked"), "{}", both(out));
    assert!(
        err.contains("evil"),
        "the message names the plugin: {}",
        both(out)
    );
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?}: {}", both(out));
    }
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("partest-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "teardown did not run: {leftovers:?} left in TMPDIR"
    );
}

/// What the hostile guest declares (its `declare` setting's default `X`
/// included), granted as a user grants a plugin's variables.
const HOSTILE_ENV: &str = r#"allow = { env = ["X", "HOSTILE_SLOT", "PROBE_NET", "PROBE_ENV", "PROBE_ETC", "PROBE_SCRATCH", "DANGLING", "DIRLINK", "DOTDOT", "ABSOLUTE", "COPY_TARGET", "COPY_INTO_LINK", "ATTACH", "VACUUM_INTO", "HOST_LOCATION", "HUGE", "FILL"] }"#;

fn hostile(mode: &str, extra: &str) -> (Output, tempfile::TempDir) {
    run_with(&format!(
        "path = {:?}\nmode = {mode:?}\n{HOSTILE_ENV}\n{extra}",
        guest("test_hostile")
    ))
}

#[test]
fn a_custom_plugin_sets_only_the_variables_granted_and_never_home() {
    // No grant: it does not load, and the message has the line to add.
    let (out, _tmp) = run_with(&format!(
        "path = {:?}\nmode = \"env\"",
        guest("test_hostile")
    ));
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stderr(&out).contains("allow = { env = [\"X\", \"HOSTILE_SLOT\""),
        "{}",
        both(&out)
    );
    // Granting what makes programs load code is itself refused.
    for name in [
        "HOME",
        "XDG_CONFIG_HOME",
        "OPENSSL_CONF",
        "PYTEST_ADDOPTS",
        "GCONV_PATH",
    ] {
        let (out, _tmp) = run_with(&format!(
            "path = {:?}\nmode = \"env\"\nenv = [[{name:?}, \"/tmp/x\"]]\ndeclare = [{name:?}]\nallow = {{ env = [{name:?}] }}",
            guest("test_hostile")
        ));
        assert_eq!(out.status.code(), Some(2), "{name}: {}", both(&out));
        assert!(
            stderr(&out).contains("cannot be granted") && stderr(&out).contains(name),
            "{name}: {}",
            both(&out)
        );
    }
}

#[test]
fn an_infinite_loop_in_setup_slot_is_stopped_at_the_time_limit() {
    let (out, tmp) = hostile("loop-in-setup-slot", "limits = { call-timeout = \"1s\" }");
    assert_failed_cleanly(&out, &tmp, &["setup-slot"]);
}

#[test]
fn a_1gib_allocation_hits_the_memory_cap() {
    let (out, tmp) = hostile("alloc-1g", "");
    assert_failed_cleanly(&out, &tmp, &["setup-run", "memory"]);
}

#[test]
fn a_100mb_string_hits_the_boundary_cap() {
    let (out, tmp) = hostile("huge-string", "");
    assert_failed_cleanly(&out, &tmp, &["setup-run", "bytes"]);
}

#[test]
fn a_trap_halfway_through_setup_run_fails_the_run() {
    let (out, tmp) = hostile("trap-in-setup-run", "");
    assert_failed_cleanly(&out, &tmp, &["setup-run"]);
}

#[test]
fn an_ungranted_capability_is_refused_with_the_line_that_grants_it() {
    let (out, tmp) = run_with(&format!("path = {:?}", guest("test_process")));
    assert_failed_cleanly(&out, &tmp, &["process", "allow = { process = ["]);
}

#[test]
fn a_plugin_error_in_one_slot_still_tears_everything_down() {
    let (out, tmp) = hostile("fail-in-setup-slot", "");
    assert_failed_cleanly(&out, &tmp, &["setup-slot", "the service is down"]);
}

/// A script that leaves `marker` behind if anything ever runs it.
fn trap_script(dir: &std::path::Path, marker: &std::path::Path) -> PathBuf {
    let script = dir.join("evil.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    script
}

#[test]
fn env_that_would_run_code_in_tests_is_refused_and_nothing_runs() {
    let trap = tempfile::tempdir().unwrap();
    let marker = trap.path().join("ran");
    let script = trap_script(trap.path(), &marker);
    // A directory of fake interpreters, as a plugin would put first on PATH.
    let bin = trap.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["bash", "sh", "true"] {
        std::os::unix::fs::symlink(&script, bin.join(name)).unwrap();
    }
    let script = script.display().to_string();
    let bin = bin.display().to_string();
    for (name, value) in [
        ("BASH_ENV", script.as_str()),
        ("ENV", script.as_str()),
        ("LD_PRELOAD", "/nonexistent/evil.so"),
        ("LD_PRELOAD=x.so:", ""),
        ("PATH", bin.as_str()),
        ("PARTEST_WORKER", "gw99"),
    ] {
        // Undeclared: refused when setup-slot returns it. Declared: refused
        // at load, before anything runs.
        for declare in [false, true] {
            let declared = if declare {
                format!("declare = [{name:?}]\n")
            } else {
                String::new()
            };
            let (out, tmp) = hostile("env", &format!("env = [[{name:?}, {value:?}]]\n{declared}"));
            let hook = if declare { "env-vars" } else { "setup-slot" };
            assert_failed_cleanly(&out, &tmp, &[hook, name.split('=').next().unwrap()]);
            assert!(
                !marker.exists(),
                "{name} (declared: {declare}) ran code: {}",
                both(&out)
            );
        }
    }
}

#[test]
fn a_plugin_writing_past_its_scratch_quota_fails_the_run_and_leaves_nothing() {
    let (out, tmp) = hostile("fill-scratch", "mib = 64\nlimits = { scratch = \"4MiB\" }");
    assert_failed_cleanly(&out, &tmp, &["setup-run", "disk quota"]);
}

/// A database over the plugin's disk quota (left by an older partest, or
/// planted) never fails `partest clean`: it lists and removes what a dead
/// run left however big, and the next run starts. Nor does another
/// project's dead run whose custom plugin only that project can load.
#[test]
fn clean_never_fails_on_a_database_over_the_quota() {
    let p = Project::new();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\n\n[plugins.sqlite]\nlimits = { scratch = \"2MiB\" }\n",
    );
    p.file(
        "t/a.sh",
        "test -f \"$PARTEST_SQLITE_PATH\" || test -n \"$DATABASE_URL\"\n",
    );
    let runs = tempfile::tempdir().unwrap();
    // A run whose process is gone (pid beyond pid_max): dead.
    std::fs::write(runs.path().join("e2eover1"), "4194303 5\nsqlite\n").unwrap();
    // A dead run of another project, with a custom plugin only that
    // project can load: not this clean's failure, and its record stays.
    std::fs::write(runs.path().join("e2eelse1"), "4194303 5\nelsewhere\n").unwrap();
    let planted = p
        .path()
        .join(".partest/plugins/sqlite/databases/e2eover1/gw0.db");
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, vec![0u8; 5 << 20]).unwrap();
    let clean = |args: &[&str]| {
        partest(p.path())
            .env("PARTEST_RUNS_DIR", runs.path())
            .arg("clean")
            .args(args)
            .output()
            .unwrap()
    };
    let listed = clean(&["--dry-run"]);
    assert_eq!(listed.status.code(), Some(0), "{}", both(&listed));
    assert!(stdout(&listed).contains("e2eover1"), "{}", both(&listed));
    assert!(planted.exists(), "a dry run removes nothing");
    let cleaned = clean(&["--yes"]);
    assert_eq!(cleaned.status.code(), Some(0), "{}", both(&cleaned));
    assert!(!planted.exists(), "{}", both(&cleaned));
    assert!(
        runs.path().join("e2eelse1").exists() && !runs.path().join("e2eover1").exists(),
        "{}",
        both(&cleaned)
    );
    let run = partest(p.path())
        .env("PARTEST_RUNS_DIR", runs.path())
        .args(["run", "-n", "1"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", both(&run));
}
