//! The glue between the generated `Guest` trait and [`crate::Plugin`]. Not API.

use core::cell::RefCell;
use core::marker::PhantomData;

use crate::Plugin;
use crate::bindings::exports::partest::plugin::plugin::Guest;
use crate::bindings::partest::plugin::types::{
    DefaultLimits, Error, Info, KeptSetup, RunInfo, Slot,
};

/// What `register!` knows of the plugin crate.
pub trait Meta: 'static {
    const NAME: &'static str;
    const VERSION: &'static str;
    type Plugin: Plugin;
}

pub struct Adapter<M>(PhantomData<M>);

fn millis(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

std::thread_local! {
    static SETTINGS: RefCell<String> = const { RefCell::new(String::new()) };
    static STATE: RefCell<Option<Box<dyn core::any::Any>>> = const { RefCell::new(None) };
}

pub fn with_settings<R>(f: impl FnOnce(&str) -> R) -> R {
    SETTINGS.with(|s| f(&s.borrow()))
}

fn with_plugin<P: Plugin, R>(f: impl FnOnce(&mut P) -> Result<R, Error>) -> Result<R, Error> {
    STATE.with(|s| {
        let mut state = s.borrow_mut();
        match state.as_mut().and_then(|b| b.downcast_mut::<P>()) {
            Some(p) => f(p),
            None => Err(Error::Failed("a hook ran before configure".into())),
        }
    })
}

impl<M: Meta> Guest for Adapter<M> {
    fn describe() -> Info {
        Info {
            name: M::NAME.into(),
            version: M::VERSION.into(),
            summary: M::Plugin::SUMMARY.into(),
            max_slots: M::Plugin::MAX_SLOTS,
            resets_between_tests: M::Plugin::RESETS_BETWEEN_TESTS,
            config_keys: M::Plugin::config_keys(),
            env_vars: M::Plugin::ENV_VARS.iter().map(|v| v.to_string()).collect(),
            setting_grants: M::Plugin::setting_grants(),
            default_limits: DefaultLimits {
                call_timeout_ms: M::Plugin::CALL_TIMEOUT.map(millis),
                setup_run_timeout_ms: M::Plugin::SETUP_RUN_TIMEOUT.map(millis),
            },
        }
    }

    fn configure(settings: String) -> Result<(), Error> {
        SETTINGS.with(|s| *s.borrow_mut() = settings);
        let plugin = M::Plugin::configure()?;
        STATE.with(|s| *s.borrow_mut() = Some(Box::new(plugin)));
        Ok(())
    }

    fn max_slots() -> Result<Option<u32>, Error> {
        with_plugin(|p: &mut M::Plugin| p.max_slots())
    }

    fn resets_between_tests() -> bool {
        with_plugin(|p: &mut M::Plugin| Ok(p.resets_between_tests()))
            .unwrap_or(M::Plugin::RESETS_BETWEEN_TESTS)
    }

    fn env_vars() -> Vec<String> {
        with_plugin(|p: &mut M::Plugin| Ok(p.env_vars()))
            .unwrap_or_else(|_| M::Plugin::ENV_VARS.iter().map(|v| v.to_string()).collect())
    }

    fn slots_copy_template() -> bool {
        with_plugin(|p: &mut M::Plugin| Ok(p.slots_copy_template())).unwrap_or(false)
    }

    fn setup_run(run: RunInfo) -> Result<Vec<(String, String)>, Error> {
        with_plugin(|p: &mut M::Plugin| p.setup_run(&run))
    }

    fn setup_slot(run: RunInfo, slot: Slot) -> Result<Vec<(String, String)>, Error> {
        with_plugin(|p: &mut M::Plugin| p.setup_slot(&run, &slot))
    }

    fn reset_slot(run: RunInfo, slot: Slot) -> Result<(), Error> {
        with_plugin(|p: &mut M::Plugin| p.reset_slot(&run, &slot))
    }

    fn teardown_slot(run: RunInfo, slot: Slot, run_failed: bool) -> Result<(), Error> {
        with_plugin(|p: &mut M::Plugin| p.teardown_slot(&run, &slot, run_failed))
    }

    fn teardown_run(run: RunInfo, run_failed: bool) -> Result<(), Error> {
        with_plugin(|p: &mut M::Plugin| p.teardown_run(&run, run_failed))
    }

    fn kept_setups() -> Result<Option<Vec<KeptSetup>>, Error> {
        with_plugin(|p: &mut M::Plugin| p.kept_setups())
    }

    fn keep_setup(run: RunInfo) -> Result<(), Error> {
        with_plugin(|p: &mut M::Plugin| p.keep_setup(&run))
    }

    fn drop_setup(key: String) -> Result<bool, Error> {
        with_plugin(|p: &mut M::Plugin| p.drop_setup(&key))
    }

    fn sweep(run: RunInfo, dry_run: bool) -> Result<Vec<String>, Error> {
        with_plugin(|p: &mut M::Plugin| p.sweep(&run, dry_run))
    }
}
