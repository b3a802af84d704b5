//! The `redis` and `postgres` capabilities against real servers on
//! 127.0.0.1 (6379 and 5432, user postgres). Skipped, with a note, when a
//! server is not reachable.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use partest::config::{self, Config};
use partest::isolation::wasm::{self, PluginHost};
use partest::isolation::{Lifecycle, RunInfo};
use partest::model::{Env, Slot};

fn reachable(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(300)).is_ok()
}

/// `text` as `dir`'s partest.toml, written and parsed.
fn written_config(dir: &std::path::Path, text: &str) -> Config {
    let path = dir.join("partest.toml");
    std::fs::write(&path, text).unwrap();
    Config {
        root: dir.into(),
        invoked_in: dir.into(),
        file: config::parse(text, &path).unwrap(),
        path: Some(path),
        text: text.to_string(),
    }
}

/// The variables the test guests report through (what they declare).
const SERVICES_ENV: &str =
    r#""GOT", "SCANNED", "PG_DB", "PG_NULL", "PG_URL", "INCR", "FLUSHALL", "REDIS_URL""#;
const EVIL_ENV: &str = r#""EVAL", "EVAL_RO", "EVALSHA", "FCALL", "FUNCTION", "SCRIPT", "MIGRATE", "SWAPDB", "CLIENT_PAUSE", "CLIENT_KILL", "CONFIG", "MODULE", "DEBUG", "SAVE", "BGSAVE", "SHUTDOWN", "REPLICAOF", "FLUSHALL", "RESULT", "IN_MULTI", "APPENDED", "STOPPED", "REACHED", "COPIED""#;

#[test]
fn redis_and_postgres_capabilities_reach_only_the_granted_servers() {
    if !reachable("127.0.0.1:6379") || !reachable("127.0.0.1:5432") {
        eprintln!("skipped: no Redis on 127.0.0.1:6379 or no PostgreSQL on 127.0.0.1:5432");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[plugins.services]\npath = {:?}\nallow-superuser = true\nallow = {{ env = [{SERVICES_ENV}], redis = \"redis://127.0.0.1:6379\", postgres = \"postgres://postgres@127.0.0.1:5432/postgres\" }}\n",
        wasm::test_guest("test-services").display().to_string()
    );
    let config = written_config(dir.path(), &text);
    let state = dir.path().join(".partest");
    let host = PluginHost::new(dir.path(), &state).unwrap();
    let lc = Lifecycle::new(
        host.load_providers(&config, &["services".to_string()])
            .unwrap(),
    );
    let run_id = format!("t{}", std::process::id());
    let run = RunInfo {
        run_id: run_id.clone(),
        workers: 2,
        root: dir.path().into(),
        state_dir: state,
        setup: None,
    };
    let env = lc.setup_run(&run).unwrap();
    let get = |env: &[(String, String)], k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get(&env, "GOT"), "hello");
    assert_eq!(get(&env, "SCANNED"), "1");
    assert_eq!(get(&env, "PG_DB"), format!("partest_test_{run_id}"));
    assert_eq!(get(&env, "PG_NULL"), "None");
    assert_eq!(
        get(&env, "PG_URL"),
        format!("postgres://postgres@127.0.0.1:5432/partest_test_{run_id}")
    );
    for i in 0..2 {
        let env = lc.setup_slot(&Slot::new(i)).unwrap();
        assert_eq!(get(&env, "INCR"), "Int(1)");
        assert_eq!(get(&env, "FLUSHALL"), "refused");
    }
    let errors = lc.teardown(false);
    assert!(errors.is_empty(), "{errors:?}");

    // Without the grant, the plugin does not load.
    let text = format!(
        "[plugins.services]\npath = {:?}\nallow = {{ env = [{SERVICES_ENV}], redis = \"redis://127.0.0.1:6379\" }}\n",
        wasm::test_guest("test-services").display().to_string()
    );
    let config = written_config(dir.path(), &text);
    let err = host
        .load(&config, &["services".to_string()])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("`postgres` capability") && err.contains("allow = { postgres = "),
        "{err}"
    );
}

