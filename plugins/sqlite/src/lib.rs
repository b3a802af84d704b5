//! The built-in `sqlite` plugin: one SQLite database file per slot, in
//! partest's own directory (the plugin's scratch dir, `.partest/plugins/sqlite/<run>/`).
//!
//! Migrate once, clone per slot: the template is either `template = "db.db"`
//! (copied read-only into the scratch dir once per run) or whatever the
//! `[setup] commands` wrote to the template path this plugin exports from
//! setup-run; each slot gets a copy made with SQLite's backup API (so a WAL
//! template copies consistently). Teardown removes the slot files, unless
//! the run failed and `keep-on-failure = true` (then their paths are logged).
//!
//! ```toml
//! [plugins.sqlite]
//! var = "DATABASE_URL"          # the env var tests read
//! url = "sqlite://{path}"       # {path}: the absolute path; e.g. "sqlite:///{path}" for SQLAlchemy, "file:{path}", "{path}"
//! template = "db/template.db"   # optional: an existing, migrated database
//! keep-on-failure = false
//! ```

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{
    ConfigKey, Env, Error, Plugin, Result, RunInfo, Slot, config, log, runs, sqlite,
};

#[derive(Deserialize)]
#[serde(
    crate = "partest_plugin_sdk::serde",
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
struct Settings {
    #[serde(default = "default_var")]
    var: String,
    #[serde(default = "default_url")]
    url: String,
    template: Option<String>,
    #[serde(default)]
    keep_on_failure: bool,
}

fn default_var() -> String {
    "DATABASE_URL".into()
}
fn default_url() -> String {
    "sqlite://{path}".into()
}

struct Sqlite {
    s: Settings,
}

/// The template, as the host copied or the setup commands made it.
const TEMPLATE: &str = "template.db";

fn slot_file(slot: &Slot) -> String {
    format!("test_{}.db", slot.name)
}

/// `<run>/<file>`: scratch-relative, what the sqlite capability takes.
fn rel(run: &RunInfo, file: &str) -> String {
    format!("{}/{file}", run.run_id)
}

/// The same file as the plugin sees it through its scratch preopen.
fn guest(run: &RunInfo, file: &str) -> String {
    format!("{}/{}/{file}", run.scratch, run.run_id)
}

/// A database file and the files SQLite keeps next to it.
fn remove_db(path: &str) -> std::io::Result<()> {
    for suffix in ["-wal", "-shm", "-journal"] {
        match std::fs::remove_file(format!("{path}{suffix}")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A non-empty regular file: a template worth cloning.
fn populated(path: &str) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

impl Sqlite {
    fn env(&self, path: &str) -> Env {
        vec![
            (self.s.var.clone(), self.s.url.replace("{path}", path)),
            ("PARTEST_SQLITE_PATH".into(), path.to_string()),
        ]
    }
}

impl Plugin for Sqlite {
    const SUMMARY: &'static str =
        "one SQLite file per slot (DATABASE_URL), cloned from a migrated template";

    fn config_keys() -> Vec<ConfigKey> {
        let key = |name: &str, description: &str, default: Option<&str>| ConfigKey {
            name: name.into(),
            description: description.into(),
            default_value: default.map(str::to_string),
        };
        vec![
            key(
                "var",
                "env var that gets the slot's database URL",
                Some("\"DATABASE_URL\""),
            ),
            key(
                "url",
                "URL format; {path} is the absolute file path (\"sqlite:///{path}\" for SQLAlchemy, \"file:{path}\", \"{path}\")",
                Some("\"sqlite://{path}\""),
            ),
            key(
                "template",
                "an existing migrated database (relative to the project root) cloned into every slot; without it, what [setup] commands write to PARTEST_SQLITE_TEMPLATE",
                None,
            ),
            key(
                "keep-on-failure",
                "keep the slot files of a failed run (paths are printed)",
                Some("false"),
            ),
        ]
    }

    fn configure() -> Result<Self> {
        let s: Settings = config()?;
        if s.var.is_empty() || s.var.contains('=') {
            return Err(Error::bad_config(format!(
                "var = {:?}: a variable name is required",
                s.var
            )));
        }
        if !s.url.contains("{path}") {
            return Err(Error::bad_config(format!(
                "url = {:?}: must contain {{path}}, e.g. \"sqlite:///{{path}}\" or \"file:{{path}}\"",
                s.url
            )));
        }
        Ok(Sqlite { s })
    }

    fn setup_run(&mut self, run: &RunInfo) -> Result<Env> {
        let dir = format!("{}/{}", run.scratch, run.run_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::failed(format!("cannot create {dir}: {e}")))?;
        if let Some(template) = &self.s.template {
            sqlite::copy_granted(template, &rel(run, TEMPLATE)).map_err(|e| match e {
                Error::BadConfig(m) => Error::bad_config(format!("template = {template:?}: {m}")),
                other => other,
            })?;
        }
        let path = sqlite::host_path(&rel(run, TEMPLATE))?;
        let mut env = self.env(&path);
        env.push(("PARTEST_SQLITE_TEMPLATE".into(), path));
        Ok(env)
    }

    fn setup_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env> {
        let file = slot_file(slot);
        // A file left by an earlier attempt at this slot is replaced, not reused.
        remove_db(&guest(run, &file))
            .map_err(|e| Error::failed(format!("cannot clear {file}: {e}")))?;
        if populated(&guest(run, TEMPLATE)) {
            sqlite::backup(&rel(run, TEMPLATE), &rel(run, &file))?;
        }
        let path = sqlite::host_path(&rel(run, &file))?;
        Ok(self.env(&path))
    }

    fn teardown_slot(&mut self, run: &RunInfo, slot: &Slot, run_failed: bool) -> Result<()> {
        let file = slot_file(slot);
        if run_failed && self.s.keep_on_failure {
            let path = sqlite::host_path(&rel(run, &file))?;
            log::warn(format!("kept {} for the failed run: {path}", slot.name));
            return Ok(());
        }
        remove_db(&guest(run, &file))
            .map_err(|e| Error::failed(format!("cannot remove {file}: {e}")))
    }

    fn teardown_run(&mut self, run: &RunInfo, run_failed: bool) -> Result<()> {
        if run_failed && self.s.keep_on_failure {
            return Ok(());
        }
        remove_db(&guest(run, TEMPLATE))
            .map_err(|e| Error::failed(format!("cannot remove the template: {e}")))?;
        let dir = format!("{}/{}", run.scratch, run.run_id);
        // Only if empty: a slot file that could not be removed stays visible.
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                log::warn(format!("left {dir}: {e}"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Removes the directories of runs that died without tearing down.
    fn sweep(&mut self, run: &RunInfo, dry_run: bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let entries = std::fs::read_dir(&run.scratch)
            .map_err(|e| Error::failed(format!("cannot list the scratch dir: {e}")))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && runs::is_dead(&name) {
                let host = sqlite::host_path(&name).unwrap_or_else(|_| name.clone());
                if !dry_run {
                    std::fs::remove_dir_all(entry.path())
                        .map_err(|e| Error::failed(format!("cannot remove {host}: {e}")))?;
                }
                removed.push(format!("sqlite files of dead run {name}: {host}"));
            }
        }
        Ok(removed)
    }
}

partest_plugin_sdk::register!(Sqlite);
