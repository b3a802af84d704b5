//! The built-in `redis` plugin: each slot gets its own logical database
//! (`REDIS_URL=redis://host:port/N`) and key prefix
//! (`REDIS_KEY_PREFIX=partest:<run>:gw0:`), or, in prefix mode (one-database
//! servers: Redis Cluster, managed services), the configured database and
//! its own key prefix only, or, in server mode, a `redis-server` of its own
//! (`REDIS_URL=redis://127.0.0.1:PORT/0`, `REDIS_HOST`, `REDIS_PORT`) for
//! suites that pick their own database number or call FLUSHALL.
//!
//! Safety: a database is used only if it is empty (then claimed with an
//! owner key carrying the run id), or owned by a dead partest run (then
//! reclaimed). A database holding any other key is never flushed: it is
//! skipped with a warning naming it and its key count, and the slot fails
//! only if no database in the range is free. Teardown flushes only the
//! databases this run claimed (prefix mode: UNLINKs only the slot's keys).
//!
//! ```toml
//! [plugins.redis]
//! url = "redis://127.0.0.1:6379"   # the one server this plugin may reach; also
//!                                  # rediss://host:port[/#insecure], redis://user:pw@host
//! databases = "1-15"               # database mode: the range slots use; max slots = its size
//! mode = "database"                # or "prefix", or "server"
//! flush-between-tests = false      # FLUSHDB (prefix mode: UNLINK prefix*) between tests
//! server = "redis-server"          # server mode: the program each slot runs
//! ```

use partest_plugin_sdk::redact::url as redact;
use partest_plugin_sdk::redis::{self, Reply};
use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{
    ConfigKey, Env, Error, Plugin, Result, RunInfo, SettingGrant, Slot, config, log, process, runs,
};

#[derive(Deserialize)]
#[serde(
    crate = "partest_plugin_sdk::serde",
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
struct Settings {
    /// Read by the host as this plugin's grant; here only to be accepted.
    #[allow(dead_code)]
    url: Option<String>,
    #[serde(default = "default_databases")]
    databases: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "default_var")]
    var: String,
    #[serde(default = "default_prefix_var")]
    prefix_var: String,
    #[serde(default)]
    flush_between_tests: bool,
    /// Server mode: the program run per slot (`redis-server`; naming
    /// another grants that one instead).
    server: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(crate = "partest_plugin_sdk::serde", rename_all = "kebab-case")]
enum Mode {
    #[default]
    Database,
    Prefix,
    /// A redis-server per slot, started at slot set-up, stopped at teardown.
    Server,
}

fn default_databases() -> String {
    "1-15".into()
}
fn default_var() -> String {
    "REDIS_URL".into()
}
fn default_prefix_var() -> String {
    "REDIS_KEY_PREFIX".into()
}

/// The key that marks a database as claimed: `<run id>:<slot>`.
const OWNER_KEY: &str = "partest:owner";

/// What [`claim_selected`] found in a database.
enum Found {
    /// It was empty and is ours now.
    Claimed,
    /// Another partest run's claim: `<run id>:<slot>`, and its key count.
    Owned { by: String, keys: i64 },
    /// Keys partest did not write.
    Foreign { keys: i64 },
}

/// Claims the selected database for `owner` if it is empty. No scripts
/// (partest refuses them to plugins): `SET NX` of the owner key and
/// `DBSIZE` run in one transaction, so a key someone else wrote before the
/// claim shows in the count, and then the claim is taken back.
fn claim_selected(owner: &str) -> Result<Found> {
    if int(&cmd(&["DBSIZE"])?) == 0 {
        cmd(&["MULTI"])?;
        cmd(&["SET", OWNER_KEY, owner, "NX"])?;
        cmd(&["DBSIZE"])?;
        let Reply::Array(r) = cmd(&["EXEC"])? else {
            return Err(Error::failed(
                "the claim transaction did not return an array",
            ));
        };
        let set = r.first().and_then(Reply::as_str) == Some("OK");
        let keys = r.get(1).map_or(0, int);
        match (set, keys) {
            (true, 1) => return Ok(Found::Claimed),
            (true, _) => {
                // Someone else's key arrived first: not ours to keep.
                release(owner, None)?;
                return Ok(Found::Foreign { keys: keys - 1 });
            }
            // Another slot's claim got there first: look at it below.
            (false, _) => {}
        }
    }
    cmd(&["MULTI"])?;
    cmd(&["TYPE", OWNER_KEY])?;
    cmd(&["DBSIZE"])?;
    let Reply::Array(r) = cmd(&["EXEC"])? else {
        return Err(Error::failed(
            "the inspect transaction did not return an array",
        ));
    };
    let keys = r.get(1).map_or(0, int);
    if r.first().and_then(Reply::as_str) == Some("string")
        && let Some(by) = cmd(&["GET", OWNER_KEY])?.as_str()
    {
        return Ok(Found::Owned {
            by: by.to_string(),
            keys,
        });
    }
    Ok(Found::Foreign { keys })
}

