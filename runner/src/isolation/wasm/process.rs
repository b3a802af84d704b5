//! `process`: runs a program listed under `allow.process`, directly (no
//! shell), through [`crate::exec::bounded`]: found on partest's own PATH,
//! in the project root, with partest's environment plus the plugin's
//! (checked as hook env is: no loader, shell or interpreter variables, no
//! PATH), in a process group of its own that is killed with its children
//! when the plugin's call runs out of time.

use std::time::Duration;

use std::sync::Arc;

use super::capability::{Capability, Grant, SettingGrantError, string_list};
use super::env;
use super::state::HostState;
use super::types::Error;
use crate::config::PluginTable;
use crate::exec::bounded::{BoundedCommand, Bounds};
use crate::model::ProcessEnd;

/// Between TERM and KILL of a granted program's group at the deadline.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// `allow.process`: the programs a plugin may run, by name or path.
pub struct Programs(Vec<String>);

/// What a granted program did.
pub struct Output {
    /// The exit code; `None` when killed by a signal.
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub struct Process;

impl Capability for Process {
    fn name(&self) -> &'static str {
        "process"
    }
    fn grant(
        &self,
        value: Option<&toml::Value>,
        _table: &PluginTable,
    ) -> Result<Option<Grant>, String> {
        let Some(value) = value else {
            return Ok(None);
        };
        let list = string_list(value).ok_or("expected a list of program names")?;
        Ok((!list.is_empty()).then(|| Arc::new(Programs(list)) as Grant))
    }
    fn hint(&self) -> String {
        "allow = { process = [\"program\", ...] }".into()
    }
    fn describe_grant(&self, grant: &Grant) -> String {
        let list = grant
            .downcast_ref::<Programs>()
            .map_or(&[][..], |p| &p.0[..]);
        format!(
            "granted: {} (found on partest's PATH, no shell, killed with its children at the call's deadline)",
            list.join(", ")
        )
    }
    fn grant_setting(
        &self,
        allow: &mut Option<toml::Value>,
        value: &toml::Value,
    ) -> Result<(), SettingGrantError> {
        if string_list(value).is_none() {
            return Err(SettingGrantError::Expected("a list of program names"));
        }
        if allow
            .as_ref()
            .and_then(string_list)
            .is_none_or(|p| p.is_empty())
        {
            *allow = Some(value.clone());
        }
        Ok(())
    }
}

/// Runs `program` if granted, bounded by the plugin's call.
pub fn run(
    state: &mut HostState,
    program: String,
    args: Vec<String>,
    plugin_env: Vec<(String, String)>,
) -> Result<Output, Error> {
    let plugin = &state.grants.plugin;
    let granted = state
        .grants
        .caps
        .get::<Programs>()
        .map_or(&[][..], |p| &p.0[..]);
    if !granted.contains(&program) {
        return Err(Error::Refused(format!(
            "plugin {plugin} may not run {program:?}: grant it with [plugins.{plugin}] allow = {{ process = [{program:?}] }} (granted: {granted:?})"
        )));
    }
    env::check(&plugin_env, None)
        .map_err(|why| Error::Refused(format!("plugin {plugin} running {program}: {why}")))?;
    let bytes: usize = args.iter().map(String::len).sum();
    state.check_size("the arguments", bytes)?;
    // Ctrl-C stops a set-up step's program at once (teardown's run on).
    let interrupts = crate::exec::Interrupts::installed().filter(|_| state.interruptible);
    // partest's own environment (HOME, DOCKER_HOST, ...) with the
    // plugin's checked variables on top; PATH stays partest's.
    let out = BoundedCommand::new(&program, &state.grants.root)
        .args(&args)
        .envs(std::env::vars_os())
        .envs(plugin_env)
        .run(
            Bounds {
                timeout: state.remaining(),
                kill_grace: KILL_GRACE,
                output_cap: state.grants.boundary / 2,
            },
            interrupts.as_deref(),
        )
        .map_err(|e| Error::Unavailable(format!("cannot run {program}: {e}")))?;
    match out.end {
        ProcessEnd::Exited(code) => Ok(Output {
            status: Some(code),
            stdout: out.stdout,
            stderr: out.stderr,
        }),
        ProcessEnd::Signalled(_) => Ok(Output {
            status: None,
            stdout: out.stdout,
            stderr: out.stderr,
        }),
        ProcessEnd::TimedOut => Err(Error::Failed(format!(
            "{program} did not finish within the plugin's call time limit; it was killed with its children"
        ))),
        ProcessEnd::Interrupted => Err(Error::Failed(format!(
            "{program} was stopped with its children: partest was interrupted"
        ))),
    }
}
