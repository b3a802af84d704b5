//! Reporting: everything the run produces arrives here as [`Event`]s over one
//! channel and is shown by one thread — human lines (with a progress bar on a
//! terminal) or JSON lines — then summed up, written to JUnit and returned.

pub mod html;
mod human;
mod json;
mod junit;
mod trace;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::model::{Diagnosis, MessageFormat, Status, TestCase, TestFinished};

/// What happened, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// The tests are known (for pytest, once the workers collected): events
    /// after this name tests by their index in `tests`.
    Planned {
        tests: Arc<Vec<TestCase>>,
        /// Tests to report, skipped ones included.
        total: usize,
        /// What the order or selection owes to the last run (`--lf`,
        /// failed-first), said on the summary line.
        from_last_run: Option<String>,
        /// Each test's expected duration (history, else a mean), by index:
        /// what the progress line's time left is summed from; empty when
        /// the history knows none of the tests.
        estimate: Arc<Vec<Duration>>,
    },
    RunStarted {
        run_id: String,
        workers: usize,
        parallel: usize,
        serial: usize,
        skipped: usize,
    },
    Warning(String),
    /// A setup command ran (its output is shown when it fails).
    SetupCommand {
        command: String,
        duration: Duration,
    },
    /// How the set-up kept across runs (`[setup] inputs`) went.
    Setup(SetupDone),
    /// A timed step that is not a test, for the trace: the plugins'
    /// setup-run, a slot's set-up and worker start, a worker's collection,
    /// teardown, a diagnosis trial. `slot`: whose track (`None`: the run's).
    Span {
        slot: Option<usize>,
        name: String,
        duration: Duration,
    },
    /// What the adapter did once the tests were over (pytest: the coverage
    /// pytest-cov measured, combined), and why the run fails because of it.
    AdapterFinished {
        text: String,
        failure: Option<String>,
    },
    /// The test runner itself left these tests out when it collected
    /// (pytest's `-k`, `-m`, `--deselect`).
    Deselected {
        tests: usize,
    },
    SlotReady {
        slot: usize,
    },
    TestStarted {
        test: u32,
        slot: usize,
        attempt: u32,
    },
    TestFinished(Box<TestFinished>),
    TestSkipped {
        test: u32,
    },
    /// Ctrl-C: these tests were stopped mid-run.
    Interrupted,
    PhaseStarted {
        serial: bool,
    },
    /// The run's phases are over: this many failed tests are examined.
    Diagnosing {
        tests: usize,
    },
    /// Why a test failed only in parallel (after the run's phases).
    Diagnosed(Box<Diagnosis>),
    /// Failed tests the diagnosis left unexamined, and why.
    NotDiagnosed {
        tests: Vec<u32>,
        why: String,
    },
}

/// A set-up kept across runs: reused, or built (and kept) by this run.
#[derive(Clone, Debug, PartialEq)]
pub struct SetupDone {
    /// The key of the inputs, commands and settings it was built from.
    pub key: String,
    /// How many files the `[setup] inputs` globs matched.
    pub inputs: usize,
    /// `Some(when it was built, seconds since the epoch)`: reused; `None`: built now.
    pub reused_from: Option<u64>,
    /// Building and keeping it, or checking and reusing it.
    pub duration: Duration,
}

impl SetupDone {
    /// The header line: `setup reused (key 3f2a9c1e…, built 2 days ago)`,
    /// the whole key, as `clean`, `report` and the template's name show it.
    pub fn line(&self, now: u64) -> String {
        let key = &self.key;
        match self.reused_from {
            Some(built) => format!(
                "setup reused (key {key}, built {} ago; {} input file(s) unchanged)",
                age(now.saturating_sub(built)),
                self.inputs
            ),
            None => format!(
                "setup built in {:.1} s (key {key}, {} input file(s)); kept for the next runs",
                self.duration.as_secs_f64(),
                self.inputs
            ),
        }
    }
}

