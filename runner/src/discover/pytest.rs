//! The pytest adapter: collect node ids with `--collect-only -q`, find serial
//! tests with a second collection filtered by the serial markers, run batches
//! of node ids in one pytest process and read each test's outcome from the
//! JUnit XML that batch writes.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{Adapter, Invocation, ProcessEnd, Status, TestCase, TestResult};
use crate::config::{AdapterKind, Config};
use crate::error::{Error, Result};

pub struct PytestAdapter {
    root: PathBuf,
    /// `.partest/`, where the xdist stand-in is written.
    state_dir: PathBuf,
    python: String,
    args: Vec<String>,
    serial_markers: Vec<String>,
    max_batch: usize,
    /// `PYTHONPATH` with the folder of our xdist stand-in first.
    python_path: String,
}

/// The module name of [`XDIST_COMPAT`] on `PYTHONPATH`.
const XDIST_COMPAT_MODULE: &str = "partest_xdist_compat";
/// A pytest plugin loaded into every pytest partest starts: xdist's options,
/// `worker_id` and `config.workerinput`, per slot (see the file for why).
const XDIST_COMPAT: &str = include_str!("pytest_xdist_compat.py");

/// Arguments of every pytest call: xdist blocked (partest is the scheduler),
/// its stand-in loaded, and no cache writes from parallel processes.
const PYTEST_FLAGS: [&str; 6] = [
    "-p",
    "no:xdist",
    "-p",
    XDIST_COMPAT_MODULE,
    "-p",
    "no:cacheprovider",
];

impl PytestAdapter {
    pub fn new(config: &Config) -> PytestAdapter {
        let f = &config.file;
        PytestAdapter {
            root: config.root.clone(),
            state_dir: config.state_dir(),
            python: f.pytest.python.clone(),
            args: f.pytest.args.clone(),
            serial_markers: f.serial.markers.clone(),
            max_batch: f.pytest.max_batch,
            python_path: String::new(),
        }
    }

    /// Writes the xdist stand-in where `PYTHONPATH` will find it.
    fn install_compat(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                std::fs::write(dir.join(format!("{XDIST_COMPAT_MODULE}.py")), XDIST_COMPAT)
            })
            .map_err(|e| {
                Error::setup(format!(
                    "cannot write partest's pytest plugin into {}: {e}",
                    dir.display()
                ))
            })?;
        let mut path = dir.to_string_lossy().into_owned();
        if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
            path.push(':');
            path.push_str(&existing.to_string_lossy());
        }
        self.python_path = path;
        Ok(())
    }

    fn pytest(&self) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "pytest"])
            .args(&self.args)
            .args(PYTEST_FLAGS)
            .env("PYTHONPATH", &self.python_path)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        cmd
    }

    fn collect(&self, marker_expr: Option<&str>) -> Result<std::process::Child> {
        let mut cmd = self.pytest();
        cmd.args(["--collect-only", "-q"]);
        if let Some(expr) = marker_expr {
            cmd.args(["-m", expr]);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
            Error::setup(format!(
                "cannot run `{} -m pytest` in {}: {e}; set [pytest] python to an interpreter that has pytest",
                self.python,
                self.root.display()
            ))
        })
    }
}

/// Node ids from `--collect-only -q` output: the lines before the first blank one.
fn node_ids(output: &Output, what: &str) -> Result<Vec<String>> {
    // 5: nothing collected, which is a valid (empty) answer.
    if !output.status.success() && output.status.code() != Some(5) {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        return Err(Error::setup(format!(
            "pytest {what} failed ({}):\n{}",
            output.status,
            text.trim_end()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.contains("::"))
        .map(str::to_string)
        .collect())
}

/// The (classname, name) pytest's JUnit writer gives a node id: its
/// `mangle_test_address`, so results map back without guessing.
fn junit_key(node_id: &str) -> (String, String) {
    let (path, params) = match node_id.find('[') {
        Some(i) => node_id.split_at(i),
        None => (node_id, ""),
    };
    let mut names: Vec<String> = path.split("::").map(str::to_string).collect();
    let file = names[0].replace('/', ".");
    names[0] = file.strip_suffix(".py").unwrap_or(&file).to_string();
    let mut name = names.pop().unwrap_or_default();
    name.push_str(params);
    (names.join("."), name)
}

/// One `<testcase>` of the report.
struct CaseReport {
    status: Status,
    time: Option<Duration>,
    detail: Option<String>,
}

fn parse_junit(xml: &str) -> std::result::Result<HashMap<(String, String), CaseReport>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let mut cases = HashMap::new();
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let key = (
            case.attribute("classname").unwrap_or_default().to_string(),
            case.attribute("name").unwrap_or_default().to_string(),
        );
        let time = case
            .attribute("time")
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(Duration::from_secs_f64);
        let mut status = Status::Pass;
        let mut detail = None;
        for child in case.children().filter(|c| c.is_element()) {
            let tag = child.tag_name().name();
            let text = || {
                let message = child.attribute("message").unwrap_or_default();
                let body = child.text().unwrap_or_default();
                Some(if body.contains(message) {
                    body.to_string()
                } else {
                    format!("{message}\n{body}")
                })
            };
            match tag {
                "failure" | "error" => {
                    status = Status::Fail;
                    detail = text();
                }
                "skipped" if status == Status::Pass => {
                    status = Status::Skip;
                    detail = text();
                }
                _ => {}
            }
        }
        // A test whose teardown errors appears twice; the failure wins.
        let entry = cases.entry(key).or_insert(CaseReport {
            status,
            time,
            detail: None,
        });
        if status == Status::Fail || entry.status == Status::Pass {
            *entry = CaseReport {
                status,
                time: time.or(entry.time),
                detail,
            };
        }
    }
    Ok(cases)
}

