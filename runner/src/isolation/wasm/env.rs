//! What a plugin may put into the environment of other programs: the tests
//! and setup commands (the env `setup-run` and `setup-slot` return) and the
//! programs it runs through the `process` capability.
//!
//! The env is the one channel from the sandbox into native code, so it is
//! checked by name, never by value: a well-formed name the plugin declared,
//! no NUL, a bounded count and size, and never a name on the floor list —
//! the variables that make a loader, shell or interpreter run other code,
//! that choose where programs are found, or that partest sets itself. The
//! floor holds whatever the plugin declares.

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

/// Checks a plugin's declaration: every name must be one it could set.
pub fn check_declared(declared: &[String]) -> Result<(), String> {
    match declared.iter().find_map(|n| refused_name(n)) {
        Some(why) => Err(format!("declares a variable it may never set: {why}")),
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
