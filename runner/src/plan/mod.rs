//! Planning: which tests run (filters), in which phase (parallel or serial),
//! with how many workers, in which order, and in which units (one test, or a
//! pytest batch).

mod facts;
mod workers;

use std::collections::BTreeMap;
use std::time::Duration;

pub use facts::SystemFacts;
pub use workers::{Factor, WorkerInputs, WorkerPlan, plan_workers};

use crate::config::{Filter, GroupTable};
use crate::discover::TestCase;
use crate::history::History;

/// What one process runs: a test, or a batch of them that share a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Indices into [`Plan::tests`].
    pub tests: Vec<u32>,
    pub group: Option<u16>,
    /// 1 for the first run; a retry runs a failed test alone with attempt + 1.
    pub attempt: u32,
}

/// A `[groups.NAME]`: at most `max` of its units at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub max: usize,
}

#[derive(Debug)]
pub struct Plan {
    pub tests: Vec<TestCase>,
    /// Dealt to the pool, longest first.
    pub parallel: Vec<Unit>,
    /// Run after the parallel phase, alone, on slot 0.
    pub serial: Vec<Unit>,
    /// Listed but not run (`#[ignore]`d).
    pub skipped: Vec<u32>,
    pub groups: Vec<Group>,
}

/// Keeps the tests that a profile's filter and the command line's name
/// filters (substrings, as `cargo test` takes them) select.
pub fn select(
    tests: Vec<TestCase>,
    profile_filter: Option<&Filter>,
    names: &[String],
) -> Vec<TestCase> {
    tests
        .into_iter()
        .filter(|t| profile_filter.is_none_or(|f| f.matches(&t.name)))
        .filter(|t| names.is_empty() || names.iter().any(|n| t.name.contains(n.as_str())))
        .collect()
}

/// How a plan is cut, besides the tests themselves.
pub struct PlanRules<'a> {
    pub serial_filter: &'a Filter,
    pub groups: &'a BTreeMap<String, GroupTable>,
    /// 1: one process per test; more: batches (pytest).
    pub max_batch: usize,
    pub workers: usize,
}

impl Plan {
    pub fn new(tests: Vec<TestCase>, history: &History, rules: &PlanRules) -> Plan {
        let groups: Vec<(Group, &Filter)> = rules
            .groups
            .iter()
            .map(|(name, g)| {
                (
                    Group {
                        name: name.clone(),
                        max: g.max_workers,
                    },
                    &g.filter,
                )
            })
            .collect();
        let group_of = |t: &TestCase| {
            groups
                .iter()
                .position(|(_, f)| f.matches(&t.name))
                .map(|i| i as u16)
        };
        let expected: Vec<Option<Duration>> =
            tests.iter().map(|t| history.expected(&t.name)).collect();

        let mut order: Vec<u32> = (0..tests.len() as u32).collect();
        order.sort_by_key(|&i| match expected[i as usize] {
            None => (0, std::cmp::Reverse(Duration::ZERO)),
            Some(d) => (1, std::cmp::Reverse(d)),
        });

        let mut skipped = Vec::new();
        let mut serial = Vec::new();
        // Parallel tests, split by group: a batch never mixes groups.
        let mut by_group: BTreeMap<Option<u16>, Vec<u32>> = BTreeMap::new();
        for i in order {
            let t = &tests[i as usize];
            if t.ignored {
                skipped.push(i);
            } else if t.serial_marker || rules.serial_filter.matches(&t.name) {
                serial.push(Unit {
                    tests: vec![i],
                    group: None,
                    attempt: 1,
                });
            } else {
                by_group.entry(group_of(t)).or_default().push(i);
            }
        }

        let fallback = fallback_estimate(&expected);
        let estimate = |i: u32| expected[i as usize].unwrap_or(fallback);
        let mut parallel: Vec<(bool, Duration, Unit)> = Vec::new();
        for (group, members) in by_group {
            for tests in batches(&members, rules.max_batch, rules.workers, &estimate) {
                let unknown = tests.iter().any(|&i| expected[i as usize].is_none());
                let total: Duration = tests.iter().map(|&i| estimate(i)).sum();
                parallel.push((
                    unknown,
                    total,
                    Unit {
                        tests,
                        group,
                        attempt: 1,
                    },
                ));
            }
        }
        // Longest first; units with never-seen tests lead, as they may be long.
        parallel.sort_by_key(|(unknown, total, _)| (!unknown, std::cmp::Reverse(*total)));
        Plan {
            tests,
            parallel: parallel.into_iter().map(|(_, _, u)| u).collect(),
            serial,
            skipped,
            groups: groups.into_iter().map(|(g, _)| g).collect(),
        }
    }

    pub fn runnable(&self) -> usize {
        self.tests.len() - self.skipped.len()
    }
}

/// What a never-seen test is assumed to take: the mean of the known ones.
fn fallback_estimate(expected: &[Option<Duration>]) -> Duration {
    let known: Vec<Duration> = expected.iter().flatten().copied().collect();
    if known.is_empty() {
        Duration::from_millis(100)
    } else {
        known.iter().sum::<Duration>() / known.len() as u32
    }
}