impl Adapter for PytestAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Pytest
    }

    fn discover(&mut self) -> Result<Vec<TestCase>> {
        self.install_compat(&self.state_dir.join("pytest"))?;
        let expr = self.serial_markers.join(" or ");
        // Both collections at once: each pays the interpreter and import cost.
        let all = self.collect(None)?;
        let serial = (!expr.is_empty())
            .then(|| self.collect(Some(&expr)))
            .transpose()?;
        let wait = |child: std::process::Child| {
            child
                .wait_with_output()
                .map_err(|e| Error::setup(format!("pytest collection: {e}")))
        };
        let all = node_ids(&wait(all)?, "collection (--collect-only)")?;
        let serial: HashSet<String> = match serial {
            Some(child) => node_ids(
                &wait(child)?,
                &format!("collection of serial tests (-m \"{expr}\")"),
            )?
            .into_iter()
            .collect(),
            None => HashSet::new(),
        };
        Ok(all
            .into_iter()
            .map(|id| {
                let mut test = TestCase::new(id);
                test.serial_marker = serial.contains(&test.name);
                test
            })
            .collect())
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn invocation(&self, tests: &[&TestCase], scratch: &Path) -> Invocation {
        let report = scratch.join("partest-junit.xml");
        let mut args: Vec<OsString> = vec!["-m".into(), "pytest".into()];
        args.extend(self.args.iter().map(OsString::from));
        args.extend(PYTEST_FLAGS.map(OsString::from));
        args.extend(["-q", "-o", "junit_family=xunit1"].map(OsString::from));
        let mut junit = OsString::from("--junitxml=");
        junit.push(&report);
        args.push(junit);
        args.extend(tests.iter().map(|t| OsString::from(&t.target)));
        Invocation {
            program: self.python.clone().into(),
            args,
            cwd: self.root.clone(),
            report_file: Some(report),
            env: vec![("PYTHONPATH".to_string(), self.python_path.clone())],
        }
    }

    fn results(
        &self,
        tests: &[&TestCase],
        end: ProcessEnd,
        invocation: &Invocation,
    ) -> Vec<TestResult> {
        let parsed = invocation.report_file.as_ref().map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| e.to_string())
                .and_then(|x| parse_junit(&x))
        });
        let mut reports = match parsed {
            Some(Ok(r)) => r,
            Some(Err(_)) | None => HashMap::new(),
        };
        tests
            .iter()
            .map(|t| match reports.remove(&junit_key(&t.target)) {
                Some(r) => TestResult {
                    status: r.status,
                    duration: r.time,
                    output: r.detail,
                },
                // Not in the report: the batch crashed or was killed, so the
                // test failed with it; the batch's own output tells why.
                None => {
                    let mut result = TestResult::from_end(end);
                    if matches!(end, ProcessEnd::Exited(_) | ProcessEnd::Signalled(_)) {
                        result.status = Status::Fail;
                    }
                    result
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_keys_follow_pytest_mangling() {
        assert_eq!(
            junit_key("tests/test_a.py::test_x"),
            ("tests.test_a".into(), "test_x".into())
        );
        assert_eq!(
            junit_key("tests/test_a.py::TestK::test_y[a/b::c]"),
            ("tests.test_a.TestK".into(), "test_y[a/b::c]".into())
        );
    }

    #[test]
    fn junit_outcomes_are_read_per_test() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_ok" time="0.010" />
<testcase classname="tests.test_a" name="test_bad" time="0.020"><failure message="assert 1 == 2">def test_bad():
&gt;       assert 1 == 2</failure></testcase>
<testcase classname="tests.test_a" name="test_skip" time="0.000"><skipped type="pytest.skip" message="no db">skip</skipped></testcase>
</testsuite></testsuites>"#;
        let r = parse_junit(xml).unwrap();
        let get = |n: &str| &r[&("tests.test_a".to_string(), n.to_string())];
        assert_eq!(get("test_ok").status, Status::Pass);
        assert_eq!(get("test_ok").time, Some(Duration::from_millis(10)));
        assert_eq!(get("test_bad").status, Status::Fail);
        assert!(
            get("test_bad")
                .detail
                .as_ref()
                .unwrap()
                .contains("assert 1 == 2")
        );
        assert_eq!(get("test_skip").status, Status::Skip);
        assert!(parse_junit("<testsuite").is_err());
    }
}
