//! Why a test failed only in parallel. After the parallel phase each test
//! that failed there is examined with nothing else running, in trials on
//! fresh workers of the run's own slots:
//!
//! 1. alone, on its slot: it fails → [`Verdict::FailsAlone`];
//! 2. after the tests its worker ran before it, in their order: it fails →
//!    [`Verdict::OrderDependent`], and those predecessors are halved down to
//!    the smallest set that still makes it fail (the culprits);
//! 3. beside the tests that overlapped it on other slots (the run's own
//!    timeline): it fails → [`Verdict::Concurrent`], narrowed likewise;
//!    else [`Verdict::Flaky`].
//!
//! The trials are run by a [`TrialRunner`] (the pool, in a run); this module
//! only decides what to try next, within a budget of tests and seconds.

mod replay;
mod trials;

use std::time::{Duration, Instant};

use crate::model::{Diagnosis, Status, Verdict};
pub use crate::model::{Lane, Ran, Trial};
pub use replay::{Replay, record};
pub use trials::{Skip, after_run};

/// Runs a trial; returns the status of `victim`'s run in it (`None`: it did
/// not run, e.g. an interrupt or a worker that could not start).
pub trait TrialRunner {
    fn run(&mut self, trial: &Trial, victim: u32) -> Option<Status>;
}

/// `[diagnose]` and `--no-diagnose`.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub max_tests: usize,
    pub max_seconds: Duration,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            max_tests: 10,
            max_seconds: Duration::from_secs(300),
        }
    }
}

/// What examining the run's failures came to.
#[derive(Debug, Default)]
pub struct Findings {
    pub diagnoses: Vec<Diagnosis>,
    /// Failed tests left unexamined: over `max-tests`, out of seconds, or
    /// stopped by an interrupt.
    pub not_examined: Vec<u32>,
}

/// Examines each of `failed` (in order) on `runner`, from the run's
/// `timeline`, within `budget`.
pub fn diagnose(
    failed: &[u32],
    timeline: &[Ran],
    budget: Budget,
    runner: &mut dyn TrialRunner,
) -> Findings {
    let started = Instant::now();
    let deadline = started + budget.max_seconds;
    let mut findings = Findings::default();
    for (i, &victim) in failed.iter().enumerate() {
        if i >= budget.max_tests || Instant::now() >= deadline {
            findings.not_examined.extend_from_slice(&failed[i..]);
            break;
        }
        match examine(victim, timeline, deadline, runner) {
            Some(d) => findings.diagnoses.push(d),
            None => findings.not_examined.push(victim),
        }
    }
    findings
}

/// One examination: its trials count, time and the deadline they share.
struct Examination<'a> {
    victim: u32,
    slot: usize,
    runner: &'a mut dyn TrialRunner,
    reruns: u32,
    deadline: Instant,
    /// The deadline passed or a trial could not run: what is known stands.
    cut_short: bool,
}

impl Examination<'_> {
    /// Whether the victim fails in `trial`; `None` when it could not tell.
    fn fails(&mut self, trial: Trial) -> Option<bool> {
        if self.cut_short || Instant::now() >= self.deadline {
            self.cut_short = true;
            return None;
        }
        self.reruns += 1;
        match self.runner.run(&trial, self.victim) {
            Some(status) => Some(status.is_failure()),
            None => {
                self.cut_short = true;
                None
            }
        }
    }

    /// The victim on its slot after `before` (in order).
    fn after(&mut self, before: &[u32]) -> Option<bool> {
        let mut tests = before.to_vec();
        tests.push(self.victim);
        self.fails(Trial {
            lanes: vec![Lane {
                slot: self.slot,
                tests,
            }],
        })
    }

    /// The victim alone on its slot while `beside` run on theirs.
    fn beside(&mut self, beside: &[Ran]) -> Option<bool> {
        let mut lanes = vec![Lane {
            slot: self.slot,
            tests: vec![self.victim],
        }];
        for r in beside {
            match lanes.iter_mut().find(|l| l.slot == r.slot) {
                Some(lane) => lane.tests.push(r.test),
                None => lanes.push(Lane {
                    slot: r.slot,
                    tests: vec![r.test],
                }),
            }
        }
        self.fails(Trial { lanes })
    }
}

