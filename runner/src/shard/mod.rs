//! Beyond one machine: `--shard K/N` runs one machine's share of the
//! selection, balanced by recorded durations; `--shard auto` reads K and N
//! from the CI engine; `--shard queue` pulls units from one Redis list that
//! every machine of a CI run shares. Timings travel between machines in a
//! portable JSON file, and `partest merge` joins the machines' JUnit files.

pub mod merge;
pub mod queue;
pub mod split;
pub mod timings;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::model::{ShardMode, parse_fraction};

pub use split::{Unit, assign, units};
pub use timings::Timings;

/// One machine's place among the shards: shard `index` (1-based) of `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// What `--shard auto` found, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    pub shard: Option<Shard>,
    /// The engine and the variables read, or why nothing was found.
    pub source: String,
}

/// Reads the shard from the environment, as `--shard auto` does: an explicit
/// `PARTEST_SHARD=K/N` first (GitHub Actions matrices, anything else), then
/// GitLab, CircleCI, Buildkite and Kubernetes Indexed Jobs.
pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Result<Detected, String> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(v) = get("PARTEST_SHARD") {
        let (index, total) = parse_fraction(&v).map_err(|e| format!("PARTEST_SHARD={e}"))?;
        return Ok(Detected {
            shard: Some(Shard { index, total }),
            source: format!("PARTEST_SHARD={v}"),
        });
    }
    // (engine, index variable, total variable, index is 0-based)
    let engines: [(&str, &str, &str, bool); 4] = [
        ("GitLab CI", "CI_NODE_INDEX", "CI_NODE_TOTAL", false),
        ("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", true),
        (
            "Buildkite",
            "BUILDKITE_PARALLEL_JOB",
            "BUILDKITE_PARALLEL_JOB_COUNT",
            true,
        ),
        (
            "a Kubernetes Indexed Job",
            "JOB_COMPLETION_INDEX",
            "PARTEST_SHARD_TOTAL",
            true,
        ),
    ];
    for (engine, index_var, total_var, zero_based) in engines {
        let Some(index) = get(index_var) else {
            continue;
        };
        let Some(total) = get(total_var) else {
            return Err(format!(
                "{engine}: {index_var}={index} is set but {total_var} is not; set {total_var} to the number of shards"
            ));
        };
        let number = |name: &str, v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{engine}: {name}={v:?} is not a number"))
        };
        let raw = number(index_var, &index)?;
        let n = number(total_var, &total)?;
        let k = if zero_based {
            raw.checked_add(1)
        } else {
            Some(raw)
        };
        let Some(k) = k.filter(|&k| k >= 1 && k <= n) else {
            let range = if zero_based { "0..N-1" } else { "1..N" };
            return Err(format!(
                "{engine}: {index_var}={index} is outside {range} for {total_var}={total}"
            ));
        };
        return Ok(Detected {
            shard: Some(Shard { index: k, total: n }),
            source: format!("{engine} ({index_var}={index}, {total_var}={total})"),
        });
    }
    Ok(Detected {
        shard: None,
        source: "no CI shard variables (PARTEST_SHARD, CI_NODE_INDEX, CIRCLE_NODE_INDEX, \
                 BUILDKITE_PARALLEL_JOB, JOB_COMPLETION_INDEX)"
            .to_string(),
    })
}

/// `detect` on this process's environment.
pub fn detect_from_env() -> Result<Detected, String> {
    detect(&|name| std::env::var(name).ok())
}

/// This command's sharding, resolved: the shard in force (after `auto`),
/// queue mode, and the timings file.
#[derive(Clone, Debug, Default)]
pub struct Sharding {
    /// Run this shard's share of the selection.
    pub shard: Option<Shard>,
    /// Pull units from the shared queue.
    pub queue: bool,
    /// Where the shard came from (`--shard 2/3`, or what `auto` read).
    pub source: String,
    pub timings_path: Option<PathBuf>,
    /// The timings file's contents (empty when it does not exist yet).
    pub timings: Option<Timings>,
    /// `--shard queue`: where the queue is and who this machine is.
    pub queue_options: Option<queue::QueueOptions>,
}

impl Sharding {
    pub fn resolve(settings: &Settings) -> Result<Sharding> {
        let mut sharding = Sharding::default();
        match &settings.shard {
            None => {}
            Some(ShardMode::Static { index, total }) => {
                sharding.shard = Some(Shard {
                    index: *index,
                    total: *total,
                });
                sharding.source = "--shard".into();
            }
            Some(ShardMode::Auto) => {
                let found =
                    detect_from_env().map_err(|e| Error::config(format!("--shard auto: {e}")))?;
                sharding.shard = found.shard;
                sharding.source = found.source;
            }
            Some(ShardMode::Queue) => {
                sharding.queue = true;
                sharding.source = "--shard queue".into();
                sharding.queue_options = Some(queue_options(settings)?);
            }
        }
        if !sharding.queue && (settings.queue.0.is_some() || settings.queue.2.is_some()) {
            return Err(Error::config(
                "--queue and --queue-lease go with --shard queue",
            ));
        }
        if let Some(path) = &settings.timings {
            let timings = Timings::load(path).map_err(Error::config)?;
            sharding.timings = Some(timings);
            sharding.timings_path = Some(path.clone());
        }
        Ok(sharding)
    }

