//! `--html FILE` (and `partest report --html FILE` from the last run): one
//! self-contained HTML page of a run — no network, no external script. The
//! summary; a timeline with a row per slot and a box per test attempt
//! (colour: outcome; hover: id and duration; click: its output); the
//! failures with their output; the worker-count report; the plugins and
//! what the set-up did; the slowest tests.
//!
//! The page is rendered from a [`RunPage`], which every run also keeps in
//! `.partest/last-run-page.json` so that `partest report --html` can draw
//! the last run again.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FinalResult, Summary};
use crate::model::{Status, TestCase};

/// One test attempt on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptBox {
    pub test: String,
    pub slot: usize,
    pub attempt: u32,
    /// Seconds since the run started.
    pub start: f64,
    pub seconds: f64,
    pub outcome: String,
}

/// A failed test's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureText {
    pub test: String,
    pub outcome: String,
    pub output: String,
    pub stderr: String,
}

/// What the page needs from the run beyond the events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageContext {
    /// The worker-count report: each factor, and the one that bound.
    pub workers_report: String,
    /// The plugins and what each gives a slot.
    pub plugins: Vec<String>,
}

/// Everything the page shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    pub run_id: String,
    pub when: String,
    pub wall_seconds: f64,
    pub slots: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub flaky: usize,
    pub not_run: usize,
    pub attempts: Vec<AttemptBox>,
    pub failures: Vec<FailureText>,
    pub slowest: Vec<(String, f64)>,
    /// The set-up line (kept, built) and `[setup]` commands.
    pub setup: Vec<String>,
    pub context: PageContext,
}

/// A status as the page's classes and words name it.
pub fn outcome(status: Status, flaky: bool) -> &'static str {
    match status {
        Status::Pass if flaky => "flaky",
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Timeout => "timeout",
        Status::Crash => "crash",
        Status::Skip => "skip",
        Status::Cancelled => "cancelled",
    }
}

impl RunPage {
    /// The page of a finished run.
    pub fn new(
        summary: &Summary,
        tests: &[TestCase],
        attempts: &[Attempt],
        setup: Vec<String>,
        context: PageContext,
        run_id: String,
    ) -> RunPage {
        let name = |i: u32| {
            tests
                .get(i as usize)
                .map_or("?".to_string(), |t| t.name.clone())
        };
        let attempts: Vec<AttemptBox> = attempts.iter().map(|a| a.boxed(tests)).collect();
        let mut results: Vec<(&u32, &FinalResult)> = summary.results.iter().collect();
        results.sort_by_key(|(i, _)| **i);
        let failures = results
            .iter()
            .filter(|(_, r)| r.status.is_failure())
            .map(|(i, r)| FailureText {
                test: name(**i),
                outcome: outcome(r.status, r.flaky).to_string(),
                output: r.output.clone().unwrap_or_default(),
                stderr: r.stderr.clone().unwrap_or_default(),
            })
            .collect();
        let mut slowest: Vec<(String, f64)> = results
            .iter()
            .filter(|(_, r)| r.attempts > 0 && r.status != Status::Cancelled)
            .map(|(i, r)| (name(**i), r.duration.as_secs_f64()))
            .collect();
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        slowest.truncate(10);
        RunPage {
            run_id,
            when: super::timestamp(std::time::SystemTime::now()),
            wall_seconds: summary.wall.as_secs_f64(),
            slots: attempts.iter().map(|a| a.slot + 1).max().unwrap_or(0),
            passed: summary.passed,
            failed: summary.failed + summary.timed_out + summary.crashed,
            skipped: summary.skipped,
            flaky: summary.flaky,
            not_run: summary.cancelled,
            attempts,
            failures,
            slowest,
            setup,
            context,
        }
    }

    fn record_path(state_dir: &Path) -> PathBuf {
        state_dir.join("last-run-page.json")
    }

