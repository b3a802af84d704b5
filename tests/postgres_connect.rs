//! How partest's own connection reaches PostgreSQL, on a private server this
//! test starts (initdb + pg_ctl as the `postgres` user, a spare port, so the
//! shared server at 5432 is never touched): TCP only over TLS (`hostssl`,
//! scram-sha-256) and a unix socket with trust. A password in the url with
//! sslmode=require, a wrong password (exit 3, one line, never shown), a unix
//! socket url, and sslmode=verify-full against the CA in sslrootcert or
//! SSL_CERT_FILE, and against a wrong CA (exit 3); prefer (the default) and
//! allow end up on TLS there too.
//!
//! Without initdb/pg_ctl (or openssl, or root to run them as `postgres`)
//! it skips with the reason, except under CI=true, where it fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use partest_e2e::servers::{chown_postgres, make_certs, pg_bin};
use partest_e2e::*;

const PASSWORD: &str = "e2e-pg-secret-5b9e";

fn usable(test: &str) -> Option<PathBuf> {
    let why = match pg_bin() {
        // SAFETY: geteuid has no preconditions.
        Ok(_) if unsafe { libc::geteuid() } != 0 => {
            "not root: initdb must run as the postgres user".to_string()
        }
        Ok(bin) => match Command::new("openssl").arg("version").output() {
            Ok(o) if o.status.success() => return Some(bin),
            other => format!("`openssl version` failed: {other:?}"),
        },
        Err(e) => e,
    };
    assert!(!in_ci(), "{test}: CI=true but {why}");
    eprintln!("skipping {test}: {why}");
    None
}

/// Runs `program args` as the postgres user; panics with its output on failure.
fn as_postgres(bin: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .args(args)
        .output()
        .expect("running runuser");
    assert!(out.status.success(), "{program} {args:?}: {}", both(&out));
    stdout(&out)
}

/// A private PostgreSQL cluster, stopped (immediately) when dropped, even
/// when the test panics.
struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    running: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

impl Server {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.crt")
    }

    fn wrong_ca(&self) -> PathBuf {
        self.dir.path().join("certs/wrong-ca.crt")
    }

    fn start(bin: PathBuf) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("partest-pg-")
            .tempdir()
            .unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        make_certs(&certs, &["ca", "wrong-ca"]);
        // Readable by the test (psql as root) and the server alike.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
        chown_postgres(dir.path());
        let mut server = Server {
            bin,
            dir,
            port: 0,
            running: false,
        };
        let data = server.data();
        as_postgres(
            &server.bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--no-sync",
            ],
        );
        // TCP only over TLS, with the password; the socket trusted.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        for f in ["server.crt", "server.key"] {
            std::fs::copy(certs.join(f), data.join(f)).unwrap();
        }
        chown_postgres(&data);
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let base = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        for _attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            std::fs::write(
                data.join("postgresql.conf"),
                format!(
                    "{base}\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
                     unix_socket_directories = '{}'\nssl = on\n\
                     ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                     max_connections = 30\nshared_buffers = 16MB\nfsync = off\n",
                    server.socket_dir().display()
                ),
            )
            .unwrap();
            let log = server.dir.path().join("server.log");
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(server.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"])
                .output()
                .expect("running pg_ctl");
            if out.status.success() {
                server.port = port;
                server.running = true;
                return server;
            }
            // Most likely the port was taken meanwhile: another one.
            eprintln!(
                "pg_ctl start on {port}: {}{}",
                both(&out),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("PostgreSQL did not start on any of 5 spare ports");
    }

    /// `sql` through the unix socket as postgres; its output, trimmed.
    fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg("-h")
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("running psql");
        assert!(out.status.success(), "psql {sql:?}: {}", both(&out));
        stdout(&out).trim().to_string()
    }
}

/// Two tests that record, through psql on their slot's `DATABASE_URL`,
/// their database, whether their connection uses SSL, and the url.
fn project(url: &str) -> Project {
    let p = Project::new();
    let log = p.log_dir();
    p.file(
        "partest.toml",
        &format!(
            "[command]\ntests = [\"t/*.sh\"]\nrun = \"sh {{}}\"\n\n[plugins.postgres]\nurl = \"{url}\"\n"
        ),
    );
    for i in 0..2 {
        p.file(
            &format!("t/t{i}.sh"),
            &format!(
                "set -e\n\
                 [ -n \"${{SSL_CERT_FILE:-}}\" ] && export PGSSLROOTCERT=\"$SSL_CERT_FILE\"\n\
                 seen=$(psql \"$DATABASE_URL\" -XAtq -v ON_ERROR_STOP=1 -c \
                 \"select current_database() || ' ' || coalesce((select ssl::text from pg_stat_ssl where pid = pg_backend_pid()), 'no-row')\")\n\
                 echo \"$seen $DATABASE_URL\" > {log}/t{i}.seen\n",
                log = log.display()
            ),
        );
    }
    p
}

