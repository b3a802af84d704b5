//! `postgres`: SQL on the one server granted by `allow.postgres`. The host
//! holds the credentials and enforces the grant:
//!
//! - a plugin reaches the granted database and the databases it made in
//!   this run (their names carry the run id), nothing else; what tells them
//!   apart, and which templates a custom plugin may copy, is [`pg_reach`]'s;
//! - a custom plugin whose grant logs in as a superuser, can become one or
//!   reach the server's files and programs, or owns other databases, is
//!   refused (a superuser login only unless the user set
//!   `allow-superuser = true`); built-ins are partest's own code and keep
//!   working with the user's URL;
//! - a statement still running at the call's deadline is cancelled from
//!   the host, whatever the plugin SET.
//!
//! The connection to the granted database is kept for the instance; one to
//! another database is closed after the call, so it never blocks `DROP
//! DATABASE` or `CREATE DATABASE ... TEMPLATE` on it. TLS is [`pg_tls`]'s.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use postgres::error::SqlState;
use postgres::{Client, SimpleQueryMessage};

use super::capability::{
    Capability, Grant, InstanceState, SettingGrantError, grant_url, url_value,
};
use super::pg_reach::{self, CreateDatabase, Inspector, RunDatabases};
use super::pg_tls::{self, Roots, Tls, split_tls};
use super::state::HostState;
use super::types::{Error, Rows};
use super::{deadline, redact};
use crate::config::PluginTable;

/// `allow.postgres`: the one server a plugin may run SQL on, and whether a
/// custom plugin may log in there as a superuser (`allow-superuser`).
pub struct Server {
    pub url: String,
    pub allow_superuser: bool,
    /// The databases it was granted and made in this run.
    databases: RunDatabases,
}

pub struct Postgres;

impl Capability for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn grant(
        &self,
        value: Option<&toml::Value>,
        table: &PluginTable,
    ) -> Result<Option<Grant>, String> {
        value
            .map(|v| {
                Ok(Arc::new(Server {
                    url: url_value(v)?,
                    allow_superuser: table.allow_superuser,
                    databases: RunDatabases::default(),
                }) as Grant)
            })
            .transpose()
    }
    fn hint(&self) -> String {
        "allow = { postgres = \"postgres://user@127.0.0.1:5432/postgres\" }".into()
    }
    fn describe_grant(&self, grant: &Grant) -> String {
        let server = grant.downcast_ref::<Server>();
        format!(
            "granted: {} (that database and the ones named after the run; {}; statements cancelled at the call's deadline)",
            redact::url(server.map_or("", |s| &s.url)),
            if server.is_some_and(|s| s.allow_superuser) {
                "superuser allowed"
            } else {
                "a custom plugin never as a superuser"
            }
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
        Some(Box::new(Connections::default()))
    }
}

/// This instance's open connections, by database (`None`: the granted one).
///
/// A test may end partest's connection (`pg_terminate_backend`, a server
/// restart): a connection kept from an earlier call is checked before the
/// call's first statement (an empty query), and replaced when it is gone,
/// so teardown still reaches the server. A statement that failed is never
/// sent again.
#[derive(Default)]
pub struct Connections {
    open: HashMap<Option<String>, Session>,
    /// A plugin call began since the connections were last checked.
    check: bool,
}

impl InstanceState for Connections {
    /// A new plugin call begins: check the connections before its first statement.
    fn begin_call(&mut self) {
        self.check = true;
    }
}

/// A connection and how to reach its server again to cancel a statement.
struct Session {
    client: Client,
    tls: Tls,
    /// How it connected, and its server process: to end it from outside.
    config: postgres::Config,
    backend: i32,
}

/// The database the grant's url names, if it names one.
fn granted_database(url: &str) -> Option<String> {
    let (rest, _) = split_tls(url).ok()?;
    postgres::Config::from_str(&rest)
        .ok()?
        .get_dbname()
        .map(str::to_string)
}

/// The grant, if there is one.
fn granted(state: &HostState) -> Option<&Server> {
    state.grants.caps.get::<Server>()
}

/// Refuses a database the grant does not name.
fn check_database(state: &HostState, url: &str, database: &Option<String>) -> Result<(), Error> {
    let Some(db) = database else {
        return Ok(());
    };
    if db.len() > pg_reach::MAX_NAME {
        return Err(Error::Refused(format!(
            "database name {db:?} is longer than {} bytes: the server would cut it to another \
             name",
            pg_reach::MAX_NAME
        )));
    }
    let granted = granted_database(url);
    let run_id = state.grants.run_id.get();
    if granted.as_deref() == Some(db.as_str())
        || run_id.is_some_and(|id| !id.is_empty() && db.contains(id.as_str()))
    {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "plugin {} may not reach database {db:?}: only the granted one ({}) and databases \
             whose names carry this run's id ({})",
        state.grants.plugin,
        granted.as_deref().unwrap_or("the user's default"),
        run_id.map_or("no run yet", String::as_str)
    )))
}

