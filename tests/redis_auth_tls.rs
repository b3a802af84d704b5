//! The built-in redis plugin on private redis-server instances this test
//! starts on spare ports (so the shared server at 6379 is never touched):
//! `rediss://` (with `#insecure`, and verified against a CA given by
//! `SSL_CERT_FILE`), a `requirepass` password and an ACL `user:password` in
//! the url, a wrong password (exit 3, one line, the password shown nowhere),
//! and prefix mode (one shared database, teardown UNLINKs only the run's
//! prefixes, found by SCAN).
//!
//! Without redis-server (or openssl, or a redis-server built without TLS)
//! they skip with the reason, except under CI=true, where they fail.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use partest_e2e::servers::{make_certs, spare_port};
use partest_e2e::*;

/// How a private server is reached.
enum Kind {
    Plain,
    /// TLS only (`--port 0`); the CA that signed its certificate.
    Tls {
        ca: PathBuf,
    },
    /// `--requirepass`, plus the ACL user `alice` with its own password.
    Auth,
}

const DEFAULT_PW: &str = "e2e-default-pw-7f3a";
const ALICE_PW: &str = "e2e-alice-pw-c41d";

/// A redis-server child process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    kind: Kind,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts one on a spare port and waits until it answers. `None` (after
    /// saying why) when this redis-server cannot serve TLS, outside CI.
    fn start(test: &str, kind: Kind) -> Option<Server> {
        let mut dir = tempfile::Builder::new()
            .prefix("partest-e2e-redis-")
            .tempdir()
            .unwrap();
        let mut kind = match kind {
            Kind::Tls { .. } => {
                make_certs(dir.path(), &["ca"]);
                Kind::Tls {
                    ca: dir.path().join("ca.crt"),
                }
            }
            other => other,
        };
        for _attempt in 0..5 {
            let port = spare_port();
            let mut cmd = Command::new("redis-server");
            match &kind {
                Kind::Tls { .. } => {
                    let d = dir.path();
                    cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                        .arg("--tls-cert-file")
                        .arg(d.join("server.crt"))
                        .arg("--tls-key-file")
                        .arg(d.join("server.key"))
                        .arg("--tls-ca-cert-file")
                        .arg(d.join("ca.crt"))
                        .args(["--tls-auth-clients", "no"]);
                }
                Kind::Auth => {
                    cmd.args(["--port", &port.to_string(), "--requirepass", DEFAULT_PW]);
                }
                Kind::Plain => {
                    cmd.args(["--port", &port.to_string()]);
                }
            }
            let log = dir.path().join("server.log");
            let child = cmd
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--databases", "16"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting redis-server");
            let mut server = Server {
                child,
                port,
                kind,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let lower = text.to_ascii_lowercase();
                    if matches!(server.kind, Kind::Tls { .. })
                        && lower.contains("tls")
                        && !lower.contains("address already in use")
                    {
                        let why = format!("this redis-server cannot serve TLS ({status}): {text}");
                        assert!(!in_ci(), "{test}: CI=true but {why}");
                        eprintln!("skipping {test}: {why}");
                        return None;
                    }
                    // Most likely the port was taken meanwhile: another one.
                    eprintln!("{test}: redis-server on {port} exited ({status}): {text}");
                    break;
                }
                if server.cli(&["PING"]) == "PONG" {
                    if let Kind::Auth = server.kind {
                        let ok = server.cli(&[
                            "ACL",
                            "SETUSER",
                            "alice",
                            "on",
                            &format!(">{ALICE_PW}"),
                            "~*",
                            "&*",
                            "+@all",
                        ]);
                        assert_eq!(ok, "OK", "creating the ACL user");
                    }
                    return Some(server);
                }
                assert!(
                    Instant::now() < deadline,
                    "{test}: redis-server on {port} never answered: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            dir = std::mem::replace(&mut server._dir, tempfile::tempdir().unwrap());
            kind = std::mem::replace(&mut server.kind, Kind::Plain);
        }
        panic!("{test}: redis-server did not start on any of 5 spare ports");
    }

    /// The redis-cli arguments that reach this server as its admin.
    fn cli_args(&self) -> Vec<String> {
        let mut args = vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
        ];
        match &self.kind {
            Kind::Tls { ca } => {
                args.extend(["--tls".into(), "--cacert".into(), ca.display().to_string()]);
            }
            Kind::Auth => args.extend(["--no-auth-warning".into(), "-a".into(), DEFAULT_PW.into()]),
            Kind::Plain => {}
        }
        args
    }

    /// Runs one command (on database 0) with redis-cli; its output, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        self.cli_db(0, args)
    }

    fn cli_db(&self, db: u32, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(self.cli_args())
            .args(["-n", &db.to_string()])
            .args(args)
            .output()
            .expect("running redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn dbsize(&self, db: u32) -> i64 {
        let n = self.cli_db(db, &["DBSIZE"]);
        n.parse()
            .unwrap_or_else(|_| panic!("DBSIZE of db {db}: {n:?}"))
    }
}

