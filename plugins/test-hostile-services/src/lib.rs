//! A hostile guest with the `redis` and `postgres` grants: it tries what the
//! grants do not name. `mode` picks the attack; each returns what the host
//! said, one variable per attempt.

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{Env, Error, Plugin, Result, RunInfo, Slot, config, postgres, redis};

#[derive(Deserialize)]
#[serde(crate = "partest_plugin_sdk::serde", deny_unknown_fields)]
struct Settings {
    /// redis-commands | pg-sleep | pg-catch-cancel | pg-other-database |
    /// pg-rename-into-reach | pg-rename-hang-up | pg-spoof-catalog | pg-copy-template |
    /// pg-hijack-kill | pg-query-swap | pg-query-encoding | pg-keep | pg-keep-forged | pg-copy-kept |
    /// pg-own-databases | pg-query
    mode: String,
    /// `pg-other-database` and the rename and copy modes: the database to
    /// reach.
    #[serde(default)]
    database: String,
}

struct HostileServices {
    s: Settings,
}

/// Commands outside what isolation needs: scripting, administration,
/// reaching other servers or every database at once.
const REDIS_ATTACKS: &[(&str, &[&str])] = &[
    ("EVAL", &["EVAL", "return redis.call('FLUSHALL')", "0"]),
    (
        "EVAL_RO",
        &["eval_ro", "return redis.call('GET', 'victim')", "0"],
    ),
    (
        "EVALSHA",
        &["EVALSHA", "0000000000000000000000000000000000000000", "0"],
    ),
    ("FCALL", &["FCALL", "flush", "0"]),
    (
        "FUNCTION",
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=evil\nredis.register_function('flush', function() return redis.call('FLUSHALL') end)",
        ],
    ),
    (
        "SCRIPT",
        &["SCRIPT", "LOAD", "return redis.call('FLUSHALL')"],
    ),
    (
        "MIGRATE",
        &["MIGRATE", "127.0.0.1", "1", "victim", "0", "1000"],
    ),
    ("SWAPDB", &["SWAPDB", "0", "1"]),
    ("CLIENT_PAUSE", &["CLIENT", "PAUSE", "20000"]),
    ("CLIENT_KILL", &["CLIENT", "KILL", "TYPE", "normal"]),
    ("CONFIG", &["CONFIG", "SET", "dir", "/tmp"]),
    ("MODULE", &["MODULE", "LOAD", "/tmp/evil.so"]),
    ("DEBUG", &["DEBUG", "SLEEP", "10"]),
    ("SAVE", &["SAVE"]),
    ("BGSAVE", &["BGSAVE"]),
    ("SHUTDOWN", &["SHUTDOWN", "NOSAVE"]),
    ("REPLICAOF", &["REPLICAOF", "127.0.0.1", "1"]),
    ("FLUSHALL", &["FLUSHALL"]),
];

fn outcome<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => "allowed".into(),
        Err(Error::Refused(m)) => format!("refused: {m}"),
        Err(e) => format!("failed: {e:?}"),
    }
}

impl Plugin for HostileServices {
    fn configure() -> Result<Self> {
        Ok(HostileServices { s: config()? })
    }

    fn env_vars(&self) -> Vec<String> {
        REDIS_ATTACKS
            .iter()
            .map(|(k, _)| k.to_string())
            .chain(
                [
                    "RESULT", "IN_MULTI", "APPENDED", "STOPPED", "REACHED", "COPIED",
                ]
                .map(String::from),
            )
            .collect()
    }

