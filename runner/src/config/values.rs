//! Value types shared by several tables of partest.toml. Each one validates
//! itself while it is deserialized, so a bad value is reported by `toml` with
//! the file's line and column and the key it belongs to.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// `workers = "auto"` or a whole number ≥ 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WorkerCount {
    #[default]
    Auto,
    Fixed(NonZeroUsize),
}

impl FromStr for WorkerCount {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(WorkerCount::Auto);
        }
        match s.parse::<usize>() {
            Ok(n) => NonZeroUsize::new(n)
                .map(WorkerCount::Fixed)
                .ok_or_else(|| "workers must be \"auto\" or a whole number ≥ 1, not 0".to_string()),
            Err(_) => Err(format!(
                "workers must be \"auto\" or a whole number ≥ 1, not {s:?}"
            )),
        }
    }
}

impl fmt::Display for WorkerCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerCount::Auto => f.write_str("auto"),
            WorkerCount::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for WorkerCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WorkerCount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"auto\" or a whole number ≥ 1")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<WorkerCount, E> {
                usize::try_from(n)
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .map(WorkerCount::Fixed)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "workers must be \"auto\" or a whole number ≥ 1, not {n}"
                        ))
                    })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WorkerCount, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte count written as `"512MiB"`, `"2GB"`, `"1.5GiB"` or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: f64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a size; write it like \"512MiB\" or \"2GiB\""))?;
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1000 * 1000,
            "mib" => 1 << 20,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {s:?}; use B, KiB, MiB, GiB, KB, MB or GB"
                ));
            }
        };
        Ok(ByteSize((num * scale as f64) as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        if b >= (1u64 << 30) as f64 {
            write!(f, "{:.1} GiB", b / (1u64 << 30) as f64)
        } else {
            write!(f, "{:.0} MiB", b / (1u64 << 20) as f64)
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"512MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The longest duration partest takes (a year).
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// A duration written as seconds (`30`, `1.5`) or with a unit (`"500ms"`, `"30s"`, `"2m"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad =
            || format!("{s:?} is not a duration; write seconds (30) or \"500ms\", \"30s\", \"2m\"");
        let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
            (n, 0.001)
        } else if let Some(n) = t.strip_suffix('s') {
            (n, 1.0)
        } else if let Some(n) = t.strip_suffix('m') {
            (n, 60.0)
        } else if let Some(n) = t.strip_suffix('h') {
            (n, 3600.0)
        } else {
            (t, 1.0)
        };
        let v: f64 = num.trim().parse().map_err(|_| bad())?;
        Seconds::from_secs(v * scale, s)
    }
}

impl Seconds {
    /// `secs` as written `as_written`, if it is a usable duration.
    fn from_secs(secs: f64, as_written: &str) -> Result<Seconds, String> {
        if !(secs.is_finite() && secs > 0.0) {
            return Err(format!("duration {as_written:?} must be greater than zero"));
        }
        // Deadlines are computed as now + duration: bound it well below overflow.
        if secs > MAX_SECONDS {
            return Err(format!(
                "duration {as_written:?} is too long: at most 365 days"
            ));
        }
        Ok(Seconds(Duration::from_secs_f64(secs)))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("seconds (a number) or a string like \"30s\"")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Seconds, E> {
                self.visit_f64(n as f64)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Seconds, E> {
                Seconds::from_secs(n, &n.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Seconds, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of globs matched against test names (`tests/integration/**`,
/// `*::slow_*`). `*` and `**` both cross `/` and `::`, so a pattern written
/// for a path also catches the tests inside that file.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Filter {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let p = p.as_ref();
            let glob =
                Glob::new(p).map_err(|e| format!("{p:?} is not a valid glob: {}", e.kind()))?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| e.to_string())?;
        Ok(Filter {
            patterns: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
            set,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// The project's files under `root` that match, as sorted paths relative
    /// to it; folders that hold neither tests nor inputs
    /// ([`crate::model::UNSCANNED_DIRS`]) are not walked, nor are links.
    pub fn matching_files(&self, root: &std::path::Path) -> Result<Vec<String>, String> {
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| {
                !(e.file_type().is_dir()
                    && e.file_name()
                        .to_str()
                        .is_some_and(|n| crate::model::UNSCANNED_DIRS.contains(&n)))
            });
        let mut found = Vec::new();
        for entry in walker {
            let entry = entry.map_err(|e| e.to_string())?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(root)
                .ok()
                .and_then(|r| r.to_str());
            if let Some(rel) = rel.filter(|rel| self.matches(rel)) {
                found.push(rel.to_string());
            }
        }
        found.sort();
        Ok(found)
    }

    /// A test matches when the whole name matches, or its file part does
    /// (`tests/a.py` for `tests/a.py::test_x`), so that `tests/a.py` selects a file.
    pub fn matches(&self, name: &str) -> bool {
        self.set.is_match(name)
            || name
                .split_once("::")
                .is_some_and(|(file, _)| self.set.is_match(file))
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let patterns = match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        Filter::new(&patterns).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!("512MiB".parse::<ByteSize>().unwrap().0, 512 << 20);
        assert_eq!("2GB".parse::<ByteSize>().unwrap().0, 2_000_000_000);
        assert_eq!("1.5GiB".parse::<ByteSize>().unwrap().0, 3 << 29);
        assert!(
            "12 parsecs"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("unknown size unit")
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(
            "500ms".parse::<Seconds>().unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!("2m".parse::<Seconds>().unwrap().0, Duration::from_secs(120));
        assert_eq!(
            "1.5".parse::<Seconds>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert!("0s".parse::<Seconds>().is_err());
        assert!("1e20".parse::<Seconds>().unwrap_err().contains("too long"));
    }

    #[test]
    fn worker_counts_reject_zero() {
        assert_eq!("auto".parse::<WorkerCount>().unwrap(), WorkerCount::Auto);
        assert_eq!("3".parse::<WorkerCount>().unwrap().to_string(), "3");
        assert!("0".parse::<WorkerCount>().unwrap_err().contains("≥ 1"));
    }

    #[test]
    fn filters_match_files_and_whole_names() {
        let f = Filter::new(&["tests/integration/**", "*::slow_*"]).unwrap();
        assert!(f.matches("tests/integration/test_db.py::test_insert"));
        assert!(f.matches("unit::slow_sort"));
        assert!(!f.matches("tests/unit/test_a.py::test_b"));
        let file = Filter::new(&["tests/a.py"]).unwrap();
        assert!(file.matches("tests/a.py::test_x"));
        assert!(
            Filter::new(&["tests/[a"])
                .unwrap_err()
                .contains("not a valid glob")
        );
    }

    proptest::proptest! {
        #[test]
        fn duration_and_size_parsers_never_panic(text in ".{0,32}", v in proptest::num::f64::ANY, unit in "(|ms|s|m|h|KiB|MiB|GB|x)") {
            let _ = text.parse::<Seconds>();
            let _ = text.parse::<ByteSize>();
            let _ = text.parse::<WorkerCount>();
            let number = format!("{v}{unit}");
            if let Ok(d) = number.parse::<Seconds>() {
                proptest::prop_assert!(d.0.as_secs_f64() <= MAX_SECONDS);
            }
            let _ = number.parse::<ByteSize>();
        }
    }
}
