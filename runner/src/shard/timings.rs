//! The portable timings file: JSON, one object of test id → seconds, keys
//! sorted and values rounded to the millisecond, so that it diffs well and
//! stays small enough to commit or cache. A run reads it (`--timings FILE`
//! or `[run] timings`) to split and order, and writes it back merged: the
//! tests it ran are updated, every other entry is kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How much one run moves a test's recorded duration (as the history does).
const WEIGHT_OF_NEWEST: f64 = 0.5;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    pub map: BTreeMap<String, f64>,
}

impl Timings {
    /// Reads `path`; a missing file is an empty one. A file that is not a
    /// JSON object of numbers is an error naming it (a timings file is
    /// shared by every machine: reading half of it would split differently).
    pub fn load(path: &Path) -> Result<Timings, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Timings::default()),
            Err(e) => return Err(format!("cannot read timings {}: {e}", path.display())),
        };
        Timings::parse(&text).map_err(|e| format!("timings {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Timings, String> {
        if text.trim().is_empty() {
            return Ok(Timings::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
        let serde_json::Value::Object(object) = value else {
            return Err("expected a JSON object of test id → seconds".into());
        };
        let mut map = BTreeMap::new();
        for (name, secs) in object {
            let secs = secs
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 365.0 * 24.0 * 3600.0)
                .ok_or_else(|| format!("{name:?}: {secs} is not a number of seconds"))?;
            map.insert(name, secs);
        }
        Ok(Timings { map })
    }

    pub fn get(&self, name: &str) -> Option<Duration> {
        self.map.get(name).map(|&s| Duration::from_secs_f64(s))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds one run's measured durations: a known test moves halfway to its
    /// new duration, a new one is taken as measured.
    pub fn record<'a>(&mut self, measured: impl IntoIterator<Item = (&'a str, Duration)>) {
        for (name, d) in measured {
            let secs = d.as_secs_f64();
            let value = match self.map.get(name) {
                Some(old) => old * (1.0 - WEIGHT_OF_NEWEST) + secs * WEIGHT_OF_NEWEST,
                None => secs,
            };
            self.map.insert(name.to_string(), round_ms(value));
        }
    }

    /// Other machines' files joined into this one (the base every machine
    /// started from). Each machine wrote the base plus what it ran, so an
    /// entry that differs from the base is one a machine measured: it wins.
    /// Entries the base lacks are taken from whichever file has them (the
    /// later file on a disagreement).
    pub fn merge(&mut self, others: &[Timings]) {
        let base = self.map.clone();
        for other in others {
            for (name, &secs) in &other.map {
                if base.get(name) != Some(&secs) {
                    self.map.insert(name.clone(), secs);
                }
            }
        }
    }

    pub fn to_json(&self) -> String {
        let rounded: BTreeMap<&str, f64> = self
            .map
            .iter()
            .map(|(k, &v)| (k.as_str(), round_ms(v)))
            .collect();
        let mut text = serde_json::to_string_pretty(&rounded).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        text
    }

    /// Writes the file whole (a temp file renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot write timings {}: {e}", path.display());
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        std::fs::create_dir_all(&dir).map_err(fail)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(fail)?;
        std::io::Write::write_all(&mut tmp, self.to_json().as_bytes()).map_err(fail)?;
        tmp.persist(path).map_err(|e| fail(e.error))?;
        Ok(())
    }
}

fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_sorted_and_rounded() {
        let mut t = Timings::default();
        t.record([
            ("b", Duration::from_micros(1_234_567)),
            ("a", Duration::from_millis(5)),
        ]);
        let json = t.to_json();
        assert_eq!(json, "{\n  \"a\": 0.005,\n  \"b\": 1.235\n}\n");
        assert_eq!(Timings::parse(&json).unwrap(), t);
        t.record([("a", Duration::from_millis(15))]);
        assert_eq!(t.get("a"), Some(Duration::from_millis(10)));
    }

    #[test]
    fn bad_files_are_named_errors_and_a_missing_one_is_empty() {
        assert!(Timings::parse("[1]").is_err());
        assert!(Timings::parse("{\"a\": \"x\"}").is_err());
        assert!(Timings::parse("{\"a\": -1}").is_err());
        assert!(Timings::parse("{").is_err());
        assert!(Timings::parse("").unwrap().is_empty());
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Timings::load(&dir.path().join("none.json"))
                .unwrap()
                .is_empty()
        );
        let path = dir.path().join("sub/t.json");
        let mut t = Timings::default();
        t.record([("x", Duration::from_secs(2))]);
        t.save(&path).unwrap();
        assert_eq!(Timings::load(&path).unwrap(), t);
    }

    #[test]
    fn a_merge_keeps_what_each_machine_measured() {
        let base = Timings::parse(r#"{"a": 1, "b": 2, "c": 3}"#).unwrap();
        // Machine 1 ran a (and a new test d); machine 2 ran b.
        let mut one = base.clone();
        one.record([("a", Duration::from_secs(3)), ("d", Duration::from_secs(1))]);
        let mut two = base.clone();
        two.record([("b", Duration::from_secs(4))]);
        let mut merged = base.clone();
        merged.merge(&[one, two]);
        assert_eq!(
            merged,
            Timings::parse(r#"{"a": 2, "b": 3, "c": 3, "d": 1}"#).unwrap()
        );
    }
}
