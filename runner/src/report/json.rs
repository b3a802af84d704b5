//! `--message-format json`: one JSON object per line on stdout, for tools.
//! The first is `{"type": "format", "format-version": 1, ...}`; every event
//! has a `timestamp` (RFC 3339, UTC). A new version number means a field
//! changed meaning or went away; added fields and events keep the version.

use std::collections::HashMap;
use std::io::Write;

use serde_json::json;

use super::{Event, FinalResult, Sink, Summary};
use crate::model::TestCase;

pub struct Json {
    out: std::io::Stdout,
}

/// The JSON event format's version, in its first event.
pub const FORMAT_VERSION: u32 = 1;

impl Json {
    pub fn new() -> Json {
        let mut json = Json {
            out: std::io::stdout(),
        };
        json.emit(json!({
            "type": "format", "format-version": FORMAT_VERSION,
            "partest-version": env!("CARGO_PKG_VERSION"),
        }));
        json
    }

    fn emit(&mut self, mut value: serde_json::Value) {
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "timestamp".into(),
                super::timestamp(std::time::SystemTime::now()).into(),
            );
        }
        let mut out = self.out.lock();
        let _ = serde_json::to_writer(&mut out, &value);
        let _ = out.write_all(b"\n");
    }
}

impl Sink for Json {
    fn event(&mut self, event: &Event, tests: &[TestCase], _results: &HashMap<u32, FinalResult>) {
        let name = |i: &u32| {
            tests
                .get(*i as usize)
                .map(|t| t.name.as_str())
                .unwrap_or("?")
        };
        let value = match event {
            Event::Planned {
                total,
                from_last_run,
                ..
            } => json!({"type": "planned", "tests": total, "from_last_run": from_last_run}),
            Event::RunStarted {
                run_id,
                workers,
                parallel,
                serial,
                skipped,
            } => json!({
                "type": "run-started", "run_id": run_id, "workers": workers,
                "parallel": parallel, "serial": serial, "skipped": skipped,
            }),
            Event::Warning(message) => json!({"type": "warning", "message": message}),
            Event::SetupCommand { command, duration } => json!({
                "type": "setup-command", "command": command, "duration_secs": duration.as_secs_f64(),
            }),
            Event::Setup(done) => json!({
                "type": "setup", "key": done.key, "inputs": done.inputs,
                "outcome": if done.reused_from.is_some() { "reused" } else { "built" },
                "built_at": done.reused_from, "duration_secs": done.duration.as_secs_f64(),
            }),
            Event::Deselected { tests } => json!({"type": "deselected", "tests": tests}),
            Event::AdapterFinished { text, failure } => {
                json!({"type": "adapter-finished", "text": text, "failure": failure})
            }
            Event::Span {
                slot,
                name,
                duration,
            } => json!({
                "type": "span", "slot": slot.map(|s| format!("gw{s}")), "name": name,
                "duration_secs": duration.as_secs_f64(),
            }),
            Event::SlotReady { slot } => json!({"type": "slot-ready", "slot": format!("gw{slot}")}),
            Event::PhaseStarted { serial } => {
                json!({"type": "phase-started", "phase": if *serial { "serial" } else { "parallel" }})
            }
            Event::TestStarted {
                test,
                slot,
                attempt,
            } => json!({
                "type": "test-started", "test": name(test), "slot": format!("gw{slot}"), "attempt": attempt,
            }),
            Event::TestFinished(f) => json!({
                "type": "test-finished", "test": name(&f.test), "slot": format!("gw{}", f.slot),
                "attempt": f.attempt, "status": f.status, "duration_secs": f.duration.as_secs_f64(),
                "will_retry": f.will_retry, "output": f.output, "stderr": f.stderr,
                "leaked": f.leaked,
            }),
            Event::TestSkipped { test } => json!({"type": "test-skipped", "test": name(test)}),
            Event::Interrupted => json!({"type": "interrupted"}),
            Event::Diagnosing { tests } => json!({"type": "diagnosis-started", "tests": tests}),
            Event::Diagnosed(d) => json!({
                "type": "diagnosis", "test": name(&d.test), "verdict": d.verdict.as_str(),
                "culprits": d.culprits.iter().map(name).collect::<Vec<_>>(),
                "reruns": d.reruns, "seconds": d.seconds,
            }),
            Event::NotDiagnosed { tests, why } => json!({
                "type": "not-diagnosed", "tests": tests.iter().map(name).collect::<Vec<_>>(),
                "why": why,
            }),
        };
        self.emit(value);
    }

    fn finish(&mut self, s: &Summary, _tests: &[TestCase]) {
        self.emit(json!({
            "type": "run-finished", "passed": s.passed, "failed": s.failed, "timed_out": s.timed_out, "crashed": s.crashed,
            "skipped": s.skipped, "flaky": s.flaky, "cancelled": s.cancelled, "deselected": s.deselected,
            "interrupted": s.interrupted, "leaked": s.leaked, "note": s.note,
            "wall_secs": s.wall.as_secs_f64(),
        }));
    }
}
