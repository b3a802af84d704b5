//! collect = share: each pytest worker imports and collects its share of the
//! test files, so each module is imported by one worker rather than by all
//! of them; the run is planned on what they found together.

use std::path::Path;
use std::time::Duration;

use super::PytestAdapter;
use super::slot::PytestSlot;
use crate::discover::collect::{Collected, FileTests, Files};
use crate::discover::executor::{
    ExecContext, Executor, Merged, PastCosts, SlotError, WorkerAdapter,
};
use crate::error::Error;
use crate::model::{Env, Slot};

impl WorkerAdapter for PytestAdapter {
    fn start<'a>(
        &'a self,
        ctx: &'a ExecContext<'a>,
        slot: Slot,
        env: Env,
        scratch: &Path,
    ) -> Result<Box<dyn Executor + 'a>, SlotError> {
        Ok(Box::new(PytestSlot::open(self, ctx, slot, env, scratch)?))
    }

    /// Longest-processing-time over what each file cost a worker before
    /// (history: its tests' expected time plus what importing and collecting
    /// it took), else the files' size on disk, so that the slots' shares
    /// take about as long and a slot seldom has to import another's file to
    /// keep busy.
    fn shares(&self, files: &[String], slots: usize, past: &PastCosts) -> Vec<Vec<u32>> {
        let (tests, collect) = (&past.tests, past.collect);
        let weights: Vec<f64> = if tests.is_empty() && collect.is_empty() {
            files
                .iter()
                .map(|f| {
                    std::fs::metadata(self.root().join(f))
                        .ok()
                        .map_or(1.0, |m| m.len().max(1) as f64)
                })
                .collect()
        } else {
            let mean = |known: Vec<f64>| known.iter().sum::<f64>() / known.len().max(1) as f64;
            let tests_mean = mean(tests.values().map(Duration::as_secs_f64).collect());
            let collect_mean = mean(collect.values().map(Duration::as_secs_f64).collect());
            files
                .iter()
                .map(|f| {
                    tests
                        .get(f.as_str())
                        .map_or(tests_mean, Duration::as_secs_f64)
                        + collect.get(f).map_or(collect_mean, Duration::as_secs_f64)
                })
                .collect()
        };
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
        let mut load = vec![0.0_f64; slots.max(1)];
        let mut shares = vec![Vec::new(); slots.max(1)];
        for f in order {
            let slot = (0..load.len())
                .min_by(|&a, &b| load[a].total_cmp(&load[b]))
                .unwrap_or(0);
            load[slot] += weights[f];
            shares[slot].push(f as u32);
        }
        for share in &mut shares {
            share.sort_unstable();
        }
        shares
    }

    fn merge(
        &self,
        ctx: &ExecContext,
        files: &Files,
        collected: Vec<Collected>,
    ) -> Result<Merged, Error> {
        let mut found: Vec<Option<FileTests>> = vec![None; files.files.len()];
        let mut errors = Vec::new();
        for collected in collected {
            errors.extend(collected.errors);
            for f in collected.files {
                let at = f.file as usize;
                if at < found.len() {
                    found[at] = Some(f);
                }
            }
        }
        if !errors.is_empty() {
            return Err(self.collect_errors(&errors));
        }
        let collect_times = found
            .iter()
            .flatten()
            .filter_map(|f| {
                let secs = Duration::try_from_secs_f64(f.secs?).ok()?;
                Some((files.files.get(f.file as usize)?.clone(), secs))
            })
            .collect();
        let planned: Result<Vec<FileTests>, Error> = found
            .into_iter()
            .enumerate()
            .map(|(f, tests)| {
                tests.ok_or_else(|| {
                    Error::setup(format!("no pytest worker collected {}", files.files[f]))
                })
            })
            .collect();
        let tests = planned.map(|planned| {
            let tests = self.tests(&planned);
            let _ = ctx.planned.set(planned);
            tests
        });
        Ok(Merged {
            collect_times,
            tests,
        })
    }
}
