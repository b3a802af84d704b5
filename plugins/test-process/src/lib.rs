//! Imports the `process` capability: partest must refuse to load it unless
//! the user granted `allow = { process = [...] }`. With a grant, `mode`
//! picks what it tries.

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{Env, Error, Plugin, Result, RunInfo, Slot, config, process};

#[derive(Deserialize, Default)]
#[serde(crate = "partest_plugin_sdk::serde", deny_unknown_fields)]
struct Settings {
    /// none | env | grandchild
    #[serde(default)]
    mode: String,
    /// `env`: what it passes to the granted program `true`.
    #[serde(default)]
    env: Vec<(String, String)>,
    /// `grandchild`: a file a grandchild would write after 2 s.
    #[serde(default)]
    mark: String,
}

struct UsesProcess {
    s: Settings,
}

fn outcome(r: Result<process::Output>) -> String {
    match r {
        Ok(out) => format!("ran: {:?}", out.status),
        Err(Error::Refused(m)) => format!("refused: {m}"),
        Err(e) => format!("failed: {e:?}"),
    }
}

impl Plugin for UsesProcess {
    const ENV_VARS: &'static [&'static str] = &["ECHOED", "RAN_SH", "SH_REFUSED", "RESULT"];

    fn configure() -> Result<Self> {
        Ok(UsesProcess { s: config()? })
    }

    fn setup_run(&mut self, _run: &RunInfo) -> Result<Env> {
        match self.s.mode.as_str() {
            "env" => {
                let env: Vec<(&str, &str)> = self
                    .s
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                Ok(vec![(
                    "RESULT".into(),
                    outcome(process::run("true", &[], &env)),
                )])
            }
            "grandchild" => {
                // The child waits on a grandchild that outlives the call;
                // both must be gone when the call ends.
                let script = format!("(sleep 2; echo pwned > '{}') & sleep 30", self.s.mark);
                Ok(vec![(
                    "RESULT".into(),
                    outcome(process::run("sh", &["-c", &script], &[])),
                )])
            }
            "orphan" => {
                // The child exits at once; a grandchild keeps its stdout open.
                let script = format!("(sleep 2; echo pwned > '{}') &", self.s.mark);
                Ok(vec![(
                    "RESULT".into(),
                    outcome(process::run("sh", &["-c", &script], &[])),
                )])
            }
            _ => {
                let out = process::check("echo", &["hello", "from", "echo"])?;
                Ok(vec![("ECHOED".into(), out.trim().to_string())])
            }
        }
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