    /// What the tests see as `PARTEST_SHARD`.
    pub fn env_value(&self) -> Option<String> {
        if self.queue {
            return Some("queue".into());
        }
        self.shard.map(|s| s.to_string())
    }

    /// The durations the split is balanced on: the timings file when one
    /// is configured (every machine reads the same one), else `history`.
    pub fn known<'a>(
        &'a self,
        history: &'a crate::history::History,
    ) -> impl Fn(&str) -> Option<Duration> + 'a {
        move |name| match &self.timings {
            Some(t) => t.get(name),
            None => history.expected(name),
        }
    }
}

/// `--queue`, `--queue-run` (else from the CI engine), `--queue-lease`.
fn queue_options(settings: &Settings) -> Result<queue::QueueOptions> {
    let (url, run, lease) = &settings.queue;
    let url = url.clone().ok_or_else(|| {
        Error::config("--shard queue needs --queue redis://host:port/db (or PARTEST_QUEUE)")
    })?;
    if ![
        "redis://",
        "rediss://",
        "valkey://",
        "valkeys://",
        "redis+unix://",
        "unix://",
    ]
    .iter()
    .any(|s| url.starts_with(s))
    {
        return Err(Error::config(format!(
            "--queue {}: expected a redis:// or rediss:// url",
            queue::shown_url(&url)
        )));
    }
    let run = match run {
        Some(run) if !run.trim().is_empty() => run.clone(),
        _ => queue::run_id_from_env(&|n| std::env::var(n).ok())
            .map(|(id, _)| id)
            .ok_or_else(|| {
                Error::config(
                    "--shard queue: no --queue-run ID, and no CI pipeline or build id \
                     (GITHUB_RUN_ID, CI_PIPELINE_ID, CIRCLE_WORKFLOW_ID, BUILDKITE_BUILD_ID) to make one: \
                     pass the same --queue-run to every machine of this run",
                )
            })?,
    };
    let lease = lease.unwrap_or(Duration::from_secs(30));
    if lease < Duration::from_millis(300) {
        return Err(Error::config("--queue-lease: at least 300ms"));
    }
    Ok(queue::QueueOptions {
        url,
        run: queue::clean_run_id(&run),
        lease,
        machine: machine_id(),
    })
}

/// This machine in the queue: its host name, the process, and a few random
/// bits (two containers may share a host name and a pid).
fn machine_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    queue::clean_run_id(&format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        h.finish() as u16
    ))
}

/// FNV-1a: a hash that is the same on every machine and every build, for
/// the split without history.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn detect_with(vars: &[(&str, &str)]) -> Result<Detected, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        detect(&|name| map.get(name).cloned())
    }

    #[test]
    fn modes_parse() {
        assert_eq!("2/3".parse(), Ok(ShardMode::Static { index: 2, total: 3 }));
        assert_eq!("auto".parse(), Ok(ShardMode::Auto));
        assert_eq!("queue".parse(), Ok(ShardMode::Queue));
        for bad in ["0/3", "4/3", "1/0", "x", "1/", "/2", "-1/2"] {
            assert!(bad.parse::<ShardMode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_engine_is_read_with_its_own_base() {
        let shard = |vars: &[(&str, &str)]| detect_with(vars).unwrap().shard.unwrap().to_string();
        assert_eq!(
            shard(&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")]),
            "2/3"
        );
        assert_eq!(
            shard(&[("CIRCLE_NODE_INDEX", "0"), ("CIRCLE_NODE_TOTAL", "4")]),
            "1/4"
        );
        assert_eq!(
            shard(&[
                ("BUILDKITE_PARALLEL_JOB", "3"),
                ("BUILDKITE_PARALLEL_JOB_COUNT", "4")
            ]),
            "4/4"
        );
        assert_eq!(
            shard(&[("JOB_COMPLETION_INDEX", "1"), ("PARTEST_SHARD_TOTAL", "5")]),
            "2/5"
        );
        // An explicit PARTEST_SHARD wins over an engine's variables.
        assert_eq!(
            shard(&[
                ("PARTEST_SHARD", "1/2"),
                ("CI_NODE_INDEX", "2"),
                ("CI_NODE_TOTAL", "3")
            ]),
            "1/2"
        );
        let none = detect_with(&[]).unwrap();
        assert_eq!(none.shard, None);
        // GitLab is 1-based: 0 is out of range; a missing total is named.
        assert!(detect_with(&[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "3")]).is_err());
        let e = detect_with(&[("JOB_COMPLETION_INDEX", "0")]).unwrap_err();
        assert!(e.contains("PARTEST_SHARD_TOTAL"), "{e}");
        assert!(detect_with(&[("PARTEST_SHARD", "3/2")]).is_err());
    }

    #[test]
    fn the_stable_hash_is_fnv1a() {
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
