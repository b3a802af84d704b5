//! Running one test process: its own process group, its env, its output
//! captured to a per-slot file, a deadline, and a stop on Ctrl-C — all
//! waited on with one `poll` on a pidfd, no thread per test or per pipe.

pub mod bounded;
pub mod env;
pub mod private_paths;
mod signals;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use env::slot_env;
pub use signals::Interrupts;

use crate::model::{Invocation, ProcessEnd};
use private_paths::SlotMounts;

/// Once Ctrl-C was pressed twice, running tests get this long, not the grace.
const HURRIED_GRACE: Duration = Duration::from_millis(100);

/// Where a test's stdout and stderr go, each to a file of its own (kept
/// apart for reports, as nextest keeps them). One pair per slot, emptied
/// before each test and read only when needed.
pub struct Capture {
    out: File,
    err: File,
}

impl Capture {
    pub fn new(dir: &std::path::Path) -> std::io::Result<Capture> {
        Ok(Capture {
            out: tempfile::tempfile_in(dir)?,
            err: tempfile::tempfile_in(dir)?,
        })
    }

    fn reset(&mut self) -> std::io::Result<()> {
        for file in [&mut self.out, &mut self.err] {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
        }
        Ok(())
    }

    fn read_file(file: &mut File) -> String {
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(0)).is_ok() {
            let _ = file.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The last test's stdout, lossily decoded: test output is not always UTF-8.
    pub fn read(&mut self) -> String {
        Self::read_file(&mut self.out)
    }

    /// The last test's stderr.
    pub fn read_stderr(&mut self) -> String {
        Self::read_file(&mut self.err)
    }
}

/// How long processes a test left behind get to end by themselves before
/// they count as leaked (nextest's leak-timeout).
const LEAK_GRACE: Duration = Duration::from_millis(100);

/// Makes partest the reaper of its tests' orphans (once per process): a
/// process a test leaves behind becomes partest's child when the test's
/// main process ends, so partest can tell it is there (`waitid` on the
/// test's process group) and reap it once killed.
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    });
}

/// After the group's leader was reaped: reaps members that already ended
/// and says whether any is still running (a child of ours, as subreaper).
/// While one is, the group id stays taken, so signalling it is safe.
fn group_alive(pgid: i32) -> bool {
    loop {
        // SAFETY: waitid fills the zeroed siginfo we own.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PGID,
                pgid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        if rc != 0 {
            // ECHILD: no member of the group is our child any more.
            return false;
        }
        // SAFETY: si_pid is valid to read after a successful waitid.
        if unsafe { info.si_pid() } == 0 {
            return true;
        }
    }
}

