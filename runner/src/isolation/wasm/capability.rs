//! The capabilities a plugin may import, one module each, in the spirit of
//! Spin's factors: a module holds its capability's grant (read from
//! `[plugins.NAME] allow.<name>`), what a built-in plugin's setting grants
//! it, its per-instance state and its whole policy, on the host's own types
//! ([`super::types`]); the version adapters bind its WIT interface to it.
//! Loading, the grant check, `plugins inspect` and each new instance loop
//! over [`CAPABILITIES`]. Adding one: plugin-sdk/README.md.

use std::any::Any;
use std::sync::Arc;

use super::{env, log, postgres, process, redis, runs, sqlite};
use crate::config::PluginTable;

/// What a capability was granted for one plugin: its own type, found again
/// by [`Granted::get`].
pub type Grant = Arc<dyn Any + Send + Sync>;

pub trait Capability: Sync {
    /// The interface's name: `redis` in `partest:plugin/redis@0.1.0`, and
    /// its key under `allow`.
    fn name(&self) -> &'static str;

    /// Its grant, read from `allow.<name>` (`value`, `None` when absent) and
    /// the rest of `table`. `Ok(None)`: not granted, and a plugin importing
    /// it is refused with [`Capability::hint`]. `Err`: what is wrong with
    /// the value, for the user. By default: always granted, no entry.
    fn grant(
        &self,
        value: Option<&toml::Value>,
        _table: &PluginTable,
    ) -> Result<Option<Grant>, String> {
        match value {
            Some(_) => Err("always granted; it takes no value".into()),
            None => Ok(Some(Arc::new(()))),
        }
    }

    /// The config line that would grant it.
    fn hint(&self) -> String {
        "nothing: it is always granted".into()
    }

    /// What `plugins inspect` says it may reach with `grant`.
    fn describe_grant(&self, grant: &Grant) -> String;

    /// Merges a built-in plugin's setting grant (`value`, from its
    /// `setting-grants`) into `allow.<name>` (`allow`). Capabilities that
    /// take none ignore it.
    fn grant_setting(
        &self,
        _allow: &mut Option<toml::Value>,
        _value: &toml::Value,
    ) -> Result<(), SettingGrantError> {
        Ok(())
    }

    /// Its state in a new plugin instance (a connection, a budget), if it keeps any.
    fn instance_state(&self) -> Option<Box<dyn InstanceState>> {
        None
    }
}

/// Why a built-in plugin's setting cannot be its grant.
#[derive(Debug)]
pub enum SettingGrantError {
    /// The value is not what the capability grants (`a URL string`).
    Expected(&'static str),
    /// `allow.<name>` grants another value: the setting's, and the one granted.
    Conflict { setting: String, granted: String },
}

/// A list of strings (`allow.process`, `allow.sqlite`), if `value` is one.
pub fn string_list(value: &toml::Value) -> Option<Vec<String>> {
    match value {
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// A server's URL (`allow.redis`, `allow.postgres`), if `value` is one.
pub fn url_value(value: &toml::Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "expected a URL string".to_string())
}

/// A built-in plugin's URL setting as its grant of one server: taken when
/// `allow` names none, an error when it names another.
pub fn grant_url(
    allow: &mut Option<toml::Value>,
    value: &toml::Value,
) -> Result<(), SettingGrantError> {
    let toml::Value::String(url) = value else {
        return Err(SettingGrantError::Expected("a URL string"));
    };
    match allow {
        None => *allow = Some(value.clone()),
        Some(toml::Value::String(granted)) if granted != url => {
            return Err(SettingGrantError::Conflict {
                setting: super::redact::url(url),
                granted: super::redact::url(granted),
            });
        }
        Some(_) => {}
    }
    Ok(())
}

/// What a capability keeps in one plugin instance.
pub trait InstanceState: Any + Send {
    /// A new plugin call begins.
    fn begin_call(&mut self) {}
}

/// Every capability partest provides.
pub const CAPABILITIES: &[&dyn Capability] = &[
    &log::Log,
    &runs::Runs,
    &sqlite::Sqlite,
    &process::Process,
    &redis::Redis,
    &postgres::Postgres,
    &env::EnvGrant,
];

/// The capability named `name`.
pub fn find(name: &str) -> Option<&'static dyn Capability> {
    CAPABILITIES.iter().copied().find(|c| c.name() == name)
}

/// One plugin's grants, by capability (`None`: not granted).
#[derive(Default)]
pub struct Granted(Vec<(&'static str, Option<Grant>)>);

impl Granted {
    /// Reads `table`'s `allow` with every capability; an unknown key or a
    /// bad value is an error naming the key.
    pub fn read(table: &PluginTable) -> Result<Granted, String> {
        if let Some(unknown) = table.allow.keys().find(|k| find(k).is_none()) {
            let known: Vec<&str> = CAPABILITIES.iter().map(|c| c.name()).collect();
            return Err(format!(
                "allow.{unknown}: unknown capability; expected one of {}",
                known.join(", ")
            ));
        }
        CAPABILITIES
            .iter()
            .map(|cap| {
                let grant = cap
                    .grant(table.allow.get(cap.name()), table)
                    .map_err(|why| format!("allow.{}: {why}", cap.name()))?;
                Ok((cap.name(), grant))
            })
            .collect::<Result<_, String>>()
            .map(Granted)
    }

    /// Whether capability `name` is granted.
    pub fn has(&self, name: &str) -> bool {
        self.grant(name).is_some()
    }

    /// Capability `name`'s grant.
    pub fn grant(&self, name: &str) -> Option<&Grant> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, g)| g.as_ref())
    }

