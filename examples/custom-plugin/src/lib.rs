//! `ports`: gives every worker slot its own block of TCP ports, so tests that
//! start servers never collide: slot gwN gets PARTEST_PORT_BASE = start + N * block
//! and PARTEST_PORT_COUNT = block.
//!
//! ```toml
//! [plugins.ports]
//! path = "target/wasm32-wasip2/release/partest_ports.wasm"
//! allow = { env = ["PARTEST_PORT_BASE", "PARTEST_PORT_COUNT"] }   # what it may set
//! start = 20000   # first port of the range
//! block = 10      # ports per slot
//! end = 30000     # the range ends before this port
//! ```

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{ConfigKey, Env, Error, Plugin, Result, RunInfo, Slot, config, log};

#[derive(Deserialize)]
#[serde(crate = "partest_plugin_sdk::serde", deny_unknown_fields)]
struct Settings {
    #[serde(default = "defaults::start")]
    start: u32,
    #[serde(default = "defaults::block")]
    block: u32,
    #[serde(default = "defaults::end")]
    end: u32,
}

mod defaults {
    pub fn start() -> u32 {
        20000
    }
    pub fn block() -> u32 {
        10
    }
    pub fn end() -> u32 {
        30000
    }
}

struct Ports(Settings);

impl Plugin for Ports {
    const SUMMARY: &'static str =
        "a block of TCP ports per slot (PARTEST_PORT_BASE, PARTEST_PORT_COUNT)";
    /// Every variable the hooks return: partest refuses any other.
    const ENV_VARS: &'static [&'static str] = &["PARTEST_PORT_BASE", "PARTEST_PORT_COUNT"];

    fn config_keys() -> Vec<ConfigKey> {
        let key = |name: &str, default: &str, description: &str| ConfigKey {
            name: name.into(),
            description: description.into(),
            default_value: Some(default.into()),
        };
        vec![
            key("start", "20000", "first port of the range"),
            key("block", "10", "ports per slot"),
            key("end", "30000", "the range ends before this port"),
        ]
    }

    fn configure() -> Result<Self> {
        let s: Settings = config()?;
        if s.block == 0 || s.start >= s.end || s.end > 65536 {
            return Err(Error::bad_config(
                "need block >= 1 and start < end <= 65536",
            ));
        }
        Ok(Ports(s))
    }

    fn setup_run(&mut self, run: &RunInfo) -> Result<Env> {
        let fits = (self.0.end - self.0.start) / self.0.block;
        if run.workers > fits {
            return Err(Error::bad_config(format!(
                "{} workers need {} ports, but start..end holds {fits} blocks of {}",
                run.workers,
                run.workers * self.0.block,
                self.0.block
            )));
        }
        Ok(Env::new())
    }

    fn setup_slot(&mut self, _run: &RunInfo, slot: &Slot) -> Result<Env> {
        let base = self.0.start + slot.index * self.0.block;
        log::debug(format!(
            "{} gets ports {base}..{}",
            slot.name,
            base + self.0.block
        ));
        Ok(vec![
            ("PARTEST_PORT_BASE".into(), base.to_string()),
            ("PARTEST_PORT_COUNT".into(), self.0.block.to_string()),
        ])
    }
}

partest_plugin_sdk::register!(Ports);
