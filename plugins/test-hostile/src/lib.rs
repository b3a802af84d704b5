//! A hostile guest for partest's sandbox tests; `mode` picks the attack.
//! It imports only what is always granted (`log`, `sqlite`, WASI).

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{Env, Error, Plugin, Result, RunInfo, Slot, config, log, sqlite};

#[derive(Deserialize)]
#[serde(crate = "partest_plugin_sdk::serde", deny_unknown_fields)]
struct Settings {
    /// loop-in-setup-slot | alloc-1g | huge-string | trap-in-setup-run |
    /// fail-in-setup-slot | probe | env | fill-scratch | log-flood | log-escape |
    /// sqlite-escape | sqlite-endless-query | none
    mode: String,
    /// `env`: what setup-slot returns, and what it declares.
    #[serde(default)]
    env: Vec<(String, String)>,
    #[serde(default)]
    declare: Vec<String>,
    /// `fill-scratch`: how many MiB to write.
    #[serde(default)]
    mib: u64,
    /// `log-flood`: how many lines to log.
    #[serde(default)]
    lines: u32,
    /// `sqlite-escape`: a directory outside (absolute) with `victim.db` in
    /// it, and a database name the user granted.
    #[serde(default)]
    victim: String,
    #[serde(default)]
    granted: String,
}

struct Hostile {
    s: Settings,
}

/// Names this guest may return in its benign modes.
const OWN_VARS: &[&str] = &[
    "X",
    "HOSTILE_SLOT",
    "PROBE_NET",
    "PROBE_ENV",
    "PROBE_ETC",
    "PROBE_SCRATCH",
    "DANGLING",
    "DIRLINK",
    "DOTDOT",
    "ABSOLUTE",
    "COPY_TARGET",
    "COPY_INTO_LINK",
    "ATTACH",
    "VACUUM_INTO",
    "HOST_LOCATION",
    "HUGE",
    "FILL",
];

/// A symbolic link in the scratch dir (`std::os::wasi::fs::symlink_path` is
/// unstable; this is the stable spelling of the same call).
#[allow(deprecated)]
fn link(target: &str, at: &str) {
    let _ = std::fs::soft_link(target, at);
}

/// `target` relative to the scratch dir: enough `..` to reach `/` from
/// anywhere the host may keep it (wasmtime-wasi refuses absolute targets).
fn climbing(target: &str) -> String {
    format!("{}{}", "../".repeat(40), target.trim_start_matches('/'))
}

/// What a capability call did, as an env value.
fn outcome<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => "allowed".into(),
        Err(Error::Refused(m)) => format!("refused: {m}"),
        Err(e) => format!("failed: {e:?}"),
    }
}

impl Hostile {
    /// Links in scratch pointing outside, then every way the sqlite
    /// capability could be made to follow them or name a path outside.
    fn sqlite_escape(&self) -> Env {
        let victim = &self.s.victim;
        link(
            &climbing(&format!("{victim}/new.db")),
            "/scratch/dangling.db",
        );
        link(&climbing(victim), "/scratch/dir");
        let attacks: Vec<(&str, Result<()>)> = vec![
            (
                "DANGLING",
                sqlite::execute("dangling.db", "CREATE TABLE pwned (x)"),
            ),
            (
                "DIRLINK",
                sqlite::execute("dir/victim.db", "DROP TABLE IF EXISTS t"),
            ),
            (
                "DOTDOT",
                sqlite::execute(&climbing(&format!("{victim}/victim.db")), "DROP TABLE t"),
            ),
            (
                "ABSOLUTE",
                sqlite::execute(&format!("{victim}/victim.db"), "DROP TABLE t"),
            ),
            (
                "COPY_TARGET",
                sqlite::copy_granted(&self.s.granted, &climbing(&format!("{victim}/copy.db"))),
            ),
            (
                "COPY_INTO_LINK",
                sqlite::copy_granted(&self.s.granted, "dir/victim.db"),
            ),
            (
                "ATTACH",
                sqlite::execute(
                    "mine.db",
                    &format!("ATTACH '{victim}/victim.db' AS v; DROP TABLE v.t"),
                ),
            ),
            (
                "VACUUM_INTO",
                sqlite::execute("mine.db", &format!("VACUUM INTO '{victim}/vacuumed.db'")),
            ),
        ];
        let mut env: Env = attacks
            .into_iter()
            .map(|(k, r)| (k.to_string(), outcome(r)))
            .collect();
        env.push((
            "HOST_LOCATION".into(),
            sqlite::host_path("dir/victim.db").unwrap_or_else(|e| format!("{e:?}")),
        ));
        env
    }
}