/// Kills what is left of a group whose leader was reaped (only while a
/// member holds the group id) and reaps it, for at most `patience`.
pub(crate) fn reap_group(pgid: i32, patience: Duration) {
    if !group_alive(pgid) {
        return;
    }
    // SAFETY: killpg has no memory effects; a live member keeps the id ours.
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
    let end = Instant::now() + patience;
    while group_alive(pgid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How test processes are run; shared by all pool threads.
pub struct Spawner {
    pub interrupts: Arc<Interrupts>,
    /// Between SIGTERM and SIGKILL of a test's group.
    pub kill_grace: Duration,
}

/// What became of one process.
#[derive(Debug)]
pub struct Finished {
    pub end: ProcessEnd,
    pub duration: Duration,
    /// It ended but left processes running in its group (killed since).
    pub leaked: bool,
}

impl Spawner {
    /// For commands that handle no signals of their own (`partest list`).
    pub fn without_signals() -> std::io::Result<Spawner> {
        Ok(Spawner {
            interrupts: Interrupts::new()?,
            kill_grace: Duration::from_secs(2),
        })
    }

    /// Runs `invocation` to its end. `capture` None streams to our
    /// stdout/stderr; `private`: the slot's `[isolation]` namespace.
    pub fn run(
        &self,
        invocation: &Invocation,
        env: &[(String, String)],
        capture: Option<&mut Capture>,
        timeout: Option<Duration>,
        private: Option<&SlotMounts>,
    ) -> std::io::Result<Finished> {
        let mut cmd = Command::new(&invocation.program);
        cmd.args(&invocation.args)
            .current_dir(&invocation.cwd)
            .envs(invocation.env.iter().chain(env).map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(capture) = capture {
            capture.reset()?;
            cmd.stdout(Stdio::from(capture.out.try_clone()?))
                .stderr(Stdio::from(capture.err.try_clone()?));
        }
        if let Some(private) = private {
            private.apply(&mut cmd);
        }
        become_subreaper();
        let start = Instant::now();
        let mut child = cmd.spawn()?;
        let pgid = child.id() as i32;
        let stopped = self.wait(&mut child, start, timeout)?;
        let duration = start.elapsed();
        if stopped.is_some() {
            // Stopped: its whole group was killed before the leader is
            // reaped, so the group's id cannot have been reused.
            kill_group(&child, libc::SIGKILL);
        }
        let status = child.wait()?;
        // What it left running in its group became our child when the leader
        // ended: given a moment to end, else it leaked, and is killed, so it
        // cannot write into the next test's output or hold its ports.
        let mut leaked = false;
        if stopped.is_none() && group_alive(pgid) {
            let end = Instant::now() + LEAK_GRACE;
            while Instant::now() < end && group_alive(pgid) {
                std::thread::sleep(Duration::from_millis(2));
            }
            leaked = group_alive(pgid);
        }
        reap_group(pgid, Duration::from_secs(2));
        Ok(Finished {
            end: stopped.unwrap_or_else(|| end_of(status)),
            duration,
            leaked,
        })
    }

    /// Waits until the leader exits (left unreaped) or is stopped: None when
    /// it exited by itself, else why it was stopped.
    fn wait(
        &self,
        child: &mut Child,
        start: Instant,
        timeout: Option<Duration>,
    ) -> std::io::Result<Option<ProcessEnd>> {
        let pidfd = pidfd_open(child.id());
        let deadline = timeout.map(|t| start + t);
        loop {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                self.terminate(child, pidfd.as_ref())?;
                return Ok(Some(ProcessEnd::TimedOut));
            }
            if self.interrupts.is_set() {
                self.terminate(child, pidfd.as_ref())?;
                return Ok(Some(ProcessEnd::Interrupted));
            }
            match &pidfd {
                Some(fd) => {
                    let ms = remaining.map_or(-1, poll_ms);
                    if poll_readable(&[fd.as_raw_fd(), self.interrupts.fd()], ms)? == Some(0) {
                        return Ok(None);
                    }
                }
                // Kernels before 5.3 have no pidfd: fall back to polling.
                None => {
                    if exited_unreaped(child, None)? {
                        return Ok(None);
                    }
                    let step = remaining
                        .unwrap_or(Duration::MAX)
                        .min(Duration::from_millis(2));
                    poll_readable(&[self.interrupts.fd()], step.as_millis().max(1) as i32)?;
                }
            }
        }
    }

    /// TERM the group, give it the grace (cut short by a second Ctrl-C), then
    /// KILL. The leader is left for the caller to reap, after the KILL.
    pub(crate) fn terminate(
        &self,
        child: &mut Child,
        pidfd: Option<&OwnedFd>,
    ) -> std::io::Result<()> {
        kill_group(child, libc::SIGTERM);
        let deadline = Instant::now() + self.kill_grace;
        loop {
            if exited_unreaped(child, pidfd)? {
                break;
            }
            let grace_end = if self.interrupts.count() >= 2 {
                deadline.min(Instant::now() + HURRIED_GRACE)
            } else {
                deadline
            };
            let left = grace_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let step = left.min(Duration::from_millis(50)).as_millis().max(1) as i32;
            match pidfd {
                Some(fd) => drop(poll_readable(&[fd.as_raw_fd()], step)?),
                None => std::thread::sleep(Duration::from_millis(step as u64)),
            }
        }
        kill_group(child, libc::SIGKILL);
        Ok(())
    }
}

/// A poll timeout in milliseconds for what remains of a deadline.
pub(crate) fn poll_ms(remaining: Duration) -> i32 {
    remaining.as_millis().clamp(1, i32::MAX as u128) as i32
}

/// Whether the leader has exited, without reaping it (its pid, and so its
/// group's id, stays reserved until the caller waits).
pub(crate) fn exited_unreaped(child: &Child, pidfd: Option<&OwnedFd>) -> std::io::Result<bool> {
    if let Some(fd) = pidfd {
        return Ok(poll_readable(&[fd.as_raw_fd()], 0)?.is_some());
    }
    // SAFETY: waitid fills the zeroed siginfo we own; WNOWAIT leaves the child unreaped.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            child.id() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: si_pid is valid to read after a successful waitid.
    Ok(unsafe { info.si_pid() } != 0)
}

pub(crate) fn end_of(status: std::process::ExitStatus) -> ProcessEnd {
    match (status.code(), status.signal()) {
        (Some(code), _) => ProcessEnd::Exited(code),
        (None, Some(sig)) => ProcessEnd::Signalled(sig),
        (None, None) => ProcessEnd::Exited(-1),
    }
}

/// Signals the test's whole process group (its pgid is its pid).
pub(crate) fn kill_group(child: &Child, signal: i32) {
    // SAFETY: killpg has no memory effects; a group that is gone gives ESRCH.
    unsafe { libc::killpg(child.id() as libc::pid_t, signal) };
}

pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative return is a fresh fd that we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until one of `fds` is readable; returns its index, or None on timeout.
pub(crate) fn poll_readable(fds: &[i32], timeout_ms: i32) -> std::io::Result<Option<usize>> {
    // At most three fds (a pipe, the interrupts, the child): an array, no
    // allocation per test.
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 3];
    let count = fds.len().min(pfds.len());
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
    }
    let pfds = &mut pfds[..count];
    loop {
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), count as libc::nfds_t, timeout_ms) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(pfds.iter().position(|p| p.revents != 0));
    }
}