/// The hostile services guest in `mode` with `table` (grants, limits),
/// loaded and set up: what its setup-run returned (or its error), and how
/// long that took.
fn hostile_services(mode: &str, table: &str) -> (Result<Env, String>, Duration) {
    let dir = tempfile::tempdir().unwrap();
    hostile_in(dir.path(), None, mode, table)
}

/// [`hostile_services`] in the project at `dir` (its state kept there
/// from run to run), for a run whose set-up is kept under `setup_key`.
fn hostile_in(
    dir: &std::path::Path,
    setup_key: Option<&str>,
    mode: &str,
    table: &str,
) -> (Result<Env, String>, Duration) {
    // The variables it reports through, granted as a user grants them.
    let table = match table.find("allow = {") {
        Some(at) => format!(
            "{}allow = {{ env = [{EVIL_ENV}],{}",
            &table[..at],
            &table[at + "allow = {".len()..]
        ),
        None => format!("{table}\nallow = {{ env = [{EVIL_ENV}] }}"),
    };
    let text = format!(
        "[plugins.evil]\npath = {:?}\nmode = {mode:?}\n{table}\n",
        wasm::test_guest("test-hostile-services")
            .display()
            .to_string()
    );
    let config = written_config(dir, &text);
    let state = dir.join(".partest");
    let host = PluginHost::with_cache_dir(dir, &state, None).unwrap();
    let lc = Lifecycle::new(host.load_providers(&config, &["evil".into()]).unwrap());
    let run = RunInfo {
        run_id: format!("s{}", std::process::id()),
        workers: 1,
        root: dir.into(),
        state_dir: state,
        setup: setup_key.map(|key| partest::isolation::SetupCache {
            key: key.to_string(),
            reuse: false,
        }),
    };
    let start = Instant::now();
    let env = lc.setup_run(&run).map_err(|e| e.to_string());
    let took = start.elapsed();
    lc.teardown(env.is_err());
    (env, took)
}

fn result_of(env: &Result<Env, String>) -> String {
    match env {
        Ok(env) => env
            .iter()
            .find(|(k, _)| k == "RESULT")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        Err(e) => e.clone(),
    }
}

/// A private redis-server on a spare port, killed when dropped: attacks
/// that would FLUSHALL never go near a shared server.
struct PrivateRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start() -> Option<PrivateRedis> {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = match Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("skipped: cannot start redis-server: {e}");
                    return None;
                }
            };
            let mut server = PrivateRedis {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.child.try_wait() {
                    break;
                }
                if server.connection().is_some() {
                    return Some(server);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("redis-server did not start on any of 5 spare ports");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client.get_connection().ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn redis_scripting_and_administration_are_refused_and_the_victim_keeps_its_data() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let mut conn = server.connection().unwrap();
    for db in [0, 1] {
        redis::cmd("SELECT").arg(db).query::<()>(&mut conn).unwrap();
        redis::cmd("SET")
            .arg("victim")
            .arg(format!("precious-{db}"))
            .query::<()>(&mut conn)
            .unwrap();
    }
    let (env, _) = hostile_services(
        "redis-commands",
        // The postgres grant is never used in this mode.
        &format!(
            "allow = {{ redis = \"{}\", postgres = \"postgres://nobody@127.0.0.1:1/none\" }}",
            server.url()
        ),
    );
    let env = env.unwrap();
    for (name, outcome) in &env {
        assert!(
            outcome.starts_with("refused: plugins may not send the Redis command"),
            "{name} was not refused: {outcome}"
        );
    }
    assert!(env.len() >= 18, "{env:?}");
    // Nothing happened: both databases keep their key, the server is up
    // and answers, nothing is paused or replicated.
    let mut conn = server.connection().expect("the server is still up");
    for db in [0, 1] {
        redis::cmd("SELECT").arg(db).query::<()>(&mut conn).unwrap();
        let v: String = redis::cmd("GET").arg("victim").query(&mut conn).unwrap();
        assert_eq!(v, format!("precious-{db}"));
    }
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).unwrap();
    assert_eq!(
        role.first(),
        Some(&redis::Value::BulkString(b"master".to_vec()))
    );
}

