//! The machine-wide register of live runs. Everything a run creates carries
//! its run id; this register tells, for a run id, whether that run is still
//! alive — the question `partest clean` and the plugins' reclaim rules ask
//! before they touch anything ("never a run still alive").
//!
//! One file per run, `<dir>/<run_id>`, holding the pid and the process's
//! start time (so a recycled pid is not mistaken for the run), then the
//! plugins the run enabled (so `clean` knows whom to ask). It is removed when
//! the run ends and its teardown released everything; a crashed run, and a
//! run whose teardown failed (a server gone, a connection a test killed),
//! leave it behind, dead once the process exits, until a `partest clean`
//! has swept every one of its plugins.
//!
//! The register is per user: `$XDG_RUNTIME_DIR/partest/runs`, else
//! `<temp dir>/partest-runs-<uid>`; `PARTEST_RUNS_DIR` moves it (tests do).

use std::collections::BTreeSet;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
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

/// This run's record; removed on drop (every normal exit path), unless
/// [`Registration::keep`] was called or a panic is unwinding.
pub struct Registration {
    path: PathBuf,
    keep: bool,
}

impl Registration {
    /// Something of this run may be left (its teardown failed): keep the
    /// record, so that once this process is gone the run is dead and
    /// `partest clean` (and the plugins' reclaim rules) may remove it.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.keep && !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.path);
        }
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
    Ok(Registration { path, keep: false })
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

/// A process a dead run left running: a test, a setup command or a
/// discovery child that outlived a partest killed with SIGKILL. Found by the
/// `PARTEST_RUN_ID` every child of a run inherits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftProcess {
    pub pid: u32,
    pub run_id: String,
    /// Its command line, for the listing.
    pub command: String,
    /// Its start time, so a recycled pid is never signalled.
    start: u64,
}

/// This user's processes whose environment names one of `runs` as theirs
/// (never this process nor its ancestors).
pub fn processes_of(runs: &BTreeSet<String>) -> Vec<LeftProcess> {
    if runs.is_empty() {
        return Vec::new();
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mine = ancestors();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if mine.contains(&pid) || std::fs::metadata(entry.path()).map_or(true, |m| m.uid() != uid) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let Some(run_id) = environ
            .split(|b| *b == 0)
            .find_map(|var| var.strip_prefix(b"PARTEST_RUN_ID="))
            .and_then(|id| std::str::from_utf8(id).ok())
            .filter(|id| runs.contains(*id))
        else {
            continue;
        };
        let Some(start) = process_start(pid) else {
            continue;
        };
        let command = std::fs::read(entry.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .split('\0')
                    .filter(|a| !a.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        found.push(LeftProcess {
            pid,
            run_id: run_id.to_string(),
            command,
            start,
        });
    }
    found.sort_by_key(|p| p.pid);
    found
}

/// Kills a process found by [`processes_of`], if it is still that process.
pub fn kill(p: &LeftProcess) -> std::io::Result<()> {
    if process_start(p.pid) != Some(p.start) {
        return Ok(());
    }
    // SAFETY: kill has no memory effects; the pid was checked just above.
    if unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGKILL) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// The run's guard: a process of its own that outlives partest only to
/// kill what the run left running. Held for the run; partest's end, however
/// it comes (SIGKILL too), closes the guard's stdin, the one pipe only
/// partest holds.
pub struct Guard {
    _pipe: std::process::ChildStdin,
}

/// Starts the guard of `run_id`: `partest __guard RUN_ID`, in a process
/// group of its own (a terminal's Ctrl-C is partest's to handle, not its).
pub fn start_guard(run_id: &str) -> std::io::Result<Guard> {
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["__guard", run_id])
        .env_remove("PARTEST_RUN_ID")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()?;
    let pipe = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("the guard has no stdin"))?;
    Ok(Guard { _pipe: pipe })
}

/// The guard's body (`partest __guard RUN_ID`): waits until partest is
/// gone, then kills every process that names `run_id` as its run — tests,
/// pytest workers, setup commands, granted programs and what they started,
/// `setsid` daemons included — until none is left. After a clean exit it
/// finds none.
pub fn guard(run_id: &str) -> i32 {
    use std::io::Read;
    let mut stdin = std::io::stdin().lock();
    let mut sink = [0u8; 64];
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    let runs = BTreeSet::from([run_id.to_string()]);
    // What is killed may have started more meanwhile: look again.
    for _ in 0..100 {
        let left = processes_of(&runs);
        if left.is_empty() {
            break;
        }
        for p in &left {
            let _ = kill(p);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    0
}

/// This process and its ancestors: never killed by `clean`, even when it
/// runs inside a dead run's test.
fn ancestors() -> Vec<u32> {
    let mut pids = vec![std::process::id()];
    while let Some(&pid) = pids.last() {
        let parent = Stat::read(pid).and_then(|stat| stat.field(4)?.parse::<u32>().ok());
        match parent {
            Some(ppid) if ppid > 1 && !pids.contains(&ppid) => pids.push(ppid),
            _ => break,
        }
    }
    pids
}

/// A process's start time in clock ticks since boot (field 22 of its stat),
/// or None when it does not exist or is a zombie.
fn process_start(pid: u32) -> Option<u64> {
    let stat = Stat::read(pid)?;
    if stat.is_ended() {
        return None;
    }
    stat.field(22)?.parse().ok()
}

/// Whether a process runs (a zombie does not: it is only waiting to be reaped).
pub fn process_runs(pid: u32) -> bool {
    Stat::read(pid).is_some_and(|stat| !stat.is_ended())
}

/// A process's `/proc/PID/stat` from field 3 (its state) on: what follows
/// the command name, which may itself hold spaces and parentheses.
struct Stat(String);

impl Stat {
    /// None when there is no such process.
    fn read(pid: u32) -> Option<Stat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = stat.rsplit_once(')')?;
        Some(Stat(rest.to_string()))
    }

    /// Field `n`, numbered as in proc(5) (3 is the state, 4 the parent pid,
    /// 22 the start time); the fields before 3 are not kept.
    fn field(&self, n: usize) -> Option<&str> {
        self.0.split_whitespace().nth(n.checked_sub(3)?)
    }

    /// A zombie (Z) or dead (X) process: it no longer runs.
    fn is_ended(&self) -> bool {
        self.field(3)
            .is_some_and(|state| state.starts_with(['Z', 'X']))
    }
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

    #[test]
    fn processes_of_a_run_are_found_by_their_environment_and_killed() {
        let id = format!("t{}x", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("PARTEST_RUN_ID", &id)
            .spawn()
            .unwrap();
        let runs: BTreeSet<String> = [id.clone()].into();
        // spawn returns once exec has begun, but the kernel fills in the new
        // program's environment a moment later: until then /proc shows none.
        let mut found = processes_of(&runs);
        for _ in 0..500 {
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = processes_of(&runs);
        }
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].pid, found[0].run_id.as_str()),
            (child.id(), id.as_str())
        );
        assert!(found[0].command.contains("sleep 30"), "{found:?}");
        assert!(processes_of(&["other".to_string()].into()).is_empty());
        kill(&found[0]).unwrap();
        assert!(!child.wait().unwrap().success());
        // Gone (and reaped): nothing to kill, no error.
        kill(&found[0]).unwrap();
    }
}