/// `42 s`, `5 min`, `3 h`, `2 days`.
pub fn age(seconds: u64) -> String {
    match seconds {
        s if s < 90 => format!("{s} s"),
        s if s < 90 * 60 => format!("{} min", s / 60),
        s if s < 36 * 3600 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub struct ReporterOptions {
    pub format: MessageFormat,
    pub junit: Option<PathBuf>,
    /// Draw a progress bar (a terminal, human format).
    pub progress: bool,
    /// Output was streamed, so there is none to repeat for failures.
    pub captured: bool,
    /// Without a progress bar (no terminal: a CI log), a progress line this
    /// often, so that the log never goes quiet for minutes.
    pub heartbeat: Option<Duration>,
    /// How many of the slowest tests the human summary lists (`--durations`; 0: all).
    pub slowest: usize,
    /// `--trace FILE`: Chrome trace-event JSON of the run.
    pub trace: Option<PathBuf>,
    /// `--html FILE`: the run's page.
    pub html: Option<PathBuf>,
    /// What the page shows beyond the events (worker count, plugins), and
    /// where the run's page is kept for `partest report --html`.
    pub page: Option<(html::PageContext, PathBuf)>,
    /// Said on the summary line: what the adapter left out (doctests).
    pub note: Option<String>,
}

/// One failed attempt of a test that was retried.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub status: Status,
    pub duration: Duration,
    pub output: Option<String>,
    pub stderr: Option<String>,
}

/// A test's final word, after any retries.
#[derive(Clone, Debug)]
pub struct FinalResult {
    pub status: Status,
    pub attempts: u32,
    pub duration: Duration,
    pub slot: usize,
    pub output: Option<String>,
    pub stderr: Option<String>,
    /// Its last attempt left processes behind (LEAK).
    pub leaked: bool,
    /// Passed, but only after failing: FLAKY.
    pub flaky: bool,
    /// The failed attempts before the last, for JUnit's rerun entries.
    pub failed_attempts: Vec<Attempt>,
}

/// What the run amounted to.
#[derive(Debug, Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub timed_out: usize,
    /// The process running the test died under it (a pytest worker).
    pub crashed: usize,
    pub skipped: usize,
    pub flaky: usize,
    /// Not run, or stopped: Ctrl-C or --fail-fast.
    pub cancelled: usize,
    pub interrupted: bool,
    /// Tests that left processes behind (passed or not).
    pub leaked: usize,
    pub wall: Duration,
    pub results: HashMap<u32, FinalResult>,
    /// What the adapter did not run, for the summary line.
    pub note: Option<String>,
    /// What the order or selection owed to the last run.
    pub from_last_run: Option<String>,
    /// Why tests failed only in parallel, by test.
    pub diagnoses: HashMap<u32, Diagnosis>,
    /// Failed tests left unexamined, and why.
    pub not_diagnosed: Option<(Vec<u32>, String)>,
    /// Tests the runner left out when it collected (pytest's deselection).
    pub deselected: usize,
}

impl Summary {
    pub fn any_failed(&self) -> bool {
        self.failed > 0 || self.timed_out > 0 || self.crashed > 0
    }

    /// How many tests ran to an outcome (not skipped, not cancelled).
    pub fn ran(&self) -> usize {
        self.passed + self.flaky + self.failed + self.timed_out + self.crashed
    }
}

/// Something that shows events: one implementation per output format.
trait Sink {
    fn event(&mut self, event: &Event, tests: &[TestCase], results: &HashMap<u32, FinalResult>);
    fn finish(&mut self, summary: &Summary, tests: &[TestCase]);
    /// A progress line (only asked of the human output, without a terminal).
    fn heartbeat(&mut self, _progress: &Progress) {}
}

/// Where a run stands, for the progress line of a log without a terminal.
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// What the tests not yet finished are expected to take, over the
    /// workers; `None` when the history knows none of them.
    pub left: Option<Duration>,
}

/// Starts the reporter thread; the run sends events ([`Event::Planned`]
/// first among those about tests), then drops its sender and joins the
/// handle for the summary.
pub fn start(options: ReporterOptions) -> std::io::Result<(Sender<Event>, JoinHandle<Summary>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = std::thread::Builder::new()
        .name("partest-reporter".into())
        .spawn(move || report(rx, options))?;
    Ok((tx, handle))
}

