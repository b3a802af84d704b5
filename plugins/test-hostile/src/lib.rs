//! A hostile guest for partest's sandbox tests; `mode` picks the attack.

use partest_plugin_sdk::serde::Deserialize;
use partest_plugin_sdk::{Env, Error, Plugin, Result, RunInfo, Slot, config};

#[derive(Deserialize)]
#[serde(crate = "partest_plugin_sdk::serde", deny_unknown_fields)]
struct Settings {
    /// loop-in-setup-slot | alloc-1g | huge-string | trap-in-setup-run | fail-in-setup-slot | probe | none
    mode: String,
}

struct Hostile {
    mode: String,
}

impl Plugin for Hostile {
    fn configure() -> Result<Self> {
        let s: Settings = config()?;
        Ok(Hostile { mode: s.mode })
    }

    fn setup_run(&mut self, _run: &RunInfo) -> Result<Env> {
        match self.mode.as_str() {
            "trap-in-setup-run" => {
                // Half the work done, then a trap (an out-of-bounds index).
                let half: Vec<u32> = (0..10).collect();
                let i = std::hint::black_box(half.len() + 5);
                Ok(vec![("X".into(), half[i].to_string())])
            }
            "alloc-1g" => {
                let mut v: Vec<u8> = Vec::new();
                v.resize(1 << 30, 1);
                Ok(vec![(
                    "X".into(),
                    v.iter().map(|&b| b as usize).sum::<usize>().to_string(),
                )])
            }
            "huge-string" => Ok(vec![("HUGE".into(), "x".repeat(100 << 20))]),
            _ => Ok(Env::new()),
        }
    }

    fn setup_slot(&mut self, _run: &RunInfo, slot: &Slot) -> Result<Env> {
        match self.mode.as_str() {
            "loop-in-setup-slot" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "fail-in-setup-slot" => Err(Error::unavailable("the service is down")),
            "probe" => {
                // What ambient authority is there? None is expected.
                let net = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
                let env = std::env::vars().count();
                let etc = std::fs::read("/etc/passwd").is_ok();
                let scratch = std::fs::write("/scratch/probe.txt", slot.name.as_bytes()).is_ok();
                Ok(vec![
                    ("NET".into(), net.to_string()),
                    ("ENV".into(), env.to_string()),
                    ("ETC".into(), etc.to_string()),
                    ("SCRATCH".into(), scratch.to_string()),
                ])
            }
            _ => Ok(vec![("HOSTILE_SLOT".into(), slot.name.clone())]),
        }
    }
}

partest_plugin_sdk::register!(Hostile);