    /// Keeps the page's data for `partest report --html`.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        std::fs::write(Self::record_path(state_dir), serde_json::to_vec(self)?)
    }

    /// The last run's page, if one was kept.
    pub fn load(state_dir: &Path) -> Result<RunPage, String> {
        let path = Self::record_path(state_dir);
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "no record of a last run at {} ({e}): run `partest run` first",
                path.display()
            )
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a run's record: {e}", path.display()))
    }

    /// Writes the page to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.render())
    }

    /// The whole page.
    pub fn render(&self) -> String {
        let mut h = String::with_capacity(16 << 10);
        let _ = write!(
            h,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>partest run {id}</title><style>{STYLE}</style></head><body>\n\
             <h1>partest run {id}</h1><p class=\"when\">{when}</p>\n",
            id = esc(&self.run_id),
            when = esc(&self.when),
        );
        let _ = writeln!(
            h,
            "<section id=\"summary\"><span class=\"count pass\">{} passed</span> \
             <span class=\"count fail\">{} failed</span> <span class=\"count skip\">{} skipped</span> \
             <span class=\"count flaky\">{} flaky</span> <span class=\"count\">{} not run</span> \
             <span class=\"count\">{:.3} s on {} slot(s)</span></section>",
            self.passed,
            self.failed,
            self.skipped,
            self.flaky,
            self.not_run,
            self.wall_seconds,
            self.slots
        );
        self.timeline(&mut h);
        h.push_str(
            "<section id=\"detail\" hidden><h2 class=\"test\"></h2><p class=\"outcome\"></p>\
             <pre class=\"output\"></pre><pre class=\"stderr\"></pre></section>\n",
        );
        h.push_str("<section id=\"failures\"><h2>Failures</h2>\n");
        if self.failures.is_empty() {
            h.push_str("<p>none</p>\n");
        }
        for (i, f) in self.failures.iter().enumerate() {
            let _ = writeln!(
                h,
                "<div class=\"failure\" id=\"failure-{i}\" data-test=\"{t}\"><h3>{t} <span class=\"{o}\">{o}</span></h3>\
                 <pre class=\"output\">{out}</pre><pre class=\"stderr\">{err}</pre></div>",
                t = esc(&f.test),
                o = esc(&f.outcome),
                out = esc(&f.output),
                err = esc(&f.stderr),
            );
        }
        h.push_str("</section>\n");
        let _ = writeln!(
            h,
            "<section id=\"workers\"><h2>Worker count</h2><pre>{}</pre></section>",
            esc(&self.context.workers_report)
        );
        h.push_str("<section id=\"plugins\"><h2>Plugins and set-up</h2><ul>");
        for p in self.context.plugins.iter().chain(&self.setup) {
            let _ = write!(h, "<li>{}</li>", esc(p));
        }
        if self.context.plugins.is_empty() && self.setup.is_empty() {
            h.push_str("<li>none</li>");
        }
        h.push_str("</ul></section>\n<section id=\"slowest\"><h2>Slowest</h2><ol>");
        for (test, secs) in &self.slowest {
            let _ = write!(h, "<li>{secs:.3} s <code>{}</code></li>", esc(test));
        }
        let _ = write!(
            h,
            "</ol></section>\n<script>{SCRIPT}</script>\n</body></html>\n"
        );
        h
    }

    fn timeline(&self, h: &mut String) {
        let span = self
            .attempts
            .iter()
            .map(|a| a.start + a.seconds)
            .fold(self.wall_seconds, f64::max)
            .max(1e-6);
        let _ = writeln!(
            h,
            "<section id=\"timeline\"><h2>Timeline</h2><p class=\"axis\">0 s – {span:.3} s</p>"
        );
        for slot in 0..self.slots {
            let _ = write!(
                h,
                "<div class=\"slot-row\" data-slot=\"gw{slot}\"><span class=\"slot-name\">gw{slot}</span><div class=\"lane\">"
            );
            let mut lane: Vec<&AttemptBox> =
                self.attempts.iter().filter(|a| a.slot == slot).collect();
            lane.sort_by(|a, b| a.start.total_cmp(&b.start));
            // A slot runs one thing at a time: each box starts where the one
            // before it ends on screen, so none covers another (the times
            // are when the reporter heard, a little after the fact), and
            // the short ones' least width adds up to at most 40 %.
            let least = (40.0 / lane.len().max(1) as f64).min(0.25);
            let mut drawn_to = 0.0_f64;
            for a in lane {
                let left = (a.start / span * 100.0).max(drawn_to);
                let width = (a.seconds / span * 100.0).max(least);
                drawn_to = left + width;
                let failure = self.failures.iter().position(|f| f.test == a.test);
                let _ = write!(
                    h,
                    "<div class=\"attempt {o}\" style=\"left:{l:.4}%;width:{w:.4}%\" \
                     title=\"{t} — {s:.3} s, attempt {n}, {o}\" data-test=\"{t}\" data-outcome=\"{o}\"{f}></div>",
                    o = esc(&a.outcome),
                    l = left,
                    w = width,
                    t = esc(&a.test),
                    s = a.seconds,
                    n = a.attempt,
                    f = failure.map_or(String::new(), |i| format!(" data-failure=\"failure-{i}\"")),
                );
            }
            h.push_str("</div></div>\n");
        }
        h.push_str("</section>\n");
    }
}

