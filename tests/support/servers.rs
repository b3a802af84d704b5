//! Private servers for the end-to-end tests: a redis-server and a
//! PostgreSQL cluster on spare ports, in temp dirs, owned by one test and
//! gone when it ends, so that a test can assume what they hold (nothing
//! but its own runs' data) and stop or restart them mid-run. The machine's
//! shared servers are never touched.
//!
//! Without redis-server (or initdb/pg_ctl, or root to run them as the
//! `postgres` user) the constructors return None after saying why, except
//! under CI=true, where they panic.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{both, in_ci, stdout};

/// A port nobody listens on right now.
pub fn spare_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a spare port");
    l.local_addr().expect("a bound address").port()
}

/// Skips (None, with the reason) or, under CI, fails.
fn unavailable<T>(test: &str, why: &str) -> Option<T> {
    assert!(!in_ci(), "{test}: CI=true but {why}");
    eprintln!("skipping {test}: {why}");
    None
}

/// A plain redis-server on 127.0.0.1 (16 databases, no persistence but an
/// explicit `SAVE`), killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether redis-server is on PATH; without it `test` skips (fails in CI).
pub fn have_redis_server(test: &str) -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found
        || unavailable::<()>(
            test,
            "no redis-server on PATH (apt-get install redis-server)",
        )
        .is_some()
}

