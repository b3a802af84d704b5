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

fn hostile(mode: &str, extra: &str) -> (Output, tempfile::TempDir) {
    run_with(&format!(
        "path = {:?}\nmode = {mode:?}\n{extra}",
        guest("test_hostile")
    ))
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