/// If the selected database is still claimed by `by`: flush it, and claim
/// it for `then` (or leave it unclaimed). WATCH makes it all or nothing:
/// another claim in between aborts it. Whether it happened.
fn release(by: &str, then: Option<&str>) -> Result<bool> {
    cmd(&["WATCH", OWNER_KEY])?;
    if cmd(&["GET", OWNER_KEY])?.as_str() != Some(by) {
        cmd(&["UNWATCH"])?;
        return Ok(false);
    }
    cmd(&["MULTI"])?;
    cmd(&["FLUSHDB"])?;
    if let Some(owner) = then {
        cmd(&["SET", OWNER_KEY, owner])?;
    }
    // An aborted transaction (the owner key changed) replies nil.
    Ok(matches!(cmd(&["EXEC"])?, Reply::Array(_)))
}

struct RedisPlugin {
    s: Settings,
    first: u32,
    last: u32,
    /// The database this slot instance claimed.
    claimed: Option<u32>,
    /// Server mode: this slot's server (its handle) and port.
    server: Option<(u32, u16)>,
}

fn prefix(run: &RunInfo, slot: &str) -> String {
    format!("partest:{}:{slot}:", run.run_id)
}

/// `url` with database `db`: the path for redis[s]://, `db=` for unix
/// sockets; a query and a fragment (`#insecure`) are kept.
fn with_db(url: &str, db: u32) -> String {
    let (url, fragment) = url
        .split_once('#')
        .map_or((url, None), |(u, f)| (u, Some(f)));
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let mut out = if url.starts_with("unix:") || url.starts_with("redis+unix:") {
        let mut params: Vec<String> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("db="))
            .map(str::to_string)
            .collect();
        params.push(format!("db={db}"));
        format!("{base}?{}", params.join("&"))
    } else {
        let (scheme, rest) = base.split_once("://").unwrap_or(("redis", base));
        let host = rest.split('/').next().unwrap_or(rest);
        let mut out = format!("{scheme}://{host}/{db}");
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    };
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn cmd(args: &[&str]) -> Result<Reply> {
    redis::command(args)
}

/// One line for a server that is not there; the host's error otherwise.
fn unreachable(e: Error) -> Error {
    match e {
        Error::Unavailable(m) => {
            let url = redact(&redis::url());
            let lower = m.to_ascii_lowercase();
            if lower.contains("refused") {
                Error::unavailable(format!(
                    "cannot reach redis at {url}: connection refused — is redis-server running?"
                ))
            } else {
                let cut = m.find(": ").map_or(m.as_str(), |i| &m[i + 2..]);
                Error::unavailable(format!("cannot reach redis at {url}: {}", strip_url(cut)))
            }
        }
        other => other,
    }
}

/// The host's message may carry the URL (and so a password): drop it.
fn strip_url(m: &str) -> String {
    partest_plugin_sdk::redact::text(m, &redis::url())
}

/// A server that wants a password the URL does not give: say where it goes.
fn needs_auth(e: Error) -> Error {
    match e {
        Error::Failed(m) if m.contains("NOAUTH") => Error::refused(format!(
            "redis at {} requires a password: give it in the url, as redis://:PASSWORD@host:port \
             or redis://USER:PASSWORD@host:port ({})",
            redact(&redis::url()),
            strip_url(&m)
        )),
        other => other,
    }
}

fn int(r: &Reply) -> i64 {
    match r {
        Reply::Int(i) => *i,
        other => other.as_str().and_then(|s| s.parse().ok()).unwrap_or(0),
    }
}

