//! What a plugin may put into the environment of other programs: the tests
//! and setup commands (the env `setup-run` and `setup-slot` return) and the
//! programs it runs through the `process` capability.
//!
//! The env is the one channel from the sandbox into native code, so it is
//! an allow-list: a custom plugin sets only the names the user granted
//! (`allow = { env = ["MINIO_URL"] }`), a built-in one only the names its
//! settings give; every name is well-formed, no value holds a NUL or points
//! into partest's plugin directories (but at a database file there), the
//! count and size are bounded. Below the grants, a floor no grant lifts:
//! the variables that make a loader, shell, interpreter or tool run or load
//! other code or read its configuration from elsewhere (`HOME`, `XDG_*`,
//! `*_OPTIONS`, `*_PATH`, `*_CONF`, `*_RUNNER`, ...), that choose where
//! programs are found, or that partest sets or reads itself.

use std::path::Path;
use std::sync::Arc;

use super::capability::{Capability, Grant, string_list};
use crate::config::PluginTable;

/// The most variables one hook (or one granted program) may get from a plugin.
pub const MAX_VARS: usize = 64;
/// The most bytes (names and values) of those variables together.
pub const MAX_BYTES: usize = 64 * 1024;

/// Exact names refused, upper-cased, with why.
const FLOOR_NAMES: &[(&str, &str)] = &[
    (
        "GLIBC_TUNABLES",
        "it configures the C library of every program",
    ),
    ("BASH_ENV", "bash runs the file it names"),
    ("ENV", "sh runs the file it names"),
    ("SHELLOPTS", "it changes how every bash script runs"),
    ("BASHOPTS", "it changes how every bash script runs"),
    ("PS4", "bash expands it, running commands"),
    ("IFS", "it changes how every shell script splits words"),
    ("PROMPT_COMMAND", "bash runs it"),
    ("PATH", "it decides which programs run"),
    ("NODE_OPTIONS", "node loads the code it names"),
    ("NODE_PATH", "node loads modules from it"),
    ("PERL5OPT", "perl runs the code it names"),
    ("PERL5LIB", "perl loads modules from it"),
    ("PERLLIB", "perl loads modules from it"),
    ("RUBYOPT", "ruby loads the code it names"),
    ("RUBYLIB", "ruby loads code from it"),
    ("JAVA_TOOL_OPTIONS", "the JVM loads the agents it names"),
    ("_JAVA_OPTIONS", "the JVM loads the agents it names"),
    ("JDK_JAVA_OPTIONS", "the JVM loads the agents it names"),
    ("CLASSPATH", "the JVM loads classes from it"),
    ("LESSOPEN", "less runs it"),
    ("PAGER", "programs run it"),
    ("EDITOR", "programs run it"),
    ("VISUAL", "programs run it"),
    ("TMPDIR", "partest sets it for each slot"),
    ("TEST_ENV_NUMBER", "partest sets it for each slot"),
    ("PARTEST_ATTEMPT", "partest sets it for each test"),
    ("PARTEST_TMPDIR", "partest sets it for each slot"),
    ("PARTEST_NO_DIAGNOSE", "partest reads it"),
    (
        "PARTEST_PYTEST_DJANGO_DB",
        "partest's pytest plugin reads it",
    ),
    (
        "HOME",
        "programs read their configuration (and Python its site dir) from it",
    ),
    ("SHELL", "programs run it"),
    ("BROWSER", "programs run it"),
    ("MAKEFILES", "make reads the makefiles it names"),
    ("GCONV_PATH", "the C library loads modules from it"),
    ("LOCPATH", "the C library loads locales from it"),
    ("NLSPATH", "the C library loads message catalogs from it"),
    ("HOSTALIASES", "the resolver reads the file it names"),
    ("RESOLV_HOST_CONF", "the resolver reads the file it names"),
    ("TERMINFO", "curses reads terminal programs from it"),
    ("INPUTRC", "readline reads the file it names"),
    ("ZDOTDIR", "zsh runs the files in it"),
    ("VIMINIT", "vim runs it"),
    ("EXINIT", "vi runs it"),
    ("EMACSLOADPATH", "emacs loads code from it"),
    (
        "KUBECONFIG",
        "kubectl reads (and runs the helpers in) the file it names",
    ),
    ("NETRC", "programs read credentials from the file it names"),
    ("PGPASSFILE", "libpq reads the file it names"),
    ("PGSERVICEFILE", "libpq reads the file it names"),
    ("PGSYSCONFDIR", "libpq reads its configuration from it"),
    ("WGETRC", "wget reads the file it names"),
    ("TZ", "the C library reads the time zone file it names"),
    ("TZDIR", "the C library reads time zone files from it"),
    ("CC", "builds run the compiler it names"),
    ("CXX", "builds run the compiler it names"),
    ("CPP", "builds run the preprocessor it names"),
    ("LD", "builds run the linker it names"),
    ("AR", "builds run the archiver it names"),
    ("AS", "builds run the assembler it names"),
    ("GOROOT", "go runs its tools from it"),
    ("GOPROXY", "go fetches code from it"),
    ("GOTOOLCHAIN", "go runs the toolchain it names"),
    ("GOENV", "go reads its configuration from the file it names"),
    ("GOBIN", "go installs and runs programs from it"),
    ("GOCACHE", "go reuses compiled code from it"),
    ("GOMODCACHE", "go reuses module code from it"),
    ("GOINSECURE", "go fetches code without checks from it"),
    ("GONOSUMDB", "go fetches code without checks"),
    ("GOSUMDB", "go checks code against it"),
    ("GODEBUG", "it changes how go programs run"),
];

