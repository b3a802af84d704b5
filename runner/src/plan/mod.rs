//! Planning: which tests run (filters), in which phase (parallel or serial),
//! with how many workers, and in which order.

mod facts;
mod filterset;
mod workers;

use std::collections::BTreeMap;
use std::time::Duration;

pub use facts::{SystemFacts, private_paths_line};
pub use filterset::FilterSet;
pub use workers::{Factor, WorkerInputs, WorkerPlan, plan_workers};

use crate::config::{Filter, GroupTable, Order};
use crate::history::History;
use crate::model::TestCase;

/// A `[groups.NAME]`: at most `max` of its tests at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub max: usize,
}

#[derive(Debug)]
pub struct Plan {
    pub tests: Vec<TestCase>,
    /// The parallel phase's queues, in dealing order (longest first): one per
    /// file when the adapter keeps a file's tests on one worker (pytest: a
    /// module's fixtures then set up once per worker), else one per test.
    pub parallel: Vec<Vec<u32>>,
    /// Run after the parallel phase, alone, on slot 0, in this order.
    pub serial: Vec<u32>,
    /// Listed but not run (`#[ignore]`d).
    pub skipped: Vec<u32>,
    pub groups: Vec<Group>,
    /// Each test's group, by index into [`Plan::tests`].
    pub group_of: Vec<Option<u16>>,
    /// Each test's expected duration: history, else the mean of the known.
    pub estimate: Vec<Duration>,
    /// The history knows the test: its estimate is a measurement, not a guess.
    pub known: Vec<bool>,
    /// `--shard K/N`: how this machine's share was cut from the selection.
    pub shard: Option<crate::shard::split::SplitSummary>,
    /// `--shard queue`: the units every machine pulls from the shared queue.
    pub queue_units: Option<Vec<crate::shard::queue::QueueUnit>>,
    /// What the order or selection owes to the last run (failed-first,
    /// `--lf`), for the summary line.
    pub from_last_run: Option<String>,
}

/// What the command line selects: name filters (substrings, as `cargo
/// test` takes them, or whole names with `--exact`), `--skip` patterns and
/// filtersets (`-E`). A test runs when it matches a name filter (if any),
/// a filterset (if any), and no skip pattern.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub names: Vec<String>,
    pub skip: Vec<String>,
    pub exact: bool,
    pub filtersets: Vec<FilterSet>,
    /// `--run-ignored only` (or libtest's `--ignored`): only ignored tests.
    pub ignored_only: bool,
    /// libtest's `--include-ignored` (or `--ignored`) after `--`.
    pub include_ignored: bool,
}

impl Selection {
    /// Reads the filters, filtersets and libtest options of the command line.
    pub fn new(
        filters: &[String],
        skip: &[String],
        exact: bool,
        filtersets: &[String],
    ) -> Result<Selection, String> {
        let mut sel = Selection {
            skip: skip.to_vec(),
            exact,
            ..Selection::default()
        };
        let mut args = filters.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--skip" => match args.next() {
                    Some(p) => sel.skip.push(p.clone()),
                    None => return Err("--skip needs a pattern".into()),
                },
                "--exact" => sel.exact = true,
                "--ignored" => {
                    sel.ignored_only = true;
                    sel.include_ignored = true;
                }
                "--include-ignored" => sel.include_ignored = true,
                "--nocapture" | "--no-capture" | "--show-output" => {
                    return Err(format!(
                        "{arg} is libtest's; partest's is `partest run --no-capture ...`"
                    ));
                }
                "-E" | "--filterset" => match args.next() {
                    Some(e) => sel.filtersets.push(FilterSet::parse(e)?),
                    None => return Err(format!("{arg} needs an expression")),
                },
                other if other.starts_with("--skip=") => sel.skip.push(other[7..].to_string()),
                other if other.starts_with('-') && other.len() > 1 => {
                    return Err(format!(
                        "{other:?} is not a test filter nor a libtest option partest knows \
                         (--skip PATTERN, --exact, --ignored, --include-ignored)"
                    ));
                }
                name => sel.names.push(name.to_string()),
            }
        }
        for e in filtersets {
            sel.filtersets.push(FilterSet::parse(e)?);
        }
        Ok(sel)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.skip.is_empty() && self.filtersets.is_empty()
    }

    fn name_matches(&self, pattern: &str, t: &TestCase) -> bool {
        if self.exact {
            t.name == pattern || t.test_name() == pattern
        } else {
            t.name.contains(pattern)
        }
    }

    pub fn matches(&self, t: &TestCase) -> bool {
        (self.names.is_empty() || self.names.iter().any(|n| self.name_matches(n, t)))
            && !self.skip.iter().any(|n| self.name_matches(n, t))
            && (self.filtersets.is_empty() || self.filtersets.iter().any(|f| f.matches(t)))
    }

    /// How the selection reads in a "no tests to run" message.
    pub fn describe(&self) -> Vec<String> {
        let mut why = Vec::new();
        if !self.names.is_empty() {
            why.push(format!(
                "the name filters {:?}{}",
                self.names,
                if self.exact { " (--exact)" } else { "" }
            ));
        }
        if !self.skip.is_empty() {
            why.push(format!("--skip {:?}", self.skip));
        }
        for f in &self.filtersets {
            why.push(format!("-E {:?}", f.text()));
        }
        if self.ignored_only {
            why.push("--run-ignored only".into());
        }
        why
    }
}

