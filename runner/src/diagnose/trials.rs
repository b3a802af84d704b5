//! The run's own pool as the [`TrialRunner`], and the diagnosis as a step
//! of a run: after the parallel phase, before teardown, on the run's slots.

use crossbeam_channel::Sender;

use super::{Budget, TrialRunner, diagnose};
use crate::model::{Status, Trial};
use crate::plan::Plan;
use crate::pool::{Pool, PoolOutcome};
use crate::report::Event;

/// Runs each trial on the run's slots, torn down and set up again.
struct PoolTrials<'p, 'a> {
    pool: &'p mut Pool<'a>,
    plan: &'p Plan,
    events: &'p Sender<Event>,
}

impl TrialRunner for PoolTrials<'_, '_> {
    fn run(&mut self, trial: &Trial, victim: u32) -> Option<Status> {
        let start = std::time::Instant::now();
        let status = self.pool.trial(self.plan, trial, victim);
        let with = trial.lanes.iter().map(|l| l.tests.len()).sum::<usize>();
        let _ = self.events.send(Event::Span {
            slot: None,
            name: format!(
                "diagnosis: {} ({with} test(s) on {} slot(s))",
                self.plan.tests[victim as usize].name,
                trial.lanes.len()
            ),
            duration: start.elapsed(),
        });
        status
    }
}

/// Why the run's failures are not examined, if they are not (empty: the
/// user turned it off, which needs no saying).
pub struct Skip(pub &'static str);

/// Examines the tests `outcome` says failed in the parallel phase, and
/// reports a `Diagnosed` event per test and a `NotDiagnosed` for the rest.
pub fn after_run(
    pool: &mut Pool,
    plan: &Plan,
    outcome: &PoolOutcome,
    budget: Budget,
    skip: Option<Skip>,
    events: &Sender<Event>,
) {
    let failed = &outcome.failed_in_parallel;
    if failed.is_empty() || outcome.error.is_some() {
        return;
    }
    if let Some(Skip(why)) = skip {
        // Turned off by the user: nothing to say.
        if !why.is_empty() {
            let _ = events.send(Event::NotDiagnosed {
                tests: failed.clone(),
                why: why.to_string(),
            });
        }
        return;
    }
    let _ = events.send(Event::Diagnosing {
        tests: failed.len().min(budget.max_tests),
    });
    let mut runner = PoolTrials { pool, plan, events };
    let findings = diagnose(failed, &outcome.timeline, budget, &mut runner);
    for d in findings.diagnoses {
        let _ = events.send(Event::Diagnosed(Box::new(d)));
    }
    if !findings.not_examined.is_empty() {
        let why = if failed.len() > budget.max_tests {
            format!(
                "over [diagnose] max-tests ({}) or out of [diagnose] max-seconds ({}s)",
                budget.max_tests,
                budget.max_seconds.as_secs()
            )
        } else {
            format!(
                "out of [diagnose] max-seconds ({}s), or a trial could not run",
                budget.max_seconds.as_secs()
            )
        };
        let _ = events.send(Event::NotDiagnosed {
            tests: findings.not_examined,
            why,
        });
    }
}
