//! The static split: the selection cut into units (a pytest module's tests
//! together, else one test each), dealt over N shards longest first, each
//! to the shard with the least expected time so far (LPT). The same inputs
//! give the same split on every machine: weights are integers, and ties are
//! broken by a stable hash of the unit's name, then the name itself.

use std::time::Duration;

use super::{Shard, stable_hash};
use crate::model::TestCase;

/// Tests that go to one shard (or one queue claim) together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// A module's path, or a test's name.
    pub key: String,
    /// Indices into the selection.
    pub tests: Vec<u32>,
    /// Expected microseconds (by timings), or the test count (without any).
    pub weight: u64,
}

/// What each test is expected to take: its recorded duration, else the mean
/// of the recorded ones among `tests`. None when nothing is recorded: the
/// split then balances test counts, in stable-hash order.
pub fn weights(tests: &[TestCase], known: &dyn Fn(&str) -> Option<Duration>) -> Option<Vec<u64>> {
    let recorded: Vec<Option<u64>> = tests
        .iter()
        .map(|t| known(&t.name).map(|d| d.as_micros().min(u128::from(u64::MAX / 4)) as u64))
        .collect();
    let known: Vec<u64> = recorded.iter().flatten().copied().collect();
    if known.is_empty() {
        return None;
    }
    let mean = known.iter().map(|&w| u128::from(w)).sum::<u128>() / known.len() as u128;
    // Every test weighs something, so that weightless tests are dealt too.
    Some(
        recorded
            .into_iter()
            .map(|w| w.unwrap_or(mean as u64).max(1))
            .collect(),
    )
}

/// The file part of a test name (pytest node ids: the part before `::`).
pub fn file_of(name: &str) -> &str {
    name.split_once("::").map_or(name, |(file, _)| file)
}

/// The units of a selection. `by_file`: a module's tests stay together,
/// unless the module alone weighs more than half a shard's share (`total /
/// shards / 2`): then its classes and its module-level tests are units of
/// their own, so that one heavy module cannot unbalance the split.
pub fn units(tests: &[TestCase], weights: &[u64], by_file: bool, shards: u32) -> Vec<Unit> {
    let single = |i: usize| Unit {
        key: tests[i].name.clone(),
        tests: vec![i as u32],
        weight: weights[i],
    };
    if !by_file {
        return (0..tests.len()).map(single).collect();
    }
    let mut files: Vec<Unit> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, t) in tests.iter().enumerate() {
        let file = file_of(&t.name);
        let at = *index.entry(file).or_insert_with(|| {
            files.push(Unit {
                key: file.to_string(),
                tests: Vec::new(),
                weight: 0,
            });
            files.len() - 1
        });
        files[at].tests.push(i as u32);
        files[at].weight += weights[i];
    }
    let total: u64 = weights.iter().sum();
    let cap = total / u64::from(shards.max(1)) / 2;
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        if file.tests.len() > 1 && file.weight > cap && shards > 1 {
            out.extend(classes(tests, weights, &file.tests));
        } else {
            out.push(file);
        }
    }
    out
}

/// A heavy module's units: each class whole, each module-level test alone,
/// in collection order (a class's set-up holds for its tests together).
fn classes(tests: &[TestCase], weights: &[u64], members: &[u32]) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let mut prev: Option<&TestCase> = None;
    for &i in members {
        let t = &tests[i as usize];
        match out.last_mut() {
            Some(unit) if prev.is_some_and(|p| !p.unit_ends_before(t)) => {
                unit.tests.push(i);
                unit.weight += weights[i as usize];
            }
            _ => out.push(Unit {
                key: t.class_scope().unwrap_or(&t.name).to_string(),
                tests: vec![i],
                weight: weights[i as usize],
            }),
        }
        prev = Some(t);
    }
    out
}

/// The order units are dealt (and queued) in: heaviest first; equal weights
/// by stable hash, then by name.
pub fn dealing_order(units: &[Unit]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&units[a], &units[b]);
        b.weight
            .cmp(&a.weight)
            .then_with(|| stable_hash(&a.key).cmp(&stable_hash(&b.key)))
            .then_with(|| a.key.cmp(&b.key))
    });
    order
}