/// Cuts an ordered list into batches that shrink toward its end (guided
/// self-scheduling): each takes about 1/(3·workers) of the time left, so the
/// first batches amortise process start-up and the last ones keep the tail short.
fn batches(
    ordered: &[u32],
    max_batch: usize,
    workers: usize,
    estimate: &dyn Fn(u32) -> Duration,
) -> Vec<Vec<u32>> {
    if max_batch <= 1 {
        return ordered.iter().map(|&i| vec![i]).collect();
    }
    let mut remaining: Duration = ordered.iter().map(|&i| estimate(i)).sum();
    let shares = (3 * workers.max(1)) as u32;
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut current_time = Duration::ZERO;
    let mut target = remaining / shares;
    for &i in ordered {
        current.push(i);
        current_time += estimate(i);
        if current.len() >= max_batch || current_time >= target {
            remaining = remaining.saturating_sub(current_time);
            target = remaining / shares;
            out.push(std::mem::take(&mut current));
            current_time = Duration::ZERO;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(names: &[&str]) -> Vec<TestCase> {
        names.iter().map(|n| TestCase::new(*n)).collect()
    }

    fn history(pairs: &[(&str, u64)]) -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let (h, _) = History::load(&path);
        let records = pairs.iter().map(|(n, ms)| crate::history::Record {
            name: n,
            duration: Duration::from_millis(*ms),
            status: crate::discover::Status::Pass,
        });
        assert!(h.save(records).is_none());
        (dir, History::load(&path).0)
    }

    fn rules<'a>(
        serial: &'a Filter,
        groups: &'a BTreeMap<String, GroupTable>,
        batch: usize,
    ) -> PlanRules<'a> {
        PlanRules {
            serial_filter: serial,
            groups,
            max_batch: batch,
            workers: 2,
        }
    }

    fn names(plan: &Plan, units: &[Unit]) -> Vec<String> {
        units
            .iter()
            .flat_map(|u| u.tests.iter().map(|&i| plan.tests[i as usize].name.clone()))
            .collect()
    }

    #[test]
    fn longest_first_with_unknown_tests_leading() {
        let (_d, h) = history(&[("short", 10), ("long", 900), ("mid", 200)]);
        let serial = Filter::default();
        let groups = BTreeMap::new();
        let plan = Plan::new(
            cases(&["short", "new", "long", "mid"]),
            &h,
            &rules(&serial, &groups, 1),
        );
        assert_eq!(
            names(&plan, &plan.parallel),
            ["new", "long", "mid", "short"]
        );
    }

    #[test]
    fn serial_tests_by_marker_or_filter_leave_the_parallel_phase() {
        let mut tests = cases(&["tests/a.sh", "tests/migrations/m1.sh", "tests/b.sh"]);
        tests[2].serial_marker = true;
        tests[0].ignored = true;
        let serial = Filter::new(&["tests/migrations/**"]).unwrap();
        let groups = BTreeMap::new();
        let plan = Plan::new(tests, &History::disabled(), &rules(&serial, &groups, 1));
        assert!(plan.parallel.is_empty());
        assert_eq!(
            names(&plan, &plan.serial),
            ["tests/migrations/m1.sh", "tests/b.sh"]
        );
        assert_eq!(plan.skipped, [0]);
        assert_eq!(plan.runnable(), 2);
    }

    #[test]
    fn batches_shrink_toward_the_end_and_never_mix_groups() {
        let names_owned: Vec<String> = (0..60)
            .map(|i| format!("t/{}{i}.py::x", if i < 10 { "db_" } else { "" }))
            .collect();
        let tests: Vec<TestCase> = names_owned
            .iter()
            .map(|n| TestCase::new(n.as_str()))
            .collect();
        let serial = Filter::default();
        let mut groups = BTreeMap::new();
        groups.insert(
            "db".to_string(),
            GroupTable {
                filter: Filter::new(&["t/db_*"]).unwrap(),
                max_workers: 1,
            },
        );
        let plan = Plan::new(tests, &History::disabled(), &rules(&serial, &groups, 16));
        let total: usize = plan.parallel.iter().map(|u| u.tests.len()).sum();
        assert_eq!(total, 60);
        for unit in &plan.parallel {
            let in_db = unit
                .tests
                .iter()
                .map(|&i| plan.tests[i as usize].name.starts_with("t/db_"));
            let flags: Vec<bool> = in_db.collect();
            assert!(flags.iter().all(|f| *f == flags[0]), "a batch mixes groups");
            assert_eq!(unit.group.is_some(), flags[0]);
        }
        let ungrouped: Vec<usize> = plan
            .parallel
            .iter()
            .filter(|u| u.group.is_none())
            .map(|u| u.tests.len())
            .collect();
        assert!(
            ungrouped.windows(2).all(|w| w[0] >= w[1]),
            "sizes must shrink: {ungrouped:?}"
        );
        assert!(
            ungrouped[0] > 1 && *ungrouped.last().unwrap() == 1,
            "{ungrouped:?}"
        );
    }

    #[test]
    fn selection_by_profile_filter_and_names() {
        let tests = cases(&["tests/unit/a.sh", "tests/unit/b.sh", "tests/e2e/c.sh"]);
        let unit = Filter::new(&["tests/unit/**"]).unwrap();
        assert_eq!(select(tests.clone(), Some(&unit), &[]).len(), 2);
        assert_eq!(
            select(tests.clone(), Some(&unit), &["b.sh".into()]).len(),
            1
        );
        assert_eq!(select(tests, None, &[]).len(), 3);
    }
}
