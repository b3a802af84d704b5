//! The machine-wide register of live runs. Everything a run creates carries
//! its run id; this register tells, for a run id, whether that run is still
//! alive — the question `partest clean` and the plugins' reclaim rules ask
//! before they touch anything ("never a run still alive").
//!
//! One file per run, `<dir>/<run_id>`, holding the pid and the process's
//! start time (so a recycled pid is not mistaken for the run), then the
//! plugins the run enabled (so `clean` knows whom to ask). It is removed when
//! the run ends normally; a crashed run leaves it behind, dead, until a
//! `partest clean` has swept every one of its plugins.
//!
//! The register is per user: `$XDG_RUNTIME_DIR/partest/runs`, else
//! `<temp dir>/partest-runs-<uid>`; `PARTEST_RUNS_DIR` moves it (tests do).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Whether a run is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Its record remains but its process is gone: it crashed or was killed.
    Dead,
    /// No record here: it ended cleanly, or ran on another machine.
    Unknown,
}

/// Where run records live.
pub fn runs_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PARTEST_RUNS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("partest").join("runs");
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("partest-runs-{uid}"))
}

/// This run's record; removed on drop (every normal exit path).
pub struct Registration {
    path: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records this run, with the plugins it enabled.
pub fn register(run_id: &str, plugins: &[String]) -> std::io::Result<Registration> {
    let dir = runs_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let pid = std::process::id();
    let start = process_start(pid).unwrap_or(0);
    let path = dir.join(run_id);
    std::fs::write(&path, format!("{pid} {start}\n{}\n", plugins.join(",")))?;
    Ok(Registration { path })
}

/// The plugins a recorded run enabled (empty for an unknown run).
pub fn plugins_of(run_id: &str) -> Vec<String> {
    if !valid_id(run_id) {
        return Vec::new();
    }
    std::fs::read_to_string(runs_dir().join(run_id))
        .ok()
        .and_then(|text| text.lines().nth(1).map(str::to_string))
        .map(|line| {
            line.split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn valid_id(run_id: &str) -> bool {
    !run_id.is_empty() && run_id.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub fn liveness(run_id: &str) -> Liveness {
    liveness_in(&runs_dir(), run_id)
}

fn liveness_in(dir: &Path, run_id: &str) -> Liveness {
    if !valid_id(run_id) {
        return Liveness::Unknown;
    }
    let Ok(text) = std::fs::read_to_string(dir.join(run_id)) else {
        return Liveness::Unknown;
    };
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let (Some(Some(pid)), Some(Some(start))) = (fields.next(), fields.next()) else {
        return Liveness::Dead;
    };
    match process_start(pid as u32) {
        Some(now) if now == start || start == 0 => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

/// Records of runs that are dead: what `partest clean` looks at.
pub fn dead_runs() -> Vec<String> {
    let dir = runs_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|id| liveness_in(&dir, id) == Liveness::Dead)
        .collect()
}

/// Forgets a dead run once its leftovers are gone.
pub fn forget(run_id: &str) {
    if liveness(run_id) == Liveness::Dead {
        let _ = std::fs::remove_file(runs_dir().join(run_id));
    }
}

/// A process's start time in clock ticks since boot (field 22 of its stat),
/// or None when it does not exist or is a zombie.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3 (state); the start time is field 22.
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_record_is_alive_and_a_vanished_pid_is_dead() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let start = process_start(me).expect("we exist");
        std::fs::write(dir.path().join("aaaa1111"), format!("{me} {start}\n")).unwrap();
        assert_eq!(liveness_in(dir.path(), "aaaa1111"), Liveness::Alive);
        // Same pid, another start time: the pid was recycled.
        std::fs::write(dir.path().join("bbbb2222"), format!("{me} {}\n", start + 1)).unwrap();
        assert_eq!(liveness_in(dir.path(), "bbbb2222"), Liveness::Dead);
        std::fs::write(dir.path().join("cccc3333"), "4194303 5\n").unwrap();
        assert_eq!(liveness_in(dir.path(), "cccc3333"), Liveness::Dead);
        assert_eq!(liveness_in(dir.path(), "dddd4444"), Liveness::Unknown);
        assert_eq!(liveness_in(dir.path(), "../etc/passwd"), Liveness::Unknown);
    }
}
