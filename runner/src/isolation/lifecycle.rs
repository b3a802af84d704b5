//! Drives every provider through the run and remembers what each one set up,
//! so that teardown undoes exactly that — on success, failure, a plugin
//! error, a panic (through `Drop`) and Ctrl-C.

use std::sync::Mutex;

use super::{IsoResult, Isolation, IsolationError, IsolationErrorKind, KeptSetup, RunInfo};
use crate::model::{Env, Slot};

/// The env one slot's tests get from all providers, in provider order.
pub type SlotEnv = Env;

pub struct Lifecycle {
    providers: Vec<Box<dyn Isolation>>,
    /// Which providers' setup_run succeeded (and so need teardown_run).
    run_ready: Mutex<Vec<bool>>,
    /// Per slot index: which providers' setup_slot succeeded.
    slots_ready: Mutex<Vec<Vec<bool>>>,
    /// Providers that reset between tests; empty for most runs, so the
    /// per-test path costs one `is_empty` check.
    resetting: Vec<usize>,
    torn_down: Mutex<bool>,
}

impl Lifecycle {
    pub fn new(providers: Vec<Box<dyn Isolation>>) -> Lifecycle {
        let resetting = providers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.resets_between_tests())
            .map(|(i, _)| i)
            .collect();
        let n = providers.len();
        Lifecycle {
            providers,
            run_ready: Mutex::new(vec![false; n]),
            slots_ready: Mutex::new(Vec::new()),
            resetting,
            torn_down: Mutex::new(false),
        }
    }

    pub fn providers(&self) -> impl Iterator<Item = &dyn Isolation> {
        self.providers.iter().map(|p| p.as_ref())
    }

    /// Each provider's slot limit, for the worker-count report.
    pub fn slot_limits(&self) -> Vec<(String, usize)> {
        self.providers
            .iter()
            .filter_map(|p| p.max_slots().map(|n| (p.name().to_string(), n)))
            .collect()
    }

    /// Runs every provider's setup_run; the merged env is for the setup commands.
    pub fn setup_run(&self, run: &RunInfo) -> IsoResult<Env> {
        let mut env = MergedEnv::default();
        for (i, p) in self.providers.iter().enumerate() {
            let provided = p.setup_run(run)?;
            lock(&self.run_ready)[i] = true;
            env.add(&self.providers, i, "setup-run", provided)?;
        }
        Ok(env.vars)
    }

    /// Sets a slot up with every provider; on error, what was set up for the
    /// slot stays recorded and is torn down with the rest.
    pub fn setup_slot(&self, slot: &Slot) -> IsoResult<SlotEnv> {
        {
            let mut slots = lock(&self.slots_ready);
            if slots.len() <= slot.index {
                slots.resize(slot.index + 1, Vec::new());
            }
            slots[slot.index] = vec![false; self.providers.len()];
        }
        let mut env = MergedEnv::default();
        for (i, p) in self.providers.iter().enumerate() {
            let provided = p.setup_slot(slot)?;
            lock(&self.slots_ready)[slot.index][i] = true;
            env.add(&self.providers, i, "setup-slot", provided)?;
        }
        Ok(env.vars)
    }

    /// The set-ups kept across runs, by the providers that keep any
    /// (name, what it keeps); a provider that keeps none is left out.
    pub fn kept_setups(&self) -> IsoResult<Vec<(String, Vec<KeptSetup>)>> {
        let mut kept = Vec::new();
        for p in &self.providers {
            if let Some(list) = p.kept_setups()? {
                kept.push((p.name().to_string(), list));
            }
        }
        Ok(kept)
    }

    /// Keeps every provider's template under the run's key, once the setup
    /// commands succeeded.
    pub fn keep_setup(&self) -> IsoResult<()> {
        for p in &self.providers {
            p.keep_setup()?;
        }
        Ok(())
    }

    /// Removes the set-up kept under `key` from every provider that has it;
    /// whether any had it.
    pub fn drop_setup(&self, key: &str) -> IsoResult<bool> {
        let mut dropped = false;
        for p in &self.providers {
            dropped |= p.drop_setup(key)?;
        }
        Ok(dropped)
    }

    /// Whether some provider resets a slot between tests.
    pub fn resets_between_tests(&self) -> bool {
        !self.resetting.is_empty()
    }

    /// Whether some provider's slot databases are copies of the template
    /// the setup commands migrate: each is ready to test on as it is.
    pub fn slots_copy_template(&self) -> bool {
        self.providers.iter().any(|p| p.slots_copy_template())
    }

    /// Whether some provider keeps a failed run's slots to look at.
    pub fn keeps_failed_slots(&self) -> bool {
        self.providers.iter().any(|p| p.keeps_failed_slots())
    }

    /// Between two tests on a slot.
    pub fn reset_slot(&self, slot: &Slot) -> IsoResult<()> {
        for &i in &self.resetting {
            self.providers[i].reset_slot(slot)?;
        }
        Ok(())
    }

    /// Tears one slot down, last provider first. Errors are collected, not
    /// returned early: one provider's failure must not leak another's resources.
    pub fn teardown_slot(&self, slot: &Slot, run_failed: bool) -> Vec<IsolationError> {
        let ready = {
            let mut slots = lock(&self.slots_ready);
            match slots.get_mut(slot.index) {
                Some(r) => std::mem::take(r),
                None => return Vec::new(),
            }
        };
        let mut errors = Vec::new();
        for (i, p) in self.providers.iter().enumerate().rev() {
            if ready.get(i).copied().unwrap_or(false)
                && let Err(e) = p.teardown_slot(slot, run_failed)
            {
                errors.push(e);
            }
        }
        errors
    }

    /// Tears down every slot still set up, then every run-level setup. Safe
    /// to call more than once; only the first call does anything.
    pub fn teardown(&self, run_failed: bool) -> Vec<IsolationError> {
        {
            let mut done = lock(&self.torn_down);
            if *done {
                return Vec::new();
            }
            *done = true;
        }
        let slot_count = lock(&self.slots_ready).len();
        let mut errors = Vec::new();
        for index in 0..slot_count {
            errors.extend(self.teardown_slot(&Slot::new(index), run_failed));
        }
        let ready = std::mem::take(&mut *lock(&self.run_ready));
        for (i, p) in self.providers.iter().enumerate().rev() {
            if ready.get(i).copied().unwrap_or(false)
                && let Err(e) = p.teardown_run(run_failed)
            {
                errors.push(e);
            }
        }
        errors
    }
}

