//! Human output: a nextest-like line per finished test on stdout, a progress
//! bar on a terminal's stderr, failures' output and a summary at the end.

use std::collections::HashMap;
use std::io::Write;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Event, FinalResult, Sink, Summary, fmt_duration};
use crate::model::{Diagnosis, Status, TestCase, Verdict};

pub struct Human {
    bar: Option<ProgressBar>,
    captured: bool,
    /// How many of the slowest tests the summary lists (0: all).
    slowest: usize,
}

impl Human {
    pub fn new(progress: bool, captured: bool, slowest: usize) -> Human {
        let bar = progress.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Human {
            bar,
            captured,
            slowest,
        }
    }

    /// Prints a line without tearing the progress bar.
    fn line(&self, text: &str) {
        let print = || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        };
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

fn label(status: Status, flaky: bool, will_retry: bool, leaked: bool) -> &'static str {
    match status {
        _ if will_retry => "RETRY",
        Status::Pass if flaky => "FLAKY",
        Status::Pass if leaked => "LEAK",
        Status::Fail if leaked => "LEAK-FAIL",
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Skip => "SKIP",
        Status::Timeout => "TIMEOUT",
        Status::Crash => "CRASH",
        Status::Cancelled => "CANCEL",
    }
}

impl Human {
    fn progress_line(p: &super::Progress) -> String {
        let mut text = format!(
            "   ... {}/{} done, {} failed, {} elapsed",
            p.done,
            p.total,
            p.failed,
            fmt_clock(p.elapsed)
        );
        if let Some(left) = p.left {
            text.push_str(&format!(", about {} left", fmt_clock(left)));
        }
        text
    }
}