/// Every key of the selected database matching `pattern` (SCAN, not KEYS).
fn scan_all(pattern: &str) -> Result<Vec<Vec<u8>>> {
    let mut cursor = "0".to_string();
    let mut found = Vec::new();
    loop {
        let Reply::Array(parts) = cmd(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"])?
        else {
            return Err(Error::failed("SCAN did not return an array"));
        };
        cursor = parts
            .first()
            .and_then(Reply::as_str)
            .unwrap_or("0")
            .to_string();
        if let Some(Reply::Array(keys)) = parts.get(1) {
            found.extend(keys.iter().filter_map(|k| match k {
                Reply::Data(d) => Some(d.clone()),
                _ => None,
            }));
        }
        if cursor == "0" {
            return Ok(found);
        }
    }
}

/// UNLINKs every key of the selected database matching `pattern`.
fn unlink_matching(pattern: &str) -> Result<u64> {
    let keys = scan_all(pattern)?;
    let mut removed = 0;
    for chunk in keys.chunks(500) {
        let mut args: Vec<&[u8]> = vec![b"UNLINK"];
        args.extend(chunk.iter().map(Vec::as_slice));
        removed += int(&redis::command(&args)?) as u64;
    }
    Ok(removed)
}

impl RedisPlugin {
    fn range(&self) -> impl Iterator<Item = u32> + '_ {
        self.first..=self.last
    }

    /// Connects, names the connection and checks the server answers.
    fn connect(&self, name: &str) -> Result<()> {
        cmd(&["PING"]).map_err(unreachable).map_err(needs_auth)?;
        cmd(&["CLIENT", "SETNAME", name]).map_err(unreachable)?;
        Ok(())
    }

    /// Whether another partest connection that got there first sits on `db`
    /// (a live slot whose tests may have flushed its owner key away).
    fn busy(&self, db: u32, me: i64) -> Result<bool> {
        let list = cmd(&["CLIENT", "LIST"])?;
        let text = list.as_str().unwrap_or("");
        Ok(text.lines().any(|line| {
            let field = |k: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            };
            field("name").is_some_and(|n| n.starts_with("partest:"))
                && field("db") == Some(&db.to_string())
                && field("id")
                    .and_then(|i| i.parse::<i64>().ok())
                    .is_some_and(|id| id < me)
        }))
    }

    /// Claims a database for `slot`: the first one from its own offset in
    /// the range that is empty or owned by a dead run.
    fn claim(&mut self, run: &RunInfo, slot: &Slot) -> Result<u32> {
        let owner = format!("{}:{}", run.run_id, slot.name);
        let me = int(&cmd(&["CLIENT", "ID"])?);
        let size = self.last - self.first + 1;
        let mut skipped = Vec::new();
        for k in 0..size {
            let db = self.first + (slot.index + k) % size;
            if let Err(e) = cmd(&["SELECT", &db.to_string()]) {
                return Err(Error::bad_config(format!(
                    "databases = {:?}: the server refused database {db} ({}); lower the range",
                    self.s.databases,
                    match e {
                        Error::Failed(m)
                        | Error::Refused(m)
                        | Error::Unavailable(m)
                        | Error::BadConfig(m) => m,
                    }
                )));
            }
            if self.busy(db, me)? {
                skipped.push(format!("db {db} is in use by another partest slot"));
                continue;
            }
            match claim_selected(&owner)? {
                Found::Claimed => return Ok(db),
                Found::Owned { by, keys } => {
                    let by_run = by.split(':').next().unwrap_or("");
                    if runs::is_dead(by_run) && release(&by, Some(&owner))? {
                        log::info(format!(
                            "reclaimed redis db {db} ({keys} keys) from dead run {by_run}"
                        ));
                        return Ok(db);
                    }
                    skipped.push(format!("db {db} is owned by run {by_run} ({keys} keys)"));
                }
                Found::Foreign { keys } => {
                    log::warn(format!(
                        "redis db {db} holds {keys} key(s) partest did not write: not touching it"
                    ));
                    skipped.push(format!("db {db} holds {keys} key(s) partest did not write"));
                }
            }
        }
        Err(Error::refused(format!(
            "no free redis database for {} in {} at {}: {}; empty one of them or widen `databases`",
            slot.name,
            self.s.databases,
            redact(&redis::url()),
            skipped.join("; ")
        )))
    }
}

