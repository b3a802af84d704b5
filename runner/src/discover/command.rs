//! The universal adapter: every file matched by `[command] tests` is one
//! test, run by the `[command] run` template; exit 0 passes.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{Adapter, ProcessAdapter, Runs};
use crate::config::{AdapterKind, Config, Filter};
use crate::error::{Error, Result};
use crate::model::{Invocation, TestCase};

pub struct CommandAdapter {
    root: PathBuf,
    tests: Filter,
    /// The template split into words once; `{}` is replaced per test. Run
    /// directly, not through a shell, so each test costs one exec.
    template: Vec<String>,
}

impl CommandAdapter {
    pub fn new(config: &Config) -> Result<CommandAdapter> {
        let table = config.file.command.as_ref().ok_or_else(|| {
            Error::config(format!(
                "{}: [run] adapter = \"command\" needs a [command] table, e.g.\n\n[command]\ntests = [\"tests/**/*.sh\"]\nrun = \"bash {{}}\"",
                config.origin()
            ))
        })?;
        let template = shell_words::split(&table.run).map_err(|e| {
            Error::config(format!(
                "{}: [command] run: {e}",
                config.at(&["command", "run"])
            ))
        })?;
        Ok(CommandAdapter {
            root: config.root.clone(),
            tests: table.tests.clone(),
            template,
        })
    }
}

impl Adapter for CommandAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Command
    }

    fn discover(&mut self) -> Result<Vec<TestCase>> {
        let files = self
            .tests
            .matching_files(&self.root)
            .map_err(|e| Error::setup(format!("listing test files: {e}")))?;
        Ok(files
            .into_iter()
            .map(|rel| {
                let mut test = TestCase::new(rel);
                std::sync::Arc::make_mut(&mut test.meta).kind = "command".into();
                test
            })
            .collect())
    }

    fn runs(&self) -> Runs<'_> {
        Runs::Processes(self)
    }
}

impl ProcessAdapter for CommandAdapter {
    fn invocation(&self, test: &TestCase) -> Invocation {
        let file = &test.target;
        let mut words = self
            .template
            .iter()
            .map(|w| OsString::from(w.replace("{}", file)));
        let program = words.next().unwrap_or_default();
        let mut args: Vec<OsString> = words.collect();
        if !self.template.iter().any(|w| w.contains("{}")) {
            args.push(file.into());
        }
        Invocation {
            program,
            args,
            cwd: self.root.clone(),
            env: Vec::new(),
        }
    }
}
