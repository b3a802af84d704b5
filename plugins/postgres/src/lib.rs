//! `postgres`: every worker slot gets its own PostgreSQL database (or schema),
//! cloned from a template that the `[setup]` commands migrated once.
//!
//! ```toml
//! [plugins.postgres]
//! url = "postgres://postgres@127.0.0.1:5432/postgres"  # also what partest may reach
//! mode = "database"            # or "schema" where CREATE DATABASE is not allowed
//! var = "DATABASE_URL"         # the variable tests read
//! template = "app_template"    # optional: an existing template database to clone
//! connections-per-worker = 2   # how many connections one test process opens
//! ```
//!
//! Everything made here is named `partest_<run id>_...` and marked with
//! `COMMENT ... IS 'partest run <run id>'`; teardown and `partest clean`
//! drop only what carries both, and `clean` only for runs that are dead.

mod kept;
mod schema;
mod url;

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{
    ConfigKey, Env, Error, KeptSetup, Plugin, Result, RunInfo, SettingGrant, Slot, config, log,
    postgres, runs,
};

#[derive(Deserialize)]
#[serde(
    crate = "partest_plugin_sdk::serde",
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
struct Settings {
    /// Read by the host (it grants this server); the plugin reaches it
    /// through the `postgres` capability.
    #[serde(default)]
    #[allow(dead_code)]
    url: Option<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "default_var")]
    var: String,
    template: Option<String>,
    #[serde(default = "default_cpw")]
    connections_per_worker: u32,
    #[serde(default = "default_true")]
    libpq_env: bool,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(crate = "partest_plugin_sdk::serde", rename_all = "kebab-case")]
enum Mode {
    #[default]
    Database,
    Schema,
}

fn default_var() -> String {
    "DATABASE_URL".into()
}
fn default_cpw() -> u32 {
    2
}
fn default_true() -> bool {
    true
}

struct Postgres {
    s: Settings,
}

/// The marker partest writes on everything it creates for a run.
fn marker(run_id: &str) -> String {
    format!("partest run {run_id}")
}

fn template_name(run_id: &str) -> String {
    format!("partest_{run_id}_template")
}

fn slot_name(run_id: &str, slot: &Slot) -> String {
    format!("partest_{run_id}_{}", slot.name)
}

/// The run id inside one of our names and its marker, when both agree:
/// `partest_<id>_<rest>` marked `partest run <id>`.
fn owner(name: &str, comment: Option<&str>) -> Option<String> {
    let id = comment?.strip_prefix("partest run ")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    name.strip_prefix(&format!("partest_{id}_"))?;
    Some(id.to_string())
}

/// Names of one kind (databases or schemas) that carry a run id and a marker.
struct Ours {
    name: String,
    run_id: String,
}

impl Postgres {
    fn ident(name: &str) -> String {
        postgres::ident(name)
    }

    /// "too many clients" gets the two ways out; other errors pass through.
    fn explain(&self, e: Error) -> Error {
        let text = match &e {
            Error::BadConfig(m) | Error::Unavailable(m) | Error::Refused(m) | Error::Failed(m) => {
                m.clone()
            }
        };
        if text.contains("too many clients") || text.contains("too many connections") {
            Error::unavailable(format!(
                "{text}\nPostgreSQL ran out of connections: lower the worker count (-n) or raise the \
                 server's max_connections (and [plugins.postgres] connections-per-worker, now {}, \
                 if tests open more connections than that)",
                self.s.connections_per_worker
            ))
        } else {
            e
        }
    }

    fn execute(&self, db: Option<&str>, sql: &str) -> Result<()> {
        postgres::execute(db, sql).map_err(|e| self.explain(e))
    }

    fn query(&self, db: Option<&str>, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        postgres::query(db, sql)
            .map(|r| r.rows)
            .map_err(|e| self.explain(e))
    }