fn examine(
    victim: u32,
    timeline: &[Ran],
    deadline: Instant,
    runner: &mut dyn TrialRunner,
) -> Option<Diagnosis> {
    let started = Instant::now();
    // Its last run in the parallel phase is the one examined.
    let at = timeline.iter().rposition(|r| r.test == victim)?;
    let run = timeline[at];
    let mut x = Examination {
        victim,
        slot: run.slot,
        runner,
        reruns: 0,
        deadline,
        cut_short: false,
    };
    let done = |x: &Examination, verdict, culprits: Vec<u32>| Diagnosis {
        test: victim,
        verdict,
        culprits,
        reruns: x.reruns,
        seconds: started.elapsed().as_secs_f64(),
        unfinished: x.cut_short,
    };
    if x.after(&[])? {
        return Some(done(&x, Verdict::FailsAlone, Vec::new()));
    }
    // What its worker ran before it, in order.
    let before: Vec<u32> = timeline[..at]
        .iter()
        .filter(|r| r.slot == run.slot && r.worker == run.worker && r.test != victim)
        .map(|r| r.test)
        .collect();
    if !before.is_empty() && x.after(&before)? {
        let culprits = narrow(before, &mut |set: &[u32]| x.after(set));
        return Some(done(&x, Verdict::OrderDependent, culprits));
    }
    let overlapping: Vec<Ran> = timeline
        .iter()
        .filter(|r| r.slot != run.slot && r.start < run.end && run.start < r.end)
        .copied()
        .collect();
    if !overlapping.is_empty() && x.beside(&overlapping)? {
        let culprits = narrow(
            (0..overlapping.len() as u32).collect(),
            &mut |set: &[u32]| {
                let picked: Vec<Ran> = set.iter().map(|&i| overlapping[i as usize]).collect();
                x.beside(&picked)
            },
        );
        let culprits = culprits
            .into_iter()
            .map(|i| overlapping[i as usize].test)
            .collect();
        return Some(done(&x, Verdict::Concurrent, culprits));
    }
    if x.cut_short {
        return None;
    }
    Some(done(&x, Verdict::Flaky, Vec::new()))
}

