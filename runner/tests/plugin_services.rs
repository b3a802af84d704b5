//! The `redis` and `postgres` capabilities against real servers on
//! 127.0.0.1 (6379 and 5432, user postgres). Skipped, with a note, when a
//! server is not reachable.

use std::net::TcpStream;
use std::time::Duration;

use partest::config::{self, Config};
use partest::isolation::wasm::{self, PluginHost};
use partest::isolation::{Lifecycle, RunInfo, Slot};

fn reachable(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(300)).is_ok()
}

#[test]
fn redis_and_postgres_capabilities_reach_only_the_granted_servers() {
    if !reachable("127.0.0.1:6379") || !reachable("127.0.0.1:5432") {
        eprintln!("skipped: no Redis on 127.0.0.1:6379 or no PostgreSQL on 127.0.0.1:5432");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[plugins.services]\npath = {:?}\nallow = {{ redis = \"redis://127.0.0.1:6379\", postgres = \"postgres://postgres@127.0.0.1:5432/postgres\" }}\n",
        wasm::test_guest("test-services").display().to_string()
    );
    let path = dir.path().join("partest.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config {
        root: dir.path().into(),
        path: Some(path.clone()),
        file: config::parse(&text, &path).unwrap(),
    };
    let state = dir.path().join(".partest");
    let host = PluginHost::new(dir.path(), &state).unwrap();
    let lc = Lifecycle::new(
        host.load_providers(&config, &["services".to_string()])
            .unwrap(),
    );
    let run_id = format!("t{}", std::process::id());
    let run = RunInfo {
        run_id: run_id.clone(),
        workers: 2,
        root: dir.path().into(),
        state_dir: state,
    };
    let env = lc.setup_run(&run).unwrap();
    let get = |env: &[(String, String)], k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get(&env, "GOT"), "hello");
    assert_eq!(get(&env, "SCANNED"), "1");
    assert_eq!(get(&env, "PG_DB"), format!("partest_test_{run_id}"));
    assert_eq!(get(&env, "PG_NULL"), "None");
    assert_eq!(
        get(&env, "PG_URL"),
        format!("postgres://postgres@127.0.0.1:5432/partest_test_{run_id}")
    );
    for i in 0..2 {
        let env = lc.setup_slot(&Slot::new(i)).unwrap();
        assert_eq!(get(&env, "INCR"), "Int(1)");
        assert_eq!(get(&env, "FLUSHALL"), "refused");
    }
    let errors = lc.teardown(false);
    assert!(errors.is_empty(), "{errors:?}");

    // Without the grant, the plugin does not load.
    let text = format!(
        "[plugins.services]\npath = {:?}\nallow = {{ redis = \"redis://127.0.0.1:6379\" }}\n",
        wasm::test_guest("test-services").display().to_string()
    );
    std::fs::write(&path, &text).unwrap();
    let config = Config {
        root: dir.path().into(),
        path: Some(path.clone()),
        file: config::parse(&text, &path).unwrap(),
    };
    let err = host
        .load(&config, &["services".to_string()])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("`postgres` capability") && err.contains("allow = { postgres = "),
        "{err}"
    );
}
