//! What a run reports for tools, typed: its JSON events (`--message-format
//! json`) and its JUnit file. Tests assert on these counts and outcomes, so
//! that rewording a human line breaks no test and a wrong count in the
//! machine output is seen; the human output's wording is checked once, in
//! the snapshot tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use serde_json::Value;

/// A test's status, as the JSON events spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Pass,
    Fail,
    Skip,
    Timeout,
    Crash,
    Cancelled,
}

impl Status {
    fn parse(text: &str) -> Status {
        match text {
            "pass" => Status::Pass,
            "fail" => Status::Fail,
            "skip" => Status::Skip,
            "timeout" => Status::Timeout,
            "crash" => Status::Crash,
            "cancelled" => Status::Cancelled,
            other => panic!("unknown test status {other:?} in the JSON events"),
        }
    }
}

/// One `test-finished` event: one attempt of one test.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub test: String,
    pub slot: String,
    pub attempt: u64,
    pub status: Status,
    pub will_retry: bool,
    pub leaked: bool,
    pub output: Option<String>,
    pub stderr: Option<String>,
}

impl Attempt {
    /// What the test printed: its output, then its stderr.
    pub fn text(&self) -> String {
        format!(
            "{}{}",
            self.output.as_deref().unwrap_or(""),
            self.stderr.as_deref().unwrap_or("")
        )
    }
}

/// The `run-finished` event: what the run amounted to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub crashed: u64,
    pub skipped: u64,
    pub flaky: u64,
    pub cancelled: u64,
    pub leaked: u64,
    pub interrupted: bool,
    /// What the adapter left out (doctests), as the summary line says it.
    pub note: Option<String>,
}

impl Counts {
    /// Every test that did not pass: failed, timed out or crashed.
    pub fn failures(&self) -> u64 {
        self.failed + self.timed_out + self.crashed
    }
}

/// A `diagnosis` event: why a test failed in parallel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosed {
    pub verdict: String,
    pub culprits: Vec<String>,
    pub reruns: u64,
}

/// The `run-started` event.
#[derive(Debug)]
pub struct Started {
    pub run_id: String,
    pub workers: u64,
    pub parallel: u64,
    pub serial: u64,
    pub skipped: u64,
}

/// A run's JSON events in order, with the process output they came from.
pub struct Run {
    pub out: Output,
    pub events: Vec<Value>,
}

/// `args` with `--message-format json` after the subcommand (`run`, `list`),
/// so that a trailing `-- ...` keeps its meaning.
pub fn json_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let at = args
        .iter()
        .position(|a| *a == "run" || *a == "list")
        .map_or(args.len(), |i| i + 1);
    let mut with = args.to_vec();
    with.splice(at..at, ["--message-format", "json"]);
    with
}

