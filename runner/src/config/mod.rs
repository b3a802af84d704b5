//! partest.toml: the file model (one file per table), loading, validation,
//! and the effective settings of one command after profile and flags.

mod cargo;
mod command;
mod diagnose;
mod groups;
mod isolation;
mod limits;
mod plugins;
mod profile;
mod pytest;
mod run;
mod serial;
mod settings;
mod setup;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use cargo::{CargoBuild, CargoTable};
pub use command::CommandTable;
pub use diagnose::DiagnoseTable;
pub use groups::GroupTable;
pub use isolation::IsolationTable;
pub use limits::LimitsTable;
pub use plugins::PluginTable;
pub use profile::ProfileTable;
pub use pytest::{CollectMode, PytestTable};
pub use run::{AdapterKind, ExitCodes, Leak, NoTests, Order, RunTable};
pub use serial::SerialTable;
pub use settings::{Overrides, Settings};
pub use setup::SetupTable;
pub use values::{ByteSize, Filter, Seconds, WorkerCount};

use crate::error::{Error, Result};

pub const FILE_NAME: &str = "partest.toml";

/// The whole of partest.toml, as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    #[serde(default)]
    pub run: RunTable,
    pub command: Option<CommandTable>,
    #[serde(default)]
    pub pytest: PytestTable,
    #[serde(default)]
    pub cargo: CargoTable,
    #[serde(default)]
    pub serial: SerialTable,
    #[serde(default)]
    pub groups: BTreeMap<String, GroupTable>,
    #[serde(default)]
    pub profile: BTreeMap<String, ProfileTable>,
    #[serde(default)]
    pub limits: LimitsTable,
    #[serde(default)]
    pub setup: SetupTable,
    #[serde(default)]
    pub diagnose: DiagnoseTable,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginTable>,
    #[serde(default)]
    pub isolation: IsolationTable,
    /// `[env]`: variables for every test, pytest worker and setup command;
    /// `${NAME}` in a value is the slot's (or partest's own) variable, so a
    /// project's own names can follow a plugin's (`POSTGRES_DB = "${PGDATABASE}"`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A loaded configuration and where it came from.
#[derive(Clone, Debug)]
pub struct Config {
    /// The project root: the config file's folder, or the working folder without one.
    pub root: PathBuf,
    /// The file read, if any; named in every error about it.
    pub path: Option<PathBuf>,
    /// Its text, kept so that later errors can name the line of a key.
    pub text: String,
    pub file: ConfigFile,
    /// Where partest was started (`-C` or the working folder): the root or
    /// a folder under it. pytest runs there, as `pytest` typed there would.
    pub invoked_in: PathBuf,
}

