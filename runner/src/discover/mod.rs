//! Discovery: each adapter lists a project's tests and says how to run one.
//! cargo and command run a process per test ([`process::ProcessExecutor`]);
//! pytest is a [`executor::WorkerAdapter`]: a long-lived worker per slot,
//! which collects the tests itself (with the slot's env set). The pool
//! drives either through [`executor::Executor`], knowing no adapter.

mod cargo;
pub mod collect;
mod command;
pub mod executor;
pub mod process;
mod pytest;

use std::sync::Arc;

pub use cargo::CargoAdapter;
pub use command::CommandAdapter;
pub use pytest::PytestAdapter;

use crate::config::{AdapterKind, Config};
use crate::error::Result;
use crate::exec::Interrupts;
use crate::model::{CargoArgs, Invocation, RunIgnored, TestCase};
use executor::WorkerAdapter;

/// What a run needs from an adapter.
pub trait Adapter: Send + Sync {
    fn kind(&self) -> AdapterKind;

    /// Lists the tests (building them first if the adapter must).
    fn discover(&mut self) -> Result<Vec<TestCase>>;

    /// How its tests run: a process each, or in a long-lived worker per slot.
    fn runs(&self) -> Runs<'_>;

    /// A word for the summary line about what the adapter did not run
    /// (cargo: doctests without `--doctests`).
    fn note(&self) -> Option<String> {
        None
    }

    /// What the adapter does once the tests are over and its workers gone
    /// (pytest: combine pytest-cov's data and write its reports), for the
    /// tests run since `since`.
    fn finish(&self, _since: std::time::SystemTime) -> Option<Finished> {
        None
    }

    /// Each slot's long-lived worker collects and runs the tests (pytest):
    /// `partest run` does not call [`Adapter::discover`] up front, and plans
    /// by file.
    fn in_workers(&self) -> bool {
        matches!(self.runs(), Runs::Workers(_))
    }
}

/// What an adapter's [`Adapter::finish`] did: text for the user, and why
/// the run fails because of it, if it does (`--cov-fail-under`).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub text: String,
    pub failure: Option<String>,
}

/// How an adapter's tests are run.
pub enum Runs<'a> {
    /// One process per test (cargo, command).
    Processes(&'a dyn ProcessAdapter),
    /// A long-lived worker per slot that collects and runs them (pytest).
    Workers(&'a dyn WorkerAdapter),
}

/// An adapter that runs each test in a process of its own.
pub trait ProcessAdapter: Send + Sync {
    /// The process that runs one test.
    fn invocation(&self, test: &TestCase) -> Invocation;
}

/// Options of `run` and `list` that change what adapters find.
#[derive(Clone, Default)]
pub struct DiscoverOptions {
    pub run_ignored: RunIgnored,
    /// cargo's flags from the command line.
    pub cargo: CargoArgs,
    /// pytest's arguments from the command line, after `[pytest] args`.
    pub pytest_args: Vec<String>,
    /// Ctrl-C during discovery stops what discovery runs (cargo's build).
    pub interrupts: Option<Arc<Interrupts>>,
}

/// The adapter for this project.
pub fn adapter_for(config: &Config, options: &DiscoverOptions) -> Result<Box<dyn Adapter>> {
    Ok(match config.adapter()? {
        AdapterKind::Command => Box::new(CommandAdapter::new(config)?),
        AdapterKind::Cargo => Box::new(CargoAdapter::new(config, options)?),
        AdapterKind::Pytest => Box::new(PytestAdapter::new(config, &options.pytest_args)?),
    })
}
