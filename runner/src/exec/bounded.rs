//! A bounded child: one program run to completion under a deadline, for
//! callers that need its output (a plugin's granted program; later the
//! setup commands and discovery). It runs in its own process group, with
//! exactly the env it is given (plus partest's own PATH, which nothing
//! given can replace), in a fixed working directory; at the deadline or on
//! Ctrl-C the whole group gets TERM, a grace, then KILL — before the leader
//! is reaped, so the group id cannot have been reused. Output is read with
//! a byte cap, and the call ends when the leader ends: a grandchild that
//! left the group with the pipes open cannot hold it.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Interrupts, end_of, exited_unreaped, kill_group, pidfd_open, poll_ms};
use crate::model::ProcessEnd;

/// One program to run: what, with which arguments and env, where.
#[derive(Clone, Debug)]
pub struct BoundedCommand {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
    /// Start from partest's own environment (the user's commands), not an
    /// empty one (a plugin's program).
    inherit_env: bool,
    /// stderr goes to partest's own (cargo's diagnostics), not captured.
    stderr_inherited: bool,
}

/// How long it may run and how much of its output is kept.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub timeout: Duration,
    /// Between TERM and KILL of the group.
    pub kill_grace: Duration,
    /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub output_cap: usize,
}

/// What became of the program and what it wrote.
#[derive(Debug)]
pub struct BoundedOutput {
    pub end: ProcessEnd,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Whether output past the cap was dropped.
    pub truncated: bool,
}