/// What the reporter keeps of an attempt as it ends (no allocation per
/// test); the page's box is made from it at the end.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub test: u32,
    pub slot: usize,
    pub attempt: u32,
    pub status: Status,
    /// When it ended, into the run, and how long it took.
    pub ended: Duration,
    pub took: Duration,
}

impl Attempt {
    fn boxed(&self, tests: &[TestCase]) -> AttemptBox {
        AttemptBox {
            test: tests
                .get(self.test as usize)
                .map_or("?".to_string(), |t| t.name.clone()),
            slot: self.slot,
            attempt: self.attempt,
            start: self.ended.saturating_sub(self.took).as_secs_f64(),
            seconds: self.took.as_secs_f64(),
            outcome: outcome(self.status, false).to_string(),
        }
    }
}

/// `text` safe inside HTML text and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}\
.count{display:inline-block;margin-right:1em;font-weight:600}\
.count.pass{color:#1a7f37}.count.fail{color:#cf222e}.count.skip{color:#777}.count.flaky{color:#9a6700}\
.slot-row{display:flex;align-items:center;margin:2px 0}\
.slot-name{width:4em;font-family:monospace}\
.lane{position:relative;flex:1;height:22px;background:#f3f3f3;border-radius:3px}\
.attempt{position:absolute;top:2px;height:18px;border-radius:2px;cursor:pointer;min-width:1px;opacity:.9}\
.attempt:hover{outline:2px solid #000}\
.attempt.pass{background:#2da44e}.attempt.fail,.attempt.crash{background:#cf222e}\
.attempt.timeout{background:#bc4c00}.attempt.skip,.attempt.cancelled{background:#999}.attempt.flaky{background:#d4a72c}\
#detail{border:1px solid #ccc;padding:.5em 1em;margin-top:1em;background:#fffbe6}\
pre{white-space:pre-wrap;background:#f6f8fa;padding:.5em;overflow:auto;max-height:30em}\
.failure h3{font-size:1em;font-family:monospace}.fail,.crash,.timeout{color:#cf222e}";

/// Click a box: its test, outcome and (for a failure) output in #detail.
const SCRIPT: &str = "document.querySelectorAll('.attempt').forEach(function(box){\
box.addEventListener('click',function(){\
var d=document.getElementById('detail');d.hidden=false;\
d.querySelector('.test').textContent=box.dataset.test;\
d.querySelector('.outcome').textContent=box.title;\
var f=box.dataset.failure?document.getElementById(box.dataset.failure):null;\
d.querySelector('.output').textContent=f?f.querySelector('.output').textContent:'';\
d.querySelector('.stderr').textContent=f?f.querySelector('.stderr').textContent:'';\
d.scrollIntoView();});});";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_tests_cannot_break_out_of_the_page() {
        let page = RunPage {
            run_id: "r1".into(),
            slots: 1,
            attempts: vec![AttemptBox {
                test: "t<script>\"".into(),
                slot: 0,
                attempt: 1,
                start: 0.0,
                seconds: 1.0,
                outcome: "fail".into(),
            }],
            failures: vec![FailureText {
                test: "t<script>\"".into(),
                outcome: "fail".into(),
                output: "</pre><script>alert(1)</script>".into(),
                stderr: String::new(),
            }],
            ..RunPage::default()
        };
        let html = page.render();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;alert(1)"));
        assert_eq!(html.matches("<script>").count(), 1, "only the page's own");
        assert!(html.contains("data-failure=\"failure-0\""));
    }
}
