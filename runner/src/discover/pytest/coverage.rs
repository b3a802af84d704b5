//! pytest-cov under partest: each worker saves its own data file (it takes
//! partest's workers for xdist's, colocated with their master), and
//! partest does what xdist's master would at the end: `coverage combine`
//! of the files this run's workers wrote (which removes them), then the
//! reports pytest-cov was asked for, and `--cov-fail-under`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::discover::Finished;
use crate::discover::collect::CoverageAsked;

/// Combines the data the workers wrote since `since` and writes the reports.
pub fn finish(python: &str, cwd: &Path, asked: &CoverageAsked, since: SystemTime) -> Finished {
    let data = workers_data(&asked.data_file, since);
    if data.is_empty() {
        return Finished {
            text: "coverage: the workers wrote no data (pytest-cov measured nothing)\n".into(),
            failure: None,
        };
    }
    let coverage = |args: &[&str]| -> Result<String, String> {
        let mut cmd = Command::new(python);
        cmd.args(["-m", "coverage"]).args(args).current_dir(cwd);
        cmd.env("COVERAGE_FILE", &asked.data_file);
        if let Some(rc) = rcfile(asked, cwd) {
            // Every subcommand takes it after its name.
            cmd.arg(format!("--rcfile={rc}"));
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {python} -m coverage: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match out.status.code() {
            Some(0) => Ok(text),
            _ => Err(format!(
                "`coverage {}` failed: {}{}",
                args.first().unwrap_or(&""),
                text,
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    };
    let mut combine = vec!["combine".to_string(), "-q".to_string()];
    combine.extend(data.iter().map(|p| p.display().to_string()));
    let combine: Vec<&str> = combine.iter().map(String::as_str).collect();
    if let Err(e) = coverage(&combine) {
        return Finished {
            text: format!("coverage: {e}\n"),
            failure: Some("coverage: the workers' data could not be combined".into()),
        };
    }
    let precision = asked.precision.map(|p| format!("--precision={p}"));
    let mut text = String::new();
    for (kind, value) in &asked.reports {
        let skip_covered = value.as_deref() == Some("skip-covered");
        let mut args: Vec<String> = match kind.as_str() {
            "term" => vec!["report".into()],
            "term-missing" => vec!["report".into(), "-m".into()],
            "html" | "annotate" => vec![kind.clone()],
            "xml" | "json" | "lcov" => vec![kind.clone()],
            other => {
                text.push_str(&format!(
                    "coverage: --cov-report={other} is not written under partest\n"
                ));
                continue;
            }
        };
        match (kind.as_str(), value.as_deref()) {
            ("term" | "term-missing", _) => {
                if skip_covered {
                    args.push("--skip-covered".into());
                }
                args.extend(precision.clone());
            }
            ("html" | "annotate", Some(dir)) if !dir.is_empty() => {
                args.extend(["-d".into(), dir.to_string()])
            }
            (_, Some(file)) if !file.is_empty() => args.extend(["-o".into(), file.to_string()]),
            _ => {}
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match coverage(&args) {
            Ok(out) => text.push_str(&out),
            Err(e) => text.push_str(&format!("coverage: {e}\n")),
        }
    }
    let failure = asked.fail_under.filter(|f| *f > 0.0).and_then(|under| {
        let total = coverage(&["report", "--format=total"])
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())?;
        (total < under)
            .then(|| format!("coverage: the total of {total}% is under --cov-fail-under={under}"))
    });
    Finished { text, failure }
}

/// `--cov-config`, when it names a file there (pytest-cov's default
/// `.coveragerc` may not exist: coverage then looks for its usual files).
fn rcfile(asked: &CoverageAsked, cwd: &Path) -> Option<String> {
    let rc = asked.rcfile.as_deref()?;
    cwd.join(rc).is_file().then(|| rc.to_string())
}

/// The data files the workers wrote in this run: `<data file>.<suffix>`,
/// modified since it started.
fn workers_data(data_file: &Path, since: SystemTime) -> Vec<PathBuf> {
    let (Some(dir), Some(base)) = (data_file.parent(), data_file.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", base.to_string_lossy());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since)
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}