/// A new connection to the granted server, on `database` (or the granted
/// one).
fn connect(
    state: &HostState,
    url: &str,
    database: Option<&str>,
) -> Result<(Client, Tls, postgres::Config), Error> {
    let shown = redact::url(url);
    let bad = |e: String| {
        Error::BadConfig(format!(
            "allow.postgres = {shown:?}: {}",
            redact::text(&e, url)
        ))
    };
    let (rest, tls) = split_tls(url).map_err(bad)?;
    let mut config = postgres::Config::from_str(&rest).map_err(|e| bad(e.to_string()))?;
    let tls = tls.resolve(&config).map_err(bad)?;
    if let Some(db) = database {
        config.dbname(db);
    }
    config.connect_timeout(state.remaining());
    let client = pg_tls::connect(&mut config, &tls).map_err(|e| connect_error(url, &tls, &e))?;
    Ok((client, tls, config))
}

/// The host's own connection to the granted server ([`pg_reach`]), and a
/// custom plugin's role checked on it.
fn inspector<'g>(state: &HostState, server: &'g Server) -> Result<Inspector<'g>, Error> {
    server
        .databases
        .inspector(state.remaining(), || {
            let (mut client, _, _) = connect(state, &server.url, None)?;
            // Before the role's own settings can shape what the checks read
            // (a search_path to views or operators of its own).
            client
                .batch_execute("SET search_path = pg_catalog")
                .map_err(pg_err)?;
            Ok(client)
        })
        .and_then(|mut inspector| {
            // Once a run (the tests may make databases under the same role
            // later); before the run (kept-setups, clean), at every call.
            let checked = &server.databases.role_checked;
            if !state.grants.builtin
                && !server.allow_superuser
                && !checked.load(std::sync::atomic::Ordering::Relaxed)
            {
                refuse_powerful_role(state, inspector.client(), &server.url)?;
                if state.grants.run_id.get().is_some() {
                    checked.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Ok(inspector)
        })
}

/// The session on `database` (`None`: the granted one), checked at a
/// call's first statement and opened when there is none.
fn session<'s>(
    state: &'s mut HostState,
    database: &Option<String>,
) -> Result<&'s mut Session, Error> {
    let Some(url) = granted(state).map(|s| s.url.clone()) else {
        return Err(no_server());
    };
    check_database(state, &url, database)?;
    let limit = state.remaining();
    let connections = state.instance::<Connections>();
    if std::mem::take(&mut connections.check) {
        connections
            .open
            .retain(|_, session| session.client.is_valid(limit).is_ok());
    }
    if !state.instance::<Connections>().open.contains_key(database) {
        let (mut client, tls, config) = connect(state, &url, database.as_deref())?;
        // A database other than the granted one is one of the run's.
        let run_database = database
            .as_deref()
            .filter(|db| granted_database(&url).as_deref() != Some(*db));
        if let Some(server) = granted(state) {
            server
                .databases
                .check_connected(&mut client, run_database, !state.grants.builtin)?;
        }
        let backend = backend_pid(&mut client)?;
        state.instance::<Connections>().open.insert(
            database.clone(),
            Session {
                client,
                tls,
                config,
                backend,
            },
        );
    }
    Ok(state
        .instance::<Connections>()
        .open
        .get_mut(database)
        .expect("just connected"))
}

fn no_server() -> Error {
    Error::Refused("no PostgreSQL server was granted (allow.postgres)".into())
}