    /// The env of a slot or the setup commands: `var` and libpq's PG* variables.
    fn env(&self, url: String, schema: Option<&str>) -> Env {
        let parts = url::parse(&url);
        // postgresql:// is what every client takes; SQLAlchemy 1.4+ refuses postgres://.
        let url = match url.strip_prefix("postgres://") {
            Some(rest) => format!("postgresql://{rest}"),
            None => url,
        };
        let url = match schema {
            Some(s) => url::with_search_path(&url, s),
            None => url,
        };
        let mut env = vec![(self.s.var.clone(), url)];
        if self.s.libpq_env {
            let mut add = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    env.push((k.to_string(), v));
                }
            };
            add("PGHOST", parts.host);
            add("PGPORT", parts.port);
            add("PGUSER", parts.user);
            add("PGPASSWORD", parts.password);
            add("PGDATABASE", parts.dbname);
            add("PGSSLMODE", parts.sslmode);
            add("PGSSLROOTCERT", parts.sslrootcert);
            add("PGOPTIONS", schema.map(|s| format!("-c search_path={s}")));
        }
        env
    }

    fn create_database(&self, name: &str, template: Option<&str>, run_id: &str) -> Result<()> {
        let from = template.map_or(String::new(), |t| format!(" TEMPLATE {}", Self::ident(t)));
        self.execute(
            None,
            &format!("CREATE DATABASE {}{from}", Self::ident(name)),
        )?;
        self.execute(
            None,
            &format!(
                "COMMENT ON DATABASE {} IS {}",
                Self::ident(name),
                postgres::literal(&marker(run_id))
            ),
        )
    }

    fn databases(&self, run_id: Option<&str>) -> Result<Vec<Ours>> {
        let pattern = match run_id {
            Some(id) => format!("partest\\_{id}\\_%"),
            None => "partest\\_%".to_string(),
        };
        let rows = self.query(
            None,
            &format!(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database \
                 WHERE datname LIKE {} ORDER BY datname",
                postgres::literal(&pattern)
            ),
        )?;
        Ok(Self::ours_or_cloned(rows))
    }

    fn schemas(&self, run_id: Option<&str>) -> Result<Vec<Ours>> {
        let pattern = match run_id {
            Some(id) => format!("partest\\_{id}\\_%"),
            None => "partest\\_%".to_string(),
        };
        let rows = self.query(
            None,
            &format!(
                "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace \
                 WHERE nspname LIKE {} ORDER BY nspname",
                postgres::literal(&pattern)
            ),
        )?;
        Ok(Self::ours(rows))
    }

    /// [`Postgres::ours`], and the slot databases of a run whose marked
    /// template is there but that carry no marker themselves: `CREATE
    /// DATABASE` cannot share a transaction with its `COMMENT`, so a run
    /// killed between the two leaves a clone of its own template unmarked.
    /// Its name (`partest_<run id>_gw<N>`) next to that run's marked
    /// template is what makes it ours; an unmarked name alone never does.
    fn ours_or_cloned(rows: Vec<Vec<Option<String>>>) -> Vec<Ours> {
        let mut found = Self::ours(rows.clone());
        let templates: Vec<String> = found
            .iter()
            .filter(|o| o.name == template_name(&o.run_id))
            .map(|o| o.run_id.clone())
            .collect();
        for r in rows {
            let (Some(Some(name)), Some(None)) = (r.first(), r.get(1)) else {
                continue;
            };
            let Some(run_id) = templates.iter().find(|id| {
                name.strip_prefix(&format!("partest_{id}_gw"))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            }) else {
                continue;
            };
            found.push(Ours {
                name: name.clone(),
                run_id: run_id.clone(),
            });
        }
        found
    }

    fn ours(rows: Vec<Vec<Option<String>>>) -> Vec<Ours> {
        rows.into_iter()
            .filter_map(|r| {
                let name = r.first()?.clone()?;
                let run_id = owner(&name, r.get(1)?.as_deref())?;
                Some(Ours { name, run_id })
            })
            .collect()
    }

    /// Drops database `name` if it is ours for `run_id`, closing whatever
    /// connections are still open on it. Anything else is left alone.
    fn drop_database(&self, name: &str, run_id: &str) -> Result<bool> {
        let mine = self
            .databases(Some(run_id))?
            .iter()
            .any(|d| d.name == name && d.run_id == run_id);
        if !mine {
            return Ok(false);
        }
        self.execute(
            None,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = {} AND pid <> pg_backend_pid()",
                postgres::literal(name)
            ),
        )?;
        self.execute(
            None,
            &format!("DROP DATABASE IF EXISTS {}", Self::ident(name)),
        )?;
        Ok(true)
    }

    fn drop_schema(&self, name: &str, run_id: &str) -> Result<bool> {
        let mine = self
            .schemas(Some(run_id))?
            .iter()
            .any(|d| d.name == name && d.run_id == run_id);
        if !mine {
            return Ok(false);
        }
        self.execute(
            None,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", Self::ident(name)),
        )?;
        Ok(true)
    }

    /// How many slots the server can serve now: the free connections
    /// divided by what one slot uses (its tests' connections plus the one
    /// partest holds for the slot while the run lasts).
    fn capacity(&self) -> Result<(u32, i64, i64)> {
        let rows = self.query(
            None,
            "SELECT current_setting('max_connections')::int \
                  - current_setting('superuser_reserved_connections')::int \
                  - coalesce(current_setting('reserved_connections', true)::int, 0), \
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
        )?;
        let get = |i: usize| -> i64 {
            rows.first()
                .and_then(|r| r.get(i).cloned().flatten())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (usable, in_use) = (get(0), get(1));
        let per_slot = i64::from(self.s.connections_per_worker) + 1;
        let free = (usable - in_use).max(0);
        Ok(((free / per_slot) as u32, usable, in_use))
    }
}

