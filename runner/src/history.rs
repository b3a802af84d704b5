//! Past durations and outcomes, in `.partest/history.db`, used to start the
//! longest tests first and to size pytest batches. History only makes runs
//! faster: a corrupt, locked or unwritable file is reported and ignored.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::model::Status;

/// How much one run moves a test's expected duration (exponential average).
const WEIGHT_OF_NEWEST: f64 = 0.5;

#[derive(Default)]
pub struct History {
    path: Option<PathBuf>,
    expected: HashMap<String, Duration>,
    /// How long each pytest file took to import and collect.
    collect: HashMap<String, Duration>,
    /// The tests whose last run failed (failed, timed out or crashed).
    failed_last: HashSet<String>,
    /// Durations from a timings file, for tests this machine never ran.
    fallback: HashMap<String, Duration>,
    /// The file is not a database: the next save starts a new one.
    corrupt: bool,
    /// Read, never written (a sharded run: every shard must split on the same).
    read_only: bool,
}

/// One finished test, to be remembered.
pub struct Record<'a> {
    pub name: &'a str,
    pub duration: Duration,
    pub status: Status,
}

impl History {
    /// Reads the history; on any problem returns an empty one and says why.
    pub fn load(path: &Path) -> (History, Option<String>) {
        let mut history = History {
            path: Some(path.to_path_buf()),
            ..History::default()
        };
        if !path.exists() {
            return (history, None);
        }
        match read(path) {
            Ok((expected, collect, failed_last)) => {
                history.expected = expected;
                history.collect = collect;
                history.failed_last = failed_last;
                (history, None)
            }
            Err(e) => {
                history.corrupt = matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
                );
                let then = if history.corrupt {
                    "; it will be replaced"
                } else {
                    ""
                };
                let warning = format!(
                    "history {} is unreadable ({e}); ordering this run without it{then}",
                    path.display()
                );
                (history, Some(warning))
            }
        }
    }

    /// Whether the test's last run failed (failed, timed out or crashed).
    pub fn failed_last_time(&self, name: &str) -> bool {
        self.failed_last.contains(name)
    }

    /// Whether any test's last run failed.
    pub fn any_failed_last_time(&self) -> bool {
        !self.failed_last.is_empty()
    }

    /// An empty history that records nothing.
    pub fn disabled() -> History {
        History::default()
    }

    pub fn expected(&self, name: &str) -> Option<Duration> {
        self.expected
            .get(name)
            .or_else(|| self.fallback.get(name))
            .copied()
    }

    /// Durations to use where this machine's history has none (a timings
    /// file from other machines).
    pub fn set_fallback(&mut self, durations: HashMap<String, Duration>) {
        self.fallback = durations;
    }

    /// The expected time of each file's tests together (pytest node ids:
    /// the file is what precedes `::`), for files it has any record of.
    pub fn file_totals(&self) -> HashMap<&str, Duration> {
        let mut totals: HashMap<&str, Duration> = HashMap::new();
        for (name, duration) in &self.expected {
            let file = name
                .split_once("::")
                .map_or(name.as_str(), |(file, _)| file);
            *totals.entry(file).or_default() += *duration;
        }
        totals
    }

    /// How long importing and collecting each file took, for the files it
    /// has a record of (pytest with `collect = "share"`).
    pub fn collect_times(&self) -> &HashMap<String, Duration> {
        &self.collect
    }

    /// Stores how long files took to import and collect; returns a warning
    /// instead of failing.
    pub fn save_collect_times(&self, times: &[(&str, Duration)]) -> Option<String> {
        if self.read_only || times.is_empty() {
            return None;
        }
        let path = self.path.as_ref()?;
        write_collect(path, times)
            .err()
            .map(|e| format!("cannot update history {} ({e}); continuing", path.display()))
    }

    pub fn len(&self) -> usize {
        self.expected.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expected.is_empty()
    }

    /// This run reads the history but does not update it: a sharded run,
    /// whose split must be the same for every shard run on this machine.
    pub fn set_read_only(&mut self) {
        self.read_only = true;
    }

    /// Stores this run's durations; returns a warning instead of failing.
    pub fn save<'a>(&self, records: impl IntoIterator<Item = Record<'a>>) -> Option<String> {
        if self.read_only {
            return None;
        }
        let path = self.path.as_ref()?;
        if self.corrupt {
            let _ = std::fs::remove_file(path);
        }
        write(path, records)
            .err()
            .map(|e| format!("cannot update history {} ({e}); continuing", path.display()))
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_millis(500))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS tests (
            name TEXT PRIMARY KEY,
            mean_secs REAL NOT NULL,
            last_status TEXT NOT NULL,
            runs INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS files (
            name TEXT PRIMARY KEY,
            collect_secs REAL NOT NULL
        )",
    )?;
    Ok(conn)
}