/// The smallest part of `set` (which makes the victim fail) that still
/// does, by halving: keep the half that fails alone; when neither half
/// does, each needs the other, and the set stands (as when a trial cannot
/// tell). Order is kept.
fn narrow(mut set: Vec<u32>, fails: &mut dyn FnMut(&[u32]) -> Option<bool>) -> Vec<u32> {
    while set.len() > 1 {
        let (front, back) = set.split_at(set.len() / 2);
        // The nearer half first: a culprit usually ran shortly before.
        let (near, far) = (back.to_vec(), front.to_vec());
        match fails(&near) {
            Some(true) => set = near,
            Some(false) => match fails(&far) {
                Some(true) => set = far,
                _ => break,
            },
            None => break,
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A suite whose failures follow rules: a test fails when it runs after
    /// a polluter on its worker, or while a rival runs on another slot.
    struct Suite {
        alone: Vec<u32>,
        polluted_by: Vec<(u32, u32)>,
        rivals: Vec<(u32, u32)>,
        trials: Vec<Trial>,
    }

    impl TrialRunner for Suite {
        fn run(&mut self, trial: &Trial, victim: u32) -> Option<Status> {
            self.trials.push(trial.clone());
            let lane = trial.lanes.iter().find(|l| l.tests.contains(&victim))?;
            let before = &lane.tests[..lane.tests.iter().position(|&t| t == victim)?];
            let others = trial
                .lanes
                .iter()
                .filter(|l| l.slot != lane.slot)
                .flat_map(|l| &l.tests);
            let fails = self.alone.contains(&victim)
                || self
                    .polluted_by
                    .iter()
                    .any(|&(v, c)| v == victim && before.contains(&c))
                || others
                    .into_iter()
                    .any(|c| self.rivals.contains(&(victim, *c)));
            Some(if fails { Status::Fail } else { Status::Pass })
        }
    }

    fn suite() -> Suite {
        Suite {
            alone: vec![],
            polluted_by: vec![],
            rivals: vec![],
            trials: vec![],
        }
    }

    fn ran(test: u32, slot: usize, start: u64, end: u64) -> Ran {
        Ran {
            test,
            slot,
            worker: 0,
            start: Duration::from_millis(start),
            end: Duration::from_millis(end),
        }
    }

    /// Slot 0 runs 0..=8 one after another; slot 1 runs 10..=18 alongside.
    fn timeline() -> Vec<Ran> {
        (0..9)
            .flat_map(|i| {
                [
                    ran(i, 0, u64::from(i) * 10, u64::from(i) * 10 + 10),
                    ran(10 + i, 1, u64::from(i) * 10, u64::from(i) * 10 + 10),
                ]
            })
            .collect()
    }

    fn one(s: &mut Suite, victim: u32) -> Diagnosis {
        let found = diagnose(&[victim], &timeline(), Budget::default(), s);
        assert!(found.not_examined.is_empty());
        found.diagnoses.into_iter().next().unwrap()
    }

    #[test]
    fn a_test_that_fails_alone_is_a_real_failure() {
        let mut s = suite();
        s.alone.push(8);
        let d = one(&mut s, 8);
        assert_eq!(
            (d.verdict, d.culprits, d.reruns),
            (Verdict::FailsAlone, vec![], 1)
        );
    }

    #[test]
    fn an_order_dependent_failure_is_bisected_to_its_culprit() {
        let mut s = suite();
        s.polluted_by.push((8, 2));
        let d = one(&mut s, 8);
        assert_eq!(d.verdict, Verdict::OrderDependent);
        assert_eq!(d.culprits, [2]);
        // Alone, the replay, then halving 8 predecessors: a handful of trials.
        assert!(d.reruns <= 8, "{} trials", d.reruns);
        // Every trial keeps the worker's order, the victim last.
        for t in &s.trials {
            let tests = &t.lanes[0].tests;
            assert!(tests.windows(2).all(|w| w[0] < w[1] || w[1] == 8));
            assert_eq!(tests.last(), Some(&8));
        }
    }

    #[test]
    fn a_concurrent_failure_names_the_test_beside_it() {
        let mut s = suite();
        s.rivals.push((5, 15));
        let d = one(&mut s, 5);
        assert_eq!(d.verdict, Verdict::Concurrent);
        assert_eq!(d.culprits, [15]);
        // Only the test that overlapped it in time was run beside it.
        let beside = &s.trials[2];
        assert_eq!(beside.lanes[1].tests, [15]);
    }

    #[test]
    fn nothing_reproduces_it_flaky() {
        let mut s = suite();
        let d = one(&mut s, 4);
        assert_eq!(d.verdict, Verdict::Flaky);
        assert_eq!(d.reruns, 3);
    }

    #[test]
    fn two_culprits_that_need_each_other_stand_together() {
        // Fails only after both 1 and 6.
        struct Both;
        impl TrialRunner for Both {
            fn run(&mut self, trial: &Trial, _victim: u32) -> Option<Status> {
                let t = &trial.lanes[0].tests;
                Some(if t.contains(&1) && t.contains(&6) {
                    Status::Fail
                } else {
                    Status::Pass
                })
            }
        }
        let found = diagnose(&[8], &timeline(), Budget::default(), &mut Both);
        let d = &found.diagnoses[0];
        assert_eq!(d.verdict, Verdict::OrderDependent);
        assert!(d.culprits.contains(&1) && d.culprits.contains(&6), "{d:?}");
    }

    #[test]
    fn the_budget_of_tests_leaves_the_rest_unexamined_and_says_so() {
        let mut s = suite();
        let budget = Budget {
            max_tests: 2,
            ..Budget::default()
        };
        let found = diagnose(&[1, 2, 3], &timeline(), budget, &mut s);
        assert_eq!(found.diagnoses.len(), 2);
        assert_eq!(found.not_examined, [3]);
        let none = Budget {
            max_seconds: Duration::ZERO,
            ..Budget::default()
        };
        let found = diagnose(&[1], &timeline(), none, &mut suite());
        assert!(found.diagnoses.is_empty());
        assert_eq!(found.not_examined, [1]);
    }
}