/// The shared PostgreSQL server, when there is one.
fn postgres_up() -> bool {
    let up = reachable("127.0.0.1:5432");
    assert!(
        up || std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but no PostgreSQL on 127.0.0.1:5432"
    );
    if !up {
        eprintln!("skipped: no PostgreSQL on 127.0.0.1:5432");
    }
    up
}

const PG_SUPERUSER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The hostile services guest in `mode`, granted the shared server at
/// `postgres` (and a Redis server it never reaches), with `extra` keys.
fn hostile_on(postgres: &str, mode: &str, extra: &str) -> (Result<Env, String>, Duration) {
    hostile_services(
        mode,
        &format!(
            "{extra}\nallow = {{ redis = \"redis://127.0.0.1:1\", postgres = \"{postgres}\" }}"
        ),
    )
}

/// [`hostile_on`] the shared server as its superuser: what it reported.
fn against_postgres(mode: &str, extra: &str) -> (String, Duration) {
    let (env, took) = hostile_on(PG_SUPERUSER, mode, extra);
    (result_of(&env), took)
}

#[test]
fn a_custom_plugin_is_refused_a_superuser_grant_with_the_sql_for_a_lesser_role() {
    if !postgres_up() {
        return;
    }
    let (result, _) = against_postgres("pg-query", "");
    assert!(result.starts_with("refused"), "{result}");
    assert!(
        result.contains("superuser")
            && result.contains("CREATE ROLE partest_plugin LOGIN PASSWORD '...' CREATEDB;")
            && result.contains("allow-superuser = true"),
        "{result}"
    );
}