    fn setup_run(&mut self, run: &RunInfo) -> Result<Env> {
        match self.s.mode.as_str() {
            "redis-commands" => {
                let mut env: Env = REDIS_ATTACKS
                    .iter()
                    .map(|(k, args)| (k.to_string(), outcome(redis::command(args))))
                    .collect();
                // Inside a transaction, a refused command is refused all the same.
                let _ = redis::command(&["MULTI"]);
                env.push((
                    "IN_MULTI".into(),
                    outcome(redis::command(&[
                        "EVAL",
                        "return redis.call('FLUSHALL')",
                        "0",
                    ])),
                ));
                let _ = redis::command(&["DISCARD"]);
                Ok(env)
            }
            // Grows one key by 4 MiB appends, then reads it back whole.
            "redis-grow" => {
                let chunk = "x".repeat(4 << 20);
                let mut appended = 0;
                let mut stopped = String::from("never");
                for _ in 0..100 {
                    match redis::command(&["APPEND", "grown", &chunk]) {
                        Ok(_) => appended += 1,
                        Err(e) => {
                            stopped = outcome::<()>(Err(e));
                            break;
                        }
                    }
                }
                Ok(vec![
                    ("APPENDED".into(), appended.to_string()),
                    ("STOPPED".into(), stopped),
                    ("RESULT".into(), outcome(redis::command(&["GET", "grown"]))),
                ])
            }
            "pg-sleep" => {
                // The plugin lifts the server-side limit; the host's must hold.
                let r = postgres::execute(None, "SET statement_timeout = 0; SELECT pg_sleep(30)");
                Ok(vec![("RESULT".into(), outcome(r))])
            }
            // Catches every cancel and goes on sleeping.
            "pg-catch-cancel" => {
                let r = postgres::execute(
                    None,
                    "SET statement_timeout = 0; DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(29); \
                     EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$ -- caught",
                );
                Ok(vec![("RESULT".into(), outcome(r))])
            }
            // A result far over the boundary limit: refused before it arrives.
            "pg-huge-result" => {
                let r = postgres::query(
                    None,
                    "SELECT repeat('x', 1048576) AS chunk FROM generate_series(1, 300)",
                );
                Ok(vec![("RESULT".into(), outcome(r))])
            }
            "pg-other-database" => {
                let r = postgres::query(Some(&self.s.database), "SELECT current_database()");
                Ok(vec![("RESULT".into(), outcome(r))])
            }
            "pg-rename-into-reach" => {
                // Dynamic SQL, so no reading of the text could see the rename.
                let into = format!("{}_{}", self.s.database, run.run_id);
                let renamed = postgres::execute(
                    None,
                    &format!(
                        "DO $$ BEGIN EXECUTE 'ALTER DATABASE {} RENAME TO {into}'; END $$",
                        self.s.database
                    ),
                );
                let reached = postgres::query(Some(&into), "SELECT current_database()");
                Ok(vec![
                    ("RESULT".into(), outcome(renamed)),
                    ("REACHED".into(), outcome(reached)),
                ])
            }
            "pg-spoof-catalog" => {
                // A temporary pg_database on the plugin's own connection,
                // in which the database appears during a statement.
                let _ = postgres::execute(
                    None,
                    "CREATE TEMP TABLE pg_database (oid oid, datname name)",
                );
                let spoofed = postgres::execute(
                    None,
                    &format!(
                        "INSERT INTO pg_temp.pg_database SELECT oid, datname \
                         FROM pg_catalog.pg_database WHERE datname = '{}'",
                        self.s.database
                    ),
                );
                let reached = postgres::query(Some(&self.s.database), "SELECT 1");
                Ok(vec![
                    ("RESULT".into(), outcome(reached)),
                    ("REACHED".into(), outcome(spoofed)),
                ])
            }
            "pg-hijack-kill" => {
                // In a database of its own, functions named as the ones the
                // host ends a statement with, first on its search_path; then
                // a statement that catches its cancel.
                let db = format!("hijack_{}", run.run_id);
                let _ = postgres::execute(None, &format!("CREATE DATABASE {db}"));
                let _ = postgres::execute(
                    Some(&db),
                    &format!(
                        "CREATE SCHEMA s; \
                         CREATE FUNCTION s.pg_backend_pid() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
                         CREATE FUNCTION s.pg_terminate_backend(int) RETURNS bool LANGUAGE sql \
                           AS 'SELECT true'; \
                         ALTER DATABASE {db} SET search_path = s, pg_catalog"
                    ),
                );
                let r = postgres::execute(
                    Some(&db),
                    "SET statement_timeout = 0; DO $$ BEGIN LOOP BEGIN PERFORM pg_catalog.pg_sleep(29); \
                     EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$",
                );
                let _ = postgres::execute(None, &format!("DROP DATABASE IF EXISTS {db}"));
                Ok(vec![("RESULT".into(), outcome(r))])
            }
            "pg-query-swap" => {
                let swapped = postgres::query(
                    None,
                    "SELECT 1 AS x; DROP TABLE partest_result; \
                     CREATE TEMP VIEW partest_result AS SELECT repeat('x', 50000000) AS big",
                );
                // Its own octet_length first on the search_path.
                let _ = postgres::execute(
                    None,
                    &format!(
                        "CREATE SCHEMA evil_{0}; \
                         CREATE FUNCTION evil_{0}.octet_length(text) RETURNS int LANGUAGE sql \
                           AS 'SELECT 0'; \
                         SET search_path = evil_{0}, pg_catalog",
                        run.run_id
                    ),
                );
                let measured = postgres::query(None, "SELECT repeat('x', 20000000) AS big");
                let _ = postgres::execute(
                    None,
                    &format!("RESET search_path; DROP SCHEMA evil_{} CASCADE", run.run_id),
                );
                Ok(vec![
                    ("RESULT".into(), outcome(swapped)),
                    ("REACHED".into(), outcome(measured)),
                ])
            }
            "pg-query-encoding" => {
                // Under SJIS the server reads the byte before a backslash
                // as part of a character: the string ends early, and what
                // follows would be statements of their own.
                let _ = postgres::execute(None, "SET client_encoding = 'SJIS'");
                let read = postgres::query(
                    None,
                    "SELECT E'\u{c1}\\'; DROP TABLE pg_temp.partest_result; \
                     CREATE TEMP SEQUENCE s; CREATE TEMP VIEW partest_result AS \
                     SELECT repeat('x', CASE WHEN nextval('s') > 1 THEN 3000000 ELSE 1 END) AS v; \
                     --' AS v",
                );
                let _ = postgres::execute(None, "SET client_encoding = 'UTF8'");
                let size = match &read {
                    Ok(rows) => rows
                        .rows
                        .first()
                        .and_then(|r| r.first().cloned().flatten())
                        .map_or(0, |v| v.len()),
                    Err(_) => 0,
                };
                Ok(vec![
                    ("RESULT".into(), outcome(read)),
                    ("REACHED".into(), format!("{size} bytes")),
                ])
            }
            "pg-keep" => {
                // Made in this run, then renamed under the set-up key: kept.
                let made = format!("kp_{}", run.run_id);
                let _ = postgres::execute(None, &format!("CREATE DATABASE {made}"));
                let kept = postgres::execute(
                    None,
                    &format!("ALTER DATABASE {made} RENAME TO {}", self.s.database),
                );
                Ok(vec![("RESULT".into(), outcome(kept))])
            }
            "pg-keep-forged" => {
                // Kept under a name that is a line of partest's notes of its
                // own: the planted database's oid and name after the key.
                let key = run.setup.as_ref().map_or("", |s| s.key.as_str());
                let oid = postgres::query(
                    None,
                    &format!(
                        "SELECT oid::text AS o FROM pg_database WHERE datname = '{}'",
                        self.s.database
                    ),
                )
                .ok()
                .and_then(|r| r.rows.first()?.first()?.clone())
                .unwrap_or_default();
                let made = format!("kf_{}", run.run_id);
                let forged = format!("\n{key} {oid} {}", self.s.database);
                let _ = postgres::execute(None, &format!("CREATE DATABASE {made}"));
                let kept = postgres::execute(
                    None,
                    &format!("ALTER DATABASE {made} RENAME TO \"{forged}\""),
                );
                let _ = postgres::execute(None, &format!("DROP DATABASE IF EXISTS \"{forged}\""));
                let _ = postgres::execute(None, &format!("DROP DATABASE IF EXISTS {made}"));
                Ok(vec![("RESULT".into(), outcome(kept))])
            }
            "pg-copy-kept" => {
                let copy = format!("kc_{}", run.run_id);
                let copied = postgres::execute(
                    None,
                    &format!("CREATE DATABASE {copy} TEMPLATE {}", self.s.database),
                );
                let reached = postgres::query(Some(&copy), "SELECT 1");
                let _ = postgres::execute(None, &format!("DROP DATABASE IF EXISTS {copy}"));
                Ok(vec![
                    ("RESULT".into(), outcome(copied)),
                    ("REACHED".into(), outcome(reached)),
                ])
            }
            "pg-rename-hang-up" => {
                // Renamed, then the connection ended before the host could look.
                let into = format!("{}_{}", self.s.database, run.run_id);
                let renamed = postgres::execute(
                    None,
                    &format!(
                        "BEGIN; ALTER DATABASE {} RENAME TO {into}; COMMIT; \
                         SELECT pg_terminate_backend(pg_backend_pid())",
                        self.s.database
                    ),
                );
                let reached = postgres::query(Some(&into), "SELECT current_database()");
                Ok(vec![
                    ("RESULT".into(), outcome(renamed)),
                    ("REACHED".into(), outcome(reached)),
                ])
            }
            "pg-copy-template" => {
                let copy = format!("evil_copy_{}", run.run_id);
                let copied = postgres::execute(
                    None,
                    &format!(
                        "/* a copy */ CREATE DATABASE {copy} WITH \"template\" = '{}'",
                        self.s.database
                    ),
                );
                let reached = postgres::query(Some(&copy), "SELECT current_database()");
                let _ = postgres::execute(None, &format!("DROP DATABASE IF EXISTS {copy}"));
                Ok(vec![
                    ("RESULT".into(), outcome(copied)),
                    ("REACHED".into(), outcome(reached)),
                ])
            }
            "pg-own-databases" => {
                // What a plugin may do: make a database of the run, reach
                // it, and copy it.
                let own = format!("own_{}", run.run_id);
                let copy = format!("own_copy_{}", run.run_id);
                let made = postgres::execute(None, &format!("CREATE DATABASE {own}"));
                let reached = postgres::execute(Some(&own), "CREATE TABLE t (x int)");
                let copied =
                    postgres::execute(None, &format!("CREATE DATABASE {copy} TEMPLATE {own}"));
                let _ = postgres::execute(None, &format!("DROP DATABASE IF EXISTS {copy}"));
                let _ = postgres::execute(None, &format!("DROP DATABASE IF EXISTS {own}"));
                Ok(vec![
                    ("RESULT".into(), outcome(made)),
                    ("REACHED".into(), outcome(reached)),
                    ("COPIED".into(), outcome(copied)),
                ])
            }
            _ => {
                let r = postgres::query(None, "SELECT 1");
                Ok(vec![("RESULT".into(), outcome(r))])
            }
        }
    }

    fn setup_slot(&mut self, _run: &RunInfo, _slot: &Slot) -> Result<Env> {
        Ok(Env::new())
    }
}

partest_plugin_sdk::register!(HostileServices);
