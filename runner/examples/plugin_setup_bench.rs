//! Setup cost of the built-in redis and sqlite plugins for a 2-slot run,
//! warm (compiled components cached on disk), against the real Redis on
//! 127.0.0.1:6379 (databases 2-5) and a real SQLite template:
//! `cargo run --release -p partest --example plugin_setup_bench`.
//!
//! Timed per iteration: a new host loads both plugins (cache hit,
//! configure, max-slots), setup-run, then setup-slot for gw0 and gw1 on two
//! threads as the pool does. Teardown is timed separately.

use std::time::{Duration, Instant};

use partest::config::{self, Config};
use partest::isolation::wasm::PluginHost;
use partest::isolation::{Lifecycle, RunInfo};
use partest::model::Slot;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("tmpl.db");
    let db = rusqlite::Connection::open(&template).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE links (code TEXT PRIMARY KEY, url TEXT);
         INSERT INTO links VALUES ('a', 'https://example.com');",
    )
    .unwrap();
    let text = "[plugins.redis]\ndatabases = \"2-5\"\n\n[plugins.sqlite]\ntemplate = \"tmpl.db\"\n";
    let path = dir.path().join("partest.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config {
        root: dir.path().into(),
        invoked_in: dir.path().into(),
        path: Some(path.clone()),
        file: config::parse(text, &path).unwrap(),
        text: text.to_string(),
    };
    let state = dir.path().join(".partest");
    let names = vec!["redis".to_string(), "sqlite".to_string()];
    // The first load compiles and fills the cache: not counted.
    PluginHost::new(dir.path(), &state)
        .unwrap()
        .load(&config, &names)
        .unwrap();

    let iterations = 30;
    let (mut load, mut setup, mut teardown) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations {
        let start = Instant::now();
        let host = PluginHost::new(dir.path(), &state).unwrap();
        let lc = Lifecycle::new(host.load_providers(&config, &names).unwrap());
        assert_eq!(host.stats().compiled, 0, "warm: nothing compiled");
        let loaded = start.elapsed();
        lc.setup_run(&RunInfo {
            run_id: format!("bench{i}"),
            workers: 2,
            root: dir.path().into(),
            state_dir: state.clone(),
            setup: None,
        })
        .unwrap();
        std::thread::scope(|s| {
            let lc = &lc;
            let slots: Vec<_> = (0..2)
                .map(|n| s.spawn(move || lc.setup_slot(&Slot::new(n)).unwrap()))
                .collect();
            for h in slots {
                h.join().unwrap();
            }
        });
        let set_up = start.elapsed();
        let t = Instant::now();
        let errors = lc.teardown(false);
        assert!(errors.is_empty(), "{errors:?}");
        teardown.push(t.elapsed());
        load.push(loaded);
        setup.push(set_up);
    }
    println!("redis + sqlite, 2 slots, warm, {iterations} runs (median / max):");
    println!(
        "  load (new engine, cache hit, configure)    {}",
        stats(&mut load)
    );
    println!(
        "  load + setup-run + 2 x setup-slot (total)  {}",
        stats(&mut setup)
    );
    println!(
        "  teardown (2 slots + run)                   {}",
        stats(&mut teardown)
    );
}

fn stats(v: &mut [Duration]) -> String {
    v.sort();
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    format!("{} / {}", ms(v[v.len() / 2]), ms(v[v.len() - 1]))
}
