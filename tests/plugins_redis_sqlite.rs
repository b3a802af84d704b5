//! The built-in redis and sqlite plugins on a real Redis and real SQLite
//! files: distinct databases and files per slot, foreign data left alone,
//! dead runs reclaimed, nothing left after a passing, a failing and an
//! interrupted run, and a clean exit 3 when Redis is down.
//!
//! Each test that needs Redis starts its own redis-server on a spare port
//! (tests/support/servers.rs), so it can count on empty databases whoever
//! else uses the machine's Redis. Without redis-server they skip, except
//! under CI=true, where they fail.

use std::time::{Duration, Instant};

use partest_e2e::servers::Redis;
use partest_e2e::*;

/// A project whose command tests record their slot's env and write to the
/// slot's Redis database and SQLite file (with python3's redis package).
fn project(server: &Redis, databases: &str, test_count: usize, body: &str) -> Project {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!(
            "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {{}}\"\n\n[plugins.redis]\nurl = \"{}\"\ndatabases = \"{databases}\"\n\n[plugins.sqlite]\n",
            server.url()
        ),
    );
    for i in 0..test_count {
        p.file(
            &format!("t/t{i}.sh"),
            &format!(
                "echo \"$PARTEST_WORKER $REDIS_URL $PARTEST_SQLITE_PATH $REDIS_KEY_PREFIX $DATABASE_URL\" > {log}/t{i}.env\n\
                 python3 - <<'EOF'\n\
import os, redis, sqlite3\n\
r = redis.Redis.from_url(os.environ['REDIS_URL'])\n\
r.set(os.environ['REDIS_KEY_PREFIX'] + 't{i}', 1)\n\
db = sqlite3.connect(os.environ['PARTEST_SQLITE_PATH'])\n\
db.execute('CREATE TABLE IF NOT EXISTS t (n INTEGER)')\n\
db.execute('INSERT INTO t VALUES ({i})')\n\
db.commit()\n\
EOF\n\
                 {body}\n",
                log = log.display()
            ),
        );
    }
    p
}

/// (worker, redis url, sqlite path, prefix, database url) per test.
fn envs(p: &Project) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p.path().join("log")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "env") {
            let text = std::fs::read_to_string(path).unwrap();
            out.push(text.split_whitespace().map(str::to_string).collect());
        }
    }
    out
}

