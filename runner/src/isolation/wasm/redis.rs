//! `redis`: commands on the one server granted by `allow.redis`, over one
//! connection per instance (so `SELECT` stays within a slot). Only the
//! commands on [`ALLOWED`] pass; every reply must come within the call's
//! deadline (a read timeout), else the connection is dropped.

use std::sync::Arc;

use super::capability::{
    Capability, Grant, InstanceState, SettingGrantError, grant_url, url_value,
};
use super::redact;
use super::state::HostState;
use super::types::Error;
use crate::config::PluginTable;

/// One node of a reply, in pre-order: `Array(n)` is followed by its n children.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Nil,
    Int(i64),
    Data(Vec<u8>),
    Status(String),
    Array(u32),
}

/// `allow.redis`: the one server a plugin may send commands to.
pub struct Server(pub String);

/// The commands isolation needs, and all a plugin may send: data commands
/// on the selected database, `SELECT`, transactions. Not here, so refused:
/// scripting (`EVAL*`, `FCALL*`, `FUNCTION`, `SCRIPT`), which runs any
/// command server-side and can block the server; whatever reaches other
/// servers (`MIGRATE`, `REPLICAOF`), administers this one (`CONFIG`,
/// `MODULE`, `DEBUG`, `SAVE`, `SHUTDOWN`, `ACL`, ...), touches every
/// database at once (`FLUSHALL`, `SWAPDB`), changes the login (`AUTH`,
/// `HELLO`, `RESET`), blocks (`BLPOP`, `WAIT`, ...), or scans the whole
/// keyspace in one call (`KEYS`).
const ALLOWED: &[&str] = &[
    // connection and transactions
    "PING",
    "ECHO",
    "SELECT",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    // keys
    "DEL",
    "UNLINK",
    "EXISTS",
    "TYPE",
    "SCAN",
    "TOUCH",
    "RENAME",
    "RENAMENX",
    "MOVE",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "TTL",
    "PTTL",
    "PERSIST",
    "DBSIZE",
    "FLUSHDB",
    "TIME",
    // strings
    "GET",
    "SET",
    "SETNX",
    "SETEX",
    "PSETEX",
    "MGET",
    "MSET",
    "MSETNX",
    "GETSET",
    "GETDEL",
    "GETEX",
    "APPEND",
    "STRLEN",
    "INCR",
    "INCRBY",
    "INCRBYFLOAT",
    "DECR",
    "DECRBY",
    "GETRANGE",
    // hashes
    "HGET",
    "HSET",
    "HSETNX",
    "HMGET",
    "HMSET",
    "HDEL",
    "HEXISTS",
    "HGETALL",
    "HKEYS",
    "HVALS",
    "HLEN",
    "HINCRBY",
    "HINCRBYFLOAT",
    "HSCAN",
    // lists
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "LSET",
    "LREM",
    "LTRIM",
    // sets and sorted sets
    "SADD",
    "SREM",
    "SMEMBERS",
    "SISMEMBER",
    "SCARD",
    "SSCAN",
    "ZADD",
    "ZREM",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZCARD",
    "ZSCORE",
    "ZINCRBY",
    "ZSCAN",
    // streams
    "XADD",
    "XLEN",
    "XRANGE",
    "XDEL",
];

/// `CLIENT` subcommands allowed: naming and finding connections (the
/// built-in plugin tells its slots apart by them), not `KILL` or `PAUSE`.
const CLIENT_ALLOWED: &[&str] = &["ID", "SETNAME", "GETNAME", "LIST", "INFO"];

