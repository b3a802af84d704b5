//! Host work that must end with the plugin's call: a query runs on this
//! thread while a watchdog waits for the deadline and, if the work is
//! still going then, stops it from outside (cancels the query, interrupts
//! SQLite). The plugin cannot undo that with anything it sends.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often the watchdog asks `over_limit` meanwhile.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// How long work may go on after `stop` before `kill` (a statement that
/// catches its own cancel).
pub const GRACE: Duration = Duration::from_secs(1);

/// Runs `work`; if it is still running at `deadline`, or `over_limit` says
/// so (asked every [`CHECK_EVERY`] on the watchdog thread), calls `stop`
/// once, from that thread. Returns what `work` returned and whether `stop` ran.
pub fn bounded<R>(
    deadline: Instant,
    over_limit: impl Fn() -> bool + Send + 'static,
    stop: impl FnOnce() + Send + 'static,
    work: impl FnOnce() -> R,
) -> (R, bool) {
    bounded_then_kill(deadline, over_limit, stop, || {}, work)
}

/// [`bounded`], and when the work is still going [`GRACE`] after `stop`,
/// `kill` (close its connection): nothing the work does outlasts that.
pub fn bounded_then_kill<R>(
    deadline: Instant,
    over_limit: impl Fn() -> bool + Send + 'static,
    stop: impl FnOnce() + Send + 'static,
    kill: impl FnOnce() + Send + 'static,
    work: impl FnOnce() -> R,
) -> (R, bool) {
    let (done, wait) = mpsc::channel::<()>();
    let (stopped_tx, stopped) = mpsc::channel::<()>();
    let watchdog = std::thread::Builder::new()
        .name("partest-plugin-deadline".into())
        .spawn(move || {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match wait.recv_timeout(left.min(CHECK_EVERY)) {
                    Err(RecvTimeoutError::Timeout) if left > CHECK_EVERY && !over_limit() => {}
                    Err(RecvTimeoutError::Timeout) => {
                        stop();
                        let _ = stopped_tx.send(());
                        if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(GRACE) {
                            kill();
                        }
                        return;
                    }
                    // The work ended.
                    _ => return,
                }
            }
        });
    let result = work();
    drop(done);
    let stopped = match watchdog {
        Ok(handle) => {
            let _ = handle.join();
            stopped.try_recv().is_ok()
        }
        // No thread to watch: the work ran unguarded (the epoch still
        // stops the plugin after it).
        Err(_) => false,
    };
    (result, stopped)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn work_past_the_deadline_is_stopped() {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        let (spins, stopped) = bounded(
            Instant::now() + Duration::from_millis(50),
            || false,
            move || set.store(true, Ordering::SeqCst),
            || {
                let mut n = 0u64;
                while !flag.load(Ordering::SeqCst) {
                    n += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                n
            },
        );
        assert!(stopped && spins > 0);
    }

    #[test]
    fn work_within_the_deadline_is_left_alone() {
        let (v, stopped) = bounded(
            Instant::now() + Duration::from_secs(10),
            || false,
            || panic!(),
            || 7,
        );
        assert_eq!((v, stopped), (7, false));
    }

    #[test]
    fn work_over_a_limit_is_stopped_before_the_deadline() {
        let start = Instant::now();
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        let (_, stopped) = bounded(
            Instant::now() + Duration::from_secs(60),
            || true,
            move || set.store(true, Ordering::SeqCst),
            || {
                while !flag.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            },
        );
        assert!(stopped && start.elapsed() < Duration::from_secs(30));
    }
}