/// Name suffixes refused (outside `PARTEST_`, partest's own namespace),
/// upper-cased: the families through which tools take options, load code
/// or read configuration.
const FLOOR_SUFFIXES: &[(&str, &str)] = &[
    (
        "_PATH",
        "programs load code or configuration from the paths it names",
    ),
    (
        "PATH",
        "programs load code or configuration from the paths it names",
    ),
    (
        "_CONF",
        "a program reads its configuration from the file it names",
    ),
    ("_CONFIG", "a program reads its configuration from it"),
    ("_FILE", "a program reads the file it names"),
    ("_DIR", "a program reads files from it"),
    ("_HOME", "a program reads its configuration or code from it"),
    ("_OPTIONS", "a program takes options (code to load) from it"),
    ("_OPTS", "a program takes options (code to load) from it"),
    ("OPT", "a program takes options (code to load) from it"),
    (
        "_ADDOPTS",
        "a program takes options (plugins to load) from it",
    ),
    ("FLAGS", "a compiler or tool takes its options from it"),
    ("_RUNNER", "a tool runs the program it names"),
    ("_RC", "a program runs or reads the file it names"),
    ("_HOOK", "a program runs it"),
    ("_HOOKS", "a program runs them"),
    ("_INIT", "a program runs it"),
    ("_PRELOAD", "a program loads the code it names"),
    ("_PLUGINS", "a program loads the plugins it names"),
    ("_COMMAND", "a program runs it"),
    ("_EDITOR", "a program runs it"),
    ("_PAGER", "a program runs it"),
    ("_ASKPASS", "a program runs it"),
    ("_SHELL", "a program runs it"),
    ("_PROGRAM", "a program runs it"),
    ("_EXE", "a program runs it"),
    ("_BIN", "a program runs it"),
];