/// Why `args` may not be sent, if it may not.
fn refusal(args: &[Vec<u8>]) -> Option<String> {
    let name = String::from_utf8_lossy(args.first()?).to_ascii_uppercase();
    if name == "CLIENT" {
        let sub = args
            .get(1)
            .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase())
            .unwrap_or_default();
        return (!CLIENT_ALLOWED.contains(&sub.as_str())).then(|| {
            format!(
                "plugins may not send the Redis command CLIENT {sub} (allowed: CLIENT {})",
                CLIENT_ALLOWED.join(", CLIENT ")
            )
        });
    }
    (!ALLOWED.contains(&name.as_str())).then(|| {
        format!(
            "plugins may not send the Redis command {name}: only data commands on the selected \
             database, SELECT and transactions are allowed (no scripting, no server administration)"
        )
    })
}

pub struct Redis;

impl Capability for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn grant(
        &self,
        value: Option<&toml::Value>,
        _table: &PluginTable,
    ) -> Result<Option<Grant>, String> {
        value
            .map(|v| Ok(Arc::new(Server(url_value(v)?)) as Grant))
            .transpose()
    }
    fn hint(&self) -> String {
        "allow = { redis = \"redis://127.0.0.1:6379\" }".into()
    }
    fn describe_grant(&self, grant: &Grant) -> String {
        format!(
            "granted: {} (data commands on any of its databases; no scripting, no administration)",
            redact::url(grant.downcast_ref::<Server>().map_or("", |s| &s.0))
        )
    }
    fn grant_setting(
        &self,
        allow: &mut Option<toml::Value>,
        value: &toml::Value,
    ) -> Result<(), SettingGrantError> {
        grant_url(allow, value)
    }
    fn instance_state(&self) -> Option<Box<dyn InstanceState>> {
        Some(Box::new(Conn::default()))
    }
}

/// This instance's connection to the granted server, opened on first use,
/// and what a fresh one must be given again so the plugin does not notice
/// the change: the database last selected and the name last set.
///
/// A test may close partest's connection (`CLIENT KILL`, a server restart,
/// an idle timeout). That is found out before the call's first command (a
/// `PING` on a connection from an earlier call), never by resending a
/// command that may have run: a fresh connection is opened, the database
/// and name restored, and the plugin's command goes there. So teardown
/// still reaches the server after a test killed every client.
#[derive(Default)]
pub struct Conn {
    conn: Option<redis::Connection>,
    /// `SELECT n` that succeeded last (not inside a transaction).
    db: Option<Vec<u8>>,
    /// `CLIENT SETNAME x` that succeeded last.
    name: Option<Vec<u8>>,
    /// Between MULTI and EXEC/DISCARD, or under a WATCH: state a new
    /// connection would not have, so it is not checked then.
    in_transaction: bool,
    /// Between MULTI and EXEC/DISCARD: commands are queued, not answered.
    queued: bool,
    /// Bytes this instance has sent in commands: held to a budget, so a
    /// loop of writes cannot grow the server without end.
    sent: usize,
    /// A plugin call began since the connection was last checked.
    check: bool,
}

impl InstanceState for Conn {
    /// A new plugin call begins: check the connection before its first command.
    fn begin_call(&mut self) {
        self.check = true;
    }
}

impl Conn {
    /// The connection is done (an I/O error, a timeout): the next command
    /// opens another.
    fn drop_connection(&mut self) {
        self.conn = None;
        self.in_transaction = false;
        self.queued = false;
    }

    /// Remembers what a command that succeeded changed on the connection.
    fn note(&mut self, name: &str, args: &[Vec<u8>], value: &redis::Value) {
        let ok = matches!(value, redis::Value::Okay)
            || matches!(value, redis::Value::SimpleString(s) if s == "OK");
        match name {
            "SELECT" if ok && !self.in_transaction => self.db = args.get(1).cloned(),
            "CLIENT"
                if ok
                    && args
                        .get(1)
                        .is_some_and(|s| s.eq_ignore_ascii_case(b"SETNAME")) =>
            {
                self.name = args.get(2).cloned()
            }
            "MULTI" => {
                self.in_transaction = true;
                self.queued = true;
            }
            "WATCH" => self.in_transaction = true,
            "EXEC" | "DISCARD" => {
                self.in_transaction = false;
                self.queued = false;
            }
            "UNWATCH" => self.in_transaction = false,
            _ => {}
        }
    }
}

