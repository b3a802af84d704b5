//! pytest's arguments on partest's command line: what `pytest -n N ARGS`
//! users type. With the pytest adapter, `-k`, `-m`, paths and node ids, and
//! everything after `--` go to every worker's pytest, which decides the
//! selection there; the few that cannot work under parallel workers are
//! either taken over by partest (`-x`, `--maxfail`, `--lf`, `--ff`),
//! dropped with a note (xdist's own, `--junitxml`, `--sw`), or refused
//! (`--pdb`, `--collect-only`). With cargo and command tests, what follows
//! `--` stays libtest's filters and options, as before.

use std::path::Path;

use crate::cli::{RunArgs, SelectArgs};
use crate::config::{AdapterKind, Config, Overrides};
use crate::error::{Error, Result};

/// The command line, sorted by who takes what.
#[derive(Debug, Default, PartialEq)]
pub struct Sorted {
    /// partest's own name filters (and, for cargo, libtest's options).
    pub filters: Vec<String>,
    /// Arguments every pytest worker gets after `[pytest] args`.
    pub pytest: Vec<String>,
    /// Taken over from pytest's arguments.
    pub fail_fast: bool,
    pub max_fail: Option<u32>,
    pub last_failed: bool,
    pub failed_first: bool,
    /// One line each, said before the run: what was dropped and why.
    pub notes: Vec<String>,
}

impl Sorted {
    /// Sorts the selection (and, for `run`, the output flags) by adapter.
    pub fn of(config: &Config, select: &SelectArgs, run: Option<&RunArgs>) -> Result<Sorted> {
        let pytest = config.adapter()? == AdapterKind::Pytest;
        let mut sorted = Sorted::default();
        let pytest_only = |flag: &str| {
            Error::config(format!(
                "{flag} is pytest's (the pytest adapter); for cargo and command tests select with \
                 FILTER, --skip or -E"
            ))
        };
        if !pytest {
            if select.keyword.is_some() {
                return Err(pytest_only("-k"));
            }
            if select.markexpr.is_some() {
                return Err(pytest_only("-m"));
            }
            if let Some(run) = run
                && (run.verbose > 0 || run.quiet > 0 || run.tb.is_some())
            {
                sorted.notes.push(
                    "-v, -q and --tb are pytest's: they change nothing for cargo and command tests"
                        .into(),
                );
            }
            sorted.filters = select.filters.clone();
            sorted.filters.extend(select.passthrough.iter().cloned());
            return Ok(sorted);
        }
        if let Some(k) = &select.keyword {
            sorted.pytest.extend(["-k".into(), k.clone()]);
        }
        if let Some(m) = &select.markexpr {
            sorted.pytest.extend(["-m".into(), m.clone()]);
        }
        if let Some(run) = run {
            for _ in 0..run.verbose {
                sorted.pytest.push("-v".into());
            }
            for _ in 0..run.quiet {
                sorted.pytest.push("-q".into());
            }
            if let Some(tb) = &run.tb {
                sorted.pytest.push(format!("--tb={tb}"));
            }
        }
        for f in &select.filters {
            if is_pytest_target(&config.invoked_in, f) {
                sorted.pytest.push(f.clone());
            } else {
                sorted.filters.push(f.clone());
            }
        }
        sorted.passthrough(&select.passthrough)?;
        Ok(sorted)
    }

