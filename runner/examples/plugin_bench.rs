//! Plugin host timings: `cargo run --release -p partest --example plugin_bench`.
//! Prints, per guest: cold load (compile + link + describe + configure, empty
//! cache), warm load from the on-disk cache (with a new engine, as a run
//! starts, and on an engine already up), and one fresh slot instance +
//! configure + setup-slot.

use std::time::{Duration, Instant};

use partest::config::{self, Config};
use partest::isolation::wasm::{self, PluginHost};
use partest::isolation::{Lifecycle, RunInfo};
use partest::model::Slot;

fn main() {
    let guests = [
        ("counter", "test-counter", ""),
        ("hostile", "test-hostile", "mode = \"none\"\n"),
    ];
    println!(
        "{:<10} {:>12} {:>22} {:>22} {:>24}",
        "plugin",
        "cold load",
        "warm load (new engine)",
        "warm load (same engine)",
        "instantiate+setup-slot"
    );
    for (name, guest, settings) in guests {
        let dir = tempfile::tempdir().unwrap();
        let wasm = wasm::test_guest(guest);
        let text = format!(
            "[plugins.{name}]\npath = {:?}\n{settings}",
            wasm.display().to_string()
        );
        let path = dir.path().join("partest.toml");
        std::fs::write(&path, &text).unwrap();
        let config = Config {
            root: dir.path().into(),
            invoked_in: dir.path().into(),
            path: Some(path.clone()),
            file: config::parse(&text, &path).unwrap(),
            text: text.clone(),
        };
        let state = dir.path().join(".partest");
        let names = vec![name.to_string()];

        let cold = time(|| {
            let host = PluginHost::new(dir.path(), &state).unwrap();
            host.load(&config, &names).unwrap();
            assert_eq!(host.stats().compiled, 1);
        });
        let runs = 20;
        let mut warm = Duration::ZERO;
        for _ in 0..runs {
            warm += time(|| {
                let host = PluginHost::new(dir.path(), &state).unwrap();
                host.load(&config, &names).unwrap();
                assert_eq!(host.stats().compiled, 0);
            });
        }
        let host = PluginHost::new(dir.path(), &state).unwrap();
        let mut same_engine = Duration::ZERO;
        for _ in 0..runs {
            same_engine += time(|| {
                host.load(&config, &names).unwrap();
            });
        }
        assert_eq!(host.stats().compiled, 0);
        let lc = Lifecycle::new(host.load_providers(&config, &names).unwrap());
        let slots = 50;
        lc.setup_run(&RunInfo {
            run_id: "bench".into(),
            workers: slots,
            root: dir.path().into(),
            state_dir: state.clone(),
            setup: None,
        })
        .unwrap();
        let start = Instant::now();
        for i in 0..slots {
            lc.setup_slot(&Slot::new(i)).unwrap();
        }
        let per_slot = start.elapsed() / slots as u32;
        lc.teardown(false);
        println!(
            "{name:<10} {:>12} {:>22} {:>22} {:>24}",
            ms(cold),
            ms(warm / runs),
            ms(same_engine / runs),
            ms(per_slot)
        );
    }
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
