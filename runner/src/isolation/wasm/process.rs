//! `process`: runs a program listed under `allow.process`, directly (no
//! shell), through [`crate::exec::bounded`]: found on partest's own PATH,
//! in the project root, with partest's environment plus the plugin's
//! (checked as hook env is: no loader, shell or interpreter variables, no
//! PATH), in a process group of its own that is killed with its children
//! when the plugin's call runs out of time.

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::v0_1_0::partest::plugin::process::{self as wit, Host, Output};
use super::bindings::v0_1_0::partest::plugin::types::Error;
use super::capability::Capability;
use super::env;
use super::state::HostState;
use crate::config::PluginTable;
use crate::exec::bounded::{BoundedCommand, Bounds};
use crate::model::ProcessEnd;

/// Between TERM and KILL of a granted program's group at the deadline.
const KILL_GRACE: Duration = Duration::from_millis(500);

pub struct Process;

impl Capability for Process {
    fn name(&self) -> &'static str {
        "process"
    }
    fn missing_grant(&self, table: &PluginTable) -> Option<String> {
        table
            .allow
            .process
            .is_empty()
            .then(|| "allow = { process = [\"program\", ...] }".into())
    }
    fn describe_grant(&self, table: &PluginTable) -> String {
        format!(
            "granted: {} (found on partest's PATH, no shell, killed with its children at the call's deadline)",
            table.allow.process.join(", ")
        )
    }
    fn link(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }
}

impl Host for HostState {
    fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        plugin_env: Vec<(String, String)>,
    ) -> Result<Output, Error> {
        let plugin = &self.grants.plugin;
        if !self.grants.process.contains(&program) {
            return Err(Error::Refused(format!(
                "plugin {plugin} may not run {program:?}: grant it with [plugins.{plugin}] allow = {{ process = [{program:?}] }} (granted: {:?})",
                self.grants.process
            )));
        }
        env::check(&plugin_env, None)
            .map_err(|why| Error::Refused(format!("plugin {plugin} running {program}: {why}")))?;
        let bytes: usize = args.iter().map(String::len).sum();
        self.check_size("the arguments", bytes)?;
        // Ctrl-C stops a set-up step's program at once (teardown's run on).
        let interrupts = crate::exec::Interrupts::installed().filter(|_| self.interruptible);
        // partest's own environment (HOME, DOCKER_HOST, ...) with the
        // plugin's checked variables on top; PATH stays partest's.
        let out = BoundedCommand::new(&program, &self.grants.root)
            .args(&args)
            .envs(std::env::vars_os())
            .envs(plugin_env)
            .run(
                Bounds {
                    timeout: self.remaining(),
                    kill_grace: KILL_GRACE,
                    output_cap: self.grants.boundary / 2,
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
}