/// Each unit's shard (0-based), and each shard's load: longest processing
/// time first, each unit to the least-loaded shard (the lowest on a tie).
pub fn assign(units: &[Unit], shards: u32) -> (Vec<u32>, Vec<u64>) {
    let n = shards.max(1) as usize;
    let mut loads = vec![0u64; n];
    let mut shard_of = vec![0u32; units.len()];
    for u in dealing_order(units) {
        let (least, _) = loads
            .iter()
            .enumerate()
            .min_by_key(|&(s, &load)| (load, s))
            .expect("at least one shard");
        loads[least] += units[u].weight;
        shard_of[u] = least as u32;
    }
    (shard_of, loads)
}

/// One shard's share of the selection, and how the split went.
pub struct Split {
    pub tests: Vec<TestCase>,
    pub summary: SplitSummary,
}

#[derive(Clone, Debug)]
pub struct SplitSummary {
    pub shard: Shard,
    pub selected: usize,
    pub kept: usize,
    /// Balanced on recorded durations (else on test counts, hash-ordered).
    pub by_time: bool,
    /// Expected time of this shard, of the slowest one, and the ideal
    /// (total / N), in seconds; test counts without timings.
    pub load: f64,
    pub slowest: f64,
    pub ideal: f64,
}

impl SplitSummary {
    pub fn describe(&self) -> String {
        let (what, unit) = if self.by_time {
            ("recorded durations", "s")
        } else {
            ("test counts (no timings: stable hash order)", " tests")
        };
        format!(
            "shard {}: {} of {} selected tests, balanced on {what}: this shard {:.1}{unit}, slowest {:.1}{unit}, ideal {:.1}{unit}",
            self.shard, self.kept, self.selected, self.load, self.slowest, self.ideal
        )
    }
}