/// Name prefixes refused, upper-cased, with why. `PARTEST_` is refused for
/// the families partest sets (worker, run, test); other `PARTEST_` names
/// (`PARTEST_PORT_BASE`, `PARTEST_SQLITE_PATH`) are plugins' to declare.
const FLOOR_PREFIXES: &[(&str, &str)] = &[
    ("LD_", "the dynamic loader loads the code it names"),
    ("DYLD_", "the dynamic loader loads the code it names"),
    ("BASH_FUNC_", "bash imports functions from it"),
    ("PYTHON", "python runs or loads code it names"),
    ("GIT_", "git runs programs it names"),
    ("XDG_", "programs read their configuration and data from it"),
    ("NPM_CONFIG_", "npm and node take options from it"),
    ("YARN_", "yarn takes options from it"),
    ("PYENV_", "pyenv runs hooks from it"),
    ("PIP_", "pip takes options (indexes, code) from it"),
    ("UV_", "uv takes options from it"),
    ("CONDA", "conda takes options from it"),
    ("VIRTUAL_ENV", "python tools run code from it"),
    ("CARGO", "cargo takes options, runners and tools from it"),
    ("RUST", "rustc and cargo take options from it"),
    (
        "OPENSSL_",
        "OpenSSL loads modules and configuration from it",
    ),
    ("SSL_", "TLS libraries trust the certificates it names"),
    ("SSH_", "ssh runs programs and reads keys from it"),
    ("GPG", "gpg reads its home and agent from it"),
    (
        "DOCKER_",
        "docker takes its daemon and configuration from it",
    ),
    ("COMPOSE_FILE", "docker compose reads the files it names"),
    ("GEM_", "ruby loads gems from it"),
    ("BUNDLE_", "bundler takes options from it"),
    ("JAVA", "the JVM takes options from it"),
    ("MAVEN_", "maven takes options from it"),
    ("GRADLE_", "gradle takes options from it"),
    ("LUA_", "lua runs or loads code from it"),
    ("TCL", "tcl loads code from it"),
    ("R_", "R runs the files it names"),
    ("NODE_", "node takes options and modules from it"),
    ("DENO_", "deno takes options from it"),
    ("BUN_", "bun takes options from it"),
    ("PHP", "php reads its configuration from it"),
    ("PERL", "perl loads code from it"),
    ("RUBY", "ruby loads code from it"),
    ("MAKE", "make takes options and makefiles from it"),
    ("GCONV", "the C library loads modules from it"),
    ("MALLOC_", "the C library's allocator takes options from it"),
    ("PYTEST_XDIST_", "partest sets it for each slot"),
    ("PARTEST_WORKER", "partest sets it for each slot"),
    ("PARTEST_RUN", "partest sets it for the run"),
    ("PARTEST_TEST", "partest sets it for each test"),
    ("PARTEST_SHARD", "partest sets it for the run's shard"),
];

/// Whether `name` is a plain variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn well_formed(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Why `name` may never come from a plugin, if it may not.
fn on_floor(name: &str) -> Option<&'static str> {
    // Upper-cased: no loader or shell reads `ld_preload`, but nothing is
    // lost by refusing it, and some platforms fold case.
    let upper = name.to_ascii_uppercase();
    FLOOR_NAMES
        .iter()
        .find(|(n, _)| *n == upper)
        .or_else(|| FLOOR_PREFIXES.iter().find(|(p, _)| upper.starts_with(p)))
        .or_else(|| {
            // partest's own names (`PARTEST_SQLITE_PATH`) are read by no tool.
            (!upper.starts_with("PARTEST_"))
                .then(|| FLOOR_SUFFIXES.iter().find(|(s, _)| upper.ends_with(s)))
                .flatten()
        })
        .map(|(_, why)| *why)
}

