//! `process`: runs a program listed under `allow.process`, directly (no
//! shell), through [`crate::exec::bounded`]: found on partest's own PATH,
//! in the project root, with partest's environment plus the plugin's
//! (checked as hook env is: no loader, shell or interpreter variables, no
//! PATH), in a process group of its own that is killed with its children
//! when the plugin's call runs out of time. `start` keeps a program running
//! past the call (a slot's own server), held by the plugin's instance.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::capability::{Capability, Grant, InstanceState, SettingGrantError, string_list};
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
    fn instance_state(&self) -> Option<Box<dyn InstanceState>> {
        Some(Box::new(Held::default()))
    }

    fn grant_setting(
        &self,
        allow: &mut Option<toml::Value>,
        value: &toml::Value,
    ) -> Result<(), SettingGrantError> {
        // One program (`server = "redis-server"`) or a list of them.
        let list = match value {
            toml::Value::String(program) => vec![program.clone()],
            other => string_list(other).ok_or(SettingGrantError::Expected(
                "a program name or a list of them",
            ))?,
        };
        if allow
            .as_ref()
            .and_then(string_list)
            .is_none_or(|p| p.is_empty())
        {
            *allow = Some(toml::Value::Array(
                list.into_iter().map(toml::Value::String).collect(),
            ));
        }
        Ok(())
    }
}

/// Refuses what was not granted: a program not under `allow.process`, env
/// a hook could not return, arguments over the boundary.
fn check_granted(
    state: &HostState,
    program: &str,
    args: &[String],
    plugin_env: &[(String, String)],
) -> Result<(), Error> {
    let plugin = &state.grants.plugin;
    let granted = state
        .grants
        .caps
        .get::<Programs>()
        .map_or(&[][..], |p| &p.0[..]);
    if !granted.iter().any(|g| g == program) {
        return Err(Error::Refused(format!(
            "plugin {plugin} may not run {program:?}: grant it with [plugins.{plugin}] allow = {{ process = [{program:?}] }} (granted: {granted:?})"
        )));
    }
    env::check(plugin_env, None)
        .and_then(|()| match state.grants.builtin {
            true => Ok(()),
            false => env::check_granted(plugin_env, state.grants.caps.get::<env::Names>()),
        })
        .map_err(|why| Error::Refused(format!("plugin {plugin} running {program}: {why}")))?;
    let bytes: usize = args.iter().map(String::len).sum();
    state.check_size("the arguments", bytes)
}

/// Runs `program` if granted, bounded by the plugin's call.
pub fn run(
    state: &mut HostState,
    program: String,
    args: Vec<String>,
    plugin_env: Vec<(String, String)>,
) -> Result<Output, Error> {
    check_granted(state, &program, &args, &plugin_env)?;
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

/// The programs an instance started to outlive a call, by handle. Each is
/// stopped with its group when it is dropped: `stop`, the instance going
/// away (teardown, a trap), partest's exit.
#[derive(Default)]
pub struct Held {
    next: u32,
    running: HashMap<u32, Running>,
}

impl InstanceState for Held {}

struct Running {
    program: String,
    child: Child,
    /// Its working directory and log, removed when it stops.
    dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        // TERM to its group, KILL after the grace, then reap.
        crate::exec::kill_group(&self.child, libc::SIGTERM);
        let end = Instant::now() + KILL_GRACE;
        while Instant::now() < end {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        crate::exec::kill_group(&self.child, libc::SIGKILL);
        let _ = self.child.wait();
        crate::exec::reap_group(self.child.id() as i32, KILL_GRACE);
    }
}

/// Starts `program` (granted) to outlive the call; with `ready_port`, waits
/// until 127.0.0.1:`ready_port` accepts a connection, within the call.
pub fn start(
    state: &mut HostState,
    program: String,
    args: Vec<String>,
    plugin_env: Vec<(String, String)>,
    ready_port: Option<u16>,
) -> Result<u32, Error> {
    check_granted(state, &program, &args, &plugin_env)?;
    let dir = tempfile::Builder::new()
        .prefix("partest-held-")
        .tempdir()
        .map_err(|e| Error::Unavailable(format!("cannot make a directory for {program}: {e}")))?;
    let log = std::fs::File::create(dir.path().join("output.log"))
        .and_then(|f| Ok((f.try_clone()?, f)))
        .map_err(|e| Error::Unavailable(format!("cannot make a log for {program}: {e}")))?;
    let parent = std::process::id();
    let mut cmd = Command::new(&program);
    cmd.args(&args)
        .current_dir(dir.path())
        .envs(std::env::vars_os())
        .envs(plugin_env)
        .stdin(Stdio::null())
        .stdout(log.0)
        .stderr(log.1)
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec: the
    // program dies with partest, even when partest is killed.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::Unavailable(format!("cannot start {program}: {e}")))?;
    let running = Running {
        program: program.clone(),
        child,
        dir,
    };
    let held = state.instance::<Held>();
    let handle = held.next;
    held.next += 1;
    held.running.insert(handle, running);
    if let Some(port) = ready_port
        && let Err(e) = wait_ready(state, handle, port)
    {
        state.instance::<Held>().running.remove(&handle);
        return Err(e);
    }
    Ok(handle)
}

/// Waits until `port` accepts a connection, the program ends, the call's
/// time is up or Ctrl-C.
fn wait_ready(state: &mut HostState, handle: u32, port: u16) -> Result<(), Error> {
    let deadline = state.deadline;
    let interrupts = crate::exec::Interrupts::installed().filter(|_| state.interruptible);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        let running = state
            .instance::<Held>()
            .running
            .get_mut(&handle)
            .expect("held just above");
        let program = running.program.clone();
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(Error::Failed(format!(
                "{program} ended ({status}) before it listened on port {port}: {}",
                log_tail(running)
            )));
        }
        if interrupts.as_ref().is_some_and(|i| i.is_set()) {
            return Err(Error::Failed(format!(
                "{program} was stopped: partest was interrupted"
            )));
        }
        if Instant::now() >= deadline {
            return Err(Error::Failed(format!(
                "{program} did not listen on port {port} within the plugin's call time limit: {}",
                log_tail(running)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The end of a held program's log, for an error.
fn log_tail(running: &Running) -> String {
    let text = std::fs::read_to_string(running.dir.path().join("output.log")).unwrap_or_default();
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    match text[start..].trim() {
        "" => "it printed nothing".into(),
        tail => tail.to_string(),
    }
}

/// Stops a held program and removes its directory.
pub fn stop(state: &mut HostState, handle: u32) -> Result<(), Error> {
    match state.instance::<Held>().running.remove(&handle) {
        Some(running) => {
            drop(running);
            Ok(())
        }
        None => Err(Error::Failed(format!(
            "no program started by this instance has handle {handle}"
        ))),
    }
}

/// Ports given out in this run: never the same twice.
static PORTS_GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port on 127.0.0.1 free now (bound and released), not given before.
pub fn free_port() -> Result<u16, Error> {
    let mut given = PORTS_GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..64 {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::Unavailable(format!("cannot find a free port: {e}")))?
            .port();
        if given.insert(port) {
            return Ok(port);
        }
    }
    Err(Error::Unavailable(
        "cannot find a free port not given before in this run".into(),
    ))
}
