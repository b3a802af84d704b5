//! The Wasm plugin host against hostile and probing guests (plugins/test-*),
//! driven in-process through `Lifecycle`: each attack ends in an error that
//! names the plugin and the hook, the host stays up, and teardown of what
//! other providers set up still runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partest::config::{self, Config};
use partest::error::Error;
use partest::isolation::wasm::{self, LogLevel, PluginHost};
use partest::isolation::{Isolation, Lifecycle, RunInfo, TempDirs};
use partest::model::Slot;

struct Project {
    dir: tempfile::TempDir,
    config: Config,
}

impl Project {
    /// A project whose partest.toml is `toml`, with `{hostile}`, `{counter}`
    /// and `{process}` replaced by the test guests' paths.
    fn new(toml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let text = granting_env(toml)
            .replace("{hostile}", &guest("test-hostile"))
            .replace("{counter}", &guest("test-counter"))
            .replace("{process}", &guest("test-process"));
        let path = dir.path().join("partest.toml");
        std::fs::write(&path, &text).unwrap();
        let file = config::parse(&text, &path).unwrap();
        let config = Config {
            root: dir.path().to_path_buf(),
            invoked_in: dir.path().to_path_buf(),
            path: Some(path),
            text,
            file,
        };
        Project { dir, config }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self) -> PathBuf {
        self.root().join(".partest")
    }

    /// A host with its own compile cache, so no test sees another's.
    fn host(&self) -> PluginHost {
        PluginHost::with_cache_dir(self.root(), &self.state(), Some(self.root().join(".cache")))
            .unwrap()
    }

    fn run_info(&self) -> RunInfo {
        RunInfo {
            run_id: "r1".into(),
            workers: 2,
            root: self.root().into(),
            state_dir: self.state(),
            setup: None,
        }
    }

    /// The temp-dir provider first, then the plugins, as a run has them.
    fn lifecycle(&self, names: &[&str]) -> Lifecycle {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut providers: Vec<Box<dyn Isolation>> =
            vec![Box::new(TempDirs::new(Some(self.root().join("tmp"))))];
        providers.extend(self.host().load_providers(&self.config, &names).unwrap());
        Lifecycle::new(providers)
    }

    /// The hostile plugin loaded with a log sink that keeps every line.
    fn logged_hostile(&self) -> (Lifecycle, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let host = self.host().with_log_sink(Arc::new(
            move |_plugin: &str, _level: LogLevel, msg: &str| {
                sink.lock().unwrap().push(msg.to_string())
            },
        ));
        let providers = host
            .load_providers(&self.config, &["hostile".into()])
            .unwrap();
        (Lifecycle::new(providers), lines)
    }

    fn tmp_run_dir(&self) -> PathBuf {
        self.root().join("tmp").join("partest-r1")
    }

    /// What the counter wrote to its summary database at teardown.
    fn counter_summary(&self, slot: &str) -> String {
        let db = self
            .state()
            .join("plugins/counter/databases/summary")
            .join(format!("{slot}.db"));
        if !db.is_file() {
            return String::new();
        }
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT text FROM summary", [], |r| r.get(0))
            .unwrap_or_default()
    }
}