/// A duration a run could have written (not NaN, negative or centuries).
fn plausible(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d < Duration::from_secs(365 * 24 * 3600))
}

type Durations = HashMap<String, Duration>;

/// The tests' expected durations, the files' collection times and the
/// tests whose last run failed.
fn read(path: &Path) -> rusqlite::Result<(Durations, Durations, HashSet<String>)> {
    let conn = open(path)?;
    let table = |sql: &str| -> rusqlite::Result<Durations> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
        let mut map = HashMap::new();
        for row in rows {
            let (name, secs) = row?;
            if let Some(d) = plausible(secs) {
                map.insert(name, d);
            }
        }
        Ok(map)
    };
    let mut failed =
        conn.prepare("SELECT name FROM tests WHERE last_status IN ('fail', 'timeout', 'crash')")?;
    let failed_last = failed
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<HashSet<String>>>()?;
    Ok((
        table("SELECT name, mean_secs FROM tests")?,
        table("SELECT name, collect_secs FROM files")?,
        failed_last,
    ))
}

/// The history for writing, its directory made first (`.partest/`, with
/// the `.gitignore` that keeps it out of `git status`).
fn open_to_write(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = crate::config::Config::make_state_dir(dir);
    }
    open(path)
}

fn write_collect(path: &Path, times: &[(&str, Duration)]) -> rusqlite::Result<()> {
    let mut conn = open_to_write(path)?;
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare(
            "INSERT INTO files (name, collect_secs) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET
                collect_secs = collect_secs * (1.0 - ?3) + excluded.collect_secs * ?3",
        )?;
        for (name, d) in times {
            upsert.execute(params![name, d.as_secs_f64(), WEIGHT_OF_NEWEST])?;
        }
    }
    tx.commit()
}

fn write<'a>(path: &Path, records: impl IntoIterator<Item = Record<'a>>) -> rusqlite::Result<()> {
    let mut conn = open_to_write(path)?;
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare(
            "INSERT INTO tests (name, mean_secs, last_status, runs) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT(name) DO UPDATE SET
                mean_secs = mean_secs * (1.0 - ?4) + excluded.mean_secs * ?4,
                last_status = excluded.last_status,
                runs = runs + 1",
        )?;
        // A test that ran and was skipped (pytest's skip or xfail) did not
        // fail this time: its status changes, not its duration.
        let mut skipped = tx.prepare("UPDATE tests SET last_status = 'skip' WHERE name = ?1")?;
        for r in records {
            if r.status == Status::Skip {
                skipped.execute(params![r.name])?;
                continue;
            }
            if r.status == Status::Cancelled {
                continue;
            }
            let status = serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
            upsert.execute(params![
                r.name,
                r.duration.as_secs_f64(),
                status.unwrap_or_default(),
                WEIGHT_OF_NEWEST
            ])?;
        }
    }
    tx.commit()
}

/// The last run's parallel phase, kept in `.partest/last-run.json` for
/// `partest diagnose`: how many slots, what ran where and when, and what
/// failed there.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LastRun {
    pub workers: usize,
    /// The tests that failed for good in the parallel phase, in that order.
    pub failed: Vec<String>,
    pub timeline: Vec<LastRan>,
}

/// One attempt on the last run's timeline (seconds since the run started).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LastRan {
    pub test: String,
    pub slot: usize,
    pub worker: u32,
    pub start: f64,
    pub end: f64,
}