/// Keeps shard `shard`'s tests of the selection, in their given order.
pub fn split(
    tests: Vec<TestCase>,
    shard: Shard,
    by_file: bool,
    known: &dyn Fn(&str) -> Option<Duration>,
) -> Split {
    let selected = tests.len();
    let weights_known = weights(&tests, known);
    let by_time = weights_known.is_some();
    let weights = weights_known.unwrap_or_else(|| vec![1; tests.len()]);
    let units = units(&tests, &weights, by_file, shard.total);
    let (shard_of, loads) = assign(&units, shard.total);
    let me = shard.index - 1;
    let mut keep = vec![false; tests.len()];
    for (u, unit) in units.iter().enumerate() {
        if shard_of[u] == me {
            for &t in &unit.tests {
                keep[t as usize] = true;
            }
        }
    }
    let scale = if by_time { 1e-6 } else { 1.0 };
    let total: u64 = loads.iter().sum();
    let summary = SplitSummary {
        shard,
        selected,
        kept: keep.iter().filter(|&&k| k).count(),
        by_time,
        load: loads[me as usize] as f64 * scale,
        slowest: loads.iter().copied().max().unwrap_or(0) as f64 * scale,
        ideal: total as f64 * scale / f64::from(shard.total),
    };
    let tests = tests
        .into_iter()
        .zip(keep)
        .filter_map(|(t, k)| k.then_some(t))
        .collect();
    Split { tests, summary }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn suite(names: &[String]) -> Vec<TestCase> {
        names.iter().map(TestCase::new).collect()
    }

    /// Every shard of a split, by name.
    fn all_shards(
        tests: &[TestCase],
        n: u32,
        by_file: bool,
        known: &dyn Fn(&str) -> Option<Duration>,
    ) -> Vec<Vec<String>> {
        (1..=n)
            .map(|k| {
                split(tests.to_vec(), Shard { index: k, total: n }, by_file, known)
                    .tests
                    .into_iter()
                    .map(|t| t.name)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn lpt_balances_a_skewed_suite_within_ten_percent() {
        // 300 tests, durations heavy-tailed (Pareto-like, deterministic).
        let names: Vec<String> = (0..300)
            .map(|i| format!("t/m{}.py::t{i}", i % 40))
            .collect();
        let durations: HashMap<String, Duration> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let u = ((i * 7919) % 1000) as f64 / 1000.0 + 0.0005;
                (
                    n.clone(),
                    Duration::from_secs_f64(0.05 * u.powf(-1.0 / 1.5).min(60.0)),
                )
            })
            .collect();
        let known = |n: &str| durations.get(n).copied();
        let tests = suite(&names);
        for by_file in [false, true] {
            for n in [2, 3, 5, 8] {
                let s = split(tests.clone(), Shard { index: 1, total: n }, by_file, &known);
                assert!(s.summary.by_time);
                assert!(
                    s.summary.slowest <= s.summary.ideal * 1.10,
                    "N={n} by_file={by_file}: slowest {} vs ideal {}",
                    s.summary.slowest,
                    s.summary.ideal
                );
            }
        }
    }

    #[test]
    fn without_timings_counts_are_balanced_and_modules_kept_together() {
        let names: Vec<String> = (0..12).map(|i| format!("m{}.py::t{i}", i % 6)).collect();
        let shards = all_shards(&suite(&names), 3, true, &|_: &str| None);
        let counts: Vec<usize> = shards.iter().map(Vec::len).collect();
        assert_eq!(counts, [4, 4, 4]);
        for shard in &shards {
            for name in shard {
                let file = file_of(name);
                assert!(shard.iter().filter(|n| file_of(n) == file).count() == 2);
            }
        }
    }

    #[test]
    fn a_heavy_module_is_split_to_keep_the_balance() {
        let mut names: Vec<String> = (0..10).map(|i| format!("heavy.py::t{i}")).collect();
        names.extend((0..10).map(|i| format!("light{i}.py::t")));
        let known = |n: &str| {
            Some(Duration::from_secs(if n.starts_with("heavy") {
                2
            } else {
                1
            }))
        };
        let shards = all_shards(&suite(&names), 2, true, &known);
        let heavy_in = |s: &Vec<String>| s.iter().filter(|n| n.starts_with("heavy")).count();
        assert!(heavy_in(&shards[0]) > 0 && heavy_in(&shards[1]) > 0);
        let load = |s: &Vec<String>| s.iter().map(|n| known(n).unwrap().as_secs()).sum::<u64>();
        assert_eq!(load(&shards[0]), 15);
        assert_eq!(load(&shards[1]), 15);
    }

    #[test]
    fn unknown_tests_weigh_the_mean_of_the_known() {
        let tests = suite(&["a".into(), "b".into(), "new".into()]);
        let known = |n: &str| match n {
            "a" => Some(Duration::from_secs(1)),
            "b" => Some(Duration::from_secs(3)),
            _ => None,
        };
        assert_eq!(
            weights(&tests, &known).unwrap(),
            [1_000_000, 3_000_000, 2_000_000]
        );
        assert!(weights(&tests, &|_: &str| None).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any suite, any N, with or without timings: every test lands in
        /// exactly one shard, the shards' union is the selection, and the
        /// split is the same when computed again.
        #[test]
        fn every_test_in_exactly_one_shard(
            raw in proptest::collection::vec((0u8..12, 0u16..500, proptest::option::of(0u32..5_000_000)), 0..120),
            n in 1u32..9,
            by_file in any::<bool>(),
        ) {
            let mut seen = std::collections::HashSet::new();
            let mut names = Vec::new();
            let mut durations = HashMap::new();
            for (file, test, micros) in raw {
                let name = format!("tests/f{file}.py::t{test}");
                if seen.insert(name.clone()) {
                    if let Some(m) = micros {
                        durations.insert(name.clone(), Duration::from_micros(u64::from(m)));
                    }
                    names.push(name);
                }
            }
            let known = |n: &str| durations.get(n).copied();
            let tests = suite(&names);
            let shards = all_shards(&tests, n, by_file, &known);
            let mut union: Vec<&String> = shards.iter().flatten().collect();
            prop_assert_eq!(union.len(), names.len());
            union.sort();
            let mut expected: Vec<&String> = names.iter().collect();
            expected.sort();
            prop_assert_eq!(union, expected);
            prop_assert_eq!(&shards, &all_shards(&tests, n, by_file, &known));
            // The order of discovery does not change who runs what.
            let mut reversed = tests.clone();
            reversed.reverse();
            let again = all_shards(&reversed, n, by_file, &known);
            for (a, b) in shards.iter().zip(&again) {
                let (mut a, mut b) = (a.clone(), b.clone());
                a.sort();
                b.sort();
                prop_assert_eq!(a, b);
            }
        }
    }
}
