//! The built-in `sqlite` plugin: one SQLite database file per slot, kept by
//! the host's sqlite capability in partest's own directory
//! (`.partest/plugins/sqlite/databases/<run>/test_gw0.db`).
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
//! url = "sqlite:///{path}"      # {path}: the absolute path, so sqlite:////abs/test_gw0.db, the
//!                                # absolute form SQLAlchemy and dj-database-url read; "file:{path}", "{path}"
//! template = "db/template.db"   # optional: an existing, migrated database
//! keep-on-failure = false
//! ```

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{
    ConfigKey, Env, Error, KeptSetup, Plugin, Result, RunInfo, SettingGrant, Slot, config, log,
    runs, sqlite,
};

/// Where the slot's path goes besides `var`, and where the setup commands
/// find the template to migrate.
const PATH_VAR: &str = "PARTEST_SQLITE_PATH";
const TEMPLATE_VAR: &str = "PARTEST_SQLITE_TEMPLATE";

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
    // {path} starts with `/`: four slashes in all, which SQLAlchemy and
    // dj-database-url read as an absolute path (three would be relative).
    "sqlite:///{path}".into()
}

struct Sqlite {
    s: Settings,
}

/// The template, as the host copied or the setup commands made it.
const TEMPLATE: &str = "template.db";

/// `<run>/<file>`: the database name the sqlite capability takes; the run
/// id first, so `sweep` knows whose a file is.
fn db(run_id: &str, file: &str) -> String {
    format!("{run_id}/{file}")
}

/// Set-ups kept across runs (`[setup] inputs`) live in `setup/`: the
/// template of key K as `setup/K.db`, and when each was built and used in
/// `setup/index.db`. `sweep` leaves the folder; only `drop-setup` empties it.
const KEPT_DIR: &str = "setup";
const KEPT_INDEX: &str = "setup/index.db";

fn kept_file(key: &str) -> String {
    format!("{KEPT_DIR}/{key}.db")
}

/// The template the slots clone: the run's own, or the one kept under its key.
fn slot_template(run: &RunInfo) -> String {
    match &run.setup {
        Some(cache) => kept_file(&cache.key),
        None => db(&run.run_id, TEMPLATE),
    }
}

fn slot_file(slot: &Slot) -> String {
    format!("test_{}.db", slot.name)
}

