//! `redis`: commands on the one server granted by `allow.redis`, over one
//! connection per instance (so `SELECT` stays within a slot). Commands that
//! reach other servers or other people's data are refused.

use super::bindings::v0_1_0::partest::plugin::redis::{Host, Node};
use super::bindings::v0_1_0::partest::plugin::types::Error;
use super::redact;
use super::state::HostState;

/// Commands a plugin may not send: they touch other servers, the server
/// itself, or data partest did not create.
const REFUSED: &[&str] = &[
    "MIGRATE",
    "REPLICAOF",
    "SLAVEOF",
    "SHUTDOWN",
    "CONFIG",
    "DEBUG",
    "MODULE",
    "ACL",
    "FLUSHALL",
    "MONITOR",
    "SYNC",
    "PSYNC",
    "CLUSTER",
    "FAILOVER",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
];

impl HostState {
    fn redis_conn(&mut self) -> Result<&mut redis::Connection, Error> {
        let Some(url) = self.grants.redis.clone() else {
            return Err(Error::Refused(
                "no Redis server was granted (allow.redis)".into(),
            ));
        };
        if self.redis.is_none() {
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
            let conn = client
                .get_connection_with_timeout(self.remaining())
                .map_err(|e| connect_error(&url, &e))?;
            self.redis = Some(conn);
        }
        let remaining = self.remaining();
        let conn = self.redis.as_mut().expect("just connected");
        let _ = conn.set_read_timeout(Some(remaining));
        let _ = conn.set_write_timeout(Some(remaining));
        Ok(conn)
    }
}

/// Why the granted server could not be reached, one line, without the password.
fn connect_error(url: &str, e: &redis::RedisError) -> Error {
    let shown = redact::url(url);
    let detail = redact::text(&e.to_string(), url);
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || detail.contains("WRONGPASS")
        || detail.contains("NOAUTH")
    {
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

impl Host for HostState {
    fn url(&mut self) -> String {
        self.grants.redis.clone().unwrap_or_default()
    }

    fn command(&mut self, args: Vec<Vec<u8>>) -> Result<Vec<Node>, Error> {
        let Some(name) = args.first() else {
            return Err(Error::Failed("an empty Redis command".into()));
        };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        if REFUSED.contains(&name.as_str()) {
            return Err(Error::Refused(format!(
                "plugins may not send the Redis command {name}"
            )));
        }
        let mut cmd = redis::cmd(&name);
        for a in &args[1..] {
            cmd.arg(a.as_slice());
        }
        let conn = self.redis_conn()?;
        let value: redis::Value = cmd.query(conn).map_err(|e| {
            let url = self.grants.redis.as_deref().unwrap_or("");
            let detail = redact::text(&e.to_string(), url);
            if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                Error::Unavailable(format!("Redis {name}: {detail}"))
            } else {
                Error::Failed(format!("Redis {name}: {detail}"))
            }
        })?;
        let mut out = Vec::new();
        flatten(value, &mut out);
        self.check_size("the Redis reply", size(&out))?;
        Ok(out)
    }
}