/// A project of `tests` command tests, run with the redis plugin set to
/// `settings`. Each test records `worker url prefix owner` in log/tN.env,
/// where owner is the database's `partest:owner` key as the test reads it
/// with `cli` (a redis-cli command line reaching the slot's database, with
/// `$db` its number), after writing a key under its prefix.
fn project(settings: &str, tests: usize, cli: &str) -> Project {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!(
            "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {{}}\"\n\n[plugins.redis]\n{settings}\n"
        ),
    );
    for i in 0..tests {
        p.file(
            &format!("t/t{i}.sh"),
            &format!(
                "set -e\n\
                 db=${{REDIS_URL##*/}}; db=${{db%%#*}}; db=${{db%%\\?*}}; db=${{db:-0}}\n\
                 set_ok=$({cli} SET \"${{REDIS_KEY_PREFIX}}t{i}\" 1)\n\
                 [ \"$set_ok\" = OK ] || {{ echo \"SET answered: $set_ok\"; exit 1; }}\n\
                 owner=$({cli} GET partest:owner)\n\
                 echo \"$PARTEST_WORKER $REDIS_URL $REDIS_KEY_PREFIX ${{owner:--}}\" > {log}/t{i}.env\n\
                 sleep 0.3\n",
                log = log.display()
            ),
        );
    }
    p
}

/// (worker, url, prefix, owner) per test.
fn envs(p: &Project) -> Vec<[String; 4]> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p.path().join("log")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "env") {
            let text = std::fs::read_to_string(&path).unwrap();
            let f: Vec<String> = text.split_whitespace().map(str::to_string).collect();
            assert_eq!(f.len(), 4, "{}: {text:?}", path.display());
            out.push([f[0].clone(), f[1].clone(), f[2].clone(), f[3].clone()]);
        }
    }
    out
}

/// The database of a slot url (`.../3`, `.../3#insecure`).
fn db_of(url: &str) -> u32 {
    let tail = url.rsplit('/').next().unwrap();
    let tail = tail.split(['#', '?']).next().unwrap();
    tail.parse()
        .unwrap_or_else(|_| panic!("no database in {url}"))
}

/// Asserts that both slots ran tests, each in one database of `dbs` that
/// its tests saw claimed by their own slot, and that the two differ.
fn assert_distinct_databases(p: &Project, out: &Output, url_start: &str, dbs: &[u32]) {
    let envs = envs(p);
    assert!(!envs.is_empty(), "{}", both(out));
    let mut by_worker = std::collections::BTreeMap::new();
    for [worker, url, prefix, owner] in &envs {
        assert!(url.starts_with(url_start), "{url} (expected {url_start}…)");
        let db = db_of(url);
        assert!(dbs.contains(&db), "{url}: db {db} not in {dbs:?}");
        assert!(
            owner.ends_with(&format!(":{worker}")),
            "db {db} was not claimed by {worker}: owner {owner}"
        );
        assert!(prefix.ends_with(&format!(":{worker}:")), "{prefix}");
        let prev = by_worker.insert(worker.clone(), db);
        assert!(prev.is_none_or(|d| d == db), "{worker} changed database");
    }
    assert_eq!(by_worker.len(), 2, "both slots ran tests: {envs:?}");
    let dbs: Vec<u32> = by_worker.values().copied().collect();
    assert_ne!(dbs[0], dbs[1], "the slots shared a database: {envs:?}");
}

