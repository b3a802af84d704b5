//! `--junit PATH`: the run as JUnit XML, for CI systems' test tabs. Flaky
//! tests are successes with `flakyFailure` entries, as nextest writes them.

use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCaseStatus, TestRerun, TestSuite};

use super::Summary;
use crate::discover::{Status, TestCase};

pub fn write(path: &Path, tests: &[TestCase], summary: &Summary) -> std::io::Result<()> {
    let mut suite = TestSuite::new("partest");
    let mut ordered: Vec<_> = summary.results.iter().collect();
    ordered.sort_by_key(|(i, _)| **i);
    for (&index, result) in ordered {
        let Some(test) = tests.get(index as usize) else {
            continue;
        };
        let mut status = match result.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Skip | Status::Cancelled => TestCaseStatus::skipped(),
            Status::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
            Status::Timeout => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message("timed out");
                s
            }
            Status::Crash => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message("the process running the test died");
                s
            }
        };
        if result.status.is_failure() {
            if let Some(output) = &result.output {
                status.set_description(output.as_str());
            }
        } else if result.flaky {
            for (time, output) in &result.failed_attempts {
                let mut rerun = TestRerun::new(NonSuccessKind::Failure);
                rerun.set_time(*time);
                if let Some(output) = output {
                    rerun.set_system_out_lossy(output.as_bytes());
                }
                status.add_rerun(rerun);
            }
        }
        let mut case = quick_junit::TestCase::new(test.name.as_str(), status);
        case.set_time(result.duration);
        case.extra
            .insert("slot".into(), format!("gw{}", result.slot).into());
        suite.add_test_case(case);
    }
    let mut report = Report::new("partest");
    report.set_time(summary.wall);
    report.add_test_suite(suite);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::File::create(path)?;
    report
        .serialize(std::io::BufWriter::new(file))
        .map_err(std::io::Error::other)
}