/// The granted server's URL, if one was granted.
fn granted(state: &HostState) -> Option<String> {
    state.grants.caps.get::<Server>().map(|s| s.0.clone())
}

/// This instance's connection, checked at a call's first command and
/// opened (the database and name restored) when there is none.
fn connection(state: &mut HostState) -> Result<&mut redis::Connection, Error> {
    let Some(url) = granted(state) else {
        return Err(Error::Refused(
            "no Redis server was granted (allow.redis)".into(),
        ));
    };
    let remaining = state.remaining();
    let conn_state = state.instance::<Conn>();
    if std::mem::take(&mut conn_state.check)
        && !conn_state.in_transaction
        && let Some(conn) = conn_state.conn.as_mut()
    {
        let _ = conn.set_read_timeout(Some(remaining));
        let _ = conn.set_write_timeout(Some(remaining));
        // Any error here (closed, reset, timed out) means: start over.
        if redis::cmd("PING").query::<redis::Value>(conn).is_err() {
            conn_state.drop_connection();
        }
    }
    if state.instance::<Conn>().conn.is_none() {
        let shown = redact::url(&url);
        let client = redis::Client::open(url.as_str()).map_err(|e| {
            Error::BadConfig(format!(
                "allow.redis = {shown:?}: {}",
                redact::text(&e.to_string(), &url)
            ))
        })?;
        if url.starts_with("rediss:") || url.starts_with("valkeys:") {
            super::tls::provider();
        }
        let mut conn = client
            .get_connection_with_timeout(state.remaining())
            .map_err(|e| connect_error(&url, &e))?;
        let remaining = state.remaining();
        let _ = conn.set_read_timeout(Some(remaining));
        let _ = conn.set_write_timeout(Some(remaining));
        // What the plugin set on the connection it had, so a new one
        // looks the same to it.
        let conn_state = state.instance::<Conn>();
        let mut restore = Vec::new();
        if let Some(db) = &conn_state.db {
            let mut cmd = redis::cmd("SELECT");
            cmd.arg(db.as_slice());
            restore.push(("SELECT", cmd));
        }
        if let Some(name) = &conn_state.name {
            let mut cmd = redis::cmd("CLIENT");
            cmd.arg("SETNAME").arg(name.as_slice());
            restore.push(("CLIENT SETNAME", cmd));
        }
        for (what, cmd) in restore {
            cmd.query::<redis::Value>(&mut conn).map_err(|e| {
                Error::Unavailable(format!(
                    "Redis at {shown}: the connection was lost, and on a new one {what} failed: {}",
                    redact::text(&e.to_string(), &url)
                ))
            })?;
        }
        conn_state.conn = Some(conn);
        conn_state.in_transaction = false;
    }
    let remaining = state.remaining();
    let conn = state
        .instance::<Conn>()
        .conn
        .as_mut()
        .expect("connected above");
    let _ = conn.set_read_timeout(Some(remaining));
    let _ = conn.set_write_timeout(Some(remaining));
    Ok(conn)
}

/// Whether the server refused the URL's credentials: redis-rs's kind, or
/// the server's error code (`WRONGPASS`, `NOAUTH`), which redis-rs keeps
/// as the first word of the reply when it wraps one (a refused `SELECT`).
fn credentials_refused(e: &redis::RedisError) -> bool {
    const CODES: &[&str] = &["WRONGPASS", "NOAUTH"];
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.code().is_some_and(|c| CODES.contains(&c))
        || e.detail()
            .and_then(|d| d.split_whitespace().next())
            .is_some_and(|c| CODES.contains(&c))
}