/// `45s`, `3m05s`, `1h02m`.
fn fmt_clock(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl Sink for Human {
    fn heartbeat(&mut self, progress: &super::Progress) {
        self.line(&Self::progress_line(progress));
    }

    fn event(&mut self, event: &Event, tests: &[TestCase], results: &HashMap<u32, FinalResult>) {
        let name = |i: u32| {
            tests
                .get(i as usize)
                .map(|t| t.name.as_str())
                .unwrap_or("?")
        };
        match event {
            Event::Planned { total, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(*total as u64);
                }
            }
            Event::RunStarted {
                run_id,
                workers,
                parallel,
                serial,
                skipped,
            } => {
                let mut text = format!(
                    "Starting {parallel} {} on {workers} {}",
                    plural(*parallel, "test", "tests"),
                    plural(*workers, "worker", "workers")
                );
                if *serial > 0 {
                    text.push_str(&format!(", then {serial} serial"));
                }
                if *skipped > 0 {
                    text.push_str(&format!(" ({skipped} skipped)"));
                }
                self.line(&format!("{text}  [run {run_id}]"));
            }
            Event::Warning(message) => self.line(&format!("warning: {message}")),
            Event::AdapterFinished { text, failure } => {
                self.line(text.trim_end());
                if let Some(failure) = failure {
                    self.line(&format!("FAIL {failure}"));
                }
            }
            Event::SetupCommand { command, duration } => {
                self.line(&format!("   SETUP {} {command}", fmt_duration(*duration)));
            }
            Event::Setup(done) => {
                self.line(&format!("   {}", done.line(crate::report::unix_now())));
            }
            Event::PhaseStarted { serial: true } => self.line("Serial phase: alone, on gw0"),
            Event::PhaseStarted { serial: false }
            | Event::SlotReady { .. }
            | Event::Deselected { .. }
            | Event::Span { .. } => {}
            Event::TestStarted { test, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(name(*test).to_string());
                }
            }
            Event::TestFinished(f) => {
                let flaky = results.get(&f.test).is_some_and(|r| r.flaky);
                let mut text = format!(
                    "{:>8} {} gw{} {}",
                    label(f.status, flaky, f.will_retry, f.leaked),
                    fmt_duration(f.duration),
                    f.slot,
                    name(f.test)
                );
                if f.attempt > 1 || f.will_retry {
                    text.push_str(&format!(" (attempt {})", f.attempt));
                }
                self.line(&text);
                if !f.will_retry
                    && let Some(bar) = &self.bar
                {
                    bar.inc(1);
                }
            }
            Event::TestSkipped { test } => {
                self.line(&format!("{:>8} {:11} {}", "SKIP", "", name(*test)));
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            Event::Interrupted => {
                self.line("Interrupted: stopping running tests; teardown runs to its end")
            }
            Event::Diagnosing { tests } => self.line(&format!(
                "Diagnosis: running {tests} failed {} again with nothing else running, \
                 to tell why (--no-diagnose skips this)",
                plural(*tests, "test", "tests"),
            )),
            // Shown together, under the failures, by `finish`.
            Event::Diagnosed(_) | Event::NotDiagnosed { .. } => {}
        }
    }

    fn finish(&mut self, s: &Summary, tests: &[TestCase]) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let name = |i: u32| {
            tests
                .get(i as usize)
                .map(|t| t.name.as_str())
                .unwrap_or("?")
        };
        // `partest diagnose`: no test ran as the run's, only the trials.
        if s.results.is_empty() && (!s.diagnoses.is_empty() || s.not_diagnosed.is_some()) {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(why_they_failed(s, &name).as_bytes());
            let _ = stdout.flush();
            return;
        }
        let mut failures: Vec<(&u32, &FinalResult)> = s
            .results
            .iter()
            .filter(|(_, r)| r.status.is_failure() || r.status == Status::Cancelled)
            .collect();
        failures.sort_by_key(|(i, _)| **i);
        let mut out = String::new();
        for (i, r) in &failures {
            if r.status == Status::Cancelled {
                continue;
            }
            out.push_str(&format!(
                "\n--- {} {} (gw{}, attempt {}) ---\n",
                label(r.status, false, false, r.leaked),
                name(**i),
                r.slot,
                r.attempts
            ));
            let stderr = r.stderr.as_deref().filter(|t| !t.trim().is_empty());
            match &r.output {
                Some(text) if !text.trim().is_empty() => {
                    if stderr.is_some() {
                        out.push_str("--- stdout ---\n");
                    }
                    out.push_str(text.trim_end());
                    out.push('\n');
                }
                _ if !self.captured => out.push_str("(output was streamed above: --no-capture)\n"),
                _ if stderr.is_none() => out.push_str("(no output)\n"),
                _ => {}
            }
            if let Some(text) = stderr {
                out.push_str("--- stderr ---\n");
                out.push_str(text.trim_end());
                out.push('\n');
            }
        }
        let stopped: Vec<&str> = failures
            .iter()
            .filter(|(_, r)| r.status == Status::Cancelled)
            .map(|(i, _)| name(**i))
            .collect();
        if !stopped.is_empty() {
            out.push_str(&format!(
                "\nInterrupted while running: {}\n",
                stopped.join(", ")
            ));
        }
        out.push_str(&why_they_failed(s, &name));
        out.push_str(&format!(
            "\nSummary {} {} passed, {} failed, {} skipped, {} flaky",
            fmt_duration(s.wall),
            s.passed,
            s.failed + s.timed_out + s.crashed,
            s.skipped,
            s.flaky
        ));
        if s.timed_out > 0 {
            out.push_str(&format!(" ({} timed out)", s.timed_out));
        }
        if s.crashed > 0 {
            out.push_str(&format!(" ({} crashed)", s.crashed));
        }
        if s.leaked > 0 {
            out.push_str(&format!(", {} leaky", s.leaked));
        }
        if s.cancelled > 0 {
            out.push_str(&format!(", {} not run", s.cancelled));
        }
        if s.deselected > 0 {
            out.push_str(&format!(", {} deselected", s.deselected));
        }
        if let Some(said) = &s.from_last_run {
            out.push_str(&format!("; {said}"));
        }
        if let Some(note) = &s.note {
            out.push_str(&format!("; {note}"));
        }
        out.push('\n');
        // The failures once more, right under the summary, as nextest lists them.
        for (i, r) in failures
            .iter()
            .filter(|(_, r)| r.status != Status::Cancelled)
        {
            out.push_str(&format!(
                "{:>9} {} {}\n",
                label(r.status, false, false, r.leaked),
                fmt_duration(r.duration),
                name(**i)
            ));
        }
        let mut slowest: Vec<(&u32, &FinalResult)> = s
            .results
            .iter()
            .filter(|(_, r)| r.attempts > 0 && r.status != Status::Cancelled)
            .collect();
        slowest.sort_by(|a, b| b.1.duration.cmp(&a.1.duration).then(a.0.cmp(b.0)));
        if !slowest.is_empty() {
            out.push_str("Slowest:\n");
            let shown = match self.slowest {
                0 => slowest.len(),
                n => n,
            };
            for (i, r) in slowest.iter().take(shown) {
                out.push_str(&format!("  {} {}\n", fmt_duration(r.duration), name(**i)));
            }
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
}

/// The diagnoses, one block: a line per examined test with its verdict and
/// culprits, then the verdict's advice.
fn why_they_failed<'t>(s: &Summary, name: &dyn Fn(u32) -> &'t str) -> String {
    if s.diagnoses.is_empty() && s.not_diagnosed.is_none() {
        return String::new();
    }
    let mut out = String::from("\nWhy these failed (each run again with nothing else running):\n");
    let mut found: Vec<&Diagnosis> = s.diagnoses.values().collect();
    found.sort_by_key(|d| d.test);
    for d in found {
        let culprits: Vec<&str> = d.culprits.iter().map(|&c| name(c)).collect();
        let what = match d.verdict {
            Verdict::OrderDependent => format!(" after {}", culprits.join(" and ")),
            Verdict::Concurrent => format!(" beside {}", culprits.join(" and ")),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  {:>15} {}{what} [{} {}, {:.1}s{}]\n      {}\n",
            d.verdict.as_str().to_uppercase(),
            name(d.test),
            d.reruns,
            plural(d.reruns as usize, "rerun", "reruns"),
            d.seconds,
            if d.unfinished {
                ", out of budget: not narrowed further"
            } else {
                ""
            },
            d.verdict.advice()
        ));
    }
    if let Some((tests, why)) = &s.not_diagnosed {
        let names: Vec<&str> = tests.iter().map(|&t| name(t)).collect();
        out.push_str(&format!("  not examined ({why}): {}\n", names.join(", ")));
    }
    out
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