fn parse_range(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

impl Plugin for RedisPlugin {
    const SUMMARY: &'static str =
        "a Redis database (REDIS_URL) and key prefix per slot; never touches foreign keys";
    /// The most a Redis server has by default (databases 0-15).
    const MAX_SLOTS: Option<u32> = Some(16);

    fn config_keys() -> Vec<ConfigKey> {
        let key = |name: &str, description: &str, default: Option<&str>| ConfigKey {
            name: name.into(),
            description: description.into(),
            default_value: default.map(str::to_string),
        };
        vec![
            key(
                "url",
                "the server (redis://, rediss://, user:password@); the only one the plugin may reach",
                Some("\"redis://127.0.0.1:6379\""),
            ),
            key(
                "databases",
                "database mode: the range slots use (\"A-B\"); max slots = its size",
                Some("\"1-15\""),
            ),
            key(
                "mode",
                "\"database\" (a database per slot) or \"prefix\" (shared database, key prefix only)",
                Some("\"database\""),
            ),
            key(
                "var",
                "env var that gets the slot's URL",
                Some("\"REDIS_URL\""),
            ),
            key(
                "prefix-var",
                "env var that gets the slot's key prefix",
                Some("\"REDIS_KEY_PREFIX\""),
            ),
            key(
                "flush-between-tests",
                "empty the slot's database (prefix mode: its keys) between tests",
                Some("false"),
            ),
            key(
                "server",
                "server mode: the program each slot runs (naming it grants it)",
                Some("\"redis-server\""),
            ),
        ]
    }

    const ENV_VARS: &'static [&'static str] =
        &["REDIS_URL", "REDIS_KEY_PREFIX", "REDIS_HOST", "REDIS_PORT"];

    fn env_vars(&self) -> Vec<String> {
        let mut vars = vec![self.s.var.clone(), self.s.prefix_var.clone()];
        if self.s.mode == Mode::Server {
            vars.extend(["REDIS_HOST".to_string(), "REDIS_PORT".to_string()]);
        }
        vars
    }

    fn setting_grants() -> Vec<SettingGrant> {
        vec![
            SettingGrant {
                capability: "redis".into(),
                setting: Some("url".into()),
                default_value: Some(r#""redis://127.0.0.1:6379""#.into()),
            },
            // Its own server program, which it runs only in server mode.
            SettingGrant {
                capability: "process".into(),
                setting: Some("server".into()),
                default_value: Some(r#""redis-server""#.into()),
            },
        ]
    }

    fn configure() -> Result<Self> {
        let s: Settings = config()?;
        let Some((first, last)) = parse_range(&s.databases) else {
            return Err(Error::bad_config(format!(
                "databases = {:?}: expected a range like \"1-15\" (or one number)",
                s.databases
            )));
        };
        match (s.mode, &s.server) {
            (Mode::Server, _) if s.flush_between_tests => {
                return Err(Error::bad_config(
                    "flush-between-tests does not apply to mode = \"server\": each slot's \
                     server is its own, started empty",
                ));
            }
            (Mode::Database | Mode::Prefix, Some(_)) => {
                return Err(Error::bad_config(
                    "server is for mode = \"server\" (a redis-server per slot); set that mode or drop server",
                ));
            }
            _ => {}
        }
        Ok(RedisPlugin {
            s,
            first,
            last,
            claimed: None,
            server: None,
        })
    }

    fn max_slots(&self) -> Result<Option<u32>> {
        Ok(match self.s.mode {
            Mode::Database => Some(self.last - self.first + 1),
            Mode::Prefix | Mode::Server => None,
        })
    }

    fn resets_between_tests(&self) -> bool {
        self.s.flush_between_tests
    }

    fn setup_run(&mut self, run: &RunInfo) -> Result<Env> {
        if self.s.mode == Mode::Server {
            // The servers are the slots'; set-up commands get none.
            return Ok(Vec::new());
        }
        self.connect(&format!("partest:{}:run", run.run_id))?;
        Ok(vec![
            (self.s.var.clone(), redis::url()),
            (self.s.prefix_var.clone(), prefix(run, "setup")),
        ])
    }

    fn setup_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env> {
        if self.s.mode == Mode::Server {
            let program = self.s.server.as_deref().unwrap_or("redis-server");
            let port = process::free_port()?;
            let port_arg = port.to_string();
            // Nothing kept on disk, reachable only from this machine.
            let args = [
                "--port",
                port_arg.as_str(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ];
            let handle = process::start(program, &args, &[], Some(port))?;
            self.server = Some((handle, port));
            return Ok(vec![
                (self.s.var.clone(), format!("redis://127.0.0.1:{port}/0")),
                ("REDIS_HOST".to_string(), "127.0.0.1".to_string()),
                ("REDIS_PORT".to_string(), port_arg),
                (self.s.prefix_var.clone(), prefix(run, &slot.name)),
            ]);
        }
        self.connect(&format!("partest:{}:{}", run.run_id, slot.name))?;
        let url = match self.s.mode {
            Mode::Prefix | Mode::Server => redis::url(),
            Mode::Database => {
                // The claim is the last fallible step: a failed setup leaves nothing.
                let db = self.claim(run, slot)?;
                self.claimed = Some(db);
                with_db(&redis::url(), db)
            }
        };
        Ok(vec![
            (self.s.var.clone(), url),
            (self.s.prefix_var.clone(), prefix(run, &slot.name)),
        ])
    }

    fn reset_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<()> {
        match self.claimed {
            Some(_) => {
                cmd(&["FLUSHDB"])?;
                cmd(&["SET", OWNER_KEY, &format!("{}:{}", run.run_id, slot.name)])?;
            }
            None => {
                unlink_matching(&format!("{}*", prefix(run, &slot.name)))?;
            }
        }
        Ok(())
    }

    fn teardown_slot(&mut self, run: &RunInfo, slot: &Slot, _run_failed: bool) -> Result<()> {
        if let Some((handle, _)) = self.server.take() {
            return process::stop(handle);
        }
        match self.claimed.take() {
            Some(db) => {
                // This connection still has `db` selected; flush only that.
                cmd(&["SELECT", &db.to_string()])?;
                cmd(&["FLUSHDB"])?;
            }
            None if self.s.mode == Mode::Prefix => {
                unlink_matching(&format!("{}*", prefix(run, &slot.name)))?;
            }
            None => {}
        }
        Ok(())
    }

    /// A safety net: what this run still owns (a slot whose instance was
    /// lost) is flushed; in prefix mode, every key under the run's prefix.
    fn teardown_run(&mut self, run: &RunInfo, _run_failed: bool) -> Result<()> {
        match self.s.mode {
            // Each server went with its slot (or with its instance).
            Mode::Server => {}
            Mode::Prefix => {
                unlink_matching(&format!("partest:{}:*", run.run_id))?;
            }
            Mode::Database => {
                let mine = format!("{}:", run.run_id);
                for db in self.range() {
                    cmd(&["SELECT", &db.to_string()])?;
                    if let Some(owner) = cmd(&["GET", OWNER_KEY])
                        .ok()
                        .and_then(|r| r.as_str().map(str::to_string))
                        && owner.starts_with(&mine)
                    {
                        release(&owner, None)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `partest clean`: databases (prefix mode: keys) of dead runs.
    fn sweep(&mut self, _run: &RunInfo, dry_run: bool) -> Result<Vec<String>> {
        // Servers die with the partest that started them, even a killed one.
        if self.s.mode == Mode::Server {
            return Ok(Vec::new());
        }
        cmd(&["PING"]).map_err(unreachable)?;
        let mut removed = Vec::new();
        match self.s.mode {
            Mode::Server => {}
            Mode::Database => {
                for db in self.range() {
                    cmd(&["SELECT", &db.to_string()])?;
                    let Some(owner) = cmd(&["GET", OWNER_KEY])
                        .ok()
                        .and_then(|r| r.as_str().map(str::to_string))
                    else {
                        continue;
                    };
                    let run_id = owner.split(':').next().unwrap_or("");
                    if !runs::is_dead(run_id) {
                        continue;
                    }
                    if dry_run || release(&owner, None)? {
                        removed.push(format!("redis db {db} of dead run {run_id}"));
                    }
                }
            }
            Mode::Prefix => {
                let mut dead = std::collections::BTreeSet::new();
                for key in scan_all("partest:*")? {
                    let key = String::from_utf8_lossy(&key);
                    if let Some(id) = key.split(':').nth(1)
                        && runs::is_dead(id)
                    {
                        dead.insert(id.to_string());
                    }
                }
                for id in dead {
                    if dry_run {
                        removed.push(format!("redis keys partest:{id}:* of dead run {id}"));
                    } else {
                        let n = unlink_matching(&format!("partest:{id}:*"))?;
                        removed.push(format!("{n} redis key(s) of dead run {id}"));
                    }
                }
            }
        }
        Ok(removed)
    }
}

partest_plugin_sdk::register!(RedisPlugin);