/// The variables each test guest declares (its own and the `declare`
/// setting's default, `X`; other `declare` values try the floor).
const GUEST_ENV: &[(&str, &str)] = &[
    (
        "{counter}",
        r#""COUNTER_TEMPLATE", "COUNTER_DB", "COUNTER_CALLS""#,
    ),
    ("{process}", r#""ECHOED", "RAN_SH", "SH_REFUSED", "RESULT""#),
    (
        "{hostile}",
        r#""X", "HOSTILE_SLOT", "PROBE_NET", "PROBE_ENV", "PROBE_ETC", "PROBE_SCRATCH", "DANGLING", "DIRLINK", "DOTDOT", "ABSOLUTE", "COPY_TARGET", "COPY_INTO_LINK", "ATTACH", "VACUUM_INTO", "HOST_LOCATION", "HUGE", "FILL""#,
    ),
];

/// `toml` with each guest's table granting the variables it declares, as
/// a user must grant a plugin's (`allow = { env = [...] }`): merged into
/// the table's own `allow` line, else a line of its own after `path`.
fn granting_env(toml: &str) -> String {
    let mut out = String::new();
    let mut grant: Option<&str> = None;
    for line in toml.split_inclusive('\n') {
        if line.starts_with('[') {
            grant = None;
        }
        if let Some(names) = GUEST_ENV
            .iter()
            .find(|(g, _)| line.starts_with("path = ") && line.contains(g))
            .map(|(_, names)| *names)
        {
            grant = Some(names);
            out.push_str(line);
            let rest_of_table = toml[toml.find(line).unwrap_or(0) + line.len()..]
                .split("\n[")
                .next()
                .unwrap_or("");
            if !rest_of_table.contains("allow = {") {
                out.push_str(&format!("allow = {{ env = [{names}] }}\n"));
                grant = None;
            }
            continue;
        }
        match (grant, line.strip_prefix("allow = {")) {
            (Some(names), Some(rest)) if !line.contains("env =") => {
                out.push_str(&format!("allow = {{ env = [{names}],{rest}"));
                grant = None;
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn guest(name: &str) -> String {
    let p = wasm::test_guest(name);
    assert!(
        p.is_file(),
        "{} was not built (runner/build.rs builds plugins/)",
        p.display()
    );
    p.display().to_string().replace('\\', "/")
}

fn hostile(mode: &str, limits: &str) -> Project {
    Project::new(&format!(
        "[plugins.counter]\npath = \"{{counter}}\"\n\n[plugins.hostile]\npath = \"{{hostile}}\"\nmode = \"{mode}\"\n{limits}\n"
    ))
}

#[test]
fn infinite_loop_in_setup_slot_is_stopped_and_the_rest_torn_down() {
    let p = hostile(
        "loop-in-setup-slot",
        "limits = { call-timeout = \"300ms\" }",
    );
    let lc = p.lifecycle(&["counter", "hostile"]);
    lc.setup_run(&p.run_info()).unwrap();
    assert!(p.tmp_run_dir().is_dir());
    // An endless loop returns at all only because the time limit stopped it.
    let err = lc.setup_slot(&Slot::new(0)).unwrap_err();
    assert_eq!(err.provider, "hostile");
    assert_eq!(err.hook, "setup-slot");
    assert!(err.message.contains("did not return within"), "{err}");
    assert!(lc.teardown(true).is_empty());
    assert!(
        p.counter_summary("gw0").contains("teardown-slot:gw0"),
        "the counter's slot was torn down"
    );
    assert!(
        !p.tmp_run_dir().exists(),
        "the temp-dir provider was torn down"
    );
}

#[test]
fn a_1gib_allocation_hits_the_memory_cap() {
    let p = hostile("alloc-1g", "");
    let lc = p.lifecycle(&["counter", "hostile"]);
    let err = lc.setup_run(&p.run_info()).unwrap_err();
    assert_eq!((err.provider.as_str(), err.hook), ("hostile", "setup-run"));
    assert!(err.message.contains("memory limit of 256 MiB"), "{err}");
    assert!(lc.teardown(true).is_empty());
    assert!(
        !p.tmp_run_dir().exists(),
        "the temp-dir provider was torn down"
    );
}

#[test]
fn a_100mb_string_is_stopped_at_the_boundary() {
    let p = hostile("huge-string", "limits = { memory = \"512MiB\" }");
    let lc = p.lifecycle(&["counter", "hostile"]);
    let err = lc.setup_run(&p.run_info()).unwrap_err();
    assert_eq!((err.provider.as_str(), err.hook), ("hostile", "setup-run"));
    assert!(
        err.message.contains("16777216 bytes across the boundary"),
        "{err}"
    );
    assert!(lc.teardown(true).is_empty());
    assert!(!p.tmp_run_dir().exists());
}

#[test]
fn a_trap_halfway_through_setup_run_fails_the_run_and_discards_the_instance() {
    let p = hostile("trap-in-setup-run", "");
    let lc = p.lifecycle(&["counter", "hostile"]);
    let err = lc.setup_run(&p.run_info()).unwrap_err();
    assert_eq!((err.provider.as_str(), err.hook), ("hostile", "setup-run"));
    assert!(err.message.contains("crashed (wasm trap)"), "{err}");
    assert!(lc.teardown(true).is_empty());
    assert!(!p.tmp_run_dir().exists());
    // The host is still up: the same guest loads and runs again.
    let p2 = hostile("none", "");
    let lc2 = p2.lifecycle(&["hostile"]);
    lc2.setup_run(&p2.run_info()).unwrap();
    assert_eq!(
        lc2.setup_slot(&Slot::new(0)).unwrap().last().unwrap().1,
        "gw0"
    );
}

#[test]
fn a_plugin_error_is_typed_and_named() {
    let p = hostile("fail-in-setup-slot", "");
    let lc = p.lifecycle(&["counter", "hostile"]);
    lc.setup_run(&p.run_info()).unwrap();
    let err = lc.setup_slot(&Slot::new(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "hostile failed in setup-slot: unavailable: the service is down"
    );
    assert!(lc.teardown(true).is_empty());
    assert!(p.counter_summary("gw0").contains("teardown-slot:gw0"));
}

#[test]
fn an_ungranted_process_import_is_refused_at_load() {
    let p = Project::new("[plugins.runner]\npath = \"{process}\"\n");
    let err = match p.host().load(&p.config, &["runner".into()]) {
        Err(e) => e,
        Ok(_) => panic!("a plugin importing `process` loaded without a grant"),
    };
    assert!(
        matches!(err, Error::Setup(_)),
        "exit 3, as for any hostile plugin: {err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("plugin runner") && msg.contains("`process` capability"),
        "{msg}"
    );
    assert!(
        msg.contains("[plugins.runner]") && msg.contains("allow = { process = ["),
        "{msg}"
    );
}

#[test]
fn a_granted_process_runs_only_the_listed_programs() {
    let p =
        Project::new("[plugins.runner]\npath = \"{process}\"\nallow = { process = [\"echo\"] }\n");
    let lc = p.lifecycle(&["runner"]);
    let env = lc.setup_run(&p.run_info()).unwrap();
    assert!(
        env.contains(&("ECHOED".into(), "hello from echo".into())),
        "{env:?}"
    );
    let env = lc.setup_slot(&Slot::new(0)).unwrap();
    let refused = env
        .iter()
        .find(|(k, _)| k == "SH_REFUSED")
        .map(|(_, v)| v.clone());
    assert!(
        refused
            .as_deref()
            .is_some_and(|m| m.contains("Refused") && m.contains("may not run")),
        "{env:?}"
    );
    assert!(lc.teardown(false).is_empty());
}

#[test]
fn a_second_load_does_not_recompile() {
    let p = Project::new("[plugins.counter]\npath = \"{counter}\"\n");
    let names = vec!["counter".to_string()];
    let first = p.host();
    first.load(&p.config, &names).unwrap();
    assert_eq!(first.stats().compiled, 1);
    let second = p.host();
    second.load(&p.config, &names).unwrap();
    assert_eq!((second.stats().compiled, second.stats().cache_hits), (0, 1));
}

#[test]
fn slots_have_independent_instances() {
    let p = Project::new("[plugins.counter]\npath = \"{counter}\"\n");
    let lc = p.lifecycle(&["counter"]);
    assert_eq!(lc.slot_limits(), [("counter".to_string(), 8)]);
    let run_env = lc.setup_run(&p.run_info()).unwrap();
    assert!(
        run_env
            .iter()
            .any(|(k, v)| k == "COUNTER_TEMPLATE" && Path::new(v).is_file()),
        "{run_env:?}"
    );
    for i in 0..2 {
        let env = lc.setup_slot(&Slot::new(i)).unwrap();
        // A fresh instance: it saw its own setup-slot and nothing else.
        assert!(
            env.contains(&("COUNTER_CALLS".into(), "1".into())),
            "{env:?}"
        );
    }
    for _ in 0..3 {
        lc.reset_slot(&Slot::new(0)).unwrap();
    }
    lc.reset_slot(&Slot::new(1)).unwrap();
    assert!(lc.teardown(false).is_empty());
    let gw0 = p.counter_summary("gw0");
    let gw1 = p.counter_summary("gw1");
    assert_eq!(
        gw0,
        "setup-slot:gw0\nreset-slot:gw0\nreset-slot:gw0\nreset-slot:gw0\nteardown-slot:gw0\nrows=4\n"
    );
    assert_eq!(
        gw1,
        "setup-slot:gw1\nreset-slot:gw1\nteardown-slot:gw1\nrows=2\n"
    );
}

#[test]
fn bad_settings_and_unknown_plugins_are_config_errors() {
    let p = Project::new("[plugins.hostile]\npath = \"{hostile}\"\nmood = \"x\"\n");
    let err = p.host().load(&p.config, &["hostile".into()]).err().unwrap();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(
        err.to_string().contains("[plugins.hostile]") && err.to_string().contains("mood"),
        "{err}"
    );
    let err = p.host().load(&p.config, &["nosuch".into()]).err().unwrap();
    assert!(
        matches!(err, Error::Config(_)) && err.to_string().contains("unknown plugin \"nosuch\""),
        "{err}"
    );
}

#[test]
fn list_and_inspect_show_capabilities_and_grants() {
    let p = Project::new(
        "[plugins.runner]\npath = \"{process}\"\n[plugins.counter]\npath = \"{counter}\"\n",
    );
    let list = wasm::plugins_list(&p.config, &p.state()).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("counter") && l.contains(" 8 ")),
        "{list}"
    );
    let inspect = wasm::plugins_inspect(&p.config, &p.state(), "runner").unwrap();
    assert!(inspect.contains("process   NOT granted"), "{inspect}");
    let inspect = wasm::plugins_inspect(&p.config, &p.state(), "counter").unwrap();
    assert!(
        inspect.contains("sqlite    granted") && inspect.contains("log       granted"),
        "{inspect}"
    );
}

#[test]
fn no_ambient_authority_but_the_scratch_dir() {
    let p = hostile("probe", "");
    let lc = p.lifecycle(&["hostile"]);
    lc.setup_run(&p.run_info()).unwrap();
    let env = lc.setup_slot(&Slot::new(0)).unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("PROBE_NET"), Some("false"), "no sockets: {env:?}");
    assert_eq!(get("PROBE_ENV"), Some("0"), "no environment: {env:?}");
    assert_eq!(
        get("PROBE_ETC"),
        Some("false"),
        "no files outside the scratch dir: {env:?}"
    );
    assert_eq!(
        get("PROBE_SCRATCH"),
        Some("true"),
        "the scratch dir is writable: {env:?}"
    );
    let written = p.state().join("plugins/hostile/scratch-r1/probe.txt");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "gw0");
    assert!(lc.teardown(false).is_empty());
    assert!(!written.exists(), "the scratch dir is removed at teardown");
}

/// A project with `[plugins.hostile]` in mode `env`, returning `pairs`
/// from setup-slot, and declaring them when `declare`.
fn env_attack(pairs: &[(&str, &str)], declare: bool) -> Project {
    let env: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("[{k:?}, {v:?}]"))
        .collect();
    let declare: Vec<String> = pairs
        .iter()
        .filter(|_| declare)
        .map(|(k, _)| format!("{k:?}"))
        .collect();
    Project::new(&format!(
        "[plugins.hostile]\npath = \"{{hostile}}\"\nmode = \"env\"\nenv = [{}]\ndeclare = [{}]\n",
        env.join(", "),
        declare.join(", ")
    ))
}

#[test]
fn env_that_runs_code_or_overrides_partest_is_refused_even_when_declared() {
    for attack in [
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("LD_PRELOAD=x.so:", ""),
        ("BASH_ENV", "$(touch /tmp/pwned)"),
        ("ENV", "/tmp/evil.sh"),
        ("PATH", "/scratch/bin"),
        ("PYTHONPATH", "/scratch"),
        ("NODE_OPTIONS", "--require /scratch/x.js"),
        ("BASH_FUNC_ls%%", "() { touch /tmp/pwned; }"),
        ("GIT_SSH_COMMAND", "touch /tmp/pwned"),
        ("PARTEST_WORKER", "gw9"),
        ("TMPDIR", "/"),
        ("PYTEST_XDIST_WORKER", "gw9"),
    ]
    .into_iter()
    .flat_map(|pair| [(pair, true), (pair, false)])
    {
        let ((name, value), declare) = attack;
        let p = env_attack(&[(name, value)], declare);
        // A declaration naming a floor variable is refused at load already.
        let err = match p.host().load(&p.config, &["hostile".into()]) {
            Err(e) => e.to_string(),
            Ok(plugins) => {
                let lc = Lifecycle::new(
                    plugins
                        .into_iter()
                        .map(|p| Box::new(p) as Box<dyn Isolation>)
                        .collect(),
                );
                lc.setup_run(&p.run_info()).unwrap();
                let err = lc.setup_slot(&Slot::new(0)).unwrap_err();
                assert_eq!(err.hook, "setup-slot");
                assert!(lc.teardown(true).is_empty());
                err.to_string()
            }
        };
        assert!(err.contains("hostile"), "{name}: {err}");
        assert!(
            err.contains(name.split('=').next().unwrap()),
            "{name}: {err}"
        );
        assert!(
            err.contains("never taken from a plugin")
                || err.contains("not a variable name")
                || err.contains("may never set"),
            "{name}: {err}"
        );
    }
}

#[test]
fn env_a_plugin_did_not_declare_is_refused_naming_plugin_hook_and_variable() {
    let p = Project::new(
        "[plugins.hostile]\npath = \"{hostile}\"\nmode = \"env\"\nenv = [[\"SURPRISE\", \"1\"]]\n",
    );
    let lc = p.lifecycle(&["hostile"]);
    lc.setup_run(&p.run_info()).unwrap();
    let err = lc.setup_slot(&Slot::new(0)).unwrap_err();
    assert_eq!((err.provider.as_str(), err.hook), ("hostile", "setup-slot"));
    assert!(
        err.message.contains("SURPRISE") && err.message.contains("does not declare"),
        "{err}"
    );
    assert!(lc.teardown(true).is_empty());
}

#[test]
fn too_many_variables_are_refused() {
    let names: Vec<String> = (0..200).map(|i| format!("V{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
    let p = env_attack(&pairs, true);
    // Refused at load, before it is granted anything.
    let err = match p.host().load_providers(&p.config, &["hostile".into()]) {
        Ok(_) => panic!("a plugin declaring 200 variables was loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("variables, more than the 64"), "{err}");
    assert!(err.len() < 600, "the message stays short: {err}");
}

#[test]
fn sqlite_follows_no_link_and_names_no_path_outside() {
    let victim = tempfile::tempdir().unwrap();
    let victim_db = victim.path().join("victim.db");
    let conn = rusqlite::Connection::open(&victim_db).unwrap();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES ('precious');")
        .unwrap();
    drop(conn);
    let p = Project::new(&format!(
        "[plugins.hostile]\npath = \"{{hostile}}\"\nmode = \"sqlite-escape\"\nvictim = {:?}\n\
         granted = \"template.db\"\nallow = {{ sqlite = [\"template.db\"] }}\n",
        victim.path().display().to_string()
    ));
    let template = rusqlite::Connection::open(p.root().join("template.db")).unwrap();
    template
        .execute_batch("CREATE TABLE m (v); INSERT INTO m VALUES (1);")
        .unwrap();
    drop(template);
    let lc = p.lifecycle(&["hostile"]);
    let env = lc.setup_run(&p.run_info()).unwrap();
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // Names with `..` or a leading `/` are refused outright; ATTACH and
    // VACUUM INTO fail; names through the plugin's links open files in
    // the host's own directory, where the plugin's links are not.
    for refused in ["DOTDOT", "ABSOLUTE", "COPY_TARGET"] {
        assert!(get(refused).starts_with("refused"), "{refused}: {env:?}");
    }
    for failed in ["ATTACH", "VACUUM_INTO"] {
        assert!(get(failed).starts_with("failed"), "{failed}: {env:?}");
    }
    let databases = p.state().join("plugins/hostile/databases");
    assert_eq!(
        PathBuf::from(get("HOST_LOCATION")),
        databases.join("dir/victim.db"),
        "{env:?}"
    );
    assert!(lc.teardown(false).is_empty());
    // The victim: unchanged, and nothing new beside it.
    let conn = rusqlite::Connection::open(&victim_db).unwrap();
    let kept: String = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, "precious");
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1, "no table was added to the victim");
    let beside: Vec<String> = std::fs::read_dir(victim.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, ["victim.db"], "files appeared outside: {beside:?}");
    // What the links led to stayed inside the host's directory.
    assert!(databases.join("dir/victim.db").is_file());
    assert!(
        std::fs::symlink_metadata(databases.join("dir"))
            .unwrap()
            .is_dir()
    );
}

#[test]
fn an_endless_sqlite_query_is_interrupted_at_the_call_deadline() {
    let p = hostile("sqlite-endless-query", "limits = { call-timeout = \"1s\" }");
    let lc = p.lifecycle(&["hostile"]);
    lc.setup_run(&p.run_info()).unwrap();
    let start = Instant::now();
    let err = lc.setup_slot(&Slot::new(0)).unwrap_err();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
    assert!(
        err.message.contains("interrupted it") || err.message.contains("did not return within"),
        "{err}"
    );
    assert!(lc.teardown(true).is_empty());
}

#[test]
fn writing_past_the_scratch_quota_stops_the_plugin_and_teardown_removes_it() {
    let p = Project::new(
        "[plugins.hostile]\npath = \"{hostile}\"\nmode = \"fill-scratch\"\nmib = 64\nlimits = { scratch = \"4MiB\" }\n",
    );
    let lc = p.lifecycle(&["hostile"]);
    let err = lc.setup_run(&p.run_info()).unwrap_err();
    assert_eq!((err.provider.as_str(), err.hook), ("hostile", "setup-run"));
    assert!(
        err.message.contains("disk quota") && err.message.contains("limits = { scratch"),
        "{err}"
    );
    let fill = p.state().join("plugins/hostile/scratch-r1/fill");
    assert!(fill.exists(), "the plugin did write (and was stopped)");
    assert!(lc.teardown(true).is_empty());
    // Its setup-run failed, so it gets no teardown-run: the scratch dir
    // goes with the plugin.
    drop(lc);
    assert!(
        !fill.exists(),
        "the scratch dir is removed at the end of the run"
    );
}

#[test]
fn log_lines_are_capped_per_call() {
    let p = Project::new(
        "[plugins.hostile]\npath = \"{hostile}\"\nmode = \"log-flood\"\nlines = 5000\n",
    );
    let (lc, lines) = p.logged_hostile();
    lc.setup_run(&p.run_info()).unwrap();
    let lines = lines.lock().unwrap();
    assert!(lines.len() <= 201, "{} lines got through", lines.len());
    assert!(
        lines.last().unwrap().contains("dropped"),
        "{:?}",
        lines.last()
    );
    assert!(lc.teardown(false).is_empty());
}

#[test]
fn one_sqlite_statement_can_grow_neither_partest_nor_the_disk() {
    let p = Project::new(
        "[plugins.hostile]\npath = \"{hostile}\"\nmode = \"sqlite-huge\"\nlimits = { scratch = \"20MiB\" }\n",
    );
    let lc = p.lifecycle(&["hostile"]);
    let env = lc.setup_run(&p.run_info()).unwrap();
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // An 800 MB string is refused at the length limit, not built.
    assert!(
        get("HUGE").starts_with("refused") && get("HUGE").to_lowercase().contains("too big"),
        "{}",
        get("HUGE")
    );
    // 100 MB of rows stop at the page limit, mid-statement, and the
    // database that filled the quota is removed: nothing over it is left
    // to fail the next run or `partest clean`.
    assert!(
        get("FILL").starts_with("refused")
            && get("FILL").contains("quota")
            && get("FILL").contains("was removed"),
        "{}",
        get("FILL")
    );
    let db = p.state().join("plugins/hostile/databases/big.db");
    assert!(!db.exists(), "{} is still there", db.display());
    assert!(lc.teardown(false).is_empty());
}

#[test]
fn what_a_plugin_says_never_drives_the_terminal() {
    let p = Project::new("[plugins.hostile]\npath = \"{hostile}\"\nmode = \"log-escape\"\n");
    let (lc, lines) = p.logged_hostile();
    let error = lc.setup_run(&p.run_info()).unwrap_err().to_string();
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let raw = |c: char| c.is_control() || c == '\u{202e}';
    assert!(!lines[0].chars().any(raw), "{:?}", lines[0]);
    assert!(
        lines[0].contains("\\n") && lines[0].contains("\\x1b]52"),
        "{:?}",
        lines[0]
    );
    assert!(!error.chars().any(|c| raw(c) && c != '\n'), "{error:?}");
    assert!(error.contains("\\x1b]52"), "{error:?}");
    let _ = lc.teardown(true);
}

/// `[plugins.runner]`: the process guest with `grant` and `settings`.
fn process_project(grant: &str, settings: &str) -> Project {
    Project::new(&format!(
        "[plugins.runner]\npath = \"{{process}}\"\nallow = {{ process = [{grant}] }}\n{settings}\n"
    ))
}

fn result_of(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "RESULT")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[test]
fn a_granted_program_gets_no_loader_or_shell_variables_from_the_plugin() {
    for (name, value) in [
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("LD_PRELOAD=x.so:", ""),
        ("BASH_ENV", "/tmp/evil.sh"),
        ("PATH", "/tmp"),
    ] {
        let p = process_project(
            "\"true\"",
            &format!("mode = \"env\"\nenv = [[{name:?}, {value:?}]]"),
        );
        let lc = p.lifecycle(&["runner"]);
        let env = lc.setup_run(&p.run_info()).unwrap();
        let result = result_of(&env);
        assert!(
            result.starts_with("refused") && result.contains(name.split('=').next().unwrap()),
            "{name}: {result}"
        );
        assert!(lc.teardown(false).is_empty());
    }
}

#[test]
fn a_granted_program_and_its_children_end_with_the_call() {
    for mode in ["grandchild", "orphan"] {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("mark");
        let p = process_project(
            "\"sh\"",
            &format!(
                "mode = \"{mode}\"\nmark = {:?}\nlimits = {{ setup-run-timeout = \"1s\" }}",
                mark.display().to_string()
            ),
        );
        let lc = p.lifecycle(&["runner"]);
        let start = Instant::now();
        let result = match lc.setup_run(&p.run_info()) {
            Ok(env) => result_of(&env),
            Err(e) => e.to_string(),
        };
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(8),
            "{mode}: took {took:?}: {result}"
        );
        if mode == "grandchild" {
            assert!(
                result.contains("did not finish") || result.contains("did not return within"),
                "{mode}: {result}"
            );
        }
        // The grandchild would write the mark 2 s after it started.
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!mark.exists(), "{mode}: a grandchild outlived the call");
        lc.teardown(true);
    }
}
