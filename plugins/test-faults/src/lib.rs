//! A plugin for the fault matrix (tests/faults.rs): in the hooks its
//! settings name, it runs `sh -c SCRIPT` through the `process` capability,
//! so a test can hold partest inside setup-run, setup-slot, teardown-slot
//! or teardown-run (the script writes a file saying so, then waits) and
//! signal it there. A hook without a script does nothing.

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{Env, Error, Plugin, Result, RunInfo, Slot, config, process};

#[derive(Deserialize, Default)]
#[serde(
    crate = "partest_plugin_sdk::serde",
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
struct Settings {
    #[serde(default)]
    setup_run: Option<String>,
    #[serde(default)]
    setup_slot: Option<String>,
    #[serde(default)]
    teardown_slot: Option<String>,
    #[serde(default)]
    teardown_run: Option<String>,
}

struct Faults {
    s: Settings,
}

/// Runs `script` with the run id and slot in its env; fails unless it exits 0.
fn run(script: &Option<String>, run: &RunInfo, slot: &str) -> Result<()> {
    let Some(script) = script else {
        return Ok(());
    };
    let out = process::run(
        "sh",
        &["-c", script],
        &[("FAULT_RUN_ID", &run.run_id), ("FAULT_SLOT", slot)],
    )?;
    if out.status == Some(0) {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "the script exited with {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

impl Plugin for Faults {
    const ENV_VARS: &'static [&'static str] = &[];

    fn configure() -> Result<Self> {
        Ok(Faults { s: config()? })
    }

    fn setup_run(&mut self, r: &RunInfo) -> Result<Env> {
        run(&self.s.setup_run, r, "run")?;
        Ok(Vec::new())
    }

    fn setup_slot(&mut self, r: &RunInfo, slot: &Slot) -> Result<Env> {
        run(&self.s.setup_slot, r, &slot.name)?;
        Ok(Vec::new())
    }

    fn teardown_slot(&mut self, r: &RunInfo, slot: &Slot, _run_failed: bool) -> Result<()> {
        run(&self.s.teardown_slot, r, &slot.name)
    }

    fn teardown_run(&mut self, r: &RunInfo, _run_failed: bool) -> Result<()> {
        run(&self.s.teardown_run, r, "run")
    }
}

partest_plugin_sdk::register!(Faults);