impl Plugin for Postgres {
    const SUMMARY: &'static str =
        "a PostgreSQL database (or schema) per slot, cloned from one migrated template";

    fn config_keys() -> Vec<ConfigKey> {
        let key = |name: &str, default: Option<&str>, description: &str| ConfigKey {
            name: name.into(),
            description: description.into(),
            default_value: default.map(str::to_string),
        };
        vec![
            key(
                "url",
                Some("\"postgres://postgres@127.0.0.1:5432/postgres\""),
                "the server (and the database for mode = \"schema\"); partest may reach only this",
            ),
            key(
                "mode",
                Some("\"database\""),
                "\"database\": a database per slot; \"schema\": a schema per slot in one database",
            ),
            key(
                "var",
                Some("\"DATABASE_URL\""),
                "the variable tests get the URL in",
            ),
            key(
                "template",
                Some("(unset)"),
                "an existing database to clone instead of a fresh one (database mode)",
            ),
            key(
                "connections-per-worker",
                Some("2"),
                "connections one test process opens; sizes the slot limit",
            ),
            key(
                "libpq-env",
                Some("true"),
                "also set PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (and PGOPTIONS)",
            ),
        ]
    }

    const ENV_VARS: &'static [&'static str] = &[
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGOPTIONS",
    ];

    /// Database mode clones the template into each slot's database.
    fn slots_copy_template(&self) -> bool {
        self.s.mode == Mode::Database
    }

    fn env_vars(&self) -> Vec<String> {
        let libpq = if self.s.libpq_env {
            &Self::ENV_VARS[1..]
        } else {
            &[]
        };
        std::iter::once(self.s.var.clone())
            .chain(libpq.iter().map(|v| v.to_string()))
            .collect()
    }

    fn setting_grants() -> Vec<SettingGrant> {
        vec![SettingGrant {
            capability: "postgres".into(),
            setting: Some("url".into()),
            default_value: Some(r#""postgres://postgres@127.0.0.1:5432/postgres""#.into()),
        }]
    }

    fn configure() -> Result<Self> {
        let s: Settings = config()?;
        if s.connections_per_worker == 0 {
            return Err(Error::bad_config(
                "connections-per-worker must be at least 1",
            ));
        }
        if s.var.is_empty() || s.var.contains('=') {
            return Err(Error::bad_config(format!(
                "var = {:?} is not a variable name",
                s.var
            )));
        }
        if s.template.is_some() && s.mode == Mode::Schema {
            return Err(Error::bad_config(
                "template applies to mode = \"database\"; schema mode clones partest's own template schema",
            ));
        }
        Ok(Postgres { s })
    }

    fn max_slots(&self) -> Result<Option<u32>> {
        let (slots, usable, in_use) = self.capacity()?;
        if slots == 0 {
            return Err(Error::unavailable(format!(
                "PostgreSQL has no room for a worker: {in_use} of {usable} usable connections are in use \
                 and each slot needs {} (connections-per-worker + 1); raise max_connections or close connections",
                self.s.connections_per_worker + 1
            )));
        }
        Ok(Some(slots))
    }

    fn setup_run(&mut self, run: &RunInfo) -> Result<Env> {
        let (slots, usable, in_use) = self.capacity()?;
        if run.workers > slots {
            log::warn(format!(
                "{} workers may open {} connections, but PostgreSQL has {} free of {usable}; \
                 tests may fail with \"too many clients\" (lower -n or raise max_connections)",
                run.workers,
                run.workers * (self.s.connections_per_worker + 1),
                usable - in_use
            ));
        }
        if let Some(cache) = run.setup.as_ref().filter(|c| c.reuse) {
            // Nothing to build: the kept template is what the slots clone.
            self.touch(&cache.key)?;
            let kept = kept::kept_name(&cache.key);
            return Ok(match self.s.mode {
                Mode::Database => self.env(postgres::url(Some(&kept)), None),
                Mode::Schema => self.env(postgres::url(None), Some(&kept)),
            });
        }
        let template = template_name(&run.run_id);
        match self.s.mode {
            Mode::Database => {
                let db = match &self.s.template {
                    Some(existing) => existing.clone(),
                    None => {
                        self.create_database(&template, None, &run.run_id)?;
                        template
                    }
                };
                Ok(self.env(postgres::url(Some(&db)), None))
            }
            Mode::Schema => {
                self.execute(
                    None,
                    &format!(
                        "CREATE SCHEMA {0}; COMMENT ON SCHEMA {0} IS {1}",
                        Self::ident(&template),
                        postgres::literal(&marker(&run.run_id))
                    ),
                )?;
                Ok(self.env(postgres::url(None), Some(&template)))
            }
        }
    }

    fn setup_slot(&mut self, run: &RunInfo, slot: &Slot) -> Result<Env> {
        let name = slot_name(&run.run_id, slot);
        let template = match &run.setup {
            Some(cache) => kept::kept_name(&cache.key),
            None => template_name(&run.run_id),
        };
        match self.s.mode {
            Mode::Database => {
                let from = self.s.template.clone().unwrap_or(template);
                self.create_database(&name, Some(&from), &run.run_id)
                    .map_err(|e| match e {
                        Error::Failed(m) if m.contains("is being accessed by other users") => {
                            Error::failed(format!(
                                "{m}\nthe template {from} still has open connections: a [setup] command \
                                 left one open, or something else uses it"
                            ))
                        }
                        e => e,
                    })?;
                Ok(self.env(postgres::url(Some(&name)), None))
            }
            Mode::Schema => {
                self.execute(
                    None,
                    &schema::clone_sql(&template, &name, &marker(&run.run_id)),
                )?;
                Ok(self.env(postgres::url(None), Some(&name)))
            }
        }
    }

    fn teardown_slot(&mut self, run: &RunInfo, slot: &Slot, _run_failed: bool) -> Result<()> {
        let name = slot_name(&run.run_id, slot);
        match self.s.mode {
            Mode::Database => self.drop_database(&name, &run.run_id)?,
            Mode::Schema => self.drop_schema(&name, &run.run_id)?,
        };
        Ok(())
    }

    fn teardown_run(&mut self, run: &RunInfo, _run_failed: bool) -> Result<()> {
        // Slots first: a slot whose teardown failed is retried here, so
        // nothing named after this run outlives it.
        let leftovers = match self.s.mode {
            Mode::Database => self.databases(Some(&run.run_id))?,
            Mode::Schema => self.schemas(Some(&run.run_id))?,
        };
        let template = template_name(&run.run_id);
        let mut order: Vec<&Ours> = leftovers.iter().filter(|o| o.name != template).collect();
        order.extend(leftovers.iter().filter(|o| o.name == template));
        for o in order {
            match self.s.mode {
                Mode::Database => self.drop_database(&o.name, &run.run_id)?,
                Mode::Schema => self.drop_schema(&o.name, &run.run_id)?,
            };
        }
        Ok(())
    }

    fn kept_setups(&mut self) -> Result<Option<Vec<KeptSetup>>> {
        // The user's own template is theirs to keep up to date.
        if self.s.template.is_some() {
            return Ok(None);
        }
        self.kept().map(Some)
    }

    fn keep_setup(&mut self, run: &RunInfo) -> Result<()> {
        match (&run.setup, &self.s.template) {
            (Some(cache), None) if !cache.reuse => self.keep(run, &cache.key),
            _ => Ok(()),
        }
    }

    fn drop_setup(&mut self, key: &str) -> Result<bool> {
        self.drop_kept(key)
    }

    fn sweep(&mut self, _run: &RunInfo, dry_run: bool) -> Result<Vec<String>> {
        self.sweep_dead(dry_run)
    }
}

