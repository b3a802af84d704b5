//! The environment contract: what every test process (and pytest worker)
//! of a slot sees, built in this one place.

use std::collections::BTreeMap;

use crate::model::{Env, Slot};

/// `[env]` laid over `env`: each value with `${NAME}` replaced by `NAME`
/// from `env`, else from partest's own environment, else nothing.
pub fn with_config_env(mut env: Env, table: &BTreeMap<String, String>) -> Env {
    let values: Vec<(String, String)> = table
        .iter()
        .map(|(name, value)| (name.clone(), expand(value, &env)))
        .collect();
    for (name, value) in values {
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    }
    env
}

fn expand(value: &str, env: &Env) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        let Some(len) = rest[at + 2..].find('}') else {
            break;
        };
        out.push_str(&rest[..at]);
        let name = &rest[at + 2..at + 2 + len];
        match env.iter().rev().find(|(k, _)| k == name) {
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&std::env::var(name).unwrap_or_default()),
        }
        rest = &rest[at + 3 + len..];
    }
    out.push_str(rest);
    out
}

/// The plugins' variables first, then partest's own, which win: a plugin
/// cannot make a slot look like another one.
pub fn slot_env(
    slot: &Slot,
    workers: usize,
    run_id: &str,
    shard: Option<&str>,
    provided: Env,
    config_env: &BTreeMap<String, String>,
) -> Env {
    let count = workers.to_string();
    let mut env = provided;
    env.extend([
        ("PARTEST_WORKER".into(), slot.name.clone()),
        ("PARTEST_WORKER_INDEX".into(), slot.index.to_string()),
        ("PARTEST_WORKER_COUNT".into(), count.clone()),
        ("PARTEST_RUN_ID".into(), run_id.to_string()),
        // Drop-in for conftests written for pytest-xdist and parallel_tests.
        ("PYTEST_XDIST_WORKER".into(), slot.name.clone()),
        ("PYTEST_XDIST_WORKER_COUNT".into(), count),
        (
            "TEST_ENV_NUMBER".into(),
            if slot.index == 0 {
                String::new()
            } else {
                (slot.index + 1).to_string()
            },
        ),
    ]);
    // `--shard`: this machine's share, K/N (or `queue`).
    if let Some(shard) = shard {
        env.push(("PARTEST_SHARD".into(), shard.to_string()));
    }
    with_config_env(env, config_env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_env_reads_the_slots_variables_and_overrides_by_name() {
        let env: Env = vec![
            ("PGDATABASE".into(), "partest_ab_gw1".into()),
            ("POSTGRES_DB".into(), "dev".into()),
        ];
        let table: BTreeMap<String, String> = [
            ("POSTGRES_DB".to_string(), "${PGDATABASE}".to_string()),
            (
                "LABEL".to_string(),
                "db=${PGDATABASE}, none=${PARTEST_NO_SUCH_VAR}, ${open".to_string(),
            ),
        ]
        .into();
        let env = with_config_env(env, &table);
        let get = |k: &str| {
            env.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("POSTGRES_DB"), ["partest_ab_gw1"]);
        assert_eq!(get("LABEL"), ["db=partest_ab_gw1, none=, ${open"]);
    }
}