impl Config {
    /// Finds and reads the config: `explicit` if given, else `partest.toml`
    /// in `dir` or the nearest parent that has one (stopping at a `.git`).
    pub fn load(dir: &Path, explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => {
                let p = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    dir.join(p)
                };
                if !p.is_file() {
                    return Err(Error::config(format!(
                        "config file {} does not exist",
                        p.display()
                    )));
                }
                Some(p)
            }
            None => find_config(dir),
        };
        let Some(path) = path else {
            return Ok(Config {
                root: dir.to_path_buf(),
                path: None,
                text: String::new(),
                file: ConfigFile::default(),
                invoked_in: dir.to_path_buf(),
            });
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
        let file = parse(&text, &path)?;
        let root = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.to_path_buf());
        Ok(Config {
            invoked_in: if dir.starts_with(&root) {
                dir.to_path_buf()
            } else {
                root.clone()
            },
            root,
            path: Some(path),
            text,
            file,
        })
    }

    /// `<root>/.partest`: history, the plugin cache, plugins' scratch dirs.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".partest")
    }

    /// Creates the state dir (if needed) with a `.gitignore` of `*` in it,
    /// as pytest's cache has, so `git status` never shows it.
    pub fn make_state_dir(dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(
                ignore,
                "# Written by partest: its history, plugin caches and scratch dirs.\n*\n",
            )?;
        }
        Ok(())
    }

    /// How errors name this config: the file, or "the defaults" without one.
    pub fn origin(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "the built-in defaults (no partest.toml)".to_string(),
        }
    }

    /// Where errors about `key` (a path of table and key names) point: the
    /// file and the line of the key, or of its nearest table that is written.
    pub fn at(&self, key: &[&str]) -> String {
        match (&self.path, line_of(&self.text, key)) {
            (Some(p), Some(line)) => format!("{}, line {line}", p.display()),
            _ => self.origin(),
        }
    }

    /// The named profile, the user's table laid over the built-in one.
    pub fn profile(&self, name: &str) -> Result<ProfileTable> {
        let user = self.file.profile.get(name).cloned();
        let builtin = ProfileTable::builtin(name);
        match (user, builtin) {
            (Some(u), Some(b)) => Ok(u.over(b)),
            (Some(u), None) => Ok(u),
            (None, Some(b)) => Ok(b),
            (None, None) => {
                let mut known: Vec<&str> = vec!["unit", "integration", "e2e"];
                for k in self.file.profile.keys() {
                    if !known.contains(&k.as_str()) {
                        known.push(k);
                    }
                }
                Err(Error::config(format!(
                    "no profile named {name:?} in {}; known profiles: {}",
                    self.origin(),
                    known.join(", ")
                )))
            }
        }
    }

    /// The adapter: the configured one, else the one the project's files suggest.
    pub fn adapter(&self) -> Result<AdapterKind> {
        if let Some(kind) = self.file.run.adapter {
            return Ok(kind);
        }
        if self.file.command.is_some() {
            return Ok(AdapterKind::Command);
        }
        detect_adapter(&self.root).ok_or_else(|| {
            Error::config(format!(
                "cannot tell how to run the tests in {}: there is no pyproject.toml, pytest.ini, \
                 setup.cfg, tox.ini or conftest.py (pytest) and no Cargo.toml (cargo); \
                 set [run] adapter = \"pytest\" | \"cargo\" | \"command\" in {}",
                self.root.display(),
                FILE_NAME
            ))
        })
    }
}

fn find_config(dir: &Path) -> Option<PathBuf> {
    for d in dir.ancestors() {
        let candidate = d.join(FILE_NAME);
        if candidate.is_file() {
            return Some(candidate);
        }
        if d.join(".git").exists() {
            break;
        }
    }
    None
}

/// Parses the file's text and checks what serde cannot: values that are
/// valid alone but impossible together.
pub fn parse(text: &str, path: &Path) -> Result<ConfigFile> {
    let file: ConfigFile = toml::from_str(text)
        .map_err(|e| Error::config(format!("{}: {}", path.display(), e.to_string().trim_end())))?;
    validate(&file).map_err(|Invalid { key, msg }| {
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        match line_of(text, &key) {
            Some(line) => Error::config(format!("{}, line {line}: {msg}", path.display())),
            None => Error::config(format!("{}: {msg}", path.display())),
        }
    })?;
    Ok(file)
}

