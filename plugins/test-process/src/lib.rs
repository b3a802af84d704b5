//! Imports the `process` capability: partest must refuse to load it unless
//! the user granted `allow = { process = [...] }`.

use partest_plugin_sdk::{Env, Plugin, Result, RunInfo, Slot, process};

struct UsesProcess;

impl Plugin for UsesProcess {
    fn configure() -> Result<Self> {
        Ok(UsesProcess)
    }

    fn setup_run(&mut self, _run: &RunInfo) -> Result<Env> {
        let out = process::check("echo", &["hello", "from", "echo"])?;
        Ok(vec![("ECHOED".into(), out.trim().to_string())])
    }

    fn setup_slot(&mut self, _run: &RunInfo, _slot: &Slot) -> Result<Env> {
        // Not granted: must be refused by the host.
        match process::run("sh", &["-c", "echo pwned"], &[]) {
            Ok(_) => Ok(vec![("RAN_SH".into(), "yes".into())]),
            Err(e) => Ok(vec![("SH_REFUSED".into(), format!("{e:?}"))]),
        }
    }
}

partest_plugin_sdk::register!(UsesProcess);