/// A custom plugin must not get a role that runs programs on the server,
/// reads or writes its files, reaches every database (a superuser), or
/// can become one that does (`SET ROLE` to a role
/// it is a member of); nor one that owns databases beyond the granted one
/// and this run's (it could clone or rename them).
fn refuse_powerful_role(state: &HostState, client: &mut Client, url: &str) -> Result<(), Error> {
    let granted = granted_database(url).unwrap_or_else(|| "postgres".into());
    let rows = pg_reach::rows(
        client,
        "SELECT current_user, current_setting('is_superuser') = 'on', \
                 (SELECT string_agg(rolname, ', ' ORDER BY rolname) FROM pg_roles \
                  WHERE rolname <> current_user AND pg_has_role(current_user, oid, 'MEMBER') \
                    AND (rolsuper OR rolname IN ('pg_execute_server_program', \
                         'pg_write_server_files', 'pg_read_server_files'))), \
                 (SELECT rolcreaterole FROM pg_roles WHERE rolname = current_user)",
    )
    .map_err(pg_err)?;
    let Some(row) = rows.first() else {
        return Err(Error::Failed(
            "PostgreSQL did not say who the grant logs in as".into(),
        ));
    };
    let text = |i: usize| row.get(i).map(String::as_str);
    let user = text(0).unwrap_or("?").to_string();
    let superuser = text(1) == Some("t");
    let powerful = text(2).filter(|r| !r.is_empty()).map(str::to_string);
    let creates_roles = text(3) == Some("t");
    let what = if superuser {
        "a superuser".to_string()
    } else if creates_roles {
        "a role with CREATEROLE (it can grant itself the server's programs and files)".to_string()
    } else if let Some(roles) = powerful {
        format!(
            "a member of {roles} (it can SET ROLE to it, or use its rights to the server's \
             programs and files)"
        )
    } else {
        let server = self::granted(state).ok_or_else(|| Error::Refused("no grant".into()))?;
        // Dead runs' leftovers are for `partest clean` (no run) to remove;
        // once the run has begun, they count.
        let dead = match state.grants.run_id.get() {
            Some(_) => Vec::new(),
            None => crate::runs::dead_runs(),
        };
        let owned =
            server
                .databases
                .owned_beyond(client, &granted, &state.grants.project, &dead)?;
        if owned.is_empty() {
            return Ok(());
        }
        format!(
            "the owner of {} (it could copy them with CREATE DATABASE ... TEMPLATE, rename or \
             drop them; a leftover of a crashed run goes with `partest clean`, and two runs \
             at once need a role each)",
            owned.join(", ")
        )
    };
    let plugin = &state.grants.plugin;
    Err(Error::Refused(format!(
        "the postgres grant {} logs in as {user:?}, {what} — more than a plugin needs, so custom \
             plugins do not get it. Give the plugin a role of its own that can only create \
             databases, and owns none:\n\
             \x20   CREATE ROLE partest_plugin LOGIN PASSWORD '...' CREATEDB;\n\
             and grant postgres://partest_plugin:...@host/{granted} instead; or, if you trust \
             plugin {plugin} with the whole server, set [plugins.{plugin}] allow-superuser = true",
        redact::url(url),
    )))
}

/// The server process of `client`'s connection.
fn backend_pid(client: &mut Client) -> Result<i32, Error> {
    pg_reach::rows(client, "SELECT pg_catalog.pg_backend_pid()")
        .map_err(pg_err)?
        .first()
        .and_then(|r| r.first()?.parse().ok())
        .ok_or_else(|| Error::Failed("PostgreSQL did not say which process serves partest".into()))
}

