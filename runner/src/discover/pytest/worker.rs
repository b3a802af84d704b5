//! One long-lived pytest process: started with a slot's env and partest's
//! pytest plugin, it lists the test files, collects the files it is told to,
//! runs the tests it is sent by address and answers each over its own pipe (never stdout or stderr, which tests
//! write to). The wire format is in `partest_pytest.py`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::discover::collect::{Collected, Files};
use crate::exec::{self, Spawner};
use crate::model::{ProcessEnd, TestAddress};

/// A worker's answer for one test.
#[derive(Debug, Clone, Deserialize)]
pub struct TestReply {
    #[serde(rename = "f")]
    pub file: u32,
    #[serde(rename = "o")]
    pub offset: u32,
    /// passed, failed, error, skipped, xfailed or xpassed.
    pub outcome: String,
    /// setup, call or teardown: where an error happened.
    pub when: String,
    pub duration: f64,
    /// The failure text (pytest's report and captured output), a skip reason.
    #[serde(default)]
    pub text: Option<String>,
    /// pytest asked to stop (`-x`, `--maxfail`).
    #[serde(default)]
    pub stop: bool,
}

/// What a worker says after its file list.
#[derive(Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Reply {
    Files(Files),
    Collected(Collected),
    Result(TestReply),
}

/// How waiting on a worker ended.
#[derive(Debug)]
pub enum Wait<T> {
    Got(T),
    /// The worker ended (crashed, or exited early); its group was killed.
    Ended(ProcessEnd),
    TimedOut,
    Interrupted,
}

pub struct PytestWorker {
    child: Child,
    pidfd: Option<OwnedFd>,
    commands: File,
    /// The command being written, kept between commands: one write each.
    line: String,
    replies: LineReader,
    /// The leader exited and was reaped: nothing more to signal or wait for.
    reaped: bool,
}