/// The slot files left in the sqlite plugin's scratch dir.
fn slot_files(p: &Project) -> Vec<String> {
    let dir = p.path().join(".partest/plugins/sqlite");
    files_under(&dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

fn db_of(url: &str) -> u32 {
    url.rsplit('/').next().unwrap().parse().unwrap()
}

#[test]
fn slots_get_their_own_database_and_file_and_nothing_remains() {
    let Some(server) = Redis::start("slots_get_their_own_database_and_file_and_nothing_remains")
    else {
        return;
    };
    let p = project(&server, "5-6", 4, "sleep 0.3");
    let out = p.run(&["run", "--plugins", "redis,sqlite", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let envs = envs(&p);
    assert_eq!(envs.len(), 4, "{envs:?}");
    let mut by_worker = std::collections::BTreeMap::new();
    for e in &envs {
        let (worker, url, path, prefix, database_url) = (&e[0], &e[1], &e[2], &e[3], &e[4]);
        assert!(url.starts_with(&format!("{}/", server.url())), "{url}");
        assert!([5, 6].contains(&db_of(url)), "{url}");
        assert!(path.ends_with(&format!("/test_{worker}.db")), "{path}");
        assert!(path.contains("/.partest/plugins/sqlite/"), "{path}");
        // sqlite:////abs/path: the absolute form SQLAlchemy reads as meant.
        assert_eq!(database_url, &format!("sqlite:///{path}"));
        if let Some((backend, database)) = sqlalchemy_reads(database_url) {
            assert_eq!(
                (backend.as_str(), database.as_str()),
                ("sqlite", path.as_str())
            );
        }
        assert!(
            prefix.starts_with("partest:") && prefix.ends_with(&format!(":{worker}:")),
            "{prefix}"
        );
        let prev = by_worker.insert(worker.clone(), (url.clone(), path.clone()));
        assert!(
            prev.is_none_or(|p| p == (url.clone(), path.clone())),
            "a slot's env changed"
        );
    }
    assert_eq!(by_worker.len(), 2, "both slots ran tests: {envs:?}");
    let (a, b): (Vec<_>, Vec<_>) = by_worker.values().cloned().unzip();
    assert_ne!(a[0], a[1], "the slots shared a Redis database");
    assert_ne!(b[0], b[1], "the slots shared a SQLite file");
    assert_eq!(
        (server.dbsize(5), server.dbsize(6)),
        (0, 0),
        "teardown flushes the claimed databases"
    );
    assert_eq!(slot_files(&p), Vec::<String>::new(), "no slot file remains");
}

#[test]
fn a_database_with_foreign_keys_is_skipped_and_keeps_them() {
    let Some(server) = Redis::start("a_database_with_foreign_keys_is_skipped_and_keeps_them")
    else {
        return;
    };
    let keys = ["e2e-foreign:a", "e2e-foreign:b", "e2e-foreign:c"];
    for k in keys {
        server.cli(7, &["SET", k, "precious"]);
    }
    let p = project(&server, "7-8", 2, "true");
    let out = p.run(&["run", "--plugins", "redis,sqlite", "-n", "1"]);
    let kept: Vec<String> = keys.iter().map(|k| server.cli(7, &["GET", k])).collect();
    let second = p.run(&["run", "--plugins", "redis,sqlite", "-n", "2"]);
    let kept_after_refusal: Vec<String> = keys.iter().map(|k| server.cli(7, &["GET", k])).collect();

    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        stderr(&out).contains("redis db 7 holds 3 key(s) partest did not write"),
        "{}",
        both(&out)
    );
    for e in envs(&p) {
        assert_eq!(db_of(&e[1]), 8, "{e:?}");
    }
    assert_eq!(kept, ["precious"; 3], "the foreign keys were touched");
    // Two slots, one free database: the run stops before any test, exit 3,
    // naming the database and its key count.
    assert_eq!(second.status.code(), Some(3), "{}", both(&second));
    assert!(
        stderr(&second).contains("no free redis database")
            && stderr(&second).contains("db 7 holds 3 key(s)"),
        "{}",
        both(&second)
    );
    assert_eq!(kept_after_refusal, ["precious"; 3]);
    assert_eq!(server.dbsize(8), 0, "the claimed database was flushed");
    assert_eq!(slot_files(&p), Vec::<String>::new());
}

#[test]
fn a_database_owned_by_a_dead_run_is_reclaimed() {
    let Some(server) = Redis::start("a_database_owned_by_a_dead_run_is_reclaimed") else {
        return;
    };
    let runs = tempfile::tempdir().unwrap();
    // A run whose process is gone (pid beyond pid_max): dead.
    std::fs::write(runs.path().join("e2edead1"), "4194303 5\n").unwrap();
    server.cli(11, &["SET", "partest:owner", "e2edead1:gw0"]);
    server.cli(11, &["SET", "partest:e2edead1:gw0:left", "over"]);
    let p = project(&server, "11-11", 1, "true");
    let out = partest(p.path())
        .env("PARTEST_RUNS_DIR", runs.path())
        .args(["run", "--plugins", "redis,sqlite", "-n", "1"])
        .output()
        .unwrap();
    let left = server.dbsize(11);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(db_of(&envs(&p)[0][1]), 11);
    assert_eq!(left, 0, "reclaimed, used and flushed");

    // Owned by a live run (this test process): not touched, exit 3.
    std::fs::write(runs.path().join("e2elive1"), live_run_entry()).unwrap();
    server.cli(11, &["SET", "partest:owner", "e2elive1:gw0"]);
    let out = partest(p.path())
        .env("PARTEST_RUNS_DIR", runs.path())
        .args(["run", "--plugins", "redis", "-n", "1"])
        .output()
        .unwrap();
    let owner = server.cli(11, &["GET", "partest:owner"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("owned by run e2elive1"),
        "{}",
        both(&out)
    );
    assert_eq!(owner, "e2elive1:gw0");
}

#[test]
fn failed_and_interrupted_runs_leave_nothing_behind() {
    let Some(server) = Redis::start("failed_and_interrupted_runs_leave_nothing_behind") else {
        return;
    };
    let dbsize = |db| server.dbsize(db);
    let p = project(&server, "9-10", 2, "exit 1");
    let out = p.run(&["run", "--plugins", "redis,sqlite", "-n", "2"]);
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    assert_eq!(envs(&p).len(), 2, "{}", both(&out));
    assert_eq!((dbsize(9), dbsize(10)), (0, 0));
    assert_eq!(slot_files(&p), Vec::<String>::new());

    // SIGINT while both slots are in a test that wrote its key and file.
    let p = project(&server, "9-10", 2, "sleep 30");
    let child = partest(p.path())
        .args(["run", "--plugins", "redis,sqlite", "-n", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Generous: on a loaded machine plugin loading alone can take seconds.
    let deadline = Instant::now() + Duration::from_secs(120);
    while dbsize(9) + dbsize(10) < 4 {
        if Instant::now() >= deadline {
            // SAFETY: stopping the partest process we spawned, to show why.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let out = child.wait_with_output().unwrap();
            panic!("the tests never wrote their keys:\n{}", both(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        slot_files(&p).iter().filter(|f| f.ends_with(".db")).count(),
        2
    );
    // SAFETY: sending SIGINT to the partest process we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", both(&out));
    assert_eq!((dbsize(9), dbsize(10)), (0, 0), "{}", both(&out));
    assert_eq!(slot_files(&p), Vec::<String>::new());
}

#[test]
fn keep_on_failure_keeps_and_prints_the_slot_files() {
    let p = Project::new();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n\n[plugins.sqlite]\nkeep-on-failure = true\nurl = \"file:{path}\"\nvar = \"DB\"\n",
    );
    p.file(
        "t/a.sh",
        "echo x > \"$PARTEST_SQLITE_PATH\"; case \"$DB\" in file:/*) exit 1;; esac\n",
    );
    let out = p.run(&["run", "--plugins", "sqlite", "-n", "1"]);
    assert_eq!(out.status.code(), Some(100), "{}", both(&out));
    let files = slot_files(&p);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        stderr(&out).contains(&format!("kept gw0 for the failed run: {}", files[0])),
        "{}",
        both(&out)
    );
}

#[test]
fn a_template_database_is_cloned_into_every_slot() {
    let p = Project::new();
    let log = p.log_dir();
    // A WAL-mode template with a row, written by the "migration".
    let made = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3; db = sqlite3.connect('tmpl.db'); db.execute('PRAGMA journal_mode=WAL'); \
             db.execute('CREATE TABLE m (v TEXT)'); db.execute(\"INSERT INTO m VALUES ('migrated')\"); db.commit()",
        )
        .current_dir(p.path())
        .status()
        .unwrap();
    assert!(made.success());
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n\n[plugins.sqlite]\ntemplate = \"tmpl.db\"\n",
    );
    for i in 0..2 {
        p.file(
            &format!("t/t{i}.sh"),
            &format!(
                "python3 -c \"import os, sqlite3; print(sqlite3.connect(os.environ['PARTEST_SQLITE_PATH']).execute('SELECT v FROM m').fetchone()[0])\" > {}/t{i}.out\n\
                 sleep 0.2\n",
                log.display()
            ),
        );
    }
    let out = p.run(&["run", "--plugins", "sqlite", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    for i in 0..2 {
        let got = std::fs::read_to_string(log.join(format!("t{i}.out"))).unwrap();
        assert_eq!(got.trim(), "migrated");
    }
    assert!(p.path().join("tmpl.db").is_file(), "the template stays");
    assert_eq!(slot_files(&p), Vec::<String>::new());

    // The template is the only file outside the scratch dir it may read.
    p.file("partest.toml", "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n\n[plugins.sqlite]\ntemplate = \"missing.db\"\n");
    let out = p.run(&["run", "--plugins", "sqlite"]);
    assert_ne!(out.status.code(), Some(0), "{}", both(&out));
    assert!(stderr(&out).contains("missing.db"), "{}", both(&out));
}

#[test]
fn unreachable_redis_fails_cleanly_with_exit_3() {
    let p = Project::new();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n\n[plugins.redis]\nurl = \"redis://127.0.0.1:1\"\n\n[plugins.sqlite]\n",
    );
    p.file("t/a.sh", "true\n");
    let run = p.run_json(&["run", "--plugins", "sqlite,redis"]);
    assert_eq!(run.code(), Some(3), "{}", run.both());
    assert!(
        run.stderr().contains(
            "cannot reach redis at redis://127.0.0.1:1: connection refused — is redis-server running?"
        ),
        "{}",
        run.both()
    );
    assert_eq!(
        run.of_type("test-started").count(),
        0,
        "no test ran: {}",
        run.both()
    );
    assert_eq!(
        slot_files(&p),
        Vec::<String>::new(),
        "sqlite's setup-run was undone"
    );
}

#[test]
fn the_redis_range_caps_the_workers_in_the_report() {
    let p = Project::new();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n\n[plugins.redis]\ndatabases = \"3-3\"\n",
    );
    for i in 0..4 {
        p.file(&format!("t/t{i}.sh"), "true\n");
    }
    let out = p.run(&["report"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains("plugin redis"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains(" 1 ") && line.contains("◀ binds"),
        "{}",
        both(&out)
    );
    assert!(stdout(&out).contains("workers = 1"), "{}", both(&out));
}

/// A project whose tests, on their slot's own server, pick database 15 and
/// FLUSHALL it, as suites written for one developer's Redis do.
fn server_mode_project(test_count: usize, body: &str) -> Project {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n\n[plugins.redis]\nmode = \"server\"\n",
    );
    for i in 0..test_count {
        p.file(
            &format!("t/t{i}.sh"),
            &format!(
                "echo \"$REDIS_PORT $REDIS_URL\" > {log}/t{i}.port\n\
                 python3 - <<'EOF'\n\
import os, redis, time\n\
r = redis.Redis(host=os.environ['REDIS_HOST'], port=int(os.environ['REDIS_PORT']), db=15)\n\
r.flushall()\n\
r.set('mine', '{i}')\n\
time.sleep(0.3)\n\
assert r.get('mine') == b'{i}', r.get('mine')\n\
assert r.dbsize() == 1, r.dbsize()\n\
EOF\n\
                 {body}\n",
                log = log.display()
            ),
        );
    }
    p
}

/// The ports the tests' servers listened on, from what they wrote.
fn server_ports(p: &Project) -> std::collections::BTreeSet<u16> {
    let mut ports = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(p.path().join("log")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "port") {
            let text = std::fs::read_to_string(path).unwrap();
            let (port, url) = text.trim().split_once(' ').unwrap();
            assert_eq!(url, format!("redis://127.0.0.1:{port}/0"));
            ports.insert(port.parse().unwrap());
        }
    }
    ports
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn server_mode_gives_each_slot_a_server_of_its_own_and_stops_it() {
    if !servers::have_redis_server("server_mode_gives_each_slot_a_server_of_its_own_and_stops_it") {
        return;
    }
    let p = server_mode_project(8, "true");
    let run = p.run_json(&["run", "--plugins", "redis", "-n", "4"]);
    assert_eq!(run.code(), Some(0), "{}", run.both());
    assert_eq!(run.counts().passed, 8, "{}", run.both());
    assert_eq!(
        run.started().workers,
        4,
        "no 16-database cap: {}",
        run.both()
    );
    let ports = server_ports(&p);
    assert_eq!(ports.len(), 4, "a server per slot: {ports:?}");
    for port in &ports {
        assert!(!listening(*port), "the server on {port} outlived the run");
    }

    // Killed outright mid-test: the servers die with partest.
    let p = server_mode_project(2, "sleep 30");
    let mut child = partest(p.path())
        .args(["run", "--plugins", "redis", "-n", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while server_ports(&p).len() < 2 {
        assert!(Instant::now() < deadline, "the tests never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ports = server_ports(&p);
    assert!(ports.iter().all(|&port| listening(port)), "{ports:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ports.iter().any(|&port| listening(port)) {
        assert!(
            Instant::now() < deadline,
            "a server outlived the SIGKILLed partest: {ports:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_server_program_outside_server_mode_is_a_config_error() {
    let p = Project::new();
    p.file(
        "partest.toml",
        "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {}\"\n\n[plugins.redis]\nserver = \"redis-server\"\n",
    );
    p.file("t/a.sh", "true\n");
    let out = p.run(&["run", "--plugins", "redis"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("mode = \"server\""), "{}", both(&out));
}