/// Runs `statement` on `database`'s connection, cancelled from the host
/// at the call's deadline; a connection to a database other than the
/// granted one is closed after. `create`, the `CREATE DATABASE` the
/// statement is (if it is one), is checked first; the databases the
/// statement made or renamed are looked at after ([`pg_reach`]).
fn on_database<R>(
    state: &mut HostState,
    database: Option<String>,
    create: Option<&CreateDatabase>,
    statement: impl FnOnce(&mut Client) -> Result<R, postgres::Error>,
) -> Result<R, Error> {
    let deadline = state.deadline;
    let grants = state.grants.clone();
    let server = grants.caps.get::<Server>().ok_or_else(no_server)?;
    let custom = !grants.builtin;
    let kept_file = grants.home.join("kept-databases");
    let setup = grants
        .setup_key
        .get()
        .map(|key| (key.as_str(), kept_file.as_path()));
    if let Some(create) = create.filter(|_| custom) {
        let why = if create.picks_oid {
            Some("OID: a plugin does not pick a database's oid")
        } else if !create.ascii {
            Some("with text beyond ASCII: names read alike in every encoding only")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::Refused(format!(
                "CREATE DATABASE {:?} {why}",
                create.name
            )));
        }
    }
    // What the server holds before the statement, read on the host's own
    // connection (which also checks the role when it opens).
    let before = {
        let mut inspector = inspector(state, server)?;
        if let Some(create) = create.filter(|_| custom) {
            server
                .databases
                .check_templates(&mut inspector, create, setup)?;
        }
        match grants.run_id.get() {
            Some(_) => Some(inspector.catalog()?),
            None => None,
        }
    };
    let session = session(state, &database)?;
    let token = session.client.cancel_token();
    let tls = session.tls.clone();
    let (mut config, kill_tls, backend) = (session.config.clone(), tls.clone(), session.backend);
    let (result, cancelled) = deadline::bounded_then_kill(
        deadline,
        || false,
        move || {
            let _ = pg_tls::cancel(&token, &tls);
        },
        // Still going after the cancel (a block that catches it): its
        // server process is ended from another connection, which ends the
        // statement and this connection with it.
        move || {
            config.connect_timeout(deadline::GRACE);
            if let Ok(mut other) = pg_tls::connect(&mut config, &kill_tls) {
                // Qualified: the database's or role's search_path may
                // put a function of the plugin's of that name first.
                let _ = other.simple_query(&format!(
                    "SELECT pg_catalog.pg_terminate_backend({backend})"
                ));
            }
        },
        || statement(&mut session.client),
    );
    let closed = session.client.is_closed() || matches!(&result, Err(e) if e.is_closed());
    if database.is_some() || closed {
        state.instance::<Connections>().open.remove(&database);
    }
    if let (Some(before), Some(run_id)) = (&before, grants.run_id.get()) {
        let made = create.filter(|_| result.is_ok()).map(|c| c.name.as_str());
        let mut inspector = inspector(state, server)?;
        server
            .databases
            .after_statement(&mut inspector, before, made, run_id, setup)?;
    }
    result.map_err(|e| {
        if cancelled && e.code() == Some(&SqlState::QUERY_CANCELED) {
            Error::Failed(
                "PostgreSQL: the statement did not finish within the plugin's call time limit; \
                     partest cancelled it"
                    .into(),
            )
        } else {
            pg_err(e)
        }
    })
}

/// Why the granted server could not be reached: one line, the password
/// hidden, with what to change when the cause is TLS or the credentials.
fn connect_error(url: &str, tls: &Tls, e: &postgres::Error) -> Error {
    let shown = redact::url(url);
    let mut detail = redact::text(&e.to_string(), url);
    // The error's cause, when its text does not say it already.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = redact::text(&s.to_string(), url);
        if !detail.contains(&text) {
            detail = format!("{detail}: {text}");
        }
        source = s.source();
    }
    let detail = detail.replace('\n', " ");
    if e.code() == Some(&SqlState::INVALID_PASSWORD) {
        return Error::Refused(format!(
            "PostgreSQL at {shown} refused the credentials in the url: {detail}"
        ));
    }
    let lower = detail.to_ascii_lowercase();
    let hint = if lower.contains("certificate") || lower.contains("unknownissuer") {
        match &tls.roots {
            Some(Roots::File(f)) => format!(
                " (sslmode={}: the server's certificate is not signed by a CA in {})",
                tls.mode.name(),
                f.display()
            ),
            _ => format!(
                " (sslmode={}: trust the server's CA with sslrootcert=ca.pem in the url or SSL_CERT_FILE, \
                 or use sslmode=require to skip the check)",
                tls.mode.name()
            ),
        }
    } else if lower.contains("does not support tls") {
        " (the server has ssl = off: use sslmode=prefer or disable)".to_string()
    } else if lower.contains("no pg_hba.conf entry") && lower.contains("no encryption") {
        " (the server wants TLS here: use sslmode=require or verify-full)".to_string()
    } else {
        String::new()
    };
    Error::Unavailable(format!(
        "cannot connect to PostgreSQL at {shown}: {detail}{hint}"
    ))
}

/// `url` with its database path replaced.
fn with_database(url: &str, db: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let (base, query) = match url[start..].find('?') {
        Some(q) => url.split_at(start + q),
        None => (url, ""),
    };
    let base = match base[start..].find('/') {
        Some(slash) => &base[..start + slash],
        None => base,
    };
    format!("{base}/{db}{query}")
}

fn pg_err(e: postgres::Error) -> Error {
    // The driver's own text is only "db error" for what the server said:
    // say what it said (severity, message, detail, hint).
    let text = match e.as_db_error() {
        Some(db) => db.to_string(),
        None => e.to_string(),
    };
    if e.is_closed() || e.as_db_error().is_none() {
        Error::Unavailable(format!("PostgreSQL: {text}"))
    } else {
        Error::Failed(format!("PostgreSQL: {text}"))
    }
}

