//! examples/custom-plugin builds against the SDK as a standalone crate and
//! runs under partest: every slot gets its own block of ports.

use std::path::Path;
use std::process::Command;

use partest::config::{self, Config};
use partest::isolation::wasm::{self, PluginHost};
use partest::isolation::{Lifecycle, RunInfo};
use partest::model::Slot;

#[test]
fn the_custom_plugin_example_builds_and_runs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let example = repo.join("examples/custom-plugin");
    // Shares the guests' target dir (and so the SDK's compiled deps).
    let guest_dir = wasm::test_guest("x");
    let target_dir = guest_dir.ancestors().nth(3).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(example.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .unwrap();
    assert!(status.success(), "the example did not build");
    let wasm = target_dir.join("wasm32-wasip2/release/partest_ports.wasm");

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[plugins.ports]\npath = {:?}\nallow = {{ env = [\"PARTEST_PORT_BASE\", \"PARTEST_PORT_COUNT\"] }}\nstart = 41000\nend = 42000\nblock = 5\n",
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
    let host = PluginHost::new(dir.path(), &state).unwrap();
    let names = config::Settings::resolve(&config, &config::Overrides::default())
        .unwrap()
        .plugins;
    assert_eq!(names, ["ports"]);
    let lc = Lifecycle::new(host.load_providers(&config, &names).unwrap());
    let run = RunInfo {
        run_id: "r1".into(),
        workers: 2,
        root: dir.path().into(),
        state_dir: state.clone(),
        setup: None,
    };
    lc.setup_run(&run).unwrap();
    let env1 = lc.setup_slot(&Slot::new(1)).unwrap();
    assert_eq!(
        env1,
        [
            ("PARTEST_PORT_BASE".into(), "41005".into()),
            ("PARTEST_PORT_COUNT".into(), "5".into())
        ]
    );
    assert!(lc.teardown(false).is_empty());

    let inspect = wasm::plugins_inspect(&config, &state, "ports").unwrap();
    assert!(
        inspect.contains("log       granted") && inspect.contains("start"),
        "{inspect}"
    );
    assert!(!inspect.contains("process"), "{inspect}");
}
