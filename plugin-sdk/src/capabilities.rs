//! Helpers over the capability imports. A capability is imported by your
//! component only if you call one of its functions, and partest refuses to
//! load a plugin whose imports the user has not granted.

/// Messages for the user (a plugin has no stdout or stderr). Always granted.
pub mod log {
    use crate::bindings::partest::plugin::log::{Level, log};

    pub fn debug(msg: impl AsRef<str>) {
        log(Level::Debug, msg.as_ref());
    }
    pub fn info(msg: impl AsRef<str>) {
        log(Level::Info, msg.as_ref());
    }
    pub fn warn(msg: impl AsRef<str>) {
        log(Level::Warn, msg.as_ref());
    }
    pub fn error(msg: impl AsRef<str>) {
        log(Level::Error, msg.as_ref());
    }
}

/// The machine-wide register of partest runs. Always granted.
///
/// Name what you create after [`crate::RunInfo::run_id`]; before reclaiming
/// something another run made, ask [`runs::liveness`](liveness) and touch it
/// only when that run is [`Liveness::Dead`]. `Unknown` (no record here: it
/// ended cleanly, or runs on another machine) is not permission.
pub mod runs {
    use crate::bindings::partest::plugin::runs as wit;
    pub use crate::bindings::partest::plugin::runs::Liveness;

    /// Whether run `run_id` is alive, dead (crashed: reclaimable) or unknown.
    pub fn liveness(run_id: &str) -> Liveness {
        wit::liveness_of(run_id)
    }

    /// Whether what run `run_id` left behind may be reclaimed: it is dead.
    pub fn is_dead(run_id: &str) -> bool {
        liveness(run_id) == Liveness::Dead
    }
}

/// Commands on the granted Redis server: `allow = { redis = "redis://..." }`.
pub mod redis {
    use crate::Result;
    use crate::bindings::partest::plugin::redis as wit;

    /// A Redis reply.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Reply {
        Nil,
        Int(i64),
        Data(Vec<u8>),
        Status(String),
        Array(Vec<Reply>),
    }

    impl Reply {
        /// The reply as text, for data and status replies.
        pub fn as_str(&self) -> Option<&str> {
            match self {
                Reply::Data(d) => core::str::from_utf8(d).ok(),
                Reply::Status(s) => Some(s),
                _ => None,
            }
        }
    }

    /// The granted URL.
    pub fn url() -> String {
        wit::url()
    }

    /// Runs one command on this instance's connection, e.g. `command(&["SELECT", "3"])`.
    pub fn command<A: AsRef<[u8]>>(args: &[A]) -> Result<Reply> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_ref().to_vec()).collect();
        let nodes = wit::command(&args)?;
        let mut it = nodes.into_iter();
        Ok(decode(&mut it))
    }

    fn decode(it: &mut impl Iterator<Item = wit::Node>) -> Reply {
        match it.next() {
            None | Some(wit::Node::Nil) => Reply::Nil,
            Some(wit::Node::Int(i)) => Reply::Int(i),
            Some(wit::Node::Data(d)) => Reply::Data(d),
            Some(wit::Node::Status(s)) => Reply::Status(s),
            Some(wit::Node::Array(n)) => Reply::Array((0..n).map(|_| decode(it)).collect()),
        }
    }
}

/// SQL on the granted PostgreSQL server: `allow = { postgres = "postgres://..." }`.
pub mod postgres {
    use crate::Result;
    use crate::bindings::partest::plugin::postgres as wit;
    pub use crate::bindings::partest::plugin::postgres::Rows;

    /// The granted URL, with `database` in place of the granted database.
    pub fn url(database: Option<&str>) -> String {
        wit::url(database)
    }
    /// Runs statements on `database` (the granted one when `None`).
    pub fn execute(database: Option<&str>, sql: &str) -> Result<()> {
        wit::execute(database, sql)
    }
    /// Runs a query; values in text form.
    pub fn query(database: Option<&str>, sql: &str) -> Result<Rows> {
        wit::query(database, sql)
    }
    /// `name` as a quoted SQL identifier.
    pub fn ident(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
    /// `value` as a quoted SQL string literal.
    pub fn literal(value: &str) -> String {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// SQLite databases the host keeps for the plugin, by relative name
/// (`r1/template.db`: segments of letters, digits, `.`, `_`, `-`), in a
/// directory of the host's outside the scratch directory. Always granted.
pub mod sqlite {
    use crate::Result;
    use crate::bindings::partest::plugin::sqlite as wit;
    pub use crate::bindings::partest::plugin::sqlite::Rows;

    /// Runs statements on database `name` (created if missing).
    pub fn execute(name: &str, sql: &str) -> Result<()> {
        wit::execute(name, sql)
    }
    /// Runs one query on database `name`.
    pub fn query(name: &str, sql: &str) -> Result<Rows> {
        wit::query(name, sql)
    }
    /// Clones database `source` into `target` (SQLite's online backup).
    pub fn backup(source: &str, target: &str) -> Result<()> {
        wit::backup(source, target)
    }
    /// Copies a database the user granted (`allow = { sqlite =
    /// ["db/template.db"] }`, spelled as granted) into database `target`;
    /// the source is opened read-only.
    pub fn copy_granted(source: &str, target: &str) -> Result<()> {
        wit::copy_granted(source, target)
    }
    /// Removes database `name` and SQLite's files next to it; a missing one is no error.
    pub fn remove(name: &str) -> Result<()> {
        wit::remove(name)
    }
    /// The size in bytes of database `name`, `None` when it does not exist.
    pub fn size(name: &str) -> Result<Option<u64>> {
        wit::size(name)
    }
    /// The names of your databases.
    pub fn list() -> Result<Vec<String>> {
        wit::databases()
    }
    /// The absolute path of database `name` on the host, for the env of tests.
    pub fn host_path(name: &str) -> Result<String> {
        wit::host_path(name)
    }
}

/// Programs the user granted: `allow = { process = ["docker"] }`. No shell;
/// found on partest's PATH; run in the project root with partest's env plus
/// yours (checked as hook env is), in a process group killed at the deadline.
pub mod process {
    use crate::bindings::partest::plugin::process as wit;
    pub use crate::bindings::partest::plugin::process::Output;
    use crate::{Error, Result};

    /// Runs `program` with `args` and extra `env`; returns its output whatever its exit code.
    pub fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        wit::run(program, &args, &env)
    }

    /// Starts `program` to outlive the call (a slot's own server) and
    /// returns its handle; with `ready_port`, once 127.0.0.1:`ready_port`
    /// accepts connections. The instance holds it until [`stop`]; partest
    /// stops it anyway when the instance goes or partest exits.
    pub fn start(
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        ready_port: Option<u16>,
    ) -> Result<u32> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        wit::start(program, &args, &env, ready_port)
    }

    /// Stops a program [`start`] returned, with its group.
    pub fn stop(handle: u32) -> Result<()> {
        wit::stop(handle)
    }

    /// A TCP port on 127.0.0.1 that is free now and was not given before in this run.
    pub fn free_port() -> Result<u16> {
        wit::free_port()
    }

    /// Runs `program` and fails unless it exits 0; returns its stdout.
    pub fn check(program: &str, args: &[&str]) -> Result<String> {
        let out = run(program, args, &[])?;
        if out.status == Some(0) {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::failed(format!(
                "{program} {} exited with {:?}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}