fn count(event: &Value, key: &str) -> u64 {
    event[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {event}"))
}

fn text(event: &Value, key: &str) -> Option<String> {
    event[key].as_str().map(str::to_string)
}

impl Run {
    /// Parses a run started with `--message-format json`: one JSON object
    /// per line of stdout, the first the format's.
    pub fn parse(out: Output) -> Run {
        let events: Vec<Value> = crate::stdout(&out)
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!(
                        "not one JSON object per line ({e}): {l}\n{}",
                        crate::both(&out)
                    )
                })
            })
            .collect();
        if let Some(first) = events.first() {
            assert_eq!(first["type"], "format", "{}", crate::both(&out));
        }
        Run { out, events }
    }

    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// Both streams, for assertion messages.
    pub fn both(&self) -> String {
        crate::both(&self.out)
    }

    pub fn stderr(&self) -> String {
        crate::stderr(&self.out)
    }

    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["type"] == kind)
    }

    fn one<'a>(&'a self, kind: &'a str) -> &'a Value {
        let found: Vec<&Value> = self.of_type(kind).collect();
        assert_eq!(found.len(), 1, "one {kind} event: {}", self.both());
        found[0]
    }

    pub fn started(&self) -> Started {
        let e = self.one("run-started");
        Started {
            run_id: text(e, "run_id").expect("run_id"),
            workers: count(e, "workers"),
            parallel: count(e, "parallel"),
            serial: count(e, "serial"),
            skipped: count(e, "skipped"),
        }
    }

    /// The `run-finished` counts (the last event of a run).
    pub fn counts(&self) -> Counts {
        let e = self.one("run-finished");
        assert_eq!(
            self.events.last(),
            Some(e),
            "run-finished comes last: {}",
            self.both()
        );
        Counts {
            passed: count(e, "passed"),
            failed: count(e, "failed"),
            timed_out: count(e, "timed_out"),
            crashed: count(e, "crashed"),
            skipped: count(e, "skipped"),
            flaky: count(e, "flaky"),
            cancelled: count(e, "cancelled"),
            leaked: count(e, "leaked"),
            interrupted: e["interrupted"].as_bool().expect("interrupted"),
            note: text(e, "note"),
        }
    }

    /// Every attempt of every test, in the order they finished.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.of_type("test-finished")
            .map(|e| Attempt {
                test: text(e, "test").expect("test"),
                slot: text(e, "slot").expect("slot"),
                attempt: count(e, "attempt"),
                status: Status::parse(e["status"].as_str().expect("status")),
                will_retry: e["will_retry"].as_bool().expect("will_retry"),
                leaked: e["leaked"].as_bool().expect("leaked"),
                output: text(e, "output"),
                stderr: text(e, "stderr"),
            })
            .collect()
    }

    /// The last attempt of `test`.
    pub fn last_attempt(&self, test: &str) -> Attempt {
        self.attempts()
            .into_iter()
            .rfind(|a| a.test == test)
            .unwrap_or_else(|| panic!("{test} did not finish: {}", self.both()))
    }

    /// Each test's final word: its last attempt's status, or Skip.
    pub fn outcomes(&self) -> BTreeMap<String, Status> {
        let mut out: BTreeMap<String, Status> = self
            .of_type("test-skipped")
            .map(|e| (text(e, "test").expect("test"), Status::Skip))
            .collect();
        for a in self.attempts().into_iter().filter(|a| !a.will_retry) {
            out.insert(a.test, a.status);
        }
        out
    }

    /// The tests whose final word is `status`.
    pub fn with_status(&self, status: Status) -> BTreeSet<String> {
        self.outcomes()
            .into_iter()
            .filter(|(_, s)| *s == status)
            .map(|(t, _)| t)
            .collect()
    }

    /// (passed, failed + timed out + crashed), as a summary line counts them.
    pub fn passed_and_failed(&self) -> (u64, u64) {
        let counts = self.counts();
        (counts.passed, counts.failures())
    }

    /// For a run that must pass: checks its exit code 0, that nothing
    /// failed and that the passed count is that of the tests that passed;
    /// returns those.
    pub fn passed(&self) -> BTreeSet<String> {
        assert_eq!(self.code(), Some(0), "{}", self.both());
        let passed = self.with_status(Status::Pass);
        assert_eq!(
            self.passed_and_failed(),
            (passed.len() as u64, 0),
            "{}",
            self.both()
        );
        passed
    }

    /// The tests that the run reported at all.
    pub fn tests(&self) -> BTreeSet<String> {
        self.outcomes().into_keys().collect()
    }

    /// The `diagnosis` events, by test.
    pub fn diagnoses(&self) -> BTreeMap<String, Diagnosed> {
        self.of_type("diagnosis")
            .map(|e| {
                let test = text(e, "test").expect("test");
                let d = Diagnosed {
                    verdict: text(e, "verdict").expect("verdict"),
                    culprits: e["culprits"]
                        .as_array()
                        .unwrap_or_else(|| panic!("culprits is not a list in {e}"))
                        .iter()
                        .map(|c| c.as_str().expect("a culprit's id").to_string())
                        .collect(),
                    reruns: count(e, "reruns"),
                };
                (test, d)
            })
            .collect()
    }

    /// What `warning` events said.
    pub fn warnings(&self) -> Vec<String> {
        self.of_type("warning")
            .map(|e| text(e, "message").expect("message"))
            .collect()
    }
}

impl crate::Project {
    /// `partest ARGS --message-format json` in this project, parsed.
    pub fn run_json(&self, args: &[&str]) -> Run {
        Run::parse(self.run(&json_args(args)))
    }

    /// `partest list ARGS --message-format json` in this project, parsed.
    pub fn list_json(&self, args: &[&str]) -> Listed {
        Listed::parse(&self.run(&json_args(args)))
    }
}

/// One line of `partest list --message-format json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub test: String,
    /// `parallel`, `serial` or `skipped`.
    pub phase: String,
    pub group: Option<String>,
}

/// What `partest list --message-format json` said, in its order.
#[derive(Clone, Debug)]
pub struct Listed(pub Vec<ListEntry>);

impl Listed {
    /// Parses the output of a successful `partest list --message-format json`.
    pub fn parse(out: &Output) -> Listed {
        assert_eq!(out.status.code(), Some(0), "{}", crate::both(out));
        Listed(
            crate::stdout(out)
                .lines()
                .map(|l| {
                    let e: Value = serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
                    ListEntry {
                        test: text(&e, "test").expect("test"),
                        phase: text(&e, "phase").expect("phase"),
                        group: text(&e, "group"),
                    }
                })
                .collect(),
        )
    }

    /// The tests in `phase`, in the listed order.
    pub fn in_phase(&self, phase: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|e| e.phase == phase)
            .map(|e| e.test.as_str())
            .collect()
    }
}

/// A JUnit file, read as CI dashboards read it.
#[derive(Debug)]
pub struct Junit {
    pub xml: String,
    /// The `<testsuites>` totals.
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub suites: Vec<Suite>,
}