/// Why `name` may not be set by any plugin: malformed or on the floor.
pub fn refused_name(name: &str) -> Option<String> {
    if name.contains('\0') {
        return Some(format!("the name {name:?} holds a NUL byte"));
    }
    if !well_formed(name) {
        return Some(format!(
            "{name:?} is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    on_floor(name).map(|why| format!("{name} is never taken from a plugin: {why}"))
}

/// Checks `env` against the floor, the caps and, when `declared` is given,
/// the plugin's declared names. The error names the first refused variable.
pub fn check(env: &[(String, String)], declared: Option<&[String]>) -> Result<(), String> {
    if env.len() > MAX_VARS {
        return Err(format!(
            "returned {} variables, more than the {MAX_VARS} a plugin may set",
            env.len()
        ));
    }
    let bytes: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_BYTES {
        return Err(format!(
            "returned {bytes} bytes of variables, more than the {MAX_BYTES} a plugin may set"
        ));
    }
    for (name, value) in env {
        if let Some(why) = refused_name(name) {
            return Err(format!("may not set {why}"));
        }
        if value.contains('\0') {
            return Err(format!("may not set {name}: its value holds a NUL byte"));
        }
        if let Some(declared) = declared
            && !declared.iter().any(|d| d == name)
        {
            return Err(format!(
                "may not set {name}: the plugin does not declare it (it declares: {})",
                if declared.is_empty() {
                    "nothing".to_string()
                } else {
                    declared.join(", ")
                }
            ));
        }
    }
    Ok(())
}

/// Checks a plugin's declaration: every name must be one a plugin could
/// set (the plugin's own fault when not).
pub fn check_declared(declared: &[String]) -> Result<(), String> {
    if declared.len() > MAX_VARS {
        return Err(format!(
            "declares {} variables, more than the {MAX_VARS} a plugin may set",
            declared.len()
        ));
    }
    match declared.iter().find_map(|n| refused_name(n)) {
        Some(why) => Err(format!("declares a variable it may never set: {why}")),
        None => Ok(()),
    }
}

/// Checks a custom plugin's declaration against what the user granted
/// (`allow.env`): the user's to fix when not.
pub fn check_declared_granted(declared: &[String], granted: Option<&Names>) -> Result<(), String> {
    let missing: Vec<&str> = declared
        .iter()
        .filter(|n| !granted.is_some_and(|g| g.0.contains(n)))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // A long list is cut: the message names the first few.
    let shown: Vec<String> = missing.iter().take(8).map(|n| format!("{n:?}")).collect();
    let more = match missing.len() {
        n if n > 8 => format!(", ... ({} more)", n - 8),
        _ => String::new(),
    };
    Err(format!(
        "sets {}{more}, which a plugin may set only when granted: add allow = {{ env = [{}{more}] }} to its table",
        missing
            .iter()
            .take(8)
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
        shown.join(", ")
    ))
}

/// Checks that no value points into partest's plugin directories (where a
/// plugin writes: its scratch dirs, its databases), but at a database file
/// there: a plugin may hand out its database's path, never a file of its
/// own making that a program would read as code or configuration.
pub fn check_values(env: &[(String, String)], plugins_dir: &Path) -> Result<(), String> {
    let dir = plugins_dir.to_string_lossy();
    for (name, value) in env {
        if dir.is_empty() || !value.contains(dir.as_ref()) {
            continue;
        }
        let path = value.split(['?', '#']).next().unwrap_or(value);
        if !DATABASE_SUFFIXES.iter().any(|s| path.ends_with(s)) {
            return Err(format!(
                "may not set {name}: its value points into partest's plugin directory {dir}, \
                 and not at a database file ({})",
                DATABASE_SUFFIXES.join(", ")
            ));
        }
    }
    Ok(())
}

/// The names a database of the sqlite capability ends with.
pub const DATABASE_SUFFIXES: &[&str] = &[".db", ".sqlite", ".sqlite3"];

/// `allow.env`: the variables a custom plugin may set.
pub struct Names(pub Vec<String>);

/// The `env` grant: not an interface, but what a custom plugin's hooks
/// and granted programs may be given.
pub struct EnvGrant;

impl Capability for EnvGrant {
    fn name(&self) -> &'static str {
        "env"
    }
    fn grant(
        &self,
        value: Option<&toml::Value>,
        _table: &PluginTable,
    ) -> Result<Option<Grant>, String> {
        let Some(value) = value else {
            return Ok(None);
        };
        let names = string_list(value).ok_or("expected a list of variable names")?;
        if let Some(why) = names.iter().find_map(|n| refused_name(n)) {
            return Err(format!("cannot be granted: {why}"));
        }
        Ok((!names.is_empty()).then(|| Arc::new(Names(names)) as Grant))
    }
    fn hint(&self) -> String {
        "allow = { env = [\"NAME\", ...] }".into()
    }
    fn describe_grant(&self, grant: &Grant) -> String {
        let names = grant.downcast_ref::<Names>().map_or(&[][..], |n| &n.0[..]);
        format!(
            "granted: {} (for the tests, setup commands and its programs)",
            names.join(", ")
        )
    }
}

/// For a custom plugin's granted program: each name must be granted.
pub fn check_granted(env: &[(String, String)], granted: Option<&Names>) -> Result<(), String> {
    match env
        .iter()
        .find(|(n, _)| !granted.is_some_and(|g| g.0.contains(n)))
    {
        Some((name, _)) => Err(format!(
            "may not set {name}: not granted (allow = {{ env = [{name:?}] }})"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn declared(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn declared_plain_names_pass() {
        let d = declared(&["DATABASE_URL", "PARTEST_PORT_BASE"]);
        let e = env(&[("DATABASE_URL", "sqlite:///x"), ("PARTEST_PORT_BASE", "1")]);
        assert_eq!(check(&e, Some(&d)), Ok(()));
    }

    #[test]
    fn the_floor_holds_whatever_is_declared() {
        for name in [
            "LD_PRELOAD",
            "ld_preload",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "GLIBC_TUNABLES",
            "BASH_ENV",
            "ENV",
            "BASH_FUNC_ls%%",
            "BASH_FUNC_x",
            "SHELLOPTS",
            "PS4",
            "IFS",
            "PROMPT_COMMAND",
            "PATH",
            "Path",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "NODE_OPTIONS",
            "PERL5OPT",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "CLASSPATH",
            "GIT_SSH_COMMAND",
            "LESSOPEN",
            "PAGER",
            "EDITOR",
            "VISUAL",
            "PARTEST_WORKER",
            "PARTEST_WORKER_INDEX",
            "PARTEST_RUN_ID",
            "PARTEST_TEST_TMPDIR",
            "PARTEST_TMPDIR",
            "TMPDIR",
            "PYTEST_XDIST_WORKER",
            "TEST_ENV_NUMBER",
        ] {
            let d = declared(&[name]);
            let err = check(&env(&[(name, "x")]), Some(&d)).unwrap_err();
            assert!(err.contains("may not set"), "{name}: {err}");
            assert!(check_declared(&d).is_err(), "{name}");
        }
    }

    #[test]
    fn names_that_load_code_or_configuration_are_never_granted() {
        // Found by attack: each made a program run code a plugin wrote.
        for name in [
            "HOME",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
            "OPENSSL_CONF",
            "GCONV_PATH",
            "MAKEFILES",
            "PYENV_HOOK_PATH",
            "PYTEST_ADDOPTS",
            "npm_config_node_options",
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
            "SSL_CERT_FILE",
            "CURL_HOME",
            "RUSTFLAGS",
            "GOFLAGS",
            "CC",
            "PARTEST_NO_DIAGNOSE",
            "ANY_TOOL_OPTIONS",
            "SOME_PLUGIN_PATH",
        ] {
            assert!(refused_name(name).is_some(), "{name} passed the floor");
        }
        // What the built-in plugins and ordinary services set passes.
        for name in [
            "DATABASE_URL",
            "PGHOST",
            "REDIS_URL",
            "REDIS_KEY_PREFIX",
            "REDIS_HOST",
            "REDIS_PORT",
            "PARTEST_SQLITE_PATH",
            "PARTEST_PORT_0",
            "COMPOSE_PROJECT_NAME",
            "MINIO_URL",
            "LDAP_URL",
            "GOOGLE_CLOUD_PROJECT",
            "ARTIFACT_BUCKET",
        ] {
            assert_eq!(refused_name(name), None, "{name}");
        }
    }

    #[test]
    fn a_custom_plugin_sets_only_granted_names() {
        let d = declared(&["MINIO_URL", "MINIO_BUCKET"]);
        let err = check_declared_granted(&d, None).unwrap_err();
        assert!(
            err.contains("MINIO_URL, MINIO_BUCKET") && err.contains("allow = { env"),
            "{err}"
        );
        let granted = Names(declared(&["MINIO_URL"]));
        let err = check_declared_granted(&d, Some(&granted)).unwrap_err();
        assert!(err.contains("sets MINIO_BUCKET,"), "{err}");
        let granted = Names(d.clone());
        assert_eq!(check_declared_granted(&d, Some(&granted)), Ok(()));
        // Built-in: its settings' names, the floor only.
        assert_eq!(check_declared(&d), Ok(()));
        assert!(check_granted(&env(&[("MINIO_URL", "x")]), Some(&granted)).is_ok());
        assert!(check_granted(&env(&[("OTHER", "x")]), Some(&granted)).is_err());
        assert!(check_granted(&env(&[("OTHER", "x")]), None).is_err());
    }

    #[test]
    fn a_value_may_point_into_the_plugin_dir_only_at_a_database() {
        let dir = Path::new("/p/.partest/plugins");
        let ok = env(&[
            (
                "DATABASE_URL",
                "sqlite:////p/.partest/plugins/sqlite/r/databases/test_gw0.db",
            ),
            (
                "PARTEST_SQLITE_PATH",
                "/p/.partest/plugins/sqlite/r/databases/x.sqlite3",
            ),
            ("OTHER", "/elsewhere/x.pth"),
        ]);
        assert_eq!(check_values(&ok, dir), Ok(()));
        for value in [
            "/p/.partest/plugins/evil/r/site/x.pth",
            "/p/.partest/plugins/evil/r/gitconfig",
            "/p/.partest/plugins/evil/r/x.db/../hook.sh",
        ] {
            let err = check_values(&env(&[("V", value)]), dir).unwrap_err();
            assert!(err.contains("may not set V"), "{value}: {err}");
        }
    }

    #[test]
    fn malformed_names_are_refused() {
        for name in ["LD_PRELOAD=x.so:", "A B", "1ABC", "", "A-B", "A\0B", "É"] {
            let d = declared(&[name]);
            let err = check(&env(&[(name, "x")]), Some(&d)).unwrap_err();
            assert!(err.contains("may not set"), "{name:?}: {err}");
        }
    }

    #[test]
    fn undeclared_names_and_nul_values_are_refused() {
        let d = declared(&["A"]);
        let err = check(&env(&[("B", "1")]), Some(&d)).unwrap_err();
        assert!(err.contains("B") && err.contains("declares: A"), "{err}");
        let err = check(&env(&[("A", "x\0y")]), Some(&d)).unwrap_err();
        assert!(err.contains("NUL"), "{err}");
        // Without a declaration (a granted program's env), the floor still holds.
        assert!(check(&env(&[("B", "1")]), None).is_ok());
        assert!(check(&env(&[("LD_PRELOAD", "x.so")]), None).is_err());
    }

    #[test]
    fn count_and_size_are_capped() {
        let many: Vec<(String, String)> = (0..=MAX_VARS)
            .map(|i| (format!("V{i}"), String::new()))
            .collect();
        let names: Vec<String> = many.iter().map(|(k, _)| k.clone()).collect();
        assert!(
            check(&many, Some(&names))
                .unwrap_err()
                .contains("variables")
        );
        let big = env(&[("A", &"x".repeat(MAX_BYTES))]);
        assert!(
            check(&big, Some(&declared(&["A"])))
                .unwrap_err()
                .contains("bytes")
        );
    }
}
