//! The last run's parallel phase kept for `partest diagnose`: written after
//! a run, read back later as the outcome the diagnosis examines, the tests
//! matched by name against the suite as it is now.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::history::{LastRan, LastRun};
use crate::model::Ran;
use crate::plan::Plan;
use crate::pool::PoolOutcome;
use crate::report::Event;

/// What the run keeps of its parallel phase.
pub fn record(plan: &Plan, outcome: &PoolOutcome, workers: usize) -> LastRun {
    let name = |test: u32| plan.tests[test as usize].name.clone();
    LastRun {
        workers,
        failed: outcome
            .failed_in_parallel
            .iter()
            .map(|&t| name(t))
            .collect(),
        timeline: outcome
            .timeline
            .iter()
            .map(|r| LastRan {
                test: name(r.test),
                slot: r.slot,
                worker: r.worker,
                start: r.start.as_secs_f64(),
                end: r.end.as_secs_f64(),
            })
            .collect(),
    }
}

/// A recorded run to diagnose again.
pub struct Replay {
    pub record: LastRun,
    /// Which of its failures to examine.
    pub examine: Vec<String>,
}

impl Replay {
    /// The recorded parallel phase as the pool's outcome, on `plan`'s tests;
    /// a test no longer in the suite is left out, and said.
    pub fn outcome(&self, plan: &Plan, events: &Sender<Event>) -> PoolOutcome {
        let _ = events.send(Event::Planned {
            tests: Arc::new(plan.tests.clone()),
            total: 0,
            from_last_run: None,
            estimate: Arc::default(),
        });
        let index: HashMap<&str, u32> = plan
            .tests
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i as u32))
            .collect();
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
        let timeline = self
            .record
            .timeline
            .iter()
            .filter_map(|r| {
                Some(Ran {
                    test: *index.get(r.test.as_str())?,
                    slot: r.slot,
                    worker: r.worker,
                    start: secs(r.start),
                    end: secs(r.end),
                })
            })
            .collect();
        let (found, gone): (Vec<&String>, Vec<&String>) = self
            .examine
            .iter()
            .partition(|name| index.contains_key(name.as_str()));
        if !gone.is_empty() {
            let names: Vec<&str> = gone.iter().map(|s| s.as_str()).collect();
            let _ = events.send(Event::Warning(format!(
                "no longer in the suite, not examined: {}",
                names.join(", ")
            )));
        }
        PoolOutcome {
            timeline,
            failed_in_parallel: found.iter().map(|name| index[name.as_str()]).collect(),
            ..PoolOutcome::default()
        }
    }
}