impl Postgres {
    /// What dead runs left: listed, and dropped unless `dry_run`.
    fn sweep_dead(&mut self, dry_run: bool) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let databases = match self.s.mode {
            Mode::Database => self.databases(None)?,
            Mode::Schema => Vec::new(),
        };
        let schemas = match self.s.mode {
            Mode::Schema => self.schemas(None)?,
            Mode::Database => Vec::new(),
        };
        for (kind, list) in [("database", databases), ("schema", schemas)] {
            // Templates last: slots were cloned from them.
            let mut list = list;
            list.sort_by_key(|o| o.name.ends_with("_template"));
            for o in list {
                match runs::liveness(&o.run_id) {
                    runs::Liveness::Dead => {}
                    _ => continue,
                }
                if dry_run {
                    lines.push(format!("{kind} {} (run {}, dead)", o.name, o.run_id));
                    continue;
                }
                let dropped = match kind {
                    "database" => self.drop_database(&o.name, &o.run_id)?,
                    _ => self.drop_schema(&o.name, &o.run_id)?,
                };
                if dropped {
                    lines.push(format!("dropped {kind} {} (run {})", o.name, o.run_id));
                }
            }
        }
        Ok(lines)
    }
}

partest_plugin_sdk::register!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, comment: Option<&str>) -> Vec<Option<String>> {
        vec![Some(name.to_string()), comment.map(str::to_string)]
    }

    #[test]
    fn an_unmarked_slot_clone_is_ours_only_next_to_its_runs_marked_template() {
        let names = |rows| {
            let mut n: Vec<String> = Postgres::ours_or_cloned(rows)
                .into_iter()
                .map(|o| format!("{} {}", o.name, o.run_id))
                .collect();
            n.sort();
            n
        };
        let marked = Some("partest run ab12cd34");
        assert_eq!(
            names(vec![
                row("partest_ab12cd34_template", marked),
                row("partest_ab12cd34_gw0", marked),
                row("partest_ab12cd34_gw1", None),
                row("partest_ab12cd34_gwx", None),
                row("partest_ab12cd34_other", None),
                row("partest_ffffffff_gw0", None),
            ]),
            [
                "partest_ab12cd34_gw0 ab12cd34",
                "partest_ab12cd34_gw1 ab12cd34",
                "partest_ab12cd34_template ab12cd34",
            ]
        );
        // Without the marked template, an unmarked name is never ours.
        assert_eq!(
            names(vec![
                row("partest_ab12cd34_template", None),
                row("partest_ab12cd34_gw0", None),
                row("partest_ab12cd34_gw2", marked),
            ]),
            ["partest_ab12cd34_gw2 ab12cd34"]
        );
    }

    #[test]
    fn only_names_and_markers_that_agree_are_ours() {
        assert_eq!(
            owner("partest_ab12cd34_gw0", Some("partest run ab12cd34")).as_deref(),
            Some("ab12cd34")
        );
        assert_eq!(owner("partest_ab12cd34_gw0", None), None);
        assert_eq!(
            owner("partest_ab12cd34_gw0", Some("partest run ffffffff")),
            None
        );
        assert_eq!(owner("partest_ab12cd34_gw0", Some("something else")), None);
        assert_eq!(owner("partest_ab12cd34_gw0", Some("partest run ")), None);
        assert_eq!(
            owner("myapp_ab12cd34_gw0", Some("partest run ab12cd34")),
            None
        );
    }
}