/// Why the granted server could not be reached, one line, without the password.
fn connect_error(url: &str, e: &redis::RedisError) -> Error {
    let shown = redact::url(url);
    let detail = redact::text(&e.to_string(), url);
    if credentials_refused(e) {
        return Error::Refused(format!(
            "Redis at {shown} refused the credentials in the url: {detail}"
        ));
    }
    let lower = detail.to_ascii_lowercase();
    let hint = if url.starts_with("rediss:") && !url.contains('#') && lower.contains("certificate")
    {
        " (a self-signed server? trust its CA with SSL_CERT_FILE=ca.pem, or add #insecure to the url to skip verification)"
    } else if url.starts_with("redis:")
        && ["reset", "closed", "broken pipe", "end of file"]
            .iter()
            .any(|w| lower.contains(w))
    {
        " (a TLS-only server? use rediss://)"
    } else {
        ""
    };
    Error::Unavailable(format!(
        "cannot connect to Redis at {shown}: {detail}{hint}"
    ))
}
fn flatten(v: redis::Value, out: &mut Vec<Node>) {
    use redis::Value as V;
    match v {
        V::Nil => out.push(Node::Nil),
        V::Int(i) => out.push(Node::Int(i)),
        V::BulkString(b) => out.push(Node::Data(b)),
        V::SimpleString(s) => out.push(Node::Status(s)),
        V::Okay => out.push(Node::Status("OK".into())),
        V::Boolean(b) => out.push(Node::Int(b as i64)),
        V::Double(d) => out.push(Node::Data(d.to_string().into_bytes())),
        V::Array(items) | V::Set(items) => {
            out.push(Node::Array(items.len() as u32));
            for i in items {
                flatten(i, out);
            }
        }
        V::Map(pairs) => {
            out.push(Node::Array(2 * pairs.len() as u32));
            for (k, v) in pairs {
                flatten(k, out);
                flatten(v, out);
            }
        }
        V::VerbatimString { text, .. } => out.push(Node::Data(text.into_bytes())),
        other => out.push(Node::Status(format!("{other:?}"))),
    }
}

fn size(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Node::Data(d) => d.len() + 8,
            Node::Status(s) => s.len() + 8,
            _ => 8,
        })
        .sum()
}

/// How many boundary limits' worth of commands one plugin instance may send.
const SENT_BUDGET_BOUNDARIES: usize = 4;

/// The keys whose values a command replies with (its size bounded by what
/// is stored under them), or `None` for a command whose reply is small.
fn reads_values<'a>(name: &str, args: &'a [Vec<u8>]) -> Option<&'a [Vec<u8>]> {
    match name {
        "MGET" => Some(&args[1..]),
        "GET" | "GETDEL" | "GETEX" | "GETSET" | "GETRANGE" | "HGETALL" | "HKEYS" | "HVALS"
        | "HMGET" | "LRANGE" | "LPOP" | "RPOP" | "SMEMBERS" | "ZRANGE" | "ZRANGEBYSCORE"
        | "XRANGE" | "HSCAN" | "SSCAN" | "ZSCAN" => args.get(1..2),
        _ => None,
    }
}

/// What the server holds under `keys` (`MEMORY USAGE`), in bytes; 0 for
/// a missing key or a server that cannot say.
fn stored_size(conn: &mut redis::Connection, keys: &[Vec<u8>]) -> usize {
    keys.iter()
        .map(|key| {
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key.as_slice())
                .arg("SAMPLES")
                .arg(0)
                .query::<Option<usize>>(conn)
                .ok()
                .flatten()
                .unwrap_or(0)
        })
        .sum()
}

/// The granted URL (for handing `REDIS_URL` to tests).
pub fn url(state: &HostState) -> String {
    granted(state).unwrap_or_default()
}