impl Redis {
    /// Starts one on a spare port and waits until it answers.
    pub fn start(test: &str) -> Option<Redis> {
        if !have_redis_server(test) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("partest-e2e-redis-")
            .tempdir()
            .expect("temp dir");
        let mut server = Redis {
            child: None,
            port: 0,
            dir,
        };
        for _attempt in 0..5 {
            server.port = spare_port();
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("{test}: redis-server did not start on any of 5 spare ports");
    }

    /// Starts the server on its port (again); whether it answers.
    fn spawn(&mut self) -> bool {
        let log = self.dir.path().join("server.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--databases", "16"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::fs::File::create(&log).expect("server log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                // Most likely the port was taken meanwhile.
                self.child = None;
                return false;
            }
            if self.cli(0, &["PING"]) == "PONG" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on {} never answered: {}",
            self.port,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One command on database `db` with redis-cli; its output, trimmed.
    pub fn cli(&self, db: u32, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-n", &db.to_string()])
            .args(args)
            .output()
            .expect("running redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn dbsize(&self, db: u32) -> i64 {
        let n = self.cli(db, &["DBSIZE"]);
        n.parse()
            .unwrap_or_else(|_| panic!("DBSIZE of db {db}: {n:?}"))
    }

    /// Every key of every database, as `db:key`.
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for db in 0..16 {
            let out = self.cli(db, &["--scan"]);
            keys.extend(
                out.lines()
                    .filter(|k| !k.is_empty())
                    .map(|k| format!("{db}:{k}")),
            );
        }
        keys.sort();
        keys
    }

    /// Saves what it holds and stops (as a server shut down for
    /// maintenance); [`Redis::restart`] brings it back with that data.
    pub fn shutdown_saving(&mut self) {
        self.cli(0, &["SHUTDOWN", "SAVE"]);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Kills it (its data is lost, unless saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with what it last saved.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server did not restart on {}",
            self.port
        );
    }
}

/// initdb's directory, or why there is none.
pub fn pg_bin() -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no /usr/lib/postgresql/*/bin with initdb and pg_ctl".into())
}

/// A private PostgreSQL cluster: trust on 127.0.0.1 and its own socket
/// dir, `fsync = off`; stopped (immediately) when dropped.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    running: bool,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        }
    }
}

/// One initialised data directory per test process, copied for each
/// cluster (initdb takes seconds; a copy, milliseconds).
fn template(bin: &Path) -> &'static Path {
    static TEMPLATE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("partest-e2e-pgtemplate-")
            .tempdir()
            .expect("temp dir")
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        chown_postgres(&dir);
        let data = dir.join("data");
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("running initdb");
        assert!(out.status.success(), "initdb: {}", both(&out));
        // Removed when the test process exits (statics are not dropped).
        remove_at_exit(dir.clone());
        data
    })
}

/// Directories removed by an atexit handler.
fn remove_at_exit(dir: PathBuf) {
    static DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    extern "C" fn remove_all() {
        if let Ok(dirs) = DIRS.lock() {
            for d in dirs.iter() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
    let mut dirs = DIRS.lock().unwrap();
    if dirs.is_empty() {
        // SAFETY: registering a plain extern "C" fn with no arguments.
        unsafe { libc::atexit(remove_all) };
    }
    dirs.push(dir);
}

/// Gives `path` (recursively) to the postgres user, for a cluster's files.
pub fn chown_postgres(path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("chown");
    assert!(ok.success(), "chown postgres {}", path.display());
}

impl Postgres {
    /// A new cluster on a spare port, started.
    pub fn start(test: &str) -> Option<Postgres> {
        let bin = match pg_bin() {
            // SAFETY: geteuid has no preconditions.
            Ok(_) if unsafe { libc::geteuid() } != 0 => {
                return unavailable(test, "not root: initdb must run as the postgres user");
            }
            Ok(bin) => bin,
            Err(e) => return unavailable(test, &e),
        };
        let template = template(&bin);
        let dir = tempfile::Builder::new()
            .prefix("partest-e2e-pg-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ok = Command::new("cp")
            .arg("-a")
            .arg(template)
            .arg(dir.path().join("data"))
            .status()
            .expect("cp");
        assert!(ok.success(), "copying the template cluster");
        chown_postgres(dir.path());
        let mut server = Postgres {
            bin,
            dir,
            port: 0,
            running: false,
        };
        for _attempt in 0..5 {
            server.port = spare_port();
            if server.configure_and_start() {
                return Some(server);
            }
        }
        panic!("{test}: PostgreSQL did not start on any of 5 spare ports");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(args)
            .output()
            .expect("running pg_ctl")
    }

    fn configure_and_start(&mut self) -> bool {
        let conf = self.data().join("postgresql.auto.conf");
        std::fs::write(
            &conf,
            format!(
                "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 max_connections = 40\nshared_buffers = 16MB\nfsync = off\n\
                 synchronous_commit = off\nfull_page_writes = off\n",
                self.port,
                self.dir.path().display()
            ),
        )
        .unwrap();
        chown_postgres(&conf);
        self.start_again()
    }

    /// Starts the stopped cluster; whether it came up.
    fn start_again(&mut self) -> bool {
        let log = self.dir.path().join("server.log");
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .expect("running pg_ctl");
        if out.status.success() {
            self.running = true;
            return true;
        }
        eprintln!(
            "pg_ctl start on {}: {}{}",
            self.port,
            both(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        false
    }

    /// `postgresql://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `sql` as postgres; its output, trimmed.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(self.url())
            .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("running psql");
        assert!(out.status.success(), "psql {sql:?}: {}", both(&out));
        stdout(&out).trim().to_string()
    }

    /// Every database but the three initdb made.
    pub fn databases(&self) -> Vec<String> {
        let out = self.psql(
            "SELECT datname FROM pg_database \
             WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY 1",
        );
        out.lines().map(str::to_string).collect()
    }

    /// Stops it (`fast`: open connections are ended, as in a restart).
    pub fn stop(&mut self) {
        let out = self.pg_ctl(&["-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", both(&out));
        self.running = false;
    }

    /// Starts it again on the same port, with its data.
    pub fn restart(&mut self) {
        if self.running {
            self.stop();
        }
        assert!(self.start_again(), "PostgreSQL did not restart");
    }
}

/// `openssl args` in `dir`; panics with its output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", both(&out));
}

/// In `dir`: a self-signed CA per name in `cas` (`NAME.crt`, `NAME.key`)
/// and `server.crt`/`server.key` for 127.0.0.1 and localhost, signed by
/// the first of them.
pub fn make_certs(dir: &Path, cas: &[&str]) {
    let key = ["-newkey", "rsa:2048", "-nodes"];
    for ca in cas {
        openssl(
            dir,
            &[
                &["req", "-x509"][..],
                &key,
                &["-days", "2", "-subj", &format!("/CN=partest e2e {ca}")],
                &[
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.crt"),
                ],
            ]
            .concat(),
        );
    }
    openssl(
        dir,
        &[
            &["req"][..],
            &key,
            &["-subj", "/CN=localhost"],
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write ext.cnf");
    let signer = cas.first().expect("a CA to sign the server certificate");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{signer}.crt"),
            "-CAkey",
            &format!("{signer}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
}