/// The providers' variables together; two that set the same name is an
/// error naming both, never a silent overwrite.
#[derive(Default)]
struct MergedEnv {
    vars: Env,
    /// Which provider set each variable, by its index in `vars`.
    from: Vec<usize>,
}

impl MergedEnv {
    fn add(
        &mut self,
        providers: &[Box<dyn Isolation>],
        index: usize,
        hook: &'static str,
        provided: Env,
    ) -> IsoResult<()> {
        for (name, value) in provided {
            if let Some(at) = self.vars.iter().position(|(n, _)| *n == name) {
                let first = providers[self.from[at]].name();
                let second = providers[index].name();
                // A conflict of two accepted settings, found while the
                // run sets up: a setup failure (exit 3), as it always was.
                return Err(IsolationError::new(
                    format!("{first} and {second}"),
                    hook,
                    IsolationErrorKind::Failed,
                    format!(
                        "both set {name}; rename one with its `var` setting \
                         (for example [plugins.{second}] var = \"{}_{name}\")",
                        second.to_uppercase()
                    ),
                ));
            }
            self.vars.push((name, value));
            self.from.push(index);
        }
        Ok(())
    }
}

impl Drop for Lifecycle {
    /// The last line of defence (a panic unwinding past the run): resources
    /// are still released. Errors here have no one to report to but stderr.
    fn drop(&mut self) {
        for e in self.teardown(true) {
            eprintln!("partest: teardown: {e}");
        }
    }
}

