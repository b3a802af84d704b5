//! The environment contract: what every test process (and pytest worker)
//! of a slot sees, built in this one place.

use crate::isolation::{Env, Slot};

/// The plugins' variables first, then partest's own, which win: a plugin
/// cannot make a slot look like another one.
pub fn slot_env(
    slot: &Slot,
    workers: usize,
    run_id: &str,
    shard: Option<&str>,
    provided: Env,
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
    env
}