impl Plugin for Hostile {
    fn configure() -> Result<Self> {
        Ok(Hostile { s: config()? })
    }

    fn env_vars(&self) -> Vec<String> {
        OWN_VARS
            .iter()
            .map(|v| v.to_string())
            .chain(self.s.declare.iter().cloned())
            .collect()
    }

    fn setup_run(&mut self, _run: &RunInfo) -> Result<Env> {
        match self.s.mode.as_str() {
            "trap-in-setup-run" => {
                // Half the work done, then a trap (an out-of-bounds index).
                let half: Vec<u32> = (0..10).collect();
                let i = std::hint::black_box(half.len() + 5);
                Ok(vec![("X".into(), half[i].to_string())])
            }
            "alloc-1g" => {
                let mut v: Vec<u8> = Vec::new();
                v.resize(1 << 30, 1);
                Ok(vec![(
                    "X".into(),
                    v.iter().map(|&b| b as usize).sum::<usize>().to_string(),
                )])
            }
            "huge-string" => Ok(vec![("HUGE".into(), "x".repeat(100 << 20))]),
            "fill-scratch" => {
                let chunk = vec![7u8; 1 << 20];
                let mut file = std::fs::File::create("/scratch/fill")
                    .map_err(|e| Error::failed(format!("create: {e}")))?;
                for _ in 0..self.s.mib {
                    std::io::Write::write_all(&mut file, &chunk)
                        .map_err(|e| Error::failed(format!("write: {e}")))?;
                }
                Ok(Env::new())
            }
            "log-flood" => {
                for i in 0..self.s.lines {
                    log::warn(format!("flood {i}"));
                }
                Ok(Env::new())
            }
            "sqlite-escape" => Ok(self.sqlite_escape()),
            // One statement that builds a huge string in memory, then one
            // that writes far past the scratch quota: each must fail alone.
            "sqlite-huge" => {
                let huge = sqlite::query(
                    "big.db",
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 4000) \
                     SELECT length(group_concat(hex(randomblob(100000)))) FROM c",
                );
                let fill = sqlite::execute(
                    "big.db",
                    "CREATE TABLE IF NOT EXISTS t (b BLOB); \
                     WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 512) \
                     INSERT INTO t SELECT randomblob(200000) FROM c",
                );
                let said = |r: std::result::Result<String, Error>| match r {
                    Ok(v) => format!("ok {v}"),
                    Err(e) => format!("refused {e:?}"),
                };
                Ok(vec![
                    (
                        "HUGE".into(),
                        said(huge.map(|rows| format!("{:?}", rows.rows))),
                    ),
                    ("FILL".into(), said(fill.map(|()| String::new()))),
                ])
            }
            // Terminal control through its words: a forged line, a
            // clipboard write (OSC 52), a screen clear, a reordering mark.
            "log-escape" => {
                log::warn("ok\npartest: all tests passed\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u{202e}");
                Err(Error::failed("failed\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J"))
            }
            _ => Ok(Env::new()),
        }
    }

    fn setup_slot(&mut self, _run: &RunInfo, slot: &Slot) -> Result<Env> {
        match self.s.mode.as_str() {
            "loop-in-setup-slot" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "fail-in-setup-slot" => Err(Error::unavailable("the service is down")),
            "env" => Ok(self.s.env.clone()),
            "sqlite-endless-query" => {
                // CPU-bound inside SQLite, where no epoch check reaches.
                sqlite::query(
                    "endless.db",
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                     SELECT count(*) FROM c",
                )?;
                Ok(Env::new())
            }
            "probe" => {
                // What ambient authority is there? None is expected.
                let net = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
                let env = std::env::vars().count();
                let etc = std::fs::read("/etc/passwd").is_ok();
                let scratch = std::fs::write("/scratch/probe.txt", slot.name.as_bytes()).is_ok();
                Ok(vec![
                    ("PROBE_NET".into(), net.to_string()),
                    ("PROBE_ENV".into(), env.to_string()),
                    ("PROBE_ETC".into(), etc.to_string()),
                    ("PROBE_SCRATCH".into(), scratch.to_string()),
                ])
            }
            _ => Ok(vec![("HOSTILE_SLOT".into(), slot.name.clone())]),
        }
    }
}

partest_plugin_sdk::register!(Hostile);