fn report(rx: Receiver<Event>, options: ReporterOptions) -> Summary {
    let start = Instant::now();
    let mut sink: Box<dyn Sink> = match options.format {
        MessageFormat::Human => Box::new(human::Human::new(
            options.progress,
            options.captured,
            options.slowest,
        )),
        MessageFormat::Json => Box::new(json::Json::new()),
    };
    let mut tests: Arc<Vec<TestCase>> = Arc::default();
    let mut total = 0;
    let mut summary = Summary::default();
    let mut pace = Pace::default();
    let mut trace = options.trace.as_ref().map(|_| trace::Trace::default());
    // The page's timeline and set-up lines, when a page is wanted.
    let paging = options.html.is_some() || options.page.is_some();
    let mut attempts: Vec<html::Attempt> = Vec::new();
    let mut setup_lines: Vec<String> = Vec::new();
    let mut run_id = String::new();
    let mut next_beat = options.heartbeat.map(|every| Instant::now() + every);
    loop {
        let event = match next_beat {
            None => match rx.recv() {
                Ok(event) => event,
                Err(_) => break,
            },
            Some(at) => match rx.recv_deadline(at) {
                Ok(event) => event,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if total > 0 {
                        sink.heartbeat(&pace.progress(total, &summary, start.elapsed()));
                    }
                    next_beat = options.heartbeat.map(|every| Instant::now() + every);
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            },
        };
        match &event {
            Event::Planned {
                tests: planned,
                total: count,
                from_last_run,
                estimate,
            } => {
                tests = planned.clone();
                total = *count;
                summary.from_last_run = from_last_run.clone();
                pace.planned(estimate.clone(), &tests);
            }
            Event::RunStarted { workers, .. } => pace.workers = (*workers).max(1),
            Event::TestFinished(f) => {
                record(&mut summary.results, f);
                if !f.will_retry {
                    pace.finished(f.test);
                }
            }
            Event::TestSkipped { test } => {
                summary.results.insert(
                    *test,
                    FinalResult {
                        status: Status::Skip,
                        attempts: 0,
                        duration: Duration::ZERO,
                        slot: 0,
                        output: None,
                        stderr: None,
                        leaked: false,
                        flaky: false,
                        failed_attempts: Vec::new(),
                    },
                );
            }
            Event::Interrupted => summary.interrupted = true,
            Event::Deselected { tests } => summary.deselected = *tests,
            Event::Diagnosed(d) => {
                summary.diagnoses.insert(d.test, (**d).clone());
            }
            Event::NotDiagnosed { tests, why } => {
                summary.not_diagnosed = Some((tests.clone(), why.clone()));
            }
            _ => {}
        }
        if let Some(trace) = trace.as_mut() {
            trace.event(&event, &tests, start.elapsed());
        }
        if paging {
            match &event {
                Event::RunStarted { run_id: id, .. } => run_id = id.clone(),
                Event::TestFinished(f) => attempts.push(html::Attempt {
                    test: f.test,
                    slot: f.slot,
                    attempt: f.attempt,
                    status: f.status,
                    ended: start.elapsed(),
                    took: f.duration,
                }),
                Event::Setup(done) => setup_lines.push(done.line(unix_now())),
                Event::SetupCommand { command, duration } => setup_lines.push(format!(
                    "[setup] {command} ({:.1} s)",
                    duration.as_secs_f64()
                )),
                _ => {}
            }
        }
        sink.event(&event, &tests, &summary.results);
    }
    summary.wall = start.elapsed();
    summary.note = options.note.clone();
    for r in summary.results.values() {
        summary.leaked += usize::from(r.leaked);
        match r.status {
            Status::Pass if r.flaky => summary.flaky += 1,
            Status::Pass => summary.passed += 1,
            Status::Fail => summary.failed += 1,
            Status::Timeout => summary.timed_out += 1,
            Status::Crash => summary.crashed += 1,
            Status::Skip => summary.skipped += 1,
            Status::Cancelled => summary.cancelled += 1,
        }
    }
    // Tests that never got a result were not run (fail-fast, Ctrl-C, a setup error).
    summary.cancelled += total.saturating_sub(summary.results.len());
    if let Some(path) = &options.junit
        && let Err(e) = junit::write(path, &tests, &summary)
    {
        sink.event(
            &Event::Warning(format!("cannot write JUnit report {}: {e}", path.display())),
            &tests,
            &summary.results,
        );
    }
    if let (Some(trace), Some(path)) = (trace, &options.trace)
        && let Err(e) = trace.write(path, start.elapsed())
    {
        sink.event(
            &Event::Warning(format!("cannot write the trace {}: {e}", path.display())),
            &tests,
            &summary.results,
        );
    }
    if paging {
        let (context, state_dir) = options.page.clone().unzip();
        let page = html::RunPage::new(
            &summary,
            &tests,
            &attempts,
            setup_lines,
            context.unwrap_or_default(),
            run_id,
        );
        let mut wrote = |what: &str, path: &Path, r: std::io::Result<()>| {
            if let Err(e) = r {
                sink.event(
                    &Event::Warning(format!("cannot write {what} {}: {e}", path.display())),
                    &tests,
                    &summary.results,
                );
            }
        };
        if let Some(dir) = &state_dir {
            wrote("the run's page record in", dir, page.save(dir));
        }
        if let Some(path) = &options.html {
            wrote("the HTML report", path, page.write(path));
        }
    }
    sink.finish(&summary, &tests);
    summary
}