/// The line (1-based) of `key` in the TOML `text`: the key itself when it is
/// written, else the nearest written table on its path; `None` when not even
/// the first table is written (the check is about a default).
fn line_of(text: &str, key: &[&str]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut found = None;
    for part in key {
        let Some((name, value)) = table.iter().find(|(k, _)| k.get_ref() == part) else {
            break;
        };
        // Tables point at their header ([groups.db]); keys at the key itself.
        found = Some(name.span().start);
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found.map(|offset| text[..offset].matches('\n').count() + 1)
}

/// A check across fields that failed: the key it is about, and why.
struct Invalid {
    key: Vec<String>,
    msg: String,
}

impl Invalid {
    fn at(key: &[&str], msg: impl Into<String>) -> Invalid {
        Invalid {
            key: key.iter().map(|k| k.to_string()).collect(),
            msg: msg.into(),
        }
    }
}

/// Variables partest sets for each slot itself: `[env]` may read them, not set them.
const PARTEST_OWN: [&str; 3] = [
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "TEST_ENV_NUMBER",
];

/// Why `[env]` may not set `name`, if it may not.
pub fn not_settable(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.contains(['=', '\0']) {
        Some("not a variable name")
    } else if name.starts_with("PARTEST_") || PARTEST_OWN.contains(&name) {
        Some("partest sets this one itself")
    } else {
        None
    }
}

fn validate(file: &ConfigFile) -> std::result::Result<(), Invalid> {
    for name in file.env.keys() {
        if let Some(why) = not_settable(name) {
            return Err(Invalid::at(
                &["env", name],
                format!("[env] {name:?}: {why}"),
            ));
        }
    }
    let fixed_workers = |w: Option<WorkerCount>| match w {
        Some(WorkerCount::Fixed(n)) => Some(n.get()),
        _ => None,
    };
    for (name, group) in &file.groups {
        let key = |k| ["groups", name.as_str(), k];
        if group.max_workers == 0 {
            return Err(Invalid::at(
                &key("max-workers"),
                format!("[groups.{name}] max-workers = 0: a group must allow at least 1 worker"),
            ));
        }
        if group.filter.is_empty() {
            return Err(Invalid::at(
                &key("filter"),
                format!(
                    "[groups.{name}] filter is empty: list the tests of the group, e.g. filter = [\"tests/integration/**\"]"
                ),
            ));
        }
        if let Some(workers) = fixed_workers(file.run.workers)
            && group.max_workers > workers
        {
            return Err(Invalid::at(
                &key("max-workers"),
                format!(
                    "[groups.{name}] max-workers = {} is more than [run] workers = {workers}; \
                     allowed: 1 to {workers}",
                    group.max_workers
                ),
            ));
        }
    }
    for (name, profile) in &file.profile {
        if profile.filter.as_ref().is_some_and(Filter::is_empty) {
            return Err(Invalid::at(
                &["profile", name, "filter"],
                format!(
                    "[profile.{name}] filter is empty: it would select no test; \
                     list globs, or leave the key out to select everything"
                ),
            ));
        }
    }
    if let Some(command) = &file.command {
        if command.tests.is_empty() {
            return Err(Invalid::at(
                &["command", "tests"],
                "[command] tests is empty: give globs of test files, e.g. tests = [\"tests/**/*.sh\"]",
            ));
        }
        let words = shell_words::split(&command.run).map_err(|e| {
            Invalid::at(
                &["command", "run"],
                format!(
                    "[command] run = {:?} cannot be split into words: {e}",
                    command.run
                ),
            )
        })?;
        if words.is_empty() {
            return Err(Invalid::at(
                &["command", "run"],
                "[command] run is empty: give a command such as \"bash {}\"",
            ));
        }
    }
    for (what, value) in [
        ("ci-max-workers", file.limits.ci_max_workers),
        ("container-max-workers", file.limits.container_max_workers),
    ] {
        if value == 0 {
            return Err(Invalid::at(
                &["limits", what],
                format!("[limits] {what} = 0: allowed: 1 or more"),
            ));
        }
    }
    if file.limits.memory_per_worker.0 == 0 {
        return Err(Invalid::at(
            &["limits", "memory-per-worker"],
            "[limits] memory-per-worker = 0: allowed: a size above zero, e.g. \"512MiB\"",
        ));
    }
    Ok(())
}

fn detect_adapter(root: &Path) -> Option<AdapterKind> {
    let has = |name: &str| root.join(name).is_file();
    let mentions = |name: &str, needle: &str| {
        std::fs::read_to_string(root.join(name)).is_ok_and(|t| t.contains(needle))
    };
    if has("pytest.ini")
        || has("conftest.py")
        || mentions("pyproject.toml", "pytest")
        || mentions("setup.cfg", "[tool:pytest]")
        || mentions("tox.ini", "[pytest]")
    {
        return Some(AdapterKind::Pytest);
    }
    if has("Cargo.toml") {
        return Some(AdapterKind::Cargo);
    }
    if has("pyproject.toml") || root.join("tests").join("conftest.py").is_file() {
        return Some(AdapterKind::Pytest);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("/repo/partest.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn env_may_not_set_partests_own_variables() {
        assert!(not_settable("PARTEST_WORKER").is_some());
        assert!(not_settable("PYTEST_XDIST_WORKER").is_some());
        assert!(not_settable("A=B").is_some());
        assert!(not_settable("POSTGRES_DB").is_none());
    }

    #[test]
    fn the_design_example_parses() {
        let text = r#"
[run]
adapter = "pytest"
workers = "auto"
retries = 0
junit = "target/partest/junit.xml"
[command]
tests = ["tests/**/*.sh"]
run = "bash {}"
[serial]
markers = ["serial", "no_parallel"]
filter = ["tests/migrations/**"]
[groups.integration]
filter = ["tests/integration/**"]
max-workers = 2
[profile.unit]
filter = ["tests/unit/**"]
[profile.e2e]
workers = 1
[limits]
memory-per-worker = "512MiB"
ci-max-workers = 2
container-max-workers = 4
[setup]
commands = ["alembic upgrade head"]
[plugins.sqlite]
var = "DATABASE_URL"
[plugins.minio]
path = "tools/partest-minio.wasm"
allow = { process = ["mc"] }
"#;
        let file = parse(text, Path::new("partest.toml")).unwrap();
        assert_eq!(file.run.adapter, Some(AdapterKind::Pytest));
        assert_eq!(file.groups["integration"].max_workers, 2);
        assert_eq!(file.limits.memory_per_worker.0, 512 << 20);
        assert_eq!(
            file.plugins["minio"].path.as_deref(),
            Some(Path::new("tools/partest-minio.wasm"))
        );
        assert_eq!(
            file.plugins["minio"].allow["process"][0].as_str(),
            Some("mc")
        );
        assert!(file.plugins["sqlite"].settings.contains_key("var"));
    }

    #[test]
    fn unknown_keys_name_the_file_the_key_and_the_allowed_ones() {
        let e = err("[run]\nwrkers = 2\n");
        assert!(e.contains("/repo/partest.toml"), "{e}");
        assert!(e.contains("wrkers"), "{e}");
        assert!(e.contains("workers"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = err("[runn]\n");
        assert!(e.contains("runn") && e.contains("run"), "{e}");
    }

    #[test]
    fn wrong_types_and_impossible_values_are_errors() {
        let e = err("[run]\nworkers = 0\n");
        assert!(e.contains("workers") && e.contains("≥ 1"), "{e}");
        let e = err("[run]\nworkers = true\n");
        assert!(e.contains("\"auto\" or a whole number"), "{e}");
        let e = err("[run]\nretries = \"many\"\n");
        assert!(e.contains("retries"), "{e}");
        let e = err("[run]\nworkers = 2\n[groups.db]\nfilter = [\"x/**\"]\nmax-workers = 3\n");
        assert!(
            e.contains("[groups.db] max-workers = 3") && e.contains("1 to 2"),
            "{e}"
        );
        assert!(e.contains("partest.toml, line 5:"), "{e}");
        let e = err("[serial]\nfilter = [\"tests/[oops\"]\n");
        assert!(
            e.contains("not a valid glob") && e.contains("line 2"),
            "{e}"
        );
        let e = err("[limits]\nmemory-per-worker = \"lots\"\n");
        assert!(
            e.contains("memory-per-worker") || e.contains("line 2"),
            "{e}"
        );
        let e = err("[run]\nadapter = \"maven\"\n");
        assert!(
            e.contains("pytest") && e.contains("cargo") && e.contains("command"),
            "{e}"
        );
    }

    #[test]
    fn profiles_layer_over_builtins() {
        let file = parse("[profile.integration]\nretries = 2\n", Path::new("p.toml")).unwrap();
        let config = Config {
            root: PathBuf::from("/r"),
            invoked_in: PathBuf::from("/r"),
            path: None,
            text: String::new(),
            file,
        };
        let integration = config.profile("integration").unwrap();
        assert_eq!(integration.workers.unwrap().to_string(), "2");
        assert_eq!(integration.retries, Some(2));
        assert_eq!(
            config.profile("e2e").unwrap().workers.unwrap().to_string(),
            "1"
        );
        let e = config.profile("nightly").unwrap_err().to_string();
        assert!(
            e.contains("nightly") && e.contains("unit, integration, e2e"),
            "{e}"
        );
    }

    #[test]
    fn adapters_are_detected_from_project_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect_adapter(dir.path()), None);
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\n").unwrap();
        assert_eq!(detect_adapter(dir.path()), Some(AdapterKind::Cargo));
        std::fs::write(dir.path().join("conftest.py"), "").unwrap();
        assert_eq!(detect_adapter(dir.path()), Some(AdapterKind::Pytest));
    }

    #[test]
    fn checks_across_fields_name_the_line_of_the_key() {
        let e = err("[run]\nworkers = 2\n\n[groups.db]\nmax-workers = 0\nfilter = [\"x/**\"]\n");
        assert!(
            e.contains("line 5:") && e.contains("max-workers = 0"),
            "{e}"
        );
        let e = err("[run]\nworkers = 2\n[groups.db]\nmax-workers = 1\nfilter = []\n");
        assert!(
            e.contains("line 5:") && e.contains("filter is empty"),
            "{e}"
        );
        // A key left to its default points at its table's header.
        let text = "[run]\nworkers = 2\n[groups.db]\n";
        assert_eq!(line_of(text, &["groups", "db", "filter"]), Some(3));
        assert_eq!(line_of(text, &["limits", "ci-max-workers"]), None);
        let e = err("[profile.smoke]\nretries = 1\nfilter = []\n");
        assert!(
            e.contains("line 3:") && e.contains("[profile.smoke] filter"),
            "{e}"
        );
        let e = err("[command]\ntests = [\"t/*.sh\"]\nrun = \"bash 'x\"\n");
        assert!(e.contains("line 3:") && e.contains("[command] run"), "{e}");
        let e = err("limits = { ci-max-workers = 0 }\n");
        assert!(e.contains("line 1:") && e.contains("ci-max-workers"), "{e}");
        // Dotted keys and inline tables are found too.
        let e = err("\ngroups.db.max-workers = 1\ngroups.db.filter = []\n");
        assert!(
            e.contains("line 3:") && e.contains("filter is empty"),
            "{e}"
        );
    }

    #[test]
    fn huge_timeouts_are_errors_naming_the_value() {
        for text in [
            "[run]\ntimeout = 1e20\n",
            "[run]\ntimeout = \"1e20\"\n",
            "[run]\ntimeout = 9223372036854775807\n",
        ] {
            let e = err(text);
            assert!(e.contains("timeout") && e.contains("too long"), "{e}");
        }
    }

    proptest::proptest! {
        /// Any text, and TOML built from the real table and key names with
        /// random values, is a config or an error naming what is wrong.
        #[test]
        fn the_loader_never_panics(
            text in ".{0,200}",
            table in "(run|pytest|cargo|command|serial|setup|limits|groups.g|profile.p|plugins.sqlite)",
            key in "(workers|timeout|retries|adapter|tests|run|filter|max-workers|memory-per-worker|ci-max-workers|order|no-tests|collect-timeout|args|python|kill-grace|commands)",
            value in "(0|1|-1|1e20|\"1e20\"|\"auto\"|\"x\"|\"5ms\"|\\[\\]|\\[\"a\"\\]|true|\\{\\})",
        ) {
            let _ = parse(&text, Path::new("/repo/partest.toml"));
            let toml = format!("[{table}]\n{key} = {value}\n");
            if let Err(e) = parse(&toml, Path::new("/repo/partest.toml")) {
                proptest::prop_assert!(e.to_string().contains("partest.toml"), "{e}");
            }
        }
    }
}
