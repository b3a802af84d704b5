//! The built-in provider: every slot gets its own temp directory
//! (`TMPDIR`, `PARTEST_TMPDIR`), under one run directory removed at the end.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{IsoResult, Isolation, IsolationError, IsolationErrorKind, RunInfo};
use crate::model::{Env, Slot};

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
        IsolationError::new("tempdir", hook, IsolationErrorKind::Failed, message)
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

/// One run directory a dead run left behind, found by [`TempDirs::sweep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadRunDir {
    pub run_id: String,
    pub dir: PathBuf,
    pub pid: Option<u32>,
}

impl TempDirs {
    /// `partest clean`: run directories (`<base>/partest-<run id>`, holding
    /// a `.partest-run` pid file) whose run is dead — its register record
    /// says so, or it has none and its pid is gone. A live run's directory
    /// and anything without the pid file are never listed.
    pub fn sweep(base: Option<&Path>) -> Vec<DeadRunDir> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let Ok(entries) = std::fs::read_dir(&base) else {
            return Vec::new();
        };
        let mut dead = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(run_id) = name.strip_prefix("partest-") else {
                continue;
            };
            if run_id.is_empty() || !run_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                continue;
            }
            let dir = entry.path();
            let Ok(text) = std::fs::read_to_string(dir.join(".partest-run")) else {
                continue;
            };
            let pid = text.trim().parse::<u32>().ok();
            let is_dead = match crate::runs::liveness(run_id) {
                crate::runs::Liveness::Dead => true,
                crate::runs::Liveness::Alive => false,
                crate::runs::Liveness::Unknown => {
                    pid.is_some_and(|p| !crate::runs::process_runs(p))
                }
            };
            if is_dead {
                dead.push(DeadRunDir {
                    run_id: run_id.to_string(),
                    dir,
                    pid,
                });
            }
        }
        dead.sort_by(|a, b| a.dir.cmp(&b.dir));
        dead
    }

    /// Removes one directory found by [`TempDirs::sweep`].
    pub fn remove_dead(found: &DeadRunDir) -> Result<(), String> {
        remove_tree(&found.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_lists_only_dirs_of_dead_runs_with_a_pid_file() {
        let base = tempfile::tempdir().unwrap();
        let mk = |name: &str, pid: Option<u32>| {
            let d = base.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            if let Some(pid) = pid {
                std::fs::write(d.join(".partest-run"), format!("{pid}\n")).unwrap();
            }
        };
        mk("partest-dead0001", Some(4_194_303));
        mk("partest-live0001", Some(std::process::id()));
        mk("partest-nopid001", None);
        mk("other-dead0002", Some(4_194_303));
        let found = TempDirs::sweep(Some(base.path()));
        let names: Vec<&str> = found.iter().map(|f| f.run_id.as_str()).collect();
        assert_eq!(names, ["dead0001"]);
        TempDirs::remove_dead(&found[0]).unwrap();
        assert!(!base.path().join("partest-dead0001").exists());
        assert!(base.path().join("partest-live0001").exists());
    }
}
