//! `--junit PATH`: the run as standard JUnit XML, as CI dashboards read it:
//! `<testsuites>` › one `<testsuite>` per test binary (cargo) or file
//! (pytest, command) › `<testcase name classname time>` with `<failure
//! message type>` / `<error>` / `<skipped>`, earlier failed attempts as
//! `<rerunFailure>` (still failing) or `<flakyFailure>` (passed later),
//! and the test's stdout and stderr apart in `<system-out>` / `<system-err>`.
//! No attribute beyond the common schema.

use std::collections::BTreeMap;
use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCaseStatus, TestRerun, TestSuite};

use super::{Attempt, FinalResult, Summary};
use crate::model::{Status, TestCase};

pub fn write(path: &Path, tests: &[TestCase], summary: &Summary) -> std::io::Result<()> {
    let report = build(tests, summary);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::File::create(path)?;
    report
        .serialize(std::io::BufWriter::new(file))
        .map_err(std::io::Error::other)
}

fn build(tests: &[TestCase], summary: &Summary) -> Report {
    // Suites in the order of their first test; tests in plan order.
    let mut suites: BTreeMap<(usize, &str), TestSuite> = BTreeMap::new();
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut ordered: Vec<_> = summary.results.iter().collect();
    ordered.sort_by_key(|(i, _)| **i);
    for (&index, result) in ordered {
        let Some(test) = tests.get(index as usize) else {
            continue;
        };
        let suite_name = suite_of(test);
        let order = *first.entry(suite_name).or_insert(index as usize);
        let suite = suites
            .entry((order, suite_name))
            .or_insert_with(|| TestSuite::new(suite_name));
        let mut case = case(test, result);
        if let Some(d) = summary.diagnoses.get(&index) {
            let name = |i: &u32| tests.get(*i as usize).map_or("?", |t| t.name.as_str());
            let culprits: Vec<&str> = d.culprits.iter().map(name).collect();
            case.add_property(("partest.diagnosis.verdict", d.verdict.as_str()));
            case.add_property(("partest.diagnosis.culprits", culprits.join(" ").as_str()));
            case.add_property(("partest.diagnosis.reruns", d.reruns.to_string().as_str()));
            case.add_property(("partest.diagnosis.advice", d.verdict.advice()));
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("partest");
    report.set_time(summary.wall);
    report.add_test_suites(suites.into_values());
    report
}

/// The binary (cargo) or file (pytest, command) a test belongs to.
fn suite_of(test: &TestCase) -> &str {
    if test.meta.binary_id.is_empty() {
        test.name.split_once("::").map_or(&test.name, |(f, _)| f)
    } else {
        &test.meta.binary_id
    }
}

/// `classname` and `name` as each ecosystem's tools write them: cargo's as
/// nextest (the binary id, the test's path in it), pytest's as pytest's own
/// JUnit (`tests.test_a.TestX`, `test_y[1]`).
fn names(test: &TestCase) -> (String, String) {
    if test.meta.kind == "pytest"
        && let Some((file, rest)) = test.name.split_once("::")
    {
        let module = file.strip_suffix(".py").unwrap_or(file).replace('/', ".");
        return match rest.rsplit_once("::") {
            Some((classes, func)) => (
                format!("{module}.{}", classes.replace("::", ".")),
                func.to_string(),
            ),
            None => (module, rest.to_string()),
        };
    }
    (suite_of(test).to_string(), test.test_name().to_string())
}

/// The one line a dashboard shows for a failure: a Rust panic's message,
/// pytest's `E ` line, else what kind of failure it was.
fn failure_message(
    status: Status,
    leaked: bool,
    stdout: Option<&str>,
    stderr: Option<&str>,
) -> String {
    for text in [stderr, stdout].into_iter().flatten() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("thread '") && line.contains("panicked at") {
                if let Some(msg) = lines.get(i + 1).filter(|l| !l.trim().is_empty()) {
                    return msg.trim().to_string();
                }
                return line.trim().to_string();
            }
        }
    }
    let lines: Vec<&str> = stdout.unwrap_or("").lines().collect();
    if let Some(e) = lines.iter().rev().find(|l| l.starts_with("E ")) {
        return e[1..].trim().to_string();
    }
    match status {
        Status::Timeout => "test timed out".into(),
        Status::Crash => "the process running the test died".into(),
        _ if leaked => "test left processes running ([run] leak = \"fail\")".into(),
        _ => "test failed".into(),
    }
}

/// The failure's body: a Rust panic from its first line on (stderr, then
/// stdout), else the whole stdout (the full streams are in system-out and
/// system-err).
fn failure_text<'a>(stdout: Option<&'a str>, stderr: Option<&'a str>) -> Option<&'a str> {
    for text in [stderr, stdout].into_iter().flatten() {
        let mut at = 0;
        while let Some(found) = text[at..].find("thread '") {
            let start = at + found;
            if text[start..]
                .lines()
                .next()
                .is_some_and(|l| l.contains("panicked at"))
            {
                return Some(&text[start..]);
            }
            at = start + 1;
        }
    }
    stdout.filter(|t| !t.trim().is_empty())
}

fn failure_type(status: Status, leaked: bool) -> &'static str {
    match status {
        Status::Timeout => "timeout",
        Status::Crash => "crash",
        _ if leaked => "leak",
        _ => "test failure",
    }
}

