//! `--trace FILE`: the run as Chrome trace-event JSON, which Perfetto and
//! `chrome://tracing` open: a track for the run (set-up, teardown, the
//! serial phase, diagnosis trials) and one per slot (its set-up and worker
//! start, collection, and a span per test attempt). Times are the run's own
//! clock: a step's end is when its event arrived, its start that less its
//! duration.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::Event;
use crate::model::TestCase;

#[derive(Default)]
pub struct Trace {
    events: Vec<Value>,
    /// Slots seen, for their track names.
    slots: Vec<usize>,
    /// When the serial phase began.
    serial_from: Option<Duration>,
    run_id: String,
}

/// The run's own track; slot N's is N + 1.
const RUN_TRACK: usize = 0;

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

impl Trace {
    fn span(
        &mut self,
        track: usize,
        name: String,
        cat: &str,
        end: Duration,
        took: Duration,
        args: Value,
    ) {
        let start = end.saturating_sub(took);
        self.events.push(json!({
            "name": name, "cat": cat, "ph": "X", "pid": 1, "tid": track,
            "ts": micros(start), "dur": micros(took).max(1), "args": args,
        }));
    }

    fn slot_track(&mut self, slot: usize) -> usize {
        if !self.slots.contains(&slot) {
            self.slots.push(slot);
        }
        slot + 1
    }

    /// Records what `event`, arrived `now` into the run, tells of time.
    pub fn event(&mut self, event: &Event, tests: &[TestCase], now: Duration) {
        match event {
            Event::RunStarted { run_id, .. } => self.run_id = run_id.clone(),
            Event::TestFinished(f) => {
                let track = self.slot_track(f.slot);
                let name = tests
                    .get(f.test as usize)
                    .map_or("?".to_string(), |t| t.name.clone());
                let args = json!({
                    "test": name, "outcome": f.status, "attempt": f.attempt,
                });
                self.span(track, name, "test", now, f.duration, args);
            }
            Event::SetupCommand { command, duration } => {
                let args = json!({ "command": command });
                self.span(
                    RUN_TRACK,
                    format!("[setup] {command}"),
                    "setup",
                    now,
                    *duration,
                    args,
                );
            }
            Event::Setup(done) => {
                let what = if done.reused_from.is_some() {
                    "reused"
                } else {
                    "built"
                };
                let args = json!({ "key": done.key, "inputs": done.inputs });
                self.span(
                    RUN_TRACK,
                    format!("set-up {what}"),
                    "setup",
                    now,
                    done.duration,
                    args,
                );
            }
            Event::Span {
                slot,
                name,
                duration,
            } => {
                let track = slot.map_or(RUN_TRACK, |s| self.slot_track(s));
                self.span(track, name.clone(), "step", now, *duration, json!({}));
            }
            Event::PhaseStarted { serial: true } => self.serial_from = Some(now),
            Event::Diagnosing { .. } => self.end_serial(now),
            _ => {}
        }
    }

    fn end_serial(&mut self, now: Duration) {
        if let Some(from) = self.serial_from.take() {
            self.span(
                RUN_TRACK,
                "serial phase".into(),
                "phase",
                now,
                now - from,
                json!({}),
            );
        }
    }

    /// Writes the trace, its tracks named.
    pub fn write(mut self, path: &Path, now: Duration) -> std::io::Result<()> {
        self.end_serial(now);
        let mut names = vec![json!({
            "name": "process_name", "ph": "M", "pid": 1,
            "args": { "name": format!("partest run {}", self.run_id) },
        })];
        let tracks = std::iter::once((RUN_TRACK, "run".to_string()))
            .chain(self.slots.iter().map(|s| (s + 1, format!("gw{s}"))));
        for (tid, name) in tracks {
            names.push(json!({
                "name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": { "name": name },
            }));
            names.push(json!({
                "name": "thread_sort_index", "ph": "M", "pid": 1, "tid": tid,
                "args": { "sort_index": tid },
            }));
        }
        names.append(&mut self.events);
        let doc = json!({ "traceEvents": names, "displayTimeUnit": "ms" });
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec(&doc)?)
    }
}