/// The granted URL with its database replaced by `database`.
pub fn url(state: &HostState, database: Option<String>) -> String {
    let url = granted(state).map(|s| s.url.clone()).unwrap_or_default();
    match database {
        Some(db) => with_database(&url, &db),
        None => url,
    }
}

/// Runs statements on `database`, or the granted one.
pub fn execute(state: &mut HostState, database: Option<String>, sql: String) -> Result<(), Error> {
    state.check_size("the SQL", sql.len())?;
    let create = pg_reach::read_create_database(&sql).map_err(Error::Refused)?;
    on_database(state, database, create.as_ref(), |client| {
        client.batch_execute(&sql)
    })
}

/// Runs one query (a `SELECT`, `VALUES` or `TABLE`) in a transaction that
/// is rolled back; its rows in text form. The result is kept on the server
/// first (a temporary table) and its size asked there, so a result over the
/// plugin's boundary limit is refused before any of it crosses into partest.
pub fn query(state: &mut HostState, database: Option<String>, sql: String) -> Result<Rows, Error> {
    state.check_size("the SQL", sql.len())?;
    let limit = state.grants.boundary;
    let body = sql.trim().trim_end_matches(';').to_string();
    // One statement: a second one could replace the measured result.
    if pg_reach::statements(&body) > 1 {
        return Err(Error::Refused(
            "query runs one SELECT, VALUES or TABLE; run other statements with execute".into(),
        ));
    }
    // In a transaction: no CREATE DATABASE runs there.
    let fetched = on_database(state, database, None, |client| {
        client.batch_execute("BEGIN")?;
        let read = sized_query(client, &body, limit);
        let _ = client.batch_execute("ROLLBACK");
        read
    });
    match fetched {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(NOT_UTF8)) => Err(Error::Failed(
            "PostgreSQL sent text that is not UTF-8 (a client_encoding the plugin set?)".into(),
        )),
        Ok(Err(size)) => Err(Error::Refused(format!(
            "the query result is {size} bytes, over the plugin's boundary limit of {limit} \
             bytes (limits.boundary); partest did not read it"
        ))),
        Err(Error::Failed(m)) if m.contains("syntax error") || m.contains("more than once") => {
            Err(Error::Failed(format!(
                "{m} (query runs one SELECT, VALUES or TABLE whose columns have distinct \
                 names; run other statements with execute)"
            )))
        }
        Err(e) => Err(e),
    }
}

/// What [`sized_query`] says of rows whose text is not UTF-8.
const NOT_UTF8: usize = usize::MAX;

/// `body`'s rows when their text is at most `limit` bytes; `Err(size)`
/// else ([`NOT_UTF8`] when it cannot be read).
fn sized_query(
    client: &mut Client,
    body: &str,
    limit: usize,
) -> Result<Result<Rows, usize>, postgres::Error> {
    // The body is read as partest's lexer read it (one statement).
    client.batch_execute(
        "SET LOCAL standard_conforming_strings = on; SET LOCAL client_encoding = 'UTF8'",
    )?;
    client.batch_execute(&format!("CREATE TEMPORARY TABLE partest_result AS {body}"))?;
    // Measured with the server's own functions, whatever the plugin's
    // search_path puts first.
    client.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")?;
    // What partest holds of a row is its text and, per row and per
    // column, the driver's and its own bookkeeping: a row of many NULLs
    // is small on the wire only.
    let measured = client.simple_query(
        "SELECT coalesce(sum(octet_length(r::text)), 0)::bigint + count(*) * (32 + 48 * \
           (SELECT count(*) FROM pg_attribute \
            WHERE attrelid = 'pg_temp.partest_result'::regclass AND attnum > 0 \
              AND NOT attisdropped)) \
         FROM pg_temp.partest_result r",
    )?;
    let size = measured
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.try_get(0).ok()??.parse::<usize>().ok(),
            _ => None,
        })
        .unwrap_or(usize::MAX - 1);
    if size > limit {
        return Ok(Err(size));
    }
    let mut rows = Rows::default();
    for m in client.simple_query("SELECT * FROM pg_temp.partest_result")? {
        if let SimpleQueryMessage::Row(row) = m {
            if rows.columns.is_empty() {
                rows.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
            }
            // Text that is not UTF-8 (a client_encoding the plugin set)
            // is refused, not passed on.
            let values: Option<Vec<Option<String>>> = (0..row.len())
                .map(|i| row.try_get(i).ok().map(|v| v.map(str::to_string)))
                .collect();
            let Some(values) = values else {
                return Ok(Err(NOT_UTF8));
            };
            rows.rows.push(values);
        }
    }
    Ok(Ok(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
