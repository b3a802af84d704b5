//! Ctrl-C and SIGTERM: counted, and made visible to every pool thread as a
//! readable pipe, so a thread waiting on its test process wakes at once
//! without any polling loop.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The interrupts fed by this process's signal handlers, once installed:
/// signal handlers are process-wide, and so is what they feed (the plugins'
/// `process` capability reads it from here).
static INSTALLED: OnceLock<Arc<Interrupts>> = OnceLock::new();

pub struct Interrupts {
    count: AtomicUsize,
    /// Becomes readable at the first interrupt and stays so (never drained).
    read: OwnedFd,
    write: OwnedFd,
}

impl Interrupts {
    /// Without signal handlers: for library use and tests, which call
    /// [`Interrupts::raise`] themselves.
    pub fn new() -> std::io::Result<Arc<Interrupts>> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Arc::new(Interrupts {
            count: AtomicUsize::new(0),
            read,
            write,
        }))
    }

    /// Installs SIGINT/SIGTERM handlers that feed these interrupts (once
    /// per process; a second call returns the same ones).
    pub fn install() -> std::io::Result<Arc<Interrupts>> {
        if let Some(installed) = INSTALLED.get() {
            return Ok(installed.clone());
        }
        let interrupts = Interrupts::new()?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = interrupts.clone();
        std::thread::Builder::new()
            .name("partest-signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    handle.raise();
                }
            })?;
        let _ = INSTALLED.set(interrupts.clone());
        Ok(interrupts)
    }

    /// The interrupts of [`Interrupts::install`], if it was called.
    pub fn installed() -> Option<Arc<Interrupts>> {
        INSTALLED.get().cloned()
    }

    pub fn raise(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        // SAFETY: writing one byte from a valid buffer to our own pipe.
        unsafe { libc::write(self.write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }

    /// How many interrupts arrived: 1 stops the run, 2 or more also cut the
    /// grace given to running tests.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn is_set(&self) -> bool {
        self.count() > 0
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}