impl PytestWorker {
    /// Starts `cmd` (python -m pytest …) in its own process group with the
    /// two protocol pipes. Its stdout and stderr are whatever `cmd` says.
    pub fn start(mut cmd: Command) -> std::io::Result<PytestWorker> {
        let (cmd_read, cmd_write) = pipe()?;
        let (reply_read, reply_write) = pipe()?;
        let child_fds = [cmd_read.as_raw_fd(), reply_write.as_raw_fd()];
        cmd.env(
            "PARTEST_PYTEST_FDS",
            format!("{},{}", child_fds[0], child_fds[1]),
        )
        .stdin(Stdio::null())
        .process_group(0);
        // SAFETY: only fcntl, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for fd in child_fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        // Our copies of the child's ends go, so its death reads as EOF.
        drop((cmd_read, reply_write));
        set_nonblocking(&reply_read)?;
        Ok(PytestWorker {
            pidfd: exec::pidfd_open(child.id()),
            child,
            commands: File::from(cmd_write),
            line: String::with_capacity(64),
            replies: LineReader::new(reply_read),
            reaped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the worker's file list.
    pub fn files(
        &mut self,
        spawner: &Spawner,
        timeout: Option<Duration>,
    ) -> std::io::Result<Wait<Files>> {
        Ok(match self.reply(spawner, timeout)? {
            Wait::Got(Reply::Files(f)) => Wait::Got(f),
            Wait::Got(_) => Wait::Ended(self.kill(spawner)?),
            Wait::Ended(e) => Wait::Ended(e),
            Wait::TimedOut => Wait::TimedOut,
            Wait::Interrupted => Wait::Interrupted,
        })
    }

    /// Tells the worker to import and collect `files` (indices into its
    /// file list); it answers with one `Collected`. False when it is gone.
    pub fn collect(&mut self, files: &[u32]) -> bool {
        self.line.clear();
        self.line.push_str("collect");
        for f in files {
            let _ = write!(self.line, " {f}");
        }
        self.send()
    }

    /// Tells the worker to run the test at `test`, with `next` as pytest's
    /// `nextitem`, once it is done with what it was sent before: commands
    /// queue in the pipe, so the worker never waits for partest between
    /// tests. False when the worker is gone.
    pub fn run(&mut self, test: TestAddress, next: Option<TestAddress>, attempt: u32) -> bool {
        let (nf, no) = next.map_or((-1, -1), |n| (i64::from(n.file), i64::from(n.offset)));
        self.line.clear();
        let _ = write!(
            self.line,
            "run {} {} {nf} {no} {attempt}",
            test.file, test.offset
        );
        self.send()
    }

    /// Writes `self.line` and a newline with one write (the File is
    /// unbuffered: `writeln!` on it makes a syscall per piece). False when
    /// the worker is gone.
    fn send(&mut self) -> bool {
        self.line.push('\n');
        self.commands.write_all(self.line.as_bytes()).is_ok()
    }

    /// Waits for the worker's next reply. On a timeout or an interrupt the
    /// worker is terminated.
    pub fn reply(
        &mut self,
        spawner: &Spawner,
        timeout: Option<Duration>,
    ) -> std::io::Result<Wait<Reply>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(line) = self.replies.line()? {
                return parse(&line).map(Wait::Got);
            }
            if self.replies.eof || self.exited()? {
                // It may have written its last words just before it went.
                if let Some(line) = self.replies.line()? {
                    return parse(&line).map(Wait::Got);
                }
                // Dead leader: kill the group before reaping so a reused
                // pid is never signalled.
                exec::kill_group(&self.child, libc::SIGKILL);
                self.reaped = true;
                return Ok(Wait::Ended(exec::end_of(self.child.wait()?)));
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                self.kill(spawner)?;
                return Ok(Wait::TimedOut);
            }
            if spawner.interrupts.is_set() {
                self.kill(spawner)?;
                return Ok(Wait::Interrupted);
            }
            let ms = remaining.map_or(-1, exec::poll_ms);
            let reply = self.replies.fd.as_raw_fd();
            match &self.pidfd {
                Some(fd) => {
                    exec::poll_readable(&[reply, spawner.interrupts.fd(), fd.as_raw_fd()], ms)?
                }
                None => exec::poll_readable(&[reply, spawner.interrupts.fd()], ms.clamp(0, 5))?,
            };
        }
    }

    /// Asks the worker to finish (session fixtures tear down) and waits for
    /// it, up to `timeout`; then its group is killed whatever remains.
    pub fn stop(mut self, spawner: &Spawner, timeout: Option<Duration>) -> std::io::Result<()> {
        self.line.clear();
        self.line.push_str("stop");
        let _ = self.send();
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) || spawner.interrupts.is_set() {
                break;
            }
            if self.exited()? {
                break;
            }
            let ms = remaining.map_or(-1, exec::poll_ms);
            match &self.pidfd {
                Some(fd) => {
                    exec::poll_readable(&[fd.as_raw_fd(), spawner.interrupts.fd()], ms)?;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        self.kill(spawner).map(drop)
    }

    /// Terminates the worker's group (TERM, grace, KILL) and reaps it.
    pub fn kill(&mut self, spawner: &Spawner) -> std::io::Result<ProcessEnd> {
        if self.reaped {
            return Ok(ProcessEnd::Exited(-1));
        }
        spawner.terminate(&mut self.child, self.pidfd.as_ref())?;
        self.reaped = true;
        Ok(exec::end_of(self.child.wait()?))
    }

    fn exited(&self) -> std::io::Result<bool> {
        exec::exited_unreaped(&self.child, self.pidfd.as_ref())
    }
}

impl Drop for PytestWorker {
    fn drop(&mut self) {
        if !self.reaped {
            exec::kill_group(&self.child, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn parse(line: &[u8]) -> std::io::Result<Reply> {
    serde_json::from_slice(line).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the pytest worker sent an unreadable message ({e}): {}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            ),
        )
    })
}

/// Lines from a non-blocking pipe, without a read per byte.
struct LineReader {
    fd: OwnedFd,
    pending: Vec<u8>,
    eof: bool,
}

impl LineReader {
    fn new(fd: OwnedFd) -> LineReader {
        LineReader {
            fd,
            pending: Vec::with_capacity(64 * 1024),
            eof: false,
        }
    }

    /// A complete line if one is buffered or readable now (without its newline).
    fn line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.eof {
                return Ok(None);
            }
            let mut chunk = [0u8; 64 * 1024];
            // SAFETY: reading into a valid buffer of the given length.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            match n {
                0 => self.eof = true,
                n if n > 0 => self.pending.extend_from_slice(&chunk[..n as usize]),
                _ => {
                    let err = std::io::Error::last_os_error();
                    match err.kind() {
                        std::io::ErrorKind::WouldBlock => return Ok(None),
                        std::io::ErrorKind::Interrupted => {}
                        _ => return Err(err),
                    }
                }
            }
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fcntl on an fd we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
