//! Running one test process: its own process group, its env, its output
//! captured to a per-slot file, a deadline, and a stop on Ctrl-C — all
//! waited on with one `poll` on a pidfd, no thread per test or per pipe.

pub mod bounded;
mod env;
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

use crate::discover::{Invocation, ProcessEnd};

/// Once Ctrl-C was pressed twice, running tests get this long, not the grace.
const HURRIED_GRACE: Duration = Duration::from_millis(100);

/// Where a test's stdout and stderr go, interleaved as a terminal shows them.
/// One file per slot, emptied before each test and read only when needed.
pub struct Capture {
    file: File,
}

impl Capture {
    pub fn new(dir: &std::path::Path) -> std::io::Result<Capture> {
        Ok(Capture {
            file: tempfile::tempfile_in(dir)?,
        })
    }

    fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0)).map(drop)
    }

    /// The last test's output, lossily decoded: test output is not always UTF-8.
    pub fn read(&mut self) -> String {
        let mut bytes = Vec::new();
        if self.file.seek(SeekFrom::Start(0)).is_ok() {
            let _ = self.file.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
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
}

impl Spawner {
    /// For commands that handle no signals of their own (`partest list`).
    pub fn without_signals() -> std::io::Result<Spawner> {
        Ok(Spawner {
            interrupts: Interrupts::new()?,
            kill_grace: Duration::from_secs(2),
        })
    }

    /// Runs `invocation` to its end. `capture` None streams to our stdout/stderr.
    pub fn run(
        &self,
        invocation: &Invocation,
        env: &[(String, String)],
        capture: Option<&mut Capture>,
        timeout: Option<Duration>,
    ) -> std::io::Result<Finished> {
        let mut cmd = Command::new(&invocation.program);
        cmd.args(&invocation.args)
            .current_dir(&invocation.cwd)
            .envs(invocation.env.iter().chain(env).map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(capture) = capture {
            capture.reset()?;
            cmd.stdout(Stdio::from(capture.file.try_clone()?))
                .stderr(Stdio::from(capture.file.try_clone()?));
        }
        let start = Instant::now();
        let mut child = cmd.spawn()?;
        let stopped = self.wait(&mut child, start, timeout)?;
        let duration = start.elapsed();
        // Whatever the test left running in its group goes with it, so it
        // cannot write into the next test's output or hold its ports. The
        // leader is not reaped yet, so its pid (the group's id) is not reused.
        kill_group(&child, libc::SIGKILL);
        let status = child.wait()?;
        Ok(Finished {
            end: stopped.unwrap_or_else(|| end_of(status)),
            duration,
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
