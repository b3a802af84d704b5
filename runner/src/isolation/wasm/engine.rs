//! One wasmtime Engine per run, its epoch ticker, and the on-disk cache of
//! compiled components, keyed by the component's content hash and the
//! engine's compatibility hash (so a wasmtime upgrade or other settings
//! never load a stale artifact).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How often the epoch advances: the granularity of call time limits.
pub const TICK: Duration = Duration::from_millis(10);

/// How many components were compiled and how many came from the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub compiled: u64,
    pub cache_hits: u64,
}

pub struct Runtime {
    pub engine: Engine,
    cache_dir: Option<PathBuf>,
    compiled: AtomicU64,
    hits: AtomicU64,
}

impl Runtime {
    /// `cache_dir`: where compiled components go; `None` disables the cache.
    pub fn new(cache_dir: Option<PathBuf>) -> wasmtime::Result<Runtime> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config)?;
        start_ticker(&engine);
        Ok(Runtime {
            engine,
            cache_dir,
            compiled: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            cache_hits: self.hits.load(Ordering::Relaxed),
        }
    }

    /// The compiled component: from the cache when it has it, else compiled
    /// now and stored (atomically: a crashed write never leaves a torn file).
    pub fn component(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let cached = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{}.cwasm", self.key(bytes))));
        if let Some(path) = &cached
            && path.is_file()
        {
            // SAFETY: the file is wasmtime's own serialization, written by
            // `store` below into partest's state dir, and its name carries the
            // engine's compatibility hash; wasmtime checks the header too.
            if let Ok(c) = unsafe { Component::deserialize_file(&self.engine, path) } {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(c);
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        if let Some(path) = &cached {
            // A cache that cannot be written only costs the next run a compile.
            let _ = store(path, &component);
        }
        Ok(component)
    }

    fn key(&self, bytes: &[u8]) -> String {
        let mut sha = Sha256::new();
        sha.update(bytes);
        let mut h = ShaHasher(&mut sha);
        self.engine.precompile_compatibility_hash().hash(&mut h);
        sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn store(path: &Path, component: &Component) -> wasmtime::Result<()> {
    let dir = path.parent().expect("cache files live in a dir");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Feeds `Hash` output into SHA-256, so the engine's compatibility hash is
/// part of the cache key.
struct ShaHasher<'a>(&'a mut Sha256);

impl Hasher for ShaHasher<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Advances the engine's epoch every [`TICK`] until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let _ = std::thread::Builder::new()
        .name("partest-wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        });
}

/// Epoch ticks for a time limit (rounded up, plus the tick in progress).
pub fn ticks(limit: Duration) -> u64 {
    (limit.as_nanos() / TICK.as_nanos()) as u64 + 2
}
