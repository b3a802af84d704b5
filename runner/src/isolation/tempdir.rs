//! The built-in provider: every slot gets its own temp directory
//! (`TMPDIR`, `PARTEST_TMPDIR`), under one run directory removed at the end.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{Env, IsoResult, Isolation, IsolationError, RunInfo, Slot};

#[derive(Default)]
pub struct TempDirs {
    base: Option<PathBuf>,
    run_dir: OnceLock<PathBuf>,
}

impl TempDirs {
    /// `base`: where run directories go; the system temp dir when `None`.
    pub fn new(base: Option<PathBuf>) -> TempDirs {
        TempDirs {
            base,
            run_dir: OnceLock::new(),
        }
    }

    /// The run's directory, once `setup_run` made it.
    pub fn run_dir(&self) -> Option<&Path> {
        self.run_dir.get().map(PathBuf::as_path)
    }

    /// A slot's temp directory; `PARTEST_TEST_TMPDIR`s are made inside it.
    pub fn slot_dir(&self, slot: &Slot) -> Option<PathBuf> {
        self.run_dir().map(|d| d.join(&slot.name))
    }

    fn err(&self, hook: &'static str, message: String) -> IsolationError {
        IsolationError {
            provider: "tempdir".into(),
            hook,
            message,
        }
    }
}

impl Isolation for TempDirs {
    fn name(&self) -> &str {
        "tempdir"
    }

    fn setup_run(&self, run: &RunInfo) -> IsoResult<Env> {
        let base = self.base.clone().unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("partest-{}", run.run_id));
        std::fs::create_dir_all(&dir)
            .map_err(|e| self.err("setup-run", format!("cannot create {}: {e}", dir.display())))?;
        // The pid lets `partest clean` tell a crashed run's directory from a live one's.
        let _ = std::fs::write(
            dir.join(".partest-run"),
            format!("{}\n", std::process::id()),
        );
        let _ = self.run_dir.set(dir);
        Ok(Vec::new())
    }

    fn setup_slot(&self, slot: &Slot) -> IsoResult<Env> {
        let dir = self
            .slot_dir(slot)
            .ok_or_else(|| self.err("setup-slot", "setup-run did not run".into()))?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            self.err(
                "setup-slot",
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        let dir = dir.to_string_lossy().into_owned();
        Ok(vec![
            ("TMPDIR".into(), dir.clone()),
            ("PARTEST_TMPDIR".into(), dir),
        ])
    }

    fn teardown_slot(&self, slot: &Slot, _run_failed: bool) -> IsoResult<()> {
        match self.slot_dir(slot) {
            Some(dir) => remove_tree(&dir).map_err(|m| self.err("teardown-slot", m)),
            None => Ok(()),
        }
    }

    fn teardown_run(&self, _run_failed: bool) -> IsoResult<()> {
        match self.run_dir() {
            Some(dir) => remove_tree(dir).map_err(|m| self.err("teardown-run", m)),
            None => Ok(()),
        }
    }
}

fn remove_tree(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}
