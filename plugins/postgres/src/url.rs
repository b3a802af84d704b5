//! The parts of a `postgres://` URL that libpq users read from the
//! environment (PGHOST, PGPORT, ...), and the `options` query parameter
//! that puts a schema first on the search path.

use partest_plugin_sdk::redact::percent_decode;

/// What the libpq environment variables are made from.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parts {
    pub user: Option<String>,
    pub password: Option<String>,
    /// A host name, an address, or a unix socket directory (starts with `/`).
    pub host: Option<String>,
    pub port: Option<String>,
    pub dbname: Option<String>,
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
}

/// Parses `postgres[ql]://[user[:password]@][host][:port][/dbname][?k=v&...]`.
/// A `host` query parameter (a unix socket directory) wins over the
/// authority's host, as libpq has it.
pub fn parse(url: &str) -> Parts {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut parts = Parts::default();
    if let Some(u) = userinfo {
        let (user, password) = match u.split_once(':') {
            Some((user, pw)) => (user, Some(pw)),
            None => (u, None),
        };
        parts.user = non_empty(percent_decode(user));
        parts.password = password.map(percent_decode);
    }
    let (host, port) = if hostport.starts_with('[') {
        // [ipv6]:port
        match hostport.split_once(']') {
            Some((h, p)) => (&h[1..], p.strip_prefix(':').unwrap_or("")),
            None => (hostport, ""),
        }
    } else {
        hostport.rsplit_once(':').unwrap_or((hostport, ""))
    };
    parts.host = non_empty(percent_decode(host));
    parts.port = non_empty(port.to_string());
    parts.dbname = non_empty(percent_decode(path));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "host" => parts.host = non_empty(percent_decode(v)),
            "port" => parts.port = non_empty(percent_decode(v)),
            "user" => parts.user = non_empty(percent_decode(v)),
            "password" => parts.password = Some(percent_decode(v)),
            "dbname" => parts.dbname = non_empty(percent_decode(v)),
            "sslmode" => parts.sslmode = non_empty(percent_decode(v)),
            "sslrootcert" => parts.sslrootcert = non_empty(percent_decode(v)),
            _ => {}
        }
    }
    parts
}

/// `url` with `options=-csearch_path=<schema>` added, so every connection
/// made from it (psycopg, SQLAlchemy, psql) starts in `schema`.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_url_with_password_and_sslmode() {
        let p = parse(
            "postgres://app:s%40cret@db.example:6543/app_test?sslmode=require&sslrootcert=%2Fca.pem",
        );
        assert_eq!(p.user.as_deref(), Some("app"));
        assert_eq!(p.password.as_deref(), Some("s@cret"));
        assert_eq!(p.host.as_deref(), Some("db.example"));
        assert_eq!(p.port.as_deref(), Some("6543"));
        assert_eq!(p.dbname.as_deref(), Some("app_test"));
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/ca.pem"));
    }

    #[test]
    fn unix_socket_hosts() {
        let p = parse("postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/db1");
        assert_eq!(p.host.as_deref(), Some("/var/run/postgresql"));
        assert_eq!(p.dbname.as_deref(), Some("db1"));
        let p = parse("postgres:///db2?host=/run/postgresql&user=me");
        assert_eq!(p.host.as_deref(), Some("/run/postgresql"));
        assert_eq!(p.user.as_deref(), Some("me"));
        assert_eq!(p.dbname.as_deref(), Some("db2"));
        assert_eq!(p.port, None);
    }

    #[test]
    fn search_path_option() {
        assert_eq!(
            with_search_path("postgres://h/db", "s1"),
            "postgres://h/db?options=-csearch_path%3Ds1"
        );
        assert_eq!(
            with_search_path("postgres://h/db?sslmode=disable", "s1"),
            "postgres://h/db?sslmode=disable&options=-csearch_path%3Ds1"
        );
    }
}