/// Keeps the tests that a profile's filter and the command line select.
pub fn select(
    tests: Vec<TestCase>,
    profile_filter: Option<&Filter>,
    selection: &Selection,
) -> Vec<TestCase> {
    tests
        .into_iter()
        .filter(|t| profile_filter.is_none_or(|f| f.matches(&t.name)))
        .filter(|t| selection.matches(t))
        .collect()
}

/// How a plan is cut, besides the tests themselves.
pub struct PlanRules<'a> {
    pub serial_filter: &'a Filter,
    pub groups: &'a BTreeMap<String, GroupTable>,
    pub order: Order,
    /// Queue a file's tests together (pytest node ids: the file precedes `::`).
    pub by_file: bool,
    /// Units holding a test that failed last time go first.
    pub failed_first: bool,
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
        let group_of: Vec<Option<u16>> = tests
            .iter()
            .map(|t| {
                groups
                    .iter()
                    .position(|(_, f)| f.matches(&t.name))
                    .map(|i| i as u16)
            })
            .collect();
        let expected: Vec<Option<Duration>> =
            tests.iter().map(|t| history.expected(&t.name)).collect();
        let fallback = fallback_estimate(&expected);
        let estimate: Vec<Duration> = expected.iter().map(|e| e.unwrap_or(fallback)).collect();

        let mut skipped = Vec::new();
        let mut serial = Vec::new();
        let mut parallel = Vec::new();
        for (i, t) in tests.iter().enumerate() {
            let i = i as u32;
            if t.ignored {
                skipped.push(i);
            } else if t.serial_marker || rules.serial_filter.matches(&t.name) {
                serial.push(i);
            } else {
                parallel.push(i);
            }
        }
        let rank = |i: u32| tests[i as usize].rank;
        // A unit whose tests run together, in their collection order: a
        // file (by_file: pytest modules, and with them their classes), else
        // one test. History orders units, never the tests inside one:
        // reordering inside a module or class changes what the suite means.
        let units = |list: Vec<u32>| -> Vec<Vec<u32>> {
            if rules.by_file {
                let file_of = |i: u32| {
                    let name = tests[i as usize].name.as_str();
                    (
                        rank(i),
                        name.split_once("::").map_or(name, |(file, _)| file),
                    )
                };
                group_by_file(&list, &file_of)
            } else {
                list.into_iter().map(|i| vec![i]).collect()
            }
        };
        let failed_last: Vec<bool> = tests
            .iter()
            .map(|t| rules.failed_first && history.failed_last_time(&t.name))
            .collect();
        // Lower ranks first; then units holding a test that failed last
        // time (failed-first), then never-seen units (they may be long),
        // then the longest first (a unit holds tests of one rank).
        let unit_order = |u: &Vec<u32>| {
            let unknown = u.iter().any(|&i| expected[i as usize].is_none());
            let failed = u.iter().any(|&i| failed_last[i as usize]);
            let total: Duration = u.iter().map(|&i| estimate[i as usize]).sum();
            (
                u.first().map_or(0, |&i| rank(i)),
                !failed,
                !unknown,
                std::cmp::Reverse(total),
            )
        };
        let moved_first = serial
            .iter()
            .chain(&parallel)
            .filter(|&&i| failed_last[i as usize])
            .count();
        let mut serial_units = units(serial);
        if rules.order == Order::History {
            serial_units.sort_by_key(&unit_order);
        } else {
            serial_units.sort_by_key(|u| u.first().map_or(0, |&i| rank(i)));
        }
        let serial = serial_units.into_iter().flatten().collect();
        // The parallel phase deals units longest first whatever the order:
        // slots take them one after another.
        let mut queues = units(parallel);
        queues.sort_by_key(&unit_order);
        Plan {
            tests,
            parallel: queues,
            serial,
            skipped,
            groups: groups.into_iter().map(|(g, _)| g).collect(),
            group_of,
            estimate,
            known: expected.iter().map(Option::is_some).collect(),
            shard: None,
            queue_units: None,
            from_last_run: (moved_first > 0).then(|| {
                // What moves is the test's whole unit (its module keeps
                // its order), so the test itself may run late in it.
                format!(
                    "started first: the module or test of {moved_first} {} that failed last time",
                    if moved_first == 1 { "test" } else { "tests" }
                )
            }),
        }
    }

    pub fn runnable(&self) -> usize {
        self.tests.len() - self.skipped.len()
    }

    /// How many tests the parallel phase has.
    pub fn parallel_count(&self) -> usize {
        self.parallel.iter().map(Vec::len).sum()
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

/// `tests` split by file (and rank): files in the order of their first
/// appearance, tests within a file in their given order.
fn group_by_file<'a>(tests: &[u32], file_of: &dyn Fn(u32) -> (u8, &'a str)) -> Vec<Vec<u32>> {
    let mut files: Vec<Vec<u32>> = Vec::new();
    let mut index: std::collections::HashMap<(u8, &str), usize> = std::collections::HashMap::new();
    for &i in tests {
        let slot = *index.entry(file_of(i)).or_insert_with(|| {
            files.push(Vec::new());
            files.len() - 1
        });
        files[slot].push(i);
    }
    files
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
            status: crate::model::Status::Pass,
        });
        assert!(h.save(records).is_none());
        (dir, History::load(&path).0)
    }

    fn rules<'a>(
        serial: &'a Filter,
        groups: &'a BTreeMap<String, GroupTable>,
        order: Order,
        by_file: bool,
    ) -> PlanRules<'a> {
        PlanRules {
            serial_filter: serial,
            groups,
            order,
            by_file,
            failed_first: true,
        }
    }

    #[test]
    fn a_unit_that_failed_last_time_goes_first_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let (h, _) = History::load(&path);
        let record = |name, ms, status| crate::history::Record {
            name,
            duration: Duration::from_millis(ms),
            status,
        };
        use crate::model::Status::{Fail, Pass};
        let saved = h.save([
            record("long.py::t1", 900, Pass),
            record("short.py::t1", 10, Pass),
            record("short.py::t2", 10, Fail),
        ]);
        assert!(saved.is_none());
        let h = History::load(&path).0;
        let (serial, groups) = (Filter::default(), BTreeMap::new());
        let tests = cases(&["long.py::t1", "short.py::t1", "short.py::t2"]);
        let mut r = rules(&serial, &groups, Order::History, true);
        let plan = Plan::new(tests.clone(), &h, &r);
        let first: Vec<String> = names(&plan, &plan.parallel[0]);
        assert_eq!(
            first,
            ["short.py::t1", "short.py::t2"],
            "its whole module, in order"
        );
        assert_eq!(
            plan.from_last_run.as_deref(),
            Some("started first: the module or test of 1 test that failed last time")
        );
        r.failed_first = false;
        let plan = Plan::new(tests, &h, &r);
        assert_eq!(names(&plan, &plan.parallel[0]), ["long.py::t1"]);
        assert_eq!(plan.from_last_run, None);
    }

    fn names(plan: &Plan, tests: &[u32]) -> Vec<String> {
        tests
            .iter()
            .map(|&i| plan.tests[i as usize].name.clone())
            .collect()
    }

    fn queues(plan: &Plan) -> Vec<Vec<String>> {
        plan.parallel.iter().map(|q| names(plan, q)).collect()
    }

    #[test]
    fn longest_first_with_unknown_tests_leading() {
        let (_d, h) = history(&[("short", 10), ("long", 900), ("mid", 200)]);
        let serial = Filter::default();
        let groups = BTreeMap::new();
        let plan = Plan::new(
            cases(&["short", "new", "long", "mid"]),
            &h,
            &rules(&serial, &groups, Order::History, false),
        );
        assert_eq!(queues(&plan), [["new"], ["long"], ["mid"], ["short"]]);
    }

    #[test]
    fn serial_tests_by_marker_or_filter_leave_the_parallel_phase() {
        let mut tests = cases(&["tests/a.sh", "tests/migrations/m1.sh", "tests/b.sh"]);
        tests[2].serial_marker = true;
        tests[0].ignored = true;
        let serial = Filter::new(&["tests/migrations/**"]).unwrap();
        let groups = BTreeMap::new();
        let plan = Plan::new(
            tests,
            &History::disabled(),
            &rules(&serial, &groups, Order::History, false),
        );
        assert!(plan.parallel.is_empty());
        assert_eq!(
            names(&plan, &plan.serial),
            ["tests/migrations/m1.sh", "tests/b.sh"]
        );
        assert_eq!(plan.skipped, [0]);
        assert_eq!(plan.runnable(), 2);
    }

    #[test]
    fn files_stay_together_longest_file_first_in_collection_order() {
        let (_d, h) = history(&[
            ("a.py::t1", 100),
            ("a.py::t2", 300),
            ("b.py::t1", 1000),
            ("b.py::t2", 50),
        ]);
        let serial = Filter::default();
        let groups = BTreeMap::new();
        let tests = cases(&["a.py::t1", "b.py::t1", "a.py::t2", "b.py::t2"]);
        // History orders the files, never the tests inside one (a.py's t2
        // is the longer, and still runs after t1), whatever the order.
        for order in [Order::History, Order::File] {
            let plan = Plan::new(tests.clone(), &h, &rules(&serial, &groups, order, true));
            assert_eq!(
                queues(&plan),
                [["b.py::t1", "b.py::t2"], ["a.py::t1", "a.py::t2"]]
            );
        }
    }

    #[test]
    fn serial_units_stay_whole_in_collection_order() {
        let (_d, h) = history(&[("a.py::C::t1", 10), ("a.py::C::t2", 900), ("b.py::t1", 500)]);
        let mut tests = cases(&["a.py::C::t1", "b.py::t1", "a.py::C::t2"]);
        for t in &mut tests {
            t.serial_marker = true;
        }
        let serial = Filter::default();
        let groups = BTreeMap::new();
        let plan = Plan::new(tests, &h, &rules(&serial, &groups, Order::History, true));
        assert_eq!(
            names(&plan, &plan.serial),
            ["a.py::C::t1", "a.py::C::t2", "b.py::t1"]
        );
    }

    #[test]
    fn each_test_knows_its_group() {
        let tests = cases(&["t/db_1.py::x", "t/api.py::y"]);
        let serial = Filter::default();
        let mut groups = BTreeMap::new();
        groups.insert(
            "db".to_string(),
            GroupTable {
                filter: Filter::new(&["t/db_*"]).unwrap(),
                max_workers: 1,
            },
        );
        let plan = Plan::new(
            tests,
            &History::disabled(),
            &rules(&serial, &groups, Order::History, true),
        );
        assert_eq!(plan.group_of, [Some(0), None]);
        assert_eq!(plan.groups[0].name, "db");
    }

    #[test]
    fn selection_by_profile_filter_and_names() {
        let tests = cases(&["tests/unit/a.sh", "tests/unit/b.sh", "tests/e2e/c.sh"]);
        let unit = Filter::new(&["tests/unit/**"]).unwrap();
        let none = Selection::default();
        assert_eq!(select(tests.clone(), Some(&unit), &none).len(), 2);
        let b = Selection::new(&["b.sh".into()], &[], false, &[]).unwrap();
        assert_eq!(select(tests.clone(), Some(&unit), &b).len(), 1);
        assert_eq!(select(tests, None, &none).len(), 3);
    }

    fn picked(tests: &[TestCase], sel: &Selection) -> Vec<String> {
        select(tests.to_vec(), None, sel)
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    #[test]
    fn libtest_skip_and_exact_as_libtest_means_them() {
        let mut tests = cases(&["fx tests::slow", "fx tests::slower", "fx tests::fast"]);
        for t in &mut tests {
            t.target = t.name[3..].to_string();
        }
        let s = |f: &[&str]| {
            let f: Vec<String> = f.iter().map(|x| x.to_string()).collect();
            Selection::new(&f, &[], false, &[]).unwrap()
        };
        // `-- --skip slow`: everything but the slow ones (libtest), not only them.
        assert_eq!(picked(&tests, &s(&["--skip", "slow"])), ["fx tests::fast"]);
        assert_eq!(
            picked(&tests, &s(&["--skip", "tests::slow", "--exact"])),
            ["fx tests::slower", "fx tests::fast"]
        );
        assert_eq!(
            picked(&tests, &s(&["tests::slow", "--exact"])),
            ["fx tests::slow"]
        );
        assert_eq!(picked(&tests, &s(&["tests::slow"])).len(), 2);
        let e = Selection::new(&[], &[], false, &["test(=tests::fast)".into()]).unwrap();
        assert_eq!(picked(&tests, &e), ["fx tests::fast"]);
        assert!(Selection::new(&["--bogus".into()], &[], false, &[]).is_err());
        assert!(Selection::new(&[], &[], false, &["test(".into()]).is_err());
    }
}
