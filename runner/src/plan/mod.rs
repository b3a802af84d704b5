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
            // A pytest node id's file is what precedes its first `::`.
            let file_of = |i: u32| {
                let name = tests[i as usize].name.as_str();
                name.split_once("::").map_or(name, |(file, _)| file)
            };
            for tests in batches(
                &members,
                rules.max_batch,
                rules.workers,
                &estimate,
                &file_of,
            ) {
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

/// A batch process pays the interpreter's and the test runner's start-up
/// (pytest: 0.2–0.5 s) before its first test. A batch estimated shorter than
/// this would spend more time starting than testing, so the shrinking stops
/// here; the tail it leaves is at most one such batch.
const MIN_BATCH_TIME: Duration = Duration::from_millis(400);

/// Cuts an ordered list into batches that shrink toward its end (guided
/// self-scheduling): each takes about 1/(3·workers) of the time left, so the
/// first batches amortise process start-up and the last ones keep the tail
/// short, but none is planned shorter than [`MIN_BATCH_TIME`].
///
/// Tests of one file stay together: a batch imports every module it touches,
/// and a module's import cost (fixtures, app set-up) is paid once per batch
/// that touches it. Files are taken in the order of their first (longest)
/// test, and each file's tests longest first, so the long tests still lead.
fn batches<'a>(
    ordered: &[u32],
    max_batch: usize,
    workers: usize,
    estimate: &dyn Fn(u32) -> Duration,
    file_of: &dyn Fn(u32) -> &'a str,
) -> Vec<Vec<u32>> {
    if max_batch <= 1 {
        return ordered.iter().map(|&i| vec![i]).collect();
    }
    let by_file = group_by_file(ordered, file_of);
    let mut remaining: Duration = ordered.iter().map(|&i| estimate(i)).sum();
    let shares = (3 * workers.max(1)) as u32;
    let target = |remaining: Duration| (remaining / shares).max(MIN_BATCH_TIME);
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut current_time = Duration::ZERO;
    let mut goal = target(remaining);
    for i in by_file {
        current.push(i);
        current_time += estimate(i);
        if current.len() >= max_batch || current_time >= goal {
            remaining = remaining.saturating_sub(current_time);
            goal = target(remaining);
            out.push(std::mem::take(&mut current));
            current_time = Duration::ZERO;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `ordered` regrouped so each file's tests are adjacent: files in the order
/// of their first appearance, tests within a file in their given order.
fn group_by_file<'a>(ordered: &[u32], file_of: &dyn Fn(u32) -> &'a str) -> Vec<u32> {
    let mut files: Vec<(&str, Vec<u32>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for &i in ordered {
        let file = file_of(i);
        let slot = *index.entry(file).or_insert_with(|| {
            files.push((file, Vec::new()));
            files.len() - 1
        });
        files[slot].1.push(i);
    }
    files.into_iter().flat_map(|(_, tests)| tests).collect()
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
        // 100 ms per unknown test: the last batches stop shrinking at MIN_BATCH_TIME.
        let floor = (MIN_BATCH_TIME.as_millis() / 100) as usize;
        assert!(
            ungrouped[0] > floor && *ungrouped.last().unwrap() <= floor,
            "{ungrouped:?}"
        );
    }

    #[test]
    fn batches_keep_a_files_tests_together_and_long_ones_first() {
        // Interleaved files, as longest-first ordering across files leaves them.
        let names: Vec<String> = (0..40)
            .map(|i| format!("tests/test_{}.py::t{i}", i % 4))
            .collect();
        let pairs: Vec<(&str, u64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), if i == 0 { 3000 } else { 200 }))
            .collect();
        let (_d, h) = history(&pairs);
        let serial = Filter::default();
        let groups = BTreeMap::new();
        let tests = names.iter().map(|n| TestCase::new(n.as_str())).collect();
        let plan = Plan::new(tests, &h, &rules(&serial, &groups, 64));
        let file = |i: u32| {
            plan.tests[i as usize]
                .name
                .split("::")
                .next()
                .unwrap()
                .to_string()
        };
        // Files are only cut at batch boundaries: the (batch, file) pairs are
        // fewer than batches + files, where mixing them would give ~4 per batch.
        let touched: usize = plan
            .parallel
            .iter()
            .map(|u| {
                let files: std::collections::HashSet<String> =
                    u.tests.iter().map(|&i| file(i)).collect();
                files.len()
            })
            .sum();
        assert!(touched < plan.parallel.len() + 4, "{:?}", plan.parallel);
        assert_eq!(
            plan.tests[plan.parallel[0].tests[0] as usize].name,
            names[0]
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