fn rerun(a: &Attempt) -> TestRerun {
    let kind = if a.status == Status::Crash {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    };
    let mut rerun = TestRerun::new(kind);
    rerun.set_time(a.duration);
    rerun.set_message(failure_message(
        a.status,
        false,
        a.output.as_deref(),
        a.stderr.as_deref(),
    ));
    rerun.set_type(failure_type(a.status, false));
    if let Some(out) = a.output.as_deref().filter(|t| !t.is_empty()) {
        rerun.set_system_out_lossy(out.as_bytes());
    }
    if let Some(err) = a.stderr.as_deref().filter(|t| !t.is_empty()) {
        rerun.set_system_err_lossy(err.as_bytes());
    }
    rerun
}

fn case(test: &TestCase, r: &FinalResult) -> quick_junit::TestCase {
    let mut status = match r.status {
        Status::Pass => TestCaseStatus::success(),
        Status::Skip => TestCaseStatus::skipped(),
        Status::Cancelled => {
            let mut s = TestCaseStatus::skipped();
            s.set_message("not run: the run was interrupted or stopped early");
            s
        }
        Status::Fail | Status::Timeout | Status::Crash => {
            let kind = if r.status == Status::Crash {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(failure_message(
                r.status,
                r.leaked,
                r.output.as_deref(),
                r.stderr.as_deref(),
            ));
            s.set_type(failure_type(r.status, r.leaked));
            if let Some(text) = failure_text(r.output.as_deref(), r.stderr.as_deref()) {
                s.set_description(text);
            }
            s
        }
    };
    // Earlier failed attempts: rerunFailure under a failure, flakyFailure
    // under a success.
    status.add_reruns(r.failed_attempts.iter().map(rerun));
    let (classname, name) = names(test);
    let mut case = quick_junit::TestCase::new(name, status);
    case.set_classname(classname);
    case.set_time(r.duration);
    if let Some(out) = r.output.as_deref().filter(|t| !t.is_empty()) {
        case.set_system_out_lossy(out.as_bytes());
    }
    if let Some(err) = r.stderr.as_deref().filter(|t| !t.is_empty()) {
        case.set_system_err_lossy(err.as_bytes());
    }
    case
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result(status: Status, output: &str) -> FinalResult {
        FinalResult {
            status,
            attempts: 1,
            duration: Duration::from_millis(5),
            slot: 0,
            output: Some(output.into()),
            stderr: Some("on stderr\n".into()),
            leaked: false,
            flaky: false,
            failed_attempts: Vec::new(),
        }
    }

    #[test]
    fn panics_and_pytest_lines_become_the_message() {
        let rust = "running 1 test\nthread 'x' panicked at src/lib.rs:3:5:\nassertion failed: 1 == 2\nnote: ...";
        assert_eq!(
            failure_message(Status::Fail, false, Some(rust), None),
            "assertion failed: 1 == 2"
        );
        assert_eq!(
            failure_message(Status::Fail, false, Some("running 1 test\n"), Some(rust)),
            "assertion failed: 1 == 2"
        );
        let py = "    def test():\n>       assert 1 == 2\nE       assert 1 == 2\n";
        assert_eq!(
            failure_message(Status::Fail, false, Some(py), None),
            "assert 1 == 2"
        );
        assert_eq!(
            failure_message(Status::Timeout, false, None, None),
            "test timed out"
        );
    }

    #[test]
    fn pytest_classnames_as_pytest_writes_them() {
        let mut t = TestCase::new("tests/test_a.py::TestX::test_y[1]");
        std::sync::Arc::make_mut(&mut t.meta).kind = "pytest".into();
        assert_eq!(
            names(&t),
            ("tests.test_a.TestX".to_string(), "test_y[1]".to_string())
        );
    }

    #[test]
    fn one_suite_per_binary_with_reruns_and_separate_streams() {
        let mut a = TestCase::new("fx tests::a");
        a.target = "tests::a".into();
        std::sync::Arc::make_mut(&mut a.meta).binary_id = "fx".into();
        let mut b = TestCase::new("fx::it one");
        b.target = "one".into();
        std::sync::Arc::make_mut(&mut b.meta).binary_id = "fx::it".into();
        let mut summary = Summary::default();
        let mut failed = result(Status::Fail, "thread 'a' panicked at x:\nboom\n");
        failed.failed_attempts.push(Attempt {
            status: Status::Fail,
            duration: Duration::from_millis(3),
            output: Some("first\n".into()),
            stderr: None,
        });
        summary.results.insert(0, failed);
        let mut flaky = result(Status::Pass, "");
        flaky.flaky = true;
        flaky.failed_attempts.push(Attempt {
            status: Status::Fail,
            duration: Duration::from_millis(3),
            output: None,
            stderr: None,
        });
        summary.results.insert(1, flaky);
        let xml = build(&[a, b], &summary).to_string().unwrap();
        assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
        assert!(xml.contains(r#"<testsuite name="fx" "#), "{xml}");
        assert!(
            xml.contains(r#"<testcase name="tests::a" classname="fx""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="boom" type="test failure">"#),
            "{xml}"
        );
        assert!(xml.contains("<rerunFailure"), "{xml}");
        assert!(xml.contains("<flakyFailure"), "{xml}");
        assert!(xml.contains("<system-err>on stderr"), "{xml}");
        assert!(!xml.contains("slot="), "{xml}");
    }
}