#[derive(Debug)]
pub struct Suite {
    pub name: String,
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    pub cases: Vec<Case>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseResult {
    Passed,
    Failed,
    Error,
    Skipped,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub classname: Option<String>,
    pub time: Option<String>,
    /// Every attribute's name, to check that none is non-standard.
    pub attributes: Vec<String>,
    pub result: CaseResult,
    /// The `<failure>`, `<error>` or `<skipped>` message and type.
    pub message: Option<String>,
    pub kind: Option<String>,
    /// `<rerunFailure>`/`<rerunError>` entries: failed attempts before a failure.
    pub reruns: usize,
    /// `<flakyFailure>`/`<flakyError>` entries: failed attempts before a pass.
    pub flaky_attempts: usize,
    pub system_out: Option<String>,
    pub system_err: Option<String>,
    /// `<properties>`: (name, value) in order.
    pub properties: Vec<(String, String)>,
}

fn attr_count(node: roxmltree::Node, name: &str, xml: &str) -> u64 {
    node.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no {name}: {xml}", node.tag_name().name()))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}: {xml}"))
}

fn case(node: roxmltree::Node) -> Case {
    let child = |tags: &[&str]| {
        node.children()
            .find(|n| tags.contains(&n.tag_name().name()))
    };
    let count = |tags: &[&str]| {
        node.children()
            .filter(|n| tags.contains(&n.tag_name().name()))
            .count()
    };
    let (result, verdict) = if let Some(n) = child(&["failure"]) {
        (CaseResult::Failed, Some(n))
    } else if let Some(n) = child(&["error"]) {
        (CaseResult::Error, Some(n))
    } else if let Some(n) = child(&["skipped"]) {
        (CaseResult::Skipped, Some(n))
    } else {
        (CaseResult::Passed, None)
    };
    let stream = |tag: &str| child(&[tag]).map(|n| n.text().unwrap_or("").to_string());
    Case {
        name: node
            .attribute("name")
            .expect("a testcase has a name")
            .into(),
        classname: node.attribute("classname").map(str::to_string),
        time: node.attribute("time").map(str::to_string),
        attributes: node.attributes().map(|a| a.name().to_string()).collect(),
        result,
        message: verdict.and_then(|n| n.attribute("message").map(str::to_string)),
        kind: verdict.and_then(|n| n.attribute("type").map(str::to_string)),
        reruns: count(&["rerunFailure", "rerunError"]),
        flaky_attempts: count(&["flakyFailure", "flakyError"]),
        system_out: stream("system-out"),
        system_err: stream("system-err"),
        properties: child(&["properties"])
            .map(|props| {
                props
                    .children()
                    .filter(|n| n.tag_name().name() == "property")
                    .map(|n| {
                        let get = |a| n.attribute(a).unwrap_or_default().to_string();
                        (get("name"), get("value"))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Reads and parses the JUnit file at `path`.
pub fn read_junit(path: &Path) -> Junit {
    let xml =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("JUnit {}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&xml)
        .unwrap_or_else(|e| panic!("JUnit is not well-formed XML ({e}): {xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites", "{xml}");
    let suites = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|s| Suite {
            name: s.attribute("name").expect("a testsuite has a name").into(),
            tests: attr_count(s, "tests", &xml),
            failures: attr_count(s, "failures", &xml),
            errors: attr_count(s, "errors", &xml),
            skipped: s
                .attribute("skipped")
                .map_or(0, |_| attr_count(s, "skipped", &xml)),
            cases: s
                .children()
                .filter(|n| n.has_tag_name("testcase"))
                .map(case)
                .collect(),
        })
        .collect();
    Junit {
        tests: attr_count(root, "tests", &xml),
        failures: attr_count(root, "failures", &xml),
        errors: attr_count(root, "errors", &xml),
        suites,
        xml,
    }
}

impl Junit {
    pub fn cases(&self) -> impl Iterator<Item = &Case> {
        self.suites.iter().flat_map(|s| s.cases.iter())
    }

    /// The one case named `name`.
    pub fn case(&self, name: &str) -> &Case {
        let found: Vec<&Case> = self.cases().filter(|c| c.name == name).collect();
        assert_eq!(found.len(), 1, "one testcase {name}: {}", self.xml);
        found[0]
    }

    pub fn suite_names(&self) -> Vec<&str> {
        self.suites.iter().map(|s| s.name.as_str()).collect()
    }

    /// How many cases have each result.
    pub fn results(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for c in self.cases() {
            let key = match c.result {
                CaseResult::Passed => "passed",
                CaseResult::Failed => "failed",
                CaseResult::Error => "error",
                CaseResult::Skipped => "skipped",
            };
            *out.entry(key).or_default() += 1;
        }
        out
    }

    /// The names of the cases with `result`.
    pub fn with_result(&self, result: CaseResult) -> BTreeSet<String> {
        self.cases()
            .filter(|c| c.result == result)
            .map(|c| c.name.clone())
            .collect()
    }
}