/// A poisoned lock only means another thread panicked; the bookkeeping
/// inside is still right, and teardown must go on.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Records every call so the order and the "only what was set up" rule
    /// can be checked.
    struct Recorder {
        name: &'static str,
        calls: Arc<Mutex<Vec<String>>>,
        fail_slot: Option<usize>,
    }

    impl Isolation for Recorder {
        fn name(&self) -> &str {
            self.name
        }
        fn setup_run(&self, _: &RunInfo) -> IsoResult<Env> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{}:setup_run", self.name));
            Ok(vec![(format!("{}_RUN", self.name), "1".into())])
        }
        fn setup_slot(&self, slot: &Slot) -> IsoResult<Env> {
            if self.fail_slot == Some(slot.index) {
                return Err(IsolationError::new(
                    self.name,
                    "setup-slot",
                    IsolationErrorKind::Failed,
                    "boom",
                ));
            }
            self.calls
                .lock()
                .unwrap()
                .push(format!("{}:setup_slot:{}", self.name, slot.name));
            Ok(vec![(format!("{}_SLOT", self.name), slot.name.clone())])
        }
        fn teardown_slot(&self, slot: &Slot, _: bool) -> IsoResult<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{}:teardown_slot:{}", self.name, slot.name));
            Ok(())
        }
        fn teardown_run(&self, _: bool) -> IsoResult<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{}:teardown_run", self.name));
            Ok(())
        }
    }

    fn run_info() -> RunInfo {
        RunInfo {
            run_id: "abc".into(),
            workers: 2,
            root: "/r".into(),
            state_dir: "/r/.partest".into(),
            setup: None,
        }
    }

    #[test]
    fn teardown_undoes_only_what_was_set_up_in_reverse_order() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let lc = Lifecycle::new(vec![
            Box::new(Recorder {
                name: "a",
                calls: calls.clone(),
                fail_slot: None,
            }),
            Box::new(Recorder {
                name: "b",
                calls: calls.clone(),
                fail_slot: Some(1),
            }),
        ]);
        lc.setup_run(&run_info()).unwrap();
        assert_eq!(lc.setup_slot(&Slot::new(0)).unwrap().len(), 2);
        assert!(lc.setup_slot(&Slot::new(1)).is_err());
        assert!(lc.teardown(false).is_empty());
        assert!(
            lc.teardown(false).is_empty(),
            "a second teardown does nothing"
        );
        let calls = calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                "a:setup_run",
                "b:setup_run",
                "a:setup_slot:gw0",
                "b:setup_slot:gw0",
                "a:setup_slot:gw1",
                "b:teardown_slot:gw0",
                "a:teardown_slot:gw0",
                "a:teardown_slot:gw1",
                "b:teardown_run",
                "a:teardown_run",
            ]
        );
    }

    /// A provider that sets one variable in every hook.
    struct Setter(&'static str, &'static str);

    impl Isolation for Setter {
        fn name(&self) -> &str {
            self.0
        }
        fn setup_run(&self, _: &RunInfo) -> IsoResult<Env> {
            Ok(vec![(self.1.into(), self.0.into())])
        }
        fn setup_slot(&self, _: &Slot) -> IsoResult<Env> {
            Ok(vec![(self.1.into(), self.0.into())])
        }
        fn teardown_slot(&self, _: &Slot, _: bool) -> IsoResult<()> {
            Ok(())
        }
        fn teardown_run(&self, _: bool) -> IsoResult<()> {
            Ok(())
        }
    }

    #[test]
    fn two_providers_setting_one_variable_is_an_error_naming_both() {
        let lc = Lifecycle::new(vec![
            Box::new(Setter("sqlite", "DATABASE_URL")),
            Box::new(Setter("postgres", "DATABASE_URL")),
        ]);
        let e = lc.setup_run(&run_info()).unwrap_err();
        assert_eq!(e.provider, "sqlite and postgres");
        assert!(
            e.message.contains("DATABASE_URL") && e.message.contains("var"),
            "{e}"
        );
        let e = lc.setup_slot(&Slot::new(0)).unwrap_err();
        assert_eq!(e.hook, "setup-slot");
        assert!(
            lc.teardown(false).is_empty(),
            "both were set up, both torn down"
        );
        let fine = Lifecycle::new(vec![
            Box::new(Setter("sqlite", "SQLITE_URL")),
            Box::new(Setter("postgres", "DATABASE_URL")),
        ]);
        assert_eq!(fine.setup_slot(&Slot::new(0)).unwrap().len(), 2);
    }

    #[test]
    fn dropping_without_teardown_still_tears_down() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        {
            let lc = Lifecycle::new(vec![Box::new(Recorder {
                name: "a",
                calls: calls.clone(),
                fail_slot: None,
            })]);
            lc.setup_run(&run_info()).unwrap();
            lc.setup_slot(&Slot::new(0)).unwrap();
        }
        let calls = calls.lock().unwrap().clone();
        assert!(calls.contains(&"a:teardown_slot:gw0".to_string()));
        assert_eq!(calls.last().unwrap(), "a:teardown_run");
    }
}