/// (database, ssl, url) per test.
fn seen(p: &Project) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = std::fs::read_dir(p.path().join("log"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seen"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .collect();
    out.sort();
    out
}

fn run(p: &Project, env: &[(&str, &Path)]) -> Output {
    let mut cmd = partest(p.path());
    cmd.env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env("HOME", p.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["run", "--plugins", "postgres", "-n", "2"])
        .output()
        .expect("running partest")
}

/// Both tests passed, each in a slot database of this run, with `ssl`.
fn assert_passed(p: &Project, out: &Output, ssl: &str, url_has: &str) {
    assert_eq!(out.status.code(), Some(0), "{}", both(out));
    let seen = seen(p);
    assert_eq!(seen.len(), 2, "{seen:?}\n{}", both(out));
    for row in &seen {
        assert!(row[0].starts_with("partest_"), "a slot database: {row:?}");
        assert_eq!(row[1], ssl, "ssl of the test's connection: {row:?}");
        assert!(row[2].contains(url_has), "{url_has} in {row:?}");
    }
}

/// The one error line of a failed run: exit 3, naming the server, with `has`.
fn assert_exit_3(out: &Output, has: &[&str]) -> String {
    assert_eq!(out.status.code(), Some(3), "{}", both(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "one error line: {}", both(out));
    for h in has {
        assert!(lines[0].contains(h), "{h:?} in {:?}", lines[0]);
    }
    assert!(
        !both(out).contains(PASSWORD),
        "the password leaked: {}",
        both(out)
    );
    eprintln!("exit 3: {}", lines[0]);
    lines[0].to_string()
}

#[test]
fn tls_password_unix_socket_and_verified_urls_connect_like_libpq() {
    let test = "tls_password_unix_socket_and_verified_urls_connect_like_libpq";
    let Some(bin) = usable(test) else {
        return;
    };
    let server = Server::start(bin);
    let port = server.port;
    let tcp = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres");

    // (a) A password and sslmode=require over a TLS-only pg_hba.conf.
    let p = project(&format!("{tcp}?sslmode=require"));
    let out = run(&p, &[]);
    assert_passed(&p, &out, "true", "sslmode=require");
    assert!(!stdout(&out).contains(PASSWORD), "{}", both(&out));
    assert_eq!(
        server.psql("select count(*) from pg_database where datname like 'partest\\_%'"),
        "0",
        "teardown dropped the run's databases"
    );

    // No sslmode (prefer): TLS, since the server offers it. allow: plain
    // first, then TLS when pg_hba.conf has no entry for plain (as libpq).
    for (query, shown) in [("", "@127.0.0.1:"), ("?sslmode=allow", "sslmode=allow")] {
        let p = project(&format!("{tcp}{query}"));
        let out = run(&p, &[]);
        assert_passed(&p, &out, "true", shown);
    }

    // (b) A wrong password: exit 3, one line, the password nowhere.
    let wrong = "e2e-wrong-pw-91c2";
    let p = project(&format!(
        "postgres://postgres:{wrong}@127.0.0.1:{port}/postgres?sslmode=require"
    ));
    let out = run(&p, &[]);
    let line = assert_exit_3(
        &out,
        &[
            &format!("postgres://postgres:***@127.0.0.1:{port}"),
            "password",
        ],
    );
    assert!(!both(&out).contains(wrong), "the password leaked: {line}");

    // (c) A unix socket directory in the url (trust; TLS is never used there).
    let socket = server.socket_dir().display().to_string();
    let p = project(&format!(
        "postgres://postgres@/postgres?host={socket}&port={port}"
    ));
    let out = run(&p, &[]);
    assert_passed(&p, &out, "false", &format!("host={socket}"));

    // (d) verify-full: the CA in sslrootcert, then in SSL_CERT_FILE.
    let ca = server.ca();
    let p = project(&format!(
        "{tcp}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    ));
    let out = run(&p, &[]);
    assert_passed(&p, &out, "true", "sslmode=verify-full");

    // psql in the tests needs the CA too: libpq reads ~/.postgresql/root.crt.
    let p = project(&format!("{tcp}?sslmode=verify-full"));
    std::fs::create_dir_all(p.path().join(".postgresql")).unwrap();
    std::fs::copy(&ca, p.path().join(".postgresql/root.crt")).unwrap();
    let out = run(&p, &[]);
    assert_passed(&p, &out, "true", "sslmode=verify-full");
    std::fs::remove_file(p.path().join(".postgresql/root.crt")).unwrap();
    let out = run(&p, &[("SSL_CERT_FILE", &ca)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "CA from SSL_CERT_FILE: {}",
        both(&out)
    );

    // A CA that did not sign the server's certificate: exit 3, saying so.
    let p = project(&format!(
        "{tcp}?sslmode=verify-full&sslrootcert={}",
        server.wrong_ca().display()
    ));
    let out = run(&p, &[]);
    assert_exit_3(
        &out,
        &["certificate", "wrong-ca.crt", "sslmode=verify-full"],
    );
    let p = project(&format!("{tcp}?sslmode=verify-full"));
    let out = run(&p, &[("SSL_CERT_FILE", &server.wrong_ca())]);
    assert_exit_3(&out, &["certificate", "SSL_CERT_FILE"]);
}