/// Runs one allowed command on this instance's connection.
pub fn command(state: &mut HostState, args: Vec<Vec<u8>>) -> Result<Vec<Node>, Error> {
    let Some(first) = args.first() else {
        return Err(Error::Failed("an empty Redis command".into()));
    };
    if let Some(why) = refusal(&args) {
        return Err(Error::Refused(why));
    }
    let name = String::from_utf8_lossy(first).to_ascii_uppercase();
    let bytes: usize = args.iter().map(Vec::len).sum();
    state.check_size("the Redis command", bytes)?;
    let budget = SENT_BUDGET_BOUNDARIES * state.grants.boundary;
    let sent = state.instance::<Conn>().sent + bytes;
    if sent > budget {
        return Err(Error::Refused(format!(
            "this plugin instance has sent {sent} bytes to Redis, over its budget of {budget} \
             bytes ({SENT_BUDGET_BOUNDARIES} × limits.boundary): partest isolates with a few keys, \
             it does not fill a server"
        )));
    }
    state.instance::<Conn>().sent = sent;
    let limit = state.grants.boundary;
    let queued = state.instance::<Conn>().queued;
    let conn = connection(state)?;
    if let Some(keys) = reads_values(&name, &args) {
        if queued {
            return Err(Error::Refused(format!(
                "Redis {name} inside MULTI: a reply partest cannot size first; read outside the \
                 transaction (WATCH, read, then MULTI)"
            )));
        }
        let size = stored_size(conn, keys);
        if size > limit {
            return Err(Error::Refused(format!(
                "Redis {name}: the value is {size} bytes, over the plugin's boundary limit of \
                 {limit} bytes (limits.boundary); partest did not read it"
            )));
        }
    }
    let mut cmd = redis::cmd(&name);
    for a in &args[1..] {
        cmd.arg(a.as_slice());
    }
    let value: redis::Value = match cmd.query(conn) {
        Ok(v) => v,
        Err(e) => {
            let url = granted(state).unwrap_or_default();
            let detail = redact::text(&e.to_string(), &url);
            if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                // A reply may still be on its way: this connection is done.
                state.instance::<Conn>().drop_connection();
                return Err(Error::Unavailable(format!(
                    "Redis {name}: {detail}{}",
                    if e.is_timeout() {
                        " (no reply within the plugin's call time limit)"
                    } else {
                        ""
                    }
                )));
            }
            return Err(Error::Failed(format!("Redis {name}: {detail}")));
        }
    };
    state.instance::<Conn>().note(&name, &args, &value);
    let mut out = Vec::new();
    flatten(value, &mut out);
    state.check_size("the Redis reply", size(&out))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn isolation_commands_pass_and_the_rest_is_refused() {
        for ok in [
            &["SELECT", "3"][..],
            &["flushdb"],
            &["SET", "k", "v", "NX"],
            &["CLIENT", "SETNAME", "partest:r1:gw0"],
            &["client", "list"],
            &["MULTI"],
            &["SCAN", "0"],
        ] {
            assert_eq!(refusal(&args(ok)), None, "{ok:?}");
        }
        for refused in [
            &["EVAL", "return 1", "0"][..],
            &["evalsha", "x", "0"],
            &["EVAL_RO", "return 1", "0"],
            &["FCALL", "f", "0"],
            &["FCALL_RO", "f", "0"],
            &["FUNCTION", "LOAD", "x"],
            &["SCRIPT", "LOAD", "x"],
            &["MIGRATE", "h", "1", "k", "0", "1"],
            &["SWAPDB", "0", "1"],
            &["CLIENT", "PAUSE", "1000"],
            &["CLIENT", "KILL", "ID", "1"],
            &["CLIENT"],
            &["CONFIG", "SET", "dir", "/tmp"],
            &["MODULE", "LOAD", "x.so"],
            &["DEBUG", "SLEEP", "1"],
            &["SAVE"],
            &["BGSAVE"],
            &["SHUTDOWN"],
            &["REPLICAOF", "h", "1"],
            &["SLAVEOF", "h", "1"],
            &["FLUSHALL"],
            &["KEYS", "*"],
            &["BLPOP", "k", "0"],
            &["AUTH", "u", "p"],
            &["ACL", "SETUSER", "x"],
        ] {
            assert!(refusal(&args(refused)).is_some(), "{refused:?}");
        }
    }
}