#[test]
fn a_statement_that_catches_its_cancel_is_ended_with_its_connection() {
    if !postgres_up() {
        return;
    }
    let (result, took) = against_postgres(
        "pg-catch-cancel",
        "allow-superuser = true\nlimits = { setup-run-timeout = \"2s\" }",
    );
    // The call fails (the plugin's own error, or stopped at its limit).
    assert!(
        result.starts_with("failed") || result.contains("stopped"),
        "{result}"
    );
    assert!(
        took < Duration::from_secs(8),
        "the call took {took:?} against a 2 s limit and a 1 s grace: {result}"
    );
    // Its server process was ended (a terminated backend takes a moment).
    let mut client = postgres::Client::connect(PG_SUPERUSER, postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let still: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(29)%' \
                 AND pid <> pg_backend_pid() AND state = 'active'",
                &[],
            )
            .unwrap()
            .get(0);
        if still == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server still runs the plugin's statement"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Roles a custom plugin must not be given, made for the test (dropped after).
#[test]
fn roles_that_can_become_a_superuser_or_reach_the_servers_files_are_refused() {
    if !postgres_up() {
        return;
    }
    let mut admin = postgres::Client::connect(PG_SUPERUSER, postgres::NoTls).unwrap();
    let tag = format!("pt{}", std::process::id());
    let roles = [
        (
            "member_of_su",
            format!("GRANT postgres TO {tag}_member_of_su"),
        ),
        (
            "files",
            format!("GRANT pg_write_server_files TO {tag}_files"),
        ),
        (
            "creates_roles",
            format!("ALTER ROLE {tag}_creates_roles CREATEROLE"),
        ),
        (
            "owner",
            format!("CREATE DATABASE {tag}_owned OWNER {tag}_owner"),
        ),
        // Named like partest's own, but not this run's: owned all the same.
        (
            "owns_partest",
            format!("CREATE DATABASE partest_{tag}_leftover OWNER {tag}_owns_partest"),
        ),
        ("plain", String::new()),
    ];
    for (role, extra) in &roles {
        admin
            .batch_execute(&format!("CREATE ROLE {tag}_{role} LOGIN CREATEDB"))
            .unwrap();
        if !extra.is_empty() {
            admin.batch_execute(extra).unwrap();
        }
    }
    let mut results = Vec::new();
    for (role, _) in &roles {
        let url = format!("postgres://{tag}_{role}@127.0.0.1:5432/postgres");
        let (env, _) = hostile_on(&url, "pg-query", "");
        results.push((*role, result_of(&env)));
    }
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {tag}_owned"));
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS partest_{tag}_leftover"));
    for (role, _) in &roles {
        let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {tag}_{role}"));
    }
    for (role, result) in &results {
        let expected = match *role {
            "member_of_su" => Some("a member of postgres"),
            "files" => Some("a member of pg_write_server_files"),
            "creates_roles" => Some("CREATEROLE"),
            "owner" | "owns_partest" => Some("the owner of"),
            _ => None,
        };
        match expected {
            Some(says) => assert!(
                result.starts_with("refused") && result.contains(says),
                "{role}: {result}"
            ),
            None => assert!(!result.starts_with("refused"), "{role}: {result}"),
        }
    }
}

#[test]
fn a_plugin_reaches_no_other_database_than_granted_or_its_runs() {
    if !postgres_up() {
        return;
    }
    let (result, _) = against_postgres(
        "pg-other-database",
        "database = \"template1\"\nallow-superuser = true",
    );
    assert!(
        result.starts_with("refused") && result.contains("may not reach database \"template1\""),
        "{result}"
    );
}

/// What the hostile guest set `name` to.
fn var(env: &Result<Env, String>, name: &str) -> String {
    match env {
        Ok(env) => env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        Err(e) => e.clone(),
    }
}

/// The databases whose names start with `prefix`.
fn databases_like(admin: &mut postgres::Client, prefix: &str) -> Vec<String> {
    admin
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
            &[&prefix],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A database renamed into the run's names is renamed back and the call
/// fails: by dynamic SQL a reading of the text cannot see, or on a
/// connection the plugin hangs up right after (the host looks on a
/// connection of its own). One renamed so by someone else is still no
/// database of the run's, even when a temporary `pg_database` on the
/// plugin's connection shows it appearing. Even with a superuser grant: what a plugin
/// reaches is the host's to say.
#[test]
fn a_database_renamed_into_the_runs_names_stays_out_of_reach() {
    if !postgres_up() {
        return;
    }
    let mut admin = postgres::Client::connect(PG_SUPERUSER, postgres::NoTls).unwrap();
    let run_id = format!("s{}", std::process::id());
    for mode in [
        "pg-rename-into-reach",
        "pg-rename-hang-up",
        "pg-other-database",
        "pg-spoof-catalog",
    ] {
        let victim = format!("pt{}_{}", std::process::id(), mode.replace('-', "_"));
        let mut setup = vec![
            format!("DROP DATABASE IF EXISTS {victim}"),
            format!("CREATE DATABASE {victim}"),
        ];
        // Renamed into the run's names before the run, by someone else.
        let target = if matches!(mode, "pg-other-database" | "pg-spoof-catalog") {
            setup.push(format!(
                "ALTER DATABASE {victim} RENAME TO {victim}_{run_id}"
            ));
            format!("{victim}_{run_id}")
        } else {
            victim.clone()
        };
        for sql in &setup {
            admin.batch_execute(sql).unwrap();
        }
        let (env, _) = hostile_on(
            PG_SUPERUSER,
            mode,
            &format!("database = {target:?}\nallow-superuser = true"),
        );
        let (result, reached) = (var(&env, "RESULT"), var(&env, "REACHED"));
        let names = databases_like(&mut admin, &victim);
        for name in &names {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"));
        }
        if matches!(mode, "pg-other-database" | "pg-spoof-catalog") {
            assert!(
                result.starts_with("refused") && result.contains("not made through"),
                "{mode}: {result}"
            );
            if mode == "pg-spoof-catalog" {
                assert_eq!(reached, "allowed", "the spoof itself ran");
            }
        } else {
            assert!(
                result.starts_with("refused") && result.contains("renamed back"),
                "{mode}: {result}"
            );
            assert_eq!(
                names,
                vec![victim.clone()],
                "{mode}: the victim keeps its name"
            );
            assert!(!reached.starts_with("allowed"), "{mode}: {reached}");
        }
    }
}

/// Only template0, template1 and the run's own databases are copied, even
/// a database marked as a template that any role with CREATEDB may copy,
/// and however the option is spelled.
#[test]
fn create_database_copies_only_the_runs_own_databases() {
    if !postgres_up() {
        return;
    }
    let mut admin = postgres::Client::connect(PG_SUPERUSER, postgres::NoTls).unwrap();
    let tag = format!("pt{}_copy", std::process::id());
    let victim = format!("{tag}_victim");
    for sql in [
        format!("DROP DATABASE IF EXISTS {victim}"),
        format!("CREATE DATABASE {victim} IS_TEMPLATE true"),
        format!("DROP ROLE IF EXISTS {tag}_plain"),
        format!("CREATE ROLE {tag}_plain LOGIN CREATEDB"),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
    let mut results = Vec::new();
    for grant in [
        format!("postgres://{tag}_plain@127.0.0.1:5432/postgres"),
        PG_SUPERUSER.to_string(),
    ] {
        let (env, _) = hostile_on(
            &grant,
            "pg-copy-template",
            &format!("database = {victim:?}\nallow-superuser = true"),
        );
        results.push((grant, var(&env, "RESULT"), var(&env, "REACHED")));
    }
    let left = databases_like(&mut admin, "evil_copy_");
    for name in &left {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"));
    }
    for sql in [
        format!("ALTER DATABASE {victim} IS_TEMPLATE false"),
        format!("DROP DATABASE IF EXISTS {victim}"),
        format!("DROP ROLE IF EXISTS {tag}_plain"),
    ] {
        let _ = admin.batch_execute(&sql);
    }
    for (grant, copied, reached) in &results {
        assert!(
            copied.starts_with("refused") && copied.contains("copies only template0"),
            "{grant}: {copied}"
        );
        assert!(!reached.starts_with("allowed"), "{grant}: {reached}");
    }
    assert!(left.is_empty(), "copies made: {left:?}");
}

/// What isolation needs still works for a role that owns nothing: make a
/// database of the run, reach it, copy it.
#[test]
fn a_plugin_makes_reaches_and_copies_its_own_databases() {
    if !postgres_up() {
        return;
    }
    let mut admin = postgres::Client::connect(PG_SUPERUSER, postgres::NoTls).unwrap();
    let role = format!("pt{}_maker", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN CREATEDB"
        ))
        .unwrap();
    let url = format!("postgres://{role}@127.0.0.1:5432/postgres");
    let (env, _) = hostile_on(&url, "pg-own-databases", "");
    let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
    for name in ["RESULT", "REACHED", "COPIED"] {
        assert_eq!(var(&env, name), "allowed", "{name}: {env:?}");
    }
}

/// The functions the host ends a statement with cannot be shadowed by a
/// search_path the plugin set on its database.
#[test]
fn a_plugin_cannot_shadow_how_the_host_ends_its_statement() {
    if !postgres_up() {
        return;
    }
    let (result, took) = against_postgres(
        "pg-hijack-kill",
        "allow-superuser = true\nlimits = { setup-run-timeout = \"2s\" }",
    );
    assert!(
        took < Duration::from_secs(8),
        "the call took {took:?} against a 2 s limit and a 1 s grace: {result}"
    );
    let mut admin = postgres::Client::connect(PG_SUPERUSER, postgres::NoTls).unwrap();
    for name in databases_like(&mut admin, &format!("hijack_s{}", std::process::id())) {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// A query that replaces its measured result, or measures with a function
/// of its own, is still refused past the boundary limit.
#[test]
fn a_query_cannot_swap_or_shadow_what_the_host_measures() {
    if !postgres_up() {
        return;
    }
    let (env, _) = hostile_on(
        PG_SUPERUSER,
        "pg-query-swap",
        "allow-superuser = true\nlimits = { boundary = \"1MiB\", setup-run-timeout = \"20s\" }",
    );
    let (swapped, measured) = (var(&env, "RESULT"), var(&env, "REACHED"));
    assert!(
        swapped.starts_with("refused") && swapped.contains("one SELECT"),
        "{swapped}"
    );
    assert!(
        measured.starts_with("refused") && measured.contains("over the plugin's boundary limit"),
        "{measured}"
    );
}

/// A database the plugin made and renamed under the set-up key is one a
/// later run may copy; one that only carries the key in its name is not,
/// nor one named in a forged line of partest's notes.
#[test]
fn only_a_database_the_plugin_kept_is_copied_as_its_set_up() {
    if !postgres_up() {
        return;
    }
    let mut admin = postgres::Client::connect(PG_SUPERUSER, postgres::NoTls).unwrap();
    let key = format!("{:08x}0123456789abcdef", std::process::id());
    let (kept, planted) = (format!("kp_{key}"), format!("kv_{key}"));
    for sql in [
        format!("DROP DATABASE IF EXISTS {kept}"),
        format!("DROP DATABASE IF EXISTS {planted}"),
        format!("CREATE DATABASE {planted} IS_TEMPLATE true"),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
    let project = tempfile::tempdir().unwrap();
    let run = |mode: &str, database: &str| {
        let table = format!(
            "database = {database:?}\nallow-superuser = true\n\
             allow = {{ redis = \"redis://127.0.0.1:1\", postgres = \"{PG_SUPERUSER}\" }}"
        );
        hostile_in(project.path(), Some(&key), mode, &table).0
    };
    let keep = run("pg-keep", &kept);
    let reuse = run("pg-copy-kept", &kept);
    let copy_planted = run("pg-copy-kept", &planted);
    // Kept under a name that would forge a line of the notes.
    let forged = run("pg-keep-forged", &planted);
    let copy_after_forging = run("pg-copy-kept", &planted);
    for sql in [
        format!("DROP DATABASE IF EXISTS {kept}"),
        format!("ALTER DATABASE {planted} IS_TEMPLATE false"),
        format!("DROP DATABASE IF EXISTS {planted}"),
    ] {
        let _ = admin.batch_execute(&sql);
    }
    assert_eq!(var(&keep, "RESULT"), "allowed", "{keep:?}");
    assert_eq!(var(&reuse, "RESULT"), "allowed", "{reuse:?}");
    assert_eq!(var(&reuse, "REACHED"), "allowed", "{reuse:?}");
    for copied in [&copy_planted, &copy_after_forging] {
        let refused = var(copied, "RESULT");
        assert!(
            refused.starts_with("refused") && refused.contains("copies only template0"),
            "{refused}"
        );
    }
    let forged = var(&forged, "RESULT");
    assert!(
        forged.starts_with("refused") && forged.contains("control"),
        "{forged}"
    );
}

/// A client_encoding the plugin set does not make the host read a query
/// as one statement while the server runs several.
#[test]
fn a_query_is_read_in_the_encoding_the_server_reads_it() {
    if !postgres_up() {
        return;
    }
    let (env, _) = hostile_on(
        PG_SUPERUSER,
        "pg-query-encoding",
        "allow-superuser = true\nlimits = { boundary = \"1MiB\" }",
    );
    let (read, size) = (var(&env, "RESULT"), var(&env, "REACHED"));
    let bytes: usize = size
        .trim_end_matches(" bytes")
        .parse()
        .unwrap_or(usize::MAX);
    assert!(bytes < 1000, "the swapped view was read: {read} / {size}");
}

/// A database whose name is not UTF-8 (made from a LATIN1 database) is no
/// reason for the host to stop: the plugin's calls go on.
#[test]
fn a_database_name_that_is_not_utf8_does_not_stop_the_host() {
    if !postgres_up() {
        return;
    }
    let mut admin = postgres::Client::connect(PG_SUPERUSER, postgres::NoTls).unwrap();
    let latin = format!("pt{}_latin1", std::process::id());
    let odd = format!("pt{}_\u{e9}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {latin}"),
        format!(
            "CREATE DATABASE {latin} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
        ),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
    let mut in_latin = postgres::Client::connect(
        &format!("postgres://postgres@127.0.0.1:5432/{latin}"),
        postgres::NoTls,
    )
    .unwrap();
    // Stored as LATIN1 bytes; a UTF-8 session reads them back unconverted.
    in_latin
        .batch_execute(&format!("CREATE DATABASE \"{odd}\""))
        .unwrap();
    drop(in_latin);
    let (result, _) = against_postgres("pg-query", "allow-superuser = true");
    // Dropped the way it was made, then the LATIN1 database.
    if let Ok(mut in_latin) = postgres::Client::connect(
        &format!("postgres://postgres@127.0.0.1:5432/{latin}"),
        postgres::NoTls,
    ) {
        let _ = in_latin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{odd}\""));
    }
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {latin}"));
    assert_eq!(result, "allowed", "{result}");
}

#[test]
fn pg_sleep_is_cancelled_at_the_deadline_whatever_the_plugin_sets() {
    if !postgres_up() {
        return;
    }
    let (result, took) = against_postgres(
        "pg-sleep",
        "allow-superuser = true\nlimits = { setup-run-timeout = \"2s\" }",
    );
    assert!(
        took < Duration::from_secs(12),
        "the call took {took:?} against a 2 s limit: {result}"
    );
    assert!(
        result.contains("partest cancelled it") || result.contains("did not return within"),
        "{result}"
    );
    // The server is not still sleeping for the plugin.
    let mut client = postgres::Client::connect(PG_SUPERUSER, postgres::NoTls).unwrap();
    let still: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' \
             AND state = 'active' AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(still, 0, "the plugin's pg_sleep still runs on the server");
}

/// This process's peak resident memory so far, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_query_result_over_the_boundary_limit_is_refused_before_it_arrives() {
    if !postgres_up() {
        return;
    }
    let before = peak_rss_kib();
    // 300 MiB of rows against the default boundary limit.
    let (result, _) = against_postgres(
        "pg-huge-result",
        "allow-superuser = true\nlimits = { setup-run-timeout = \"20s\" }",
    );
    assert!(
        result.starts_with("refused") && result.contains("limits.boundary"),
        "{result}"
    );
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(
        grown < 100 * 1024,
        "the host grew {grown} KiB on a refused result"
    );
}

#[test]
fn a_plugin_cannot_grow_a_redis_server_without_end_nor_read_a_value_past_its_limit() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let (env, _) = hostile_services(
        "redis-grow",
        &format!(
            "allow = {{ redis = \"{}\", postgres = \"postgres://nobody@127.0.0.1:1/none\" }}\n\
             limits = {{ setup-run-timeout = \"30s\" }}",
            server.url()
        ),
    );
    let env = env.unwrap();
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // 4 × the 16 MiB boundary: 16 appends of 4 MiB, then refused.
    let appended: usize = get("APPENDED").parse().unwrap();
    assert!(appended <= 16, "{appended} appends of 4 MiB went through");
    assert!(get("STOPPED").contains("budget"), "{}", get("STOPPED"));
    // The value is over the boundary limit: refused before it is read.
    assert!(
        get("RESULT").starts_with("refused") && get("RESULT").contains("did not read it"),
        "{}",
        get("RESULT")
    );
    let mut conn = server.connection().unwrap();
    let len: usize = redis::cmd("STRLEN").arg("grown").query(&mut conn).unwrap();
    assert!(len <= 64 << 20, "the server holds {len} bytes");
}
