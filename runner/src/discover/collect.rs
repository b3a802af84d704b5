//! collect = share, the data of it: the test files a long-lived worker
//! finds before importing any, the tests of the files it is told to collect,
//! and the checks that every worker (and every fresh one) agrees on both.
//! The wire format is in `pytest/partest_pytest.py`.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The test files a worker found before importing any, in pytest's order:
/// a file's index in this list is how partest names it to every worker.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Files {
    pub files: Vec<String>,
    #[serde(default)]
    pub errors: Vec<CollectError>,
    /// Tests pytest left out as it collected (`-k`, `-m`, `--deselect`).
    #[serde(default)]
    pub deselected: usize,
    /// What pytest-cov measures for, when it is on in the workers.
    #[serde(default)]
    pub coverage: Option<CoverageAsked>,
}

/// pytest-cov's options in a worker: where each worker saves its data, and
/// the reports and threshold its master would produce at the end.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CoverageAsked {
    /// The data file, absolute; each worker writes `<it>.<suffix>`.
    pub data_file: std::path::PathBuf,
    /// `--cov-config`.
    #[serde(default)]
    pub rcfile: Option<String>,
    /// `--cov-report`: kind (`term-missing`, `xml`, ...) → its argument.
    #[serde(default)]
    pub reports: std::collections::BTreeMap<String, Option<String>>,
    /// `--cov-fail-under` (or the rcfile's `fail_under`).
    #[serde(default)]
    pub fail_under: Option<f64>,
    #[serde(default)]
    pub precision: Option<u32>,
}

/// The tests of the files a `collect` command named.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Collected {
    pub files: Vec<FileTests>,
    #[serde(default)]
    pub errors: Vec<CollectError>,
    /// Tests pytest left out while collecting these files (share mode).
    #[serde(default)]
    pub deselected: usize,
}

/// One file's tests: node ids and each item's marker names, in pytest's
/// order (a test's offset in it is the address partest sends).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FileTests {
    #[serde(rename = "f")]
    pub file: u32,
    pub ids: Vec<String>,
    pub markers: Vec<Vec<String>>,
    /// How long the worker took to import and collect the file, when it
    /// did so for this command (`collect = "share"`).
    #[serde(default)]
    pub secs: Option<f64>,
    /// Each test's rank in the order pytest-django requires, when it is on.
    #[serde(default)]
    pub ranks: Option<Vec<u8>>,
}

/// One collection error, with pytest's own text.
#[derive(Debug, Clone, Deserialize)]
pub struct CollectError {
    pub id: String,
    pub text: String,
}

/// Every worker must find the same test files in the same order: a file's
/// index is its name in the protocol.
pub fn check_same_files(reference: &Files, other: &Files, slot: &str) -> Result<()> {
    if reference.files == other.files {
        return Ok(());
    }
    let first = reference
        .files
        .iter()
        .zip(&other.files)
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("; first difference:\n  gw0: {a}\n  {slot}: {b}"))
        .unwrap_or_default();
    Err(Error::setup(format!(
        "pytest workers found different test files (gw0: {}, {slot}: {}); \
         the files must not depend on the worker{first}",
        reference.files.len(),
        other.files.len()
    )))
}

/// A file collected again (by another worker, or a fresh one) must give the
/// same tests in the same order. Ids may differ only inside their parameter
/// brackets (a timestamp in a parametrize id), which addressing by offset
/// makes harmless.
pub fn check_same_tests(reference: &FileTests, other: &FileTests, slot: &str) -> Result<()> {
    let base = |id: &str| id.split_once('[').map_or(id, |(head, _)| head).to_string();
    let differing: Vec<String> = reference
        .ids
        .iter()
        .zip(&other.ids)
        .filter(|(x, y)| base(x) != base(y))
        .take(5)
        .map(|(x, y)| format!("  first collection: {x}\n  {slot}: {y}"))
        .collect();
    if reference.ids.len() == other.ids.len() && differing.is_empty() {
        return Ok(());
    }
    Err(Error::setup(format!(
        "pytest workers collected different tests from the same file ({} and {} tests, {slot}); \
         the test list must not depend on the worker (random or time-based collection?){}{}",
        reference.ids.len(),
        other.ids.len(),
        if differing.is_empty() {
            ""
        } else {
            "; first differences:\n"
        },
        differing.join("\n")
    )))
}
