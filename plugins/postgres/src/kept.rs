//! Set-ups kept across runs (`[setup] inputs`): a run that builds its
//! template renames it `partest_setup_<key>` once the setup commands
//! succeeded, and later runs with that key clone it instead of migrating.
//!
//! A kept template carries `partest setup <key> built <epoch> used <epoch>`
//! as its comment, not a run marker: teardown and `partest clean` leave it;
//! only `drop-setup` (least recently used beyond `[setup] keep`, or
//! `partest clean --templates`) drops it, and only with that comment.

use partest_plugin_sdk::{Error, KeptSetup, Result, RunInfo, postgres};

use super::{Mode, Postgres, template_name};

const PREFIX: &str = "partest_setup_";

pub(crate) fn kept_name(key: &str) -> String {
    format!("{PREFIX}{key}")
}

fn comment(key: &str, built: u64, used: u64) -> String {
    format!("partest setup {key} built {built} used {used}")
}

/// The kept set-up a name and its comment describe, when both agree.
fn parse(name: &str, comment: Option<&str>) -> Option<KeptSetup> {
    let key = name.strip_prefix(PREFIX)?;
    let rest = comment?.strip_prefix(&format!("partest setup {key} built "))?;
    let (built, used) = rest.split_once(" used ")?;
    Some(KeptSetup {
        key: key.to_string(),
        built: built.parse().ok()?,
        used: used.parse().ok()?,
    })
}

impl Postgres {
    /// The object kind kept set-ups are in this mode: its catalog query
    /// and its SQL keyword.
    fn kind(&self) -> (&'static str, &'static str) {
        match self.s.mode {
            Mode::Database => (
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database",
                "DATABASE",
            ),
            Mode::Schema => (
                "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace",
                "SCHEMA",
            ),
        }
    }

    pub(crate) fn kept(&self) -> Result<Vec<KeptSetup>> {
        let (select, _) = self.kind();
        let column = if self.s.mode == Mode::Database {
            "datname"
        } else {
            "nspname"
        };
        let rows = self.query(
            None,
            &format!("{select} WHERE {column} LIKE 'partest\\_setup\\_%' ORDER BY 1"),
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| parse(r.first()?.as_deref()?, r.get(1)?.as_deref()))
            .collect())
    }

    fn kept_one(&self, key: &str) -> Result<Option<KeptSetup>> {
        Ok(self.kept()?.into_iter().find(|k| k.key == key))
    }

    fn now(&self) -> Result<u64> {
        let rows = self.query(None, "SELECT extract(epoch FROM now())::bigint")?;
        rows.first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::failed("the server did not say what time it is"))
    }

    fn set_comment(&self, name: &str, text: &str) -> Result<()> {
        let (_, keyword) = self.kind();
        self.execute(
            None,
            &format!(
                "COMMENT ON {keyword} {} IS {}",
                Self::ident(name),
                postgres::literal(text)
            ),
        )
    }

    /// A run that reuses its set-up marks it used now (least recently used
    /// goes first when more than `[setup] keep` are kept).
    pub(crate) fn touch(&self, key: &str) -> Result<()> {
        let kept = self.kept_one(key)?.ok_or_else(|| {
            Error::failed(format!(
                "the set-up kept under key {key} is gone (dropped by another run?); run again to rebuild it"
            ))
        })?;
        self.set_comment(&kept_name(key), &comment(key, kept.built, self.now()?))
    }

    /// Renames this run's template to the kept name, with its comment in the
    /// same transaction, so a crash leaves either the run's marked template
    /// (swept as the run's) or the kept one, never an unmarked database.
    pub(crate) fn keep(&self, run: &RunInfo, key: &str) -> Result<()> {
        let template = template_name(&run.run_id);
        if self.kept_one(key)?.is_some() {
            // Another run kept the same inputs meanwhile: its copy stays.
            return self.drop_own_template(run).map(|_| ());
        }
        let now = self.now()?;
        let (_, keyword) = self.kind();
        let renamed = self.execute(
            None,
            &format!(
                "ALTER {keyword} {} RENAME TO {}; COMMENT ON {keyword} {} IS {}",
                Self::ident(&template),
                Self::ident(&kept_name(key)),
                Self::ident(&kept_name(key)),
                postgres::literal(&comment(key, now, now))
            ),
        );
        match renamed {
            Err(Error::Failed(m)) if m.contains("already exists") => {
                self.drop_own_template(run).map(|_| ())
            }
            other => other,
        }
    }

    fn drop_own_template(&self, run: &RunInfo) -> Result<bool> {
        let template = template_name(&run.run_id);
        match self.s.mode {
            Mode::Database => self.drop_database(&template, &run.run_id),
            Mode::Schema => self.drop_schema(&template, &run.run_id),
        }
    }

    /// Drops the set-up kept under `key`, if it carries its comment. A
    /// database another run is cloning from right now is not forced: the
    /// error says so, and the next eviction or `clean` tries again.
    pub(crate) fn drop_kept(&self, key: &str) -> Result<bool> {
        if self.kept_one(key)?.is_none() {
            return Ok(false);
        }
        let sql = match self.s.mode {
            Mode::Database => format!("DROP DATABASE IF EXISTS {}", Self::ident(&kept_name(key))),
            Mode::Schema => format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                Self::ident(&kept_name(key))
            ),
        };
        self.execute(None, &sql)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_setup_is_its_name_and_its_comment_together() {
        let k = parse(
            "partest_setup_ab12",
            Some("partest setup ab12 built 100 used 200"),
        )
        .unwrap();
        assert_eq!((k.key.as_str(), k.built, k.used), ("ab12", 100, 200));
        // A comment for another key, no comment, a run marker: not kept.
        assert!(
            parse(
                "partest_setup_ab12",
                Some("partest setup cd34 built 1 used 1")
            )
            .is_none()
        );
        assert!(parse("partest_setup_ab12", None).is_none());
        assert!(parse("partest_setup_ab12", Some("partest run ab12")).is_none());
        assert!(parse("app_db", Some("partest setup ab12 built 1 used 1")).is_none());
    }
}