impl BoundedCommand {
    /// `program` is looked up on partest's own PATH unless it holds a `/`
    /// (then it is relative to `cwd`).
    pub fn new(program: impl AsRef<OsStr>, cwd: impl AsRef<Path>) -> BoundedCommand {
        BoundedCommand {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: cwd.as_ref().to_path_buf(),
            inherit_env: false,
            stderr_inherited: false,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> BoundedCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Adds variables; the child gets these and PATH, nothing inherited.
    pub fn envs<I, K, V>(mut self, env: I) -> BoundedCommand
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env.extend(
            env.into_iter()
                .map(|(k, v)| (k.as_ref().to_os_string(), v.as_ref().to_os_string())),
        );
        self
    }

    /// Keeps partest's own environment under the given variables: for the
    /// user's own commands (`[setup]`), never for a plugin's program.
    pub fn inheriting_env(mut self) -> BoundedCommand {
        self.inherit_env = true;
        self
    }

    /// Lets the program write to partest's stderr (a build's progress and
    /// errors, shown as they come); stdout is still captured.
    pub fn stderr_inherited(mut self) -> BoundedCommand {
        self.stderr_inherited = true;
        self
    }

    /// The program's path: found on partest's PATH, never on one given.
    pub fn resolve(&self) -> std::io::Result<PathBuf> {
        let program = Path::new(&self.program);
        if program.as_os_str().is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an empty program name",
            ));
        }
        if program.components().count() > 1 || program.is_absolute() {
            return Ok(self.cwd.join(program));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} is not on PATH", program.display()),
                )
            })
    }

    /// Runs it to its end, the deadline, or an interrupt.
    pub fn run(
        &self,
        bounds: Bounds,
        interrupts: Option<&Interrupts>,
    ) -> std::io::Result<BoundedOutput> {
        let program = self.resolve()?;
        let mut cmd = Command::new(&program);
        cmd.args(&self.args).current_dir(&self.cwd);
        if !self.inherit_env {
            cmd.env_clear();
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if self.stderr_inherited {
                Stdio::inherit()
            } else {
                Stdio::piped()
            })
            .process_group(0);
        // Set last: a PATH among the given env does not replace partest's.
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let start = Instant::now();
        let mut child = cmd.spawn()?;
        let mut out = Output::new(&mut child, bounds.output_cap)?;
        let end = wait(
            &mut child,
            &mut out,
            start + bounds.timeout,
            bounds.kill_grace,
            interrupts,
        );
        // Whatever it left running in its group goes with it, whatever the
        // end; the leader is reaped only after, so the group id is still ours.
        kill_group(&child, libc::SIGKILL);
        let status = child.wait()?;
        // Members orphaned to us (partest is the tests' subreaper) are reaped.
        super::reap_group(child.id() as i32, Duration::from_millis(500));
        out.drain_available();
        let end = match end? {
            Some(end) => end,
            None => end_of(status),
        };
        Ok(BoundedOutput {
            end,
            truncated: out.truncated,
            stdout: out.stdout.buf,
            stderr: out.stderr.buf,
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Waits for the leader to exit (`None`: its status tells the end), the
/// deadline (`TimedOut`) or an interrupt (`Interrupted`), reading output
/// meanwhile. The leader is not reaped here.
fn wait(
    child: &mut Child,
    out: &mut Output,
    deadline: Instant,
    grace: Duration,
    interrupts: Option<&Interrupts>,
) -> std::io::Result<Option<ProcessEnd>> {
    let pidfd = pidfd_open(child.id());
    loop {
        if interrupts.is_some_and(|i| i.is_set()) {
            terminate(child, grace, interrupts, pidfd.as_ref());
            return Ok(Some(ProcessEnd::Interrupted));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            terminate(child, grace, interrupts, pidfd.as_ref());
            return Ok(Some(ProcessEnd::TimedOut));
        }
        if exited_unreaped(child, pidfd.as_ref())? {
            return Ok(None);
        }
        // Without a pidfd (kernels before 5.3), wake often to look again.
        let step = if pidfd.is_some() {
            left
        } else {
            left.min(Duration::from_millis(5))
        };
        let mut fds = vec![pidfd.as_ref().map_or(-1, |fd| fd.as_raw_fd())];
        fds.push(interrupts.map_or(-1, |i| i.fd()));
        fds.extend(out.open_fds());
        poll_any(&fds, step)?;
        out.read_ready();
    }
}

/// TERM the group, wait out the grace (cut short by a second Ctrl-C), KILL it.
fn terminate(
    child: &Child,
    grace: Duration,
    interrupts: Option<&Interrupts>,
    pidfd: Option<&OwnedFd>,
) {
    kill_group(child, libc::SIGTERM);
    let end = Instant::now() + grace;
    while Instant::now() < end && !exited_unreaped(child, pidfd).unwrap_or(true) {
        if interrupts.is_some_and(|i| i.count() >= 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    kill_group(child, libc::SIGKILL);
}

/// Polls `fds` (negative ones are skipped) for input or hang-up; true when
/// any is ready.
fn poll_any(fds: &[i32], timeout: Duration) -> std::io::Result<bool> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = if timeout.is_zero() {
        0
    } else {
        poll_ms(timeout)
    };
    loop {
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(n > 0);
    }
}

/// One output pipe, read without blocking, kept up to the cap.
struct Pipe<R> {
    reader: Option<R>,
    buf: Vec<u8>,
}

impl<R: Read + AsRawFd> Pipe<R> {
    fn new(reader: Option<R>) -> std::io::Result<Pipe<R>> {
        if let Some(r) = &reader {
            set_nonblocking(r.as_raw_fd())?;
        }
        Ok(Pipe {
            reader,
            buf: Vec::new(),
        })
    }

    /// Reads what is there now; returns whether bytes past `cap` were dropped.
    fn read_available(&mut self, cap: usize) -> bool {
        let mut dropped = false;
        let Some(r) = self.reader.as_mut() else {
            return false;
        };
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => {
                    self.reader = None;
                    break;
                }
                Ok(n) => {
                    let room = cap.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                    dropped |= n > room;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // WouldBlock: nothing more now. Any other error: the pipe is done.
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        self.reader = None;
                    }
                    break;
                }
            }
        }
        dropped
    }
}

struct Output {
    stdout: Pipe<ChildStdout>,
    stderr: Pipe<ChildStderr>,
    cap: usize,
    truncated: bool,
}

impl Output {
    fn new(child: &mut Child, cap: usize) -> std::io::Result<Output> {
        Ok(Output {
            stdout: Pipe::new(child.stdout.take())?,
            stderr: Pipe::new(child.stderr.take())?,
            cap,
            truncated: false,
        })
    }

    fn open_fds(&self) -> Vec<i32> {
        [
            self.stdout.reader.as_ref().map(|r| r.as_raw_fd()),
            self.stderr.reader.as_ref().map(|r| r.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn read_ready(&mut self) {
        self.truncated |= self.stdout.read_available(self.cap);
        self.truncated |= self.stderr.read_available(self.cap);
    }

    /// After the end: what is already in the pipes, without waiting for
    /// writers that may still hold them.
    fn drain_available(&mut self) {
        self.read_ready();
    }
}

fn set_nonblocking(fd: i32) -> std::io::Result<()> {
    // SAFETY: fcntl on an fd we own, reading and setting its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(timeout_ms: u64) -> Bounds {
        Bounds {
            timeout: Duration::from_millis(timeout_ms),
            kill_grace: Duration::from_millis(200),
            output_cap: 1024,
        }
    }

    fn sh(script: &str) -> BoundedCommand {
        BoundedCommand::new("sh", std::env::temp_dir()).args(["-c", script])
    }

    #[test]
    fn output_and_exit_code_come_back() {
        let out = sh("echo out; echo err >&2; exit 3")
            .run(bounds(10_000), None)
            .unwrap();
        assert_eq!(out.end, ProcessEnd::Exited(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert!(!out.truncated);
    }

    #[test]
    fn only_the_given_env_and_partests_path_reach_the_child() {
        let out = sh("env")
            .envs([("GIVEN", "1"), ("PATH", "/nonexistent")])
            .run(bounds(10_000), None)
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .filter(|k| !["PWD", "SHLVL", "_"].contains(k))
            .collect();
        names.sort();
        assert_eq!(names, ["GIVEN", "PATH"], "{text}");
        assert!(!text.contains("/nonexistent"), "{text}");
    }

    #[test]
    fn output_past_the_cap_is_dropped() {
        let out = sh("head -c 100000 /dev/zero")
            .run(bounds(10_000), None)
            .unwrap();
        assert_eq!(out.stdout.len(), 1024);
        assert!(out.truncated);
        assert_eq!(out.end, ProcessEnd::Exited(0));
    }

    #[test]
    fn the_group_is_killed_at_the_deadline_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("mark");
        let script = format!("(sleep 1; touch '{}') & sleep 30", mark.display());
        let start = Instant::now();
        let out = sh(&script).run(bounds(300), None).unwrap();
        assert_eq!(out.end, ProcessEnd::TimedOut);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!mark.exists(), "a grandchild outlived the deadline");
    }

    #[test]
    fn a_grandchild_holding_the_pipe_does_not_hold_the_call() {
        let start = Instant::now();
        let out = sh("sleep 30 & echo started")
            .run(bounds(20_000), None)
            .unwrap();
        assert_eq!(out.end, ProcessEnd::Exited(0));
        assert_eq!(out.stdout, b"started\n");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn an_interrupt_stops_it() {
        let interrupts = Interrupts::new().unwrap();
        interrupts.raise();
        let out = sh("sleep 30")
            .run(bounds(20_000), Some(&interrupts))
            .unwrap();
        assert_eq!(out.end, ProcessEnd::Interrupted);
    }

    #[test]
    fn programs_are_found_on_partests_path_only() {
        let cmd = BoundedCommand::new("sh", "/").envs([("PATH", "/tmp")]);
        let found = cmd.resolve().unwrap();
        assert!(found.is_absolute() && found.ends_with("sh"), "{found:?}");
        assert!(
            BoundedCommand::new("no-such-program-partest", "/")
                .resolve()
                .is_err()
        );
    }
}