impl LastRun {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("last-run.json")
    }

    /// Keeps it for `partest diagnose`; a warning when it cannot.
    pub fn save(&self, state_dir: &Path) -> Option<String> {
        let path = LastRun::path(state_dir);
        let text = serde_json::to_string(self).ok()?;
        let written = std::fs::create_dir_all(state_dir).and_then(|()| std::fs::write(&path, text));
        written
            .err()
            .map(|e| format!("cannot keep the run's record in {}: {e}", path.display()))
    }

    /// The last run's record; `Ok(None)` when no run left one here.
    pub fn load(state_dir: &Path) -> Result<Option<LastRun>, String> {
        let path = LastRun::path(state_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            format!(
                "{} is not a run's record ({e}): run the tests again",
                path.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_and_average() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let (h, warning) = History::load(&path);
        assert!(warning.is_none() && h.is_empty());
        let rec = |secs: f64| Record {
            name: "t",
            duration: Duration::from_secs_f64(secs),
            status: Status::Pass,
        };
        assert!(h.save([rec(2.0)]).is_none());
        assert!(h.save([rec(4.0)]).is_none());
        let (h, _) = History::load(&path);
        assert_eq!(h.expected("t"), Some(Duration::from_secs(3)));
    }

    #[test]
    fn a_test_that_failed_then_was_skipped_did_not_fail_last_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let (h, _) = History::load(&path);
        let rec = |status| Record {
            name: "t",
            duration: Duration::from_secs(1),
            status,
        };
        assert!(h.save([rec(Status::Fail)]).is_none());
        assert!(History::load(&path).0.failed_last_time("t"));
        // xfailed, say: skipped, not failed, and its duration kept.
        assert!(h.save([rec(Status::Skip)]).is_none());
        let (h, _) = History::load(&path);
        assert!(!h.failed_last_time("t"));
        assert_eq!(h.expected("t"), Some(Duration::from_secs(1)));
        // Cancelled (not run) changes nothing.
        assert!(h.save([rec(Status::Fail)]).is_none());
        assert!(h.save([rec(Status::Cancelled)]).is_none());
        assert!(History::load(&path).0.failed_last_time("t"));
    }

    #[test]
    fn collect_times_round_trip_and_average() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let (h, _) = History::load(&path);
        assert!(h.collect_times().is_empty());
        let secs = Duration::from_secs;
        assert!(
            h.save_collect_times(&[("a.py", secs(2)), ("b.py", secs(1))])
                .is_none()
        );
        assert!(h.save_collect_times(&[("a.py", secs(4))]).is_none());
        let (h, _) = History::load(&path);
        assert_eq!(h.collect_times().get("a.py"), Some(&secs(3)));
        assert_eq!(h.collect_times().get("b.py"), Some(&secs(1)));
        // Test durations are apart: a file is not a test.
        assert_eq!(h.expected("a.py"), None);
    }

    #[test]
    fn the_last_runs_record_round_trips_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LastRun::load(dir.path()), Ok(None));
        let record = LastRun {
            workers: 2,
            failed: vec!["t/b.sh".into()],
            timeline: vec![LastRan {
                test: "t/b.sh".into(),
                slot: 1,
                worker: 0,
                start: 0.5,
                end: 1.5,
            }],
        };
        assert_eq!(record.save(dir.path()), None);
        assert_eq!(LastRun::load(dir.path()), Ok(Some(record)));
        std::fs::write(dir.path().join("last-run.json"), "{not json").unwrap();
        let error = LastRun::load(dir.path()).unwrap_err();
        assert!(error.contains("last-run.json"), "{error}");
    }

    #[test]
    fn a_corrupt_file_is_reported_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        std::fs::write(
            &path,
            b"this is not a database, just junk bytes ............",
        )
        .unwrap();
        let (h, warning) = History::load(&path);
        assert!(h.is_empty());
        assert!(warning.unwrap().contains("unreadable"));
        let rec = Record {
            name: "t",
            duration: Duration::from_secs(1),
            status: Status::Pass,
        };
        assert!(
            h.save([rec]).is_none(),
            "a corrupt file is replaced on save"
        );
        assert_eq!(
            History::load(&path).0.expected("t"),
            Some(Duration::from_secs(1))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Whatever a history file holds (huge, negative, NaN means; junk
        /// bytes), loading it gives durations a deadline can be built on.
        #[test]
        fn any_stored_value_loads_without_panic(mean in proptest::num::f64::ANY, junk in proptest::collection::vec(0u8..=255, 0..64)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("history.db");
            let (h, _) = History::load(&path);
            let rec = Record { name: "t", duration: Duration::from_secs(1), status: Status::Pass };
            proptest::prop_assert!(h.save([rec]).is_none());
            let conn = rusqlite::Connection::open(&path).unwrap();
            // NaN is refused by the NOT NULL column; the rest is stored as is.
            let _ = conn.execute("UPDATE tests SET mean_secs = ?1", [mean]);
            drop(conn);
            if let Some(d) = History::load(&path).0.expected("t") {
                proptest::prop_assert!(std::time::Instant::now().checked_add(d).is_some());
            }
            let junk_path = dir.path().join("junk.db");
            std::fs::write(&junk_path, &junk).unwrap();
            let _ = History::load(&junk_path);
        }
    }
}