    /// The grant of type `T` (each capability's is its own type).
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0
            .iter()
            .filter_map(|(_, g)| g.as_ref())
            .find_map(|g| g.downcast_ref::<T>())
    }
}

/// Each capability's state in one instance.
pub struct Instances(Vec<Box<dyn InstanceState>>);

impl Instances {
    pub fn new() -> Instances {
        Instances(
            CAPABILITIES
                .iter()
                .filter_map(|c| c.instance_state())
                .collect(),
        )
    }

    pub fn begin_call(&mut self) {
        for state in &mut self.0 {
            state.begin_call();
        }
    }

    /// The state of type `T`; every capability's is made with the instance.
    pub fn get<T: InstanceState>(&mut self) -> &mut T {
        self.0
            .iter_mut()
            .find_map(|s| (s.as_mut() as &mut dyn Any).downcast_mut::<T>())
            .expect("every capability's state is made with the instance")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> PluginTable {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn each_capability_reads_its_own_allow_entry() {
        let t = table(
            r#"
            allow = { process = ["mc"], redis = "redis://h:1", sqlite = ["db/t.db"] }
            allow-superuser = true
            "#,
        );
        let granted = Granted::read(&t).unwrap();
        assert!(granted.has("process") && granted.has("redis"));
        assert!(!granted.has("postgres"));
        // Always granted, with or without an entry.
        assert!(granted.has("log") && granted.has("runs") && granted.has("sqlite"));
        assert_eq!(
            granted.get::<redis::Server>().map(|s| s.0.as_str()),
            Some("redis://h:1")
        );
        let with_pg = table("allow = { postgres = \"postgres://h/db\" }\nallow-superuser = true");
        let pg = Granted::read(&with_pg).unwrap();
        assert!(
            pg.get::<postgres::Server>()
                .is_some_and(|s| s.allow_superuser)
        );
    }

    #[test]
    fn unknown_or_malformed_allow_entries_are_errors() {
        let e = Granted::read(&table("allow = { network = true }"))
            .err()
            .unwrap();
        assert!(
            e.contains("allow.network") && e.contains("process, redis"),
            "{e}"
        );
        let e = Granted::read(&table("allow = { redis = 3 }"))
            .err()
            .unwrap();
        assert!(e.contains("allow.redis") && e.contains("URL"), "{e}");
        let e = Granted::read(&table("allow = { log = true }"))
            .err()
            .unwrap();
        assert!(e.contains("allow.log"), "{e}");
        // An empty program list grants nothing.
        assert!(
            !Granted::read(&table("allow = { process = [] }"))
                .unwrap()
                .has("process")
        );
    }

    #[test]
    fn a_builtin_setting_grant_merges_or_conflicts() {
        let redis = find("redis").unwrap();
        let url = toml::Value::String("redis://h:1".into());
        let mut allow = None;
        redis.grant_setting(&mut allow, &url).unwrap();
        assert_eq!(allow, Some(url.clone()));
        let mut other = Some(toml::Value::String("redis://elsewhere:1".into()));
        assert!(matches!(
            redis.grant_setting(&mut other, &url),
            Err(SettingGrantError::Conflict { .. })
        ));
        let mut files = Some(toml::Value::Array(vec![]));
        find("sqlite")
            .unwrap()
            .grant_setting(&mut files, &toml::Value::String("t.db".into()))
            .unwrap();
        assert_eq!(files.unwrap().as_array().map(Vec::len), Some(1));
    }
}