#[test]
fn rediss_urls_work_insecure_and_verified_and_a_bad_certificate_is_exit_3() {
    let test = "rediss_urls_work_insecure_and_verified_and_a_bad_certificate_is_exit_3";
    if !have(test, "redis-server", "--version") || !have(test, "openssl", "version") {
        return;
    }
    let Some(server) = Server::start(test, Kind::Tls { ca: PathBuf::new() }) else {
        return;
    };
    let Kind::Tls { ca } = &server.kind else {
        unreachable!()
    };
    let port = server.port;
    let cli = format!(
        "redis-cli -h 127.0.0.1 -p {port} --tls --cacert {} -n $db",
        ca.display()
    );

    // `#insecure`: the certificate is not checked (self-signed servers).
    let p = project(
        &format!("url = \"rediss://127.0.0.1:{port}/#insecure\"\ndatabases = \"1-2\""),
        4,
        &cli,
    );
    let out = partest(p.path())
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .args(["run", "--plugins", "redis", "-n", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_distinct_databases(&p, &out, &format!("rediss://127.0.0.1:{port}/"), &[1, 2]);
    for [_, url, ..] in envs(&p) {
        assert!(
            url.ends_with("#insecure"),
            "the slot url keeps #insecure: {url}"
        );
    }
    assert_eq!(
        (server.dbsize(1), server.dbsize(2)),
        (0, 0),
        "teardown flushed them"
    );

    // Verified: the CA trusted through SSL_CERT_FILE, no `#insecure`.
    let p = project(
        &format!("url = \"rediss://127.0.0.1:{port}\"\ndatabases = \"3-4\""),
        2,
        &cli,
    );
    let out = partest(p.path())
        .env("SSL_CERT_FILE", ca)
        .env_remove("SSL_CERT_DIR")
        .args(["run", "--plugins", "redis", "-n", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_distinct_databases(&p, &out, &format!("rediss://127.0.0.1:{port}/"), &[3, 4]);
    assert_eq!((server.dbsize(3), server.dbsize(4)), (0, 0));

    // Not trusted and not `#insecure`: exit 3, one line saying why and how.
    let out = partest(p.path())
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .args(["run", "--plugins", "redis", "-n", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_else(|| panic!("no error line: {}", both(&out)));
    assert!(
        line.contains(&format!("rediss://127.0.0.1:{port}"))
            && line.contains("certificate")
            && line.contains("#insecure"),
        "{}",
        both(&out)
    );
    assert_eq!(err.matches("error:").count(), 1, "{}", both(&out));

    // A plain redis:// url on the TLS port says so.
    p.file(
        "partest.toml",
        &format!(
            "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {{}}\"\n\n[plugins.redis]\nurl = \"redis://127.0.0.1:{port}\"\n"
        ),
    );
    let out = p.run(&["run", "--plugins", "redis", "-n", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(stderr(&out).contains("rediss://"), "{}", both(&out));
    assert_eq!(server.cli(&["DBSIZE"]), "0", "database 0 was never used");
}

#[test]
fn passwords_in_the_url_work_and_a_wrong_one_is_exit_3_without_showing_it() {
    let test = "passwords_in_the_url_work_and_a_wrong_one_is_exit_3_without_showing_it";
    if !have(test, "redis-server", "--version") {
        return;
    }
    let server = Server::start(test, Kind::Auth).expect("a plain server always starts");
    let port = server.port;
    // The tests reach their database with the url partest gave them.
    let cli = "redis-cli --no-auth-warning -u \"$REDIS_URL\"";

    // `requirepass`: the default user's password (`redis://:pw@`). redis-cli
    // would send AUTH with an empty user name: the tests name it.
    let url = format!("redis://:{DEFAULT_PW}@127.0.0.1:{port}");
    let default_cli =
        "redis-cli --no-auth-warning -u \"$(echo \"$REDIS_URL\" | sed 's|://:|://default:|')\"";
    let p = project(
        &format!("url = \"{url}\"\ndatabases = \"1-2\""),
        4,
        default_cli,
    );
    let out = p.run(&["run", "--plugins", "redis", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_distinct_databases(&p, &out, &format!("{url}/"), &[1, 2]);
    assert!(!both(&out).contains(DEFAULT_PW), "{}", both(&out));
    assert_eq!((server.dbsize(1), server.dbsize(2)), (0, 0));

    // An ACL user: `redis://user:password@`.
    let url = format!("redis://alice:{ALICE_PW}@127.0.0.1:{port}");
    let p = project(&format!("url = \"{url}\"\ndatabases = \"3-4\""), 4, cli);
    let out = p.run(&["run", "--plugins", "redis", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_distinct_databases(&p, &out, &format!("{url}/"), &[3, 4]);
    assert!(!both(&out).contains(ALICE_PW), "{}", both(&out));
    assert_eq!((server.dbsize(3), server.dbsize(4)), (0, 0));
    let inspect = p.run(&["plugins", "inspect", "redis"]);
    assert_eq!(inspect.status.code(), Some(0), "{}", both(&inspect));
    assert!(
        stdout(&inspect).contains(&format!("redis://alice:***@127.0.0.1:{port}")),
        "{}",
        both(&inspect)
    );
    assert!(!both(&inspect).contains(ALICE_PW), "{}", both(&inspect));

    // A wrong password: exit 3, one line naming the server, no password.
    let wrong = "e2e-wrong-pw-90b2";
    let settings = format!("url = \"redis://alice:{wrong}@127.0.0.1:{port}\"\ndatabases = \"5-6\"");
    let p = project(&settings, 2, cli);
    for format in ["human", "json"] {
        let out = p.run(&[
            "run",
            "--plugins",
            "redis",
            "-n",
            "2",
            "--message-format",
            format,
        ]);
        assert_eq!(out.status.code(), Some(3), "{}", both(&out));
        assert!(
            !both(&out).contains(wrong),
            "the password leaked: {}",
            both(&out)
        );
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(lines.len(), 1, "{}", both(&out));
        assert!(
            lines[0].contains(&format!("redis://alice:***@127.0.0.1:{port}"))
                && lines[0].contains("refused the credentials"),
            "{}",
            both(&out)
        );
        assert!(envs(&p).is_empty(), "no test ran");
    }

    // No password for a server that wants one: exit 3, saying where it goes.
    let p = project(
        &format!("url = \"redis://127.0.0.1:{port}\"\ndatabases = \"5-6\""),
        1,
        cli,
    );
    let out = p.run(&["run", "--plugins", "redis", "-n", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("requires a password"),
        "{}",
        both(&out)
    );
    assert_eq!(
        (server.dbsize(0), server.dbsize(5), server.dbsize(6)),
        (0, 0, 0)
    );
}

#[test]
fn prefix_mode_shares_one_database_and_teardown_unlinks_only_the_runs_keys() {
    let test = "prefix_mode_shares_one_database_and_teardown_unlinks_only_the_runs_keys";
    if !have(test, "redis-server", "--version") {
        return;
    }
    let server = Server::start(test, Kind::Plain).expect("a plain server always starts");
    let port = server.port;
    // What is not partest's, and what another run left: both must survive.
    for db in [0, 3] {
        assert_eq!(server.cli_db(db, &["SET", "keep:me", "precious"]), "OK");
        assert_eq!(
            server.cli_db(db, &["SET", "partest:e2eother:gw0:kept", "theirs"]),
            "OK"
        );
    }

    // The url's database (none: 0, then 3) is shared by every slot.
    for (url, db) in [
        (format!("redis://127.0.0.1:{port}"), 0),
        (format!("redis://127.0.0.1:{port}/3"), 3),
    ] {
        let p = Project::new();
        let log = p.log_dir();
        p.file(
            "partest.toml",
            &format!(
                "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {{}}\"\n\n[plugins.redis]\nurl = \"{url}\"\nmode = \"prefix\"\n"
            ),
        );
        for i in 0..4 {
            // More keys than one SCAN page (COUNT 1000) under each prefix,
            // then what this test sees under its prefix, in its database.
            p.file(
                &format!("t/t{i}.sh"),
                &format!(
                    "set -e\n\
                     cli=\"redis-cli -u $REDIS_URL\"\n\
                     seq 1 700 | sed \"s/.*/SET ${{REDIS_KEY_PREFIX}}t{i}:& 1/\" | $cli > /dev/null\n\
                     n=$($cli --scan --pattern \"${{REDIS_KEY_PREFIX}}t{i}:*\" | wc -l)\n\
                     all=$($cli --scan --pattern \"${{REDIS_KEY_PREFIX}}*\" | wc -l)\n\
                     echo \"$PARTEST_WORKER $REDIS_URL $REDIS_KEY_PREFIX $n $all\" > {log}/t{i}.env\n\
                     sleep 0.3\n",
                    log = log.display()
                ),
            );
        }
        let out = p.run(&["run", "--plugins", "redis", "-n", "2"]);
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));

        let mut prefixes = std::collections::BTreeMap::new();
        for e in std::fs::read_dir(&log).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let f: Vec<&str> = text.split_whitespace().collect();
            let (worker, slot_url, prefix, n, all) = (f[0], f[1], f[2], f[3], f[4]);
            assert_eq!(slot_url, url, "prefix mode hands out the url as it is");
            assert!(
                prefix.starts_with("partest:") && prefix.ends_with(&format!(":{worker}:")),
                "{prefix}"
            );
            assert_eq!(n, "700", "{worker} saw its keys under {prefix}");
            assert!(all.parse::<u32>().unwrap() >= 700, "{text}");
            let prev = prefixes.insert(worker.to_string(), prefix.to_string());
            assert!(prev.is_none_or(|p| p == prefix), "{worker} changed prefix");
        }
        assert_eq!(prefixes.len(), 2, "both slots ran tests: {prefixes:?}");
        let p: Vec<&String> = prefixes.values().collect();
        assert_ne!(p[0], p[1], "the slots shared a prefix");

        let left = server.cli_db(db, &["--scan", "--pattern", "partest:*"]);
        assert_eq!(
            left, "partest:e2eother:gw0:kept",
            "only the other run's key remains in db {db}"
        );
        assert_eq!(server.cli_db(db, &["GET", "keep:me"]), "precious");
        assert_eq!(server.dbsize(db), 2, "db {db}");
    }
    for db in (1..16).filter(|d| *d != 3) {
        assert_eq!(server.dbsize(db), 0, "prefix mode used db {db}");
    }
}