impl Sqlite {
    fn env(&self, path: &str) -> Env {
        vec![
            (self.s.var.clone(), self.s.url.replace("{path}", path)),
            (PATH_VAR.into(), path.to_string()),
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
                "URL format; {path} is the absolute file path (the default gives sqlite:////abs/path, as SQLAlchemy and dj-database-url read it; \"file:{path}\", \"{path}\")",
                Some("\"sqlite:///{path}\""),
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

    const ENV_VARS: &'static [&'static str] = &["DATABASE_URL", PATH_VAR, TEMPLATE_VAR];

    fn env_vars(&self) -> Vec<String> {
        vec![self.s.var.clone(), PATH_VAR.into(), TEMPLATE_VAR.into()]
    }

    fn setting_grants() -> Vec<SettingGrant> {
        vec![SettingGrant {
            capability: "sqlite".into(),
            setting: Some("template".into()),
            default_value: None,
        }]
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
        if let Some(cache) = run.setup.as_ref().filter(|c| c.reuse) {
            // Nothing to build: the slots clone the kept template.
            sqlite::execute(
                KEPT_INDEX,
                &format!(
                    "UPDATE kept SET used = CAST(strftime('%s','now') AS INTEGER) WHERE key = '{}'",
                    cache.key
                ),
            )?;
            let path = sqlite::host_path(&kept_file(&cache.key))?;
            return Ok(self.env(&path));
        }
        let template = db(&run.run_id, TEMPLATE);
        if let Some(granted) = &self.s.template {
            sqlite::copy_granted(granted, &template).map_err(|e| match e {
                Error::BadConfig(m) => Error::bad_config(format!("template = {granted:?}: {m}")),
                other => other,
            })?;
        }
        let path = sqlite::host_path(&template)?;
        let mut env = self.env(&path);
        env.push((TEMPLATE_VAR.into(), path));
        Ok(env)
    }

    fn setup_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env> {
        let file = db(&run.run_id, &slot_file(slot));
        // A file left by an earlier attempt at this slot is replaced, not reused.
        sqlite::remove(&file)?;
        let template = slot_template(run);
        // A non-empty file: a template worth cloning.
        if sqlite::size(&template)?.is_some_and(|n| n > 0) {
            sqlite::backup(&template, &file)?;
        }
        let path = sqlite::host_path(&file)?;
        Ok(self.env(&path))
    }

    fn teardown_slot(&mut self, run: &RunInfo, slot: &Slot, run_failed: bool) -> Result<()> {
        let file = db(&run.run_id, &slot_file(slot));
        if run_failed && self.s.keep_on_failure {
            let path = sqlite::host_path(&file)?;
            log::warn(format!("kept {} for the failed run: {path}", slot.name));
            return Ok(());
        }
        sqlite::remove(&file)
    }

    fn teardown_run(&mut self, run: &RunInfo, run_failed: bool) -> Result<()> {
        if run_failed && self.s.keep_on_failure {
            return Ok(());
        }
        sqlite::remove(&db(&run.run_id, TEMPLATE))
    }

    fn kept_setups(&mut self) -> Result<Option<Vec<KeptSetup>>> {
        if sqlite::size(KEPT_INDEX)?.is_none() {
            return Ok(Some(Vec::new()));
        }
        let rows = sqlite::query(
            KEPT_INDEX,
            "SELECT key, built, used, size FROM kept ORDER BY key",
        )?;
        let mut kept = Vec::new();
        for row in rows.rows {
            let [Some(key), Some(built), Some(used), Some(size)] = &row[..] else {
                continue;
            };
            // A template that had rows but whose file is gone is not kept:
            // the run rebuilds it.
            let had_rows = size.parse::<u64>().unwrap_or(0) > 0;
            if had_rows && sqlite::size(&kept_file(key))?.is_none() {
                continue;
            }
            let (Ok(built), Ok(used)) = (built.parse(), used.parse()) else {
                continue;
            };
            kept.push(KeptSetup {
                key: key.clone(),
                built,
                used,
            });
        }
        Ok(Some(kept))
    }

    fn keep_setup(&mut self, run: &RunInfo) -> Result<()> {
        let Some(cache) = run.setup.as_ref().filter(|c| !c.reuse) else {
            return Ok(());
        };
        if !cache.key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::failed(format!("not a set-up key: {:?}", cache.key)));
        }
        sqlite::execute(
            KEPT_INDEX,
            "CREATE TABLE IF NOT EXISTS kept \
             (key TEXT PRIMARY KEY, built INTEGER, used INTEGER, size INTEGER)",
        )?;
        let template = db(&run.run_id, TEMPLATE);
        let size = sqlite::size(&template)?.unwrap_or(0);
        let file = kept_file(&cache.key);
        sqlite::remove(&file)?;
        if size > 0 {
            sqlite::backup(&template, &file)?;
        }
        // Listed only once its file is whole.
        sqlite::execute(
            KEPT_INDEX,
            &format!(
                "INSERT OR REPLACE INTO kept VALUES ('{}', CAST(strftime('%s','now') AS INTEGER), \
                 CAST(strftime('%s','now') AS INTEGER), {size})",
                cache.key
            ),
        )
    }

    fn drop_setup(&mut self, key: &str) -> Result<bool> {
        let listed = self
            .kept_setups()?
            .is_some_and(|kept| kept.iter().any(|k| k.key == key));
        if !listed {
            return Ok(false);
        }
        sqlite::execute(KEPT_INDEX, &format!("DELETE FROM kept WHERE key = '{key}'"))?;
        sqlite::remove(&kept_file(key))?;
        Ok(true)
    }

    /// Removes the databases of runs that died without tearing down.
    fn sweep(&mut self, _run: &RunInfo, dry_run: bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for name in sqlite::list()? {
            let Some((run_id, _)) = name.split_once('/') else {
                continue;
            };
            if run_id == KEPT_DIR {
                continue;
            }
            if runs::is_dead(run_id) {
                let host = sqlite::host_path(&name)?;
                if !dry_run {
                    sqlite::remove(&name)?;
                }
                removed.push(format!("sqlite database of dead run {run_id}: {host}"));
            }
        }
        Ok(removed)
    }
}

partest_plugin_sdk::register!(Sqlite);