/// The expected time of what is left, kept as the run goes: the sum of the
/// estimates of the tests not yet finished, over the workers.
#[derive(Default)]
struct Pace {
    estimate: Arc<Vec<Duration>>,
    /// Whether the history knew any planned test (else no time left is said).
    known: bool,
    left: Duration,
    finished: Vec<bool>,
    workers: usize,
}

impl Pace {
    fn planned(&mut self, estimate: Arc<Vec<Duration>>, tests: &[TestCase]) {
        self.known = !estimate.is_empty() && estimate.len() == tests.len();
        self.left = estimate.iter().sum();
        self.finished = vec![false; estimate.len()];
        self.estimate = estimate;
    }

    fn finished(&mut self, test: u32) {
        let i = test as usize;
        if let Some(done) = self.finished.get_mut(i).filter(|d| !**d) {
            *done = true;
            self.left = self.left.saturating_sub(self.estimate[i]);
        }
    }

    fn progress(&self, total: usize, summary: &Summary, elapsed: Duration) -> Progress {
        let failed = summary
            .results
            .values()
            .filter(|r| r.status.is_failure())
            .count();
        Progress {
            done: summary.results.len().min(total),
            total,
            failed,
            elapsed,
            left: self.known.then(|| self.left / self.workers.max(1) as u32),
        }
    }
}

fn record(results: &mut HashMap<u32, FinalResult>, f: &TestFinished) {
    let entry = results.entry(f.test).or_insert_with(|| FinalResult {
        status: f.status,
        attempts: 0,
        duration: Duration::ZERO,
        slot: f.slot,
        output: None,
        stderr: None,
        leaked: false,
        flaky: false,
        failed_attempts: Vec::new(),
    });
    if entry.attempts > 0 && entry.status.is_failure() {
        entry.failed_attempts.push(Attempt {
            status: entry.status,
            duration: entry.duration,
            output: entry.output.take(),
            stderr: entry.stderr.take(),
        });
    }
    entry.flaky = f.status == Status::Pass && !entry.failed_attempts.is_empty();
    entry.status = f.status;
    entry.attempts = entry.attempts.max(f.attempt);
    entry.duration = f.duration;
    entry.slot = f.slot;
    entry.output = f.output.clone();
    entry.stderr = f.stderr.clone();
    entry.leaked = f.leaked;
}

/// Now as RFC 3339 in UTC with milliseconds (`2025-01-02T03:04:05.678Z`).
pub fn timestamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::from_timestamp(d.as_secs() as i64, d.subsec_nanos())
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// `[   0.123s]`, nextest's fixed-width duration.
pub fn fmt_duration(d: Duration) -> String {
    format!("[{:>8.3}s]", d.as_secs_f64())
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