    /// What follows `--`, for pytest.
    fn passthrough(&mut self, args: &[String]) -> Result<()> {
        let mut args = args.iter().peekable();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            // A flag's value: `--flag=V`, `--flag V`, `-nV`, `-n V`.
            let mut value = |short: &str| -> Option<String> {
                if let Some(v) = &inline {
                    return Some(v.clone());
                }
                if !short.is_empty()
                    && let Some(v) = arg.strip_prefix(short).filter(|v| !v.is_empty())
                {
                    return Some(v.to_string());
                }
                args.next().cloned()
            };
            match flag {
                "-x" | "--exitfirst" => {
                    self.fail_fast = true;
                    self.notes.push(format!(
                        "{flag} after `--` is taken by partest: it stops the whole run after the \
                         first failure (as -x before `--`)"
                    ));
                }
                "--maxfail" => {
                    let v = value("").unwrap_or_default();
                    let n = v.parse::<u32>().map_err(|_| {
                        Error::config(format!("--maxfail {v:?}: expected a number of failures"))
                    })?;
                    self.max_fail = Some(n.max(1));
                    self.notes.push(format!(
                        "--maxfail after `--` is taken by partest: it stops the whole run after \
                         {n} failure(s), counted over every worker"
                    ));
                }
                "--lf" | "--last-failed" | "--ff" | "--failed-first" => {
                    if matches!(flag, "--lf" | "--last-failed") {
                        self.last_failed = true;
                    } else {
                        self.failed_first = true;
                    }
                    self.notes.push(format!(
                        "{flag} after `--` is taken by partest: from its own history (pytest's \
                         cache is off in the workers)"
                    ));
                }
                "--pdb" | "--trace" | "--pdbcls" => {
                    return Err(Error::config(format!(
                        "{flag}: a debugger needs the test in the foreground, which parallel \
                         workers are not; run that one test with plain `pytest {flag} NODEID`"
                    )));
                }
                "--co" | "--collect-only" => {
                    return Err(Error::config(format!(
                        "{flag}: `partest list` shows what would run"
                    )));
                }
                "--junitxml" | "--junit-xml" => {
                    let _ = value("");
                    self.notes.push(format!(
                        "{flag} dropped: every worker would write that file; partest writes \
                         the whole run's with --junit PATH"
                    ));
                }
                "--sw" | "--stepwise" | "--sw-skip" | "--stepwise-skip" | "--nf"
                | "--new-first" | "--cache-clear" => self.notes.push(format!(
                    "{flag} ignored: pytest's cache is off in partest's workers (they share \
                     it); --lf and --ff work from partest's history"
                )),
                _ if flag == "-n" || flag.starts_with("-n") && !flag.starts_with("--") => {
                    let _ = value("-n");
                    self.notes.push(
                        "-n after `--` is xdist's and dropped: partest is the scheduler \
                         (-n before `--` sets its workers)"
                            .into(),
                    );
                }
                "--numprocesses"
                | "--maxprocesses"
                | "--dist"
                | "--tx"
                | "--max-worker-restart" => {
                    let _ = value("");
                    self.notes.push(format!(
                        "{flag} is xdist's and dropped: partest is the scheduler"
                    ));
                }
                // pytest keeps the last -k (-m): one given before `--` too is
                // replaced, which is said rather than done silently.
                _ if (flag.starts_with("-k") || flag.starts_with("-m"))
                    && !flag.starts_with("--") =>
                {
                    let short = &flag[..2];
                    let given = value(short).unwrap_or_default();
                    if let Some(before) = self
                        .pytest
                        .windows(2)
                        .find(|w| w[0] == short)
                        .map(|w| w[1].clone())
                    {
                        self.notes.push(format!(
                            "{short} {given:?} after `--` replaces {short} {before:?} given \
                             before it (pytest keeps the last); to require both, write \
                             {short} \"({before}) and ({given})\""
                        ));
                    }
                    self.pytest.extend([short.to_string(), given]);
                }
                "-p" if args
                    .peek()
                    .is_some_and(|p| p.trim_start_matches("no:") == "xdist") =>
                {
                    args.next();
                    self.notes
                        .push("-p xdist dropped: partest runs the workers itself".into());
                }
                _ => self.pytest.push(arg.clone()),
            }
        }
        Ok(())
    }

    /// What was taken over from pytest's arguments, on the run's overrides.
    pub fn apply(&self, o: &mut Overrides) {
        if self.fail_fast {
            o.fail_fast = Some(true);
        }
        if self.max_fail.is_some() {
            o.max_fail = self.max_fail;
        }
        o.last_failed |= self.last_failed;
        if self.failed_first {
            o.failed_first = Some(true);
        }
    }
}

/// A path or node id pytest should select on, rather than a substring of
/// partest's: `tests/`, `test_a.py`, `tests/test_a.py::TestX::test_y`.
fn is_pytest_target(root: &Path, arg: &str) -> bool {
    let path = arg.split("::").next().unwrap_or(arg);
    arg.contains("::") || path.ends_with(".py") || (!path.is_empty() && root.join(path).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(args: &[&str]) -> Result<Sorted> {
        let mut s = Sorted::default();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        s.passthrough(&args).map(|()| s)
    }

    #[test]
    fn pytests_own_arguments_pass_and_the_schedulers_are_taken_over_or_dropped() {
        let s = sorted(&[
            "-k",
            "slow and not db",
            "--ds=app.settings",
            "-n",
            "4",
            "--dist=load",
            "-x",
            "--maxfail",
            "3",
            "-p",
            "no:xdist",
            "-p",
            "myplugin",
            "--lf",
            "tests/",
        ])
        .unwrap();
        assert_eq!(
            s.pytest,
            [
                "-k",
                "slow and not db",
                "--ds=app.settings",
                "-p",
                "myplugin",
                "tests/"
            ]
        );
        assert!(s.fail_fast && s.last_failed);
        assert_eq!(s.max_fail, Some(3));
        // -n, --dist and -p xdist dropped; -x, --maxfail and --lf taken over.
        assert_eq!(s.notes.len(), 6, "{:?}", s.notes);
        assert!(sorted(&["-n4"]).unwrap().pytest.is_empty());
        assert_eq!(sorted(&["--maxfail=2"]).unwrap().max_fail, Some(2));
    }

    #[test]
    fn a_second_keyword_after_the_separator_is_said_to_replace_the_first() {
        let mut s = Sorted {
            pytest: vec!["-k".into(), "fast".into()],
            ..Sorted::default()
        };
        s.passthrough(&["-kdb".to_string(), "-m".into(), "slow".into()])
            .unwrap();
        assert_eq!(s.pytest, ["-k", "fast", "-k", "db", "-m", "slow"]);
        assert_eq!(s.notes.len(), 1, "{:?}", s.notes);
        assert!(
            s.notes[0].contains("replaces -k \"fast\"") && s.notes[0].contains("(fast) and (db)"),
            "{}",
            s.notes[0]
        );
    }

    #[test]
    fn what_cannot_work_in_parallel_workers_is_refused_with_what_to_do() {
        for flag in ["--pdb", "--trace", "--collect-only"] {
            let e = sorted(&[flag]).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{e}");
        }
        assert!(sorted(&["--maxfail", "x"]).is_err());
    }

    #[test]
    fn paths_and_node_ids_are_pytests_and_other_words_partests_filters() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("tests")).unwrap();
        assert!(is_pytest_target(root.path(), "tests"));
        assert!(is_pytest_target(root.path(), "a/test_x.py"));
        assert!(is_pytest_target(
            root.path(),
            "tests/test_a.py::TestX::test_y"
        ));
        assert!(!is_pytest_target(root.path(), "test_login"));
    }
}
