//! One wasmtime Engine per run, its epoch ticker, and the on-disk cache of
//! compiled components, keyed by the component's content hash and the
//! engine's compatibility hash (so a wasmtime upgrade or other settings
//! never load a stale artifact).
//!
//! A cached artifact is native code partest maps and runs, so it lives in
//! the user's own cache dir (`$XDG_CACHE_HOME/partest`, else
//! `~/.cache/partest`), never in the project tree a checkout or another
//! user could write; it is written atomically, and a file not owned by the
//! user or writable by anyone else is ignored (and compiled afresh).
//!
//! Owning a file is not enough: anything that can write as the user (a
//! test, a program a plugin's env steered) could plant an artifact. So
//! each artifact carries an HMAC-SHA-256 of its name and bytes under a
//! random key kept beside it (`.key`, 0600), which no plugin can read: a
//! file without the right one is compiled afresh, built-in or not.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
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
        let cached = self.cache_dir.as_ref().and_then(|d| {
            let key = mac_key(d)?;
            Some((d.join(format!("{}.cwasm", self.key(bytes))), key))
        });
        if let Some((path, key)) = &cached
            && let Some(artifact) = read_trusted(path).and_then(|file| verified(key, path, file))
        {
            // SAFETY: the bytes are wasmtime's own serialization, written by
            // `store` below: their HMAC under the user's cache key checked
            // out (no plugin can read that key), the file and dir are the
            // user's alone, and the name carries the engine's compatibility
            // hash; wasmtime checks the header too.
            if let Ok(c) = unsafe { Component::deserialize(&self.engine, &artifact) } {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(c);
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        if let Some((path, key)) = &cached {
            // A cache that cannot be written only costs the next run a compile.
            let _ = store(path, key, &component);
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

/// The cache dir: `$XDG_CACHE_HOME/partest`, else `~/.cache/partest`
/// (relative values are ignored, as the XDG spec says); `None` without either.
pub fn user_cache_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })
        .map(|d| d.join("partest").join("plugins"))
}

/// Whether a file's owner and mode make it as trustworthy as the user's own
/// files: owned by this user, writable by nobody else.
fn trusted(meta: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid has no failure mode and no memory effects.
    let me = unsafe { libc::geteuid() };
    meta.uid() == me && meta.mode() & 0o022 == 0
}

/// The bytes of the cache file at `path` if it and its directory are the
/// user's alone; links are not followed.
fn read_trusted(path: &Path) -> Option<Vec<u8>> {
    let dir = std::fs::symlink_metadata(path.parent()?).ok()?;
    if !dir.is_dir() || !trusted(&dir) {
        return None;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    // The open file's own metadata: no swap between check and read.
    let meta = file.metadata().ok()?;
    if !meta.is_file() || !trusted(&meta) {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// What a cache file starts with, before its HMAC and the artifact.
const MAGIC: &[u8; 8] = b"PTCWASM1";

/// The cache's HMAC key (`dir/.key`, 32 random bytes, the user's alone),
/// made on first use; `None` when it cannot be read or made (no cache).
fn mac_key(dir: &Path) -> Option<[u8; 32]> {
    let path = dir.join(".key");
    if let Some(bytes) = read_trusted(&path) {
        return bytes.try_into().ok();
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ok()?;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut r| r.read_exact(&mut key))
        .ok()?;
    // O_EXCL: two runs at once keep the first key; the other reads it.
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .and_then(|mut f| f.write_all(&key));
    match created {
        Ok(()) => Some(key),
        Err(_) => read_trusted(&path)?.try_into().ok(),
    }
}

/// HMAC-SHA-256 (RFC 2104) of `parts` under `key`.
fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The MAC over a cache file's name (the component's key) and artifact.
fn file_mac(key: &[u8; 32], path: &Path, artifact: &[u8]) -> [u8; 32] {
    let name = path.file_name().map_or(&[][..], |n| n.as_encoded_bytes());
    hmac(key, &[name, &[0], artifact])
}

/// The artifact in a cache file, if its MAC under `key` is right.
fn verified(key: &[u8; 32], path: &Path, file: Vec<u8>) -> Option<Vec<u8>> {
    let rest = file.strip_prefix(MAGIC)?;
    if rest.len() < 32 {
        return None;
    }
    let (mac, artifact) = rest.split_at(32);
    let expected = file_mac(key, path, artifact);
    // Constant time: how much of it matched says nothing.
    let same = mac.iter().zip(expected).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
    same.then(|| artifact.to_vec())
}

/// Writes the artifact (with its MAC) under a fresh name and renames it
/// into place, so a reader never sees half a file; the dir and file are
/// the user's only.
fn store(path: &Path, key: &[u8; 32], component: &Component) -> wasmtime::Result<()> {
    let dir = path.parent().expect("cache files live in a dir");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".partest-")
        .suffix(".tmp")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)?;
    let artifact = component.serialize()?;
    tmp.write_all(MAGIC)?;
    tmp.write_all(&file_mac(key, path, &artifact))?;
    tmp.write_all(&artifact)?;
    tmp.persist(path)?;
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_cache_file_others_can_write_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = dir.path().join("x.cwasm");
        std::fs::write(&file, b"artifact").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_trusted(&file).as_deref(), Some(&b"artifact"[..]));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(read_trusted(&file), None, "a world-writable file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(read_trusted(&file), None, "in a world-writable dir");
        // A link is never followed, even to a trusted file.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("link.cwasm");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_trusted(&link), None);
    }

    #[test]
    fn a_planted_artifact_without_the_keys_mac_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let key = mac_key(dir.path()).unwrap();
        assert_eq!(mac_key(dir.path()), Some(key), "the key is kept");
        let meta = std::fs::metadata(dir.path().join(".key")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let path = dir.path().join("abc.cwasm");
        let artifact = b"native code".to_vec();
        let mut good = MAGIC.to_vec();
        good.extend(file_mac(&key, &path, &artifact));
        good.extend(&artifact);
        assert_eq!(verified(&key, &path, good.clone()), Some(artifact.clone()));
        // Another file's MAC, a flipped byte, another key, no MAC at all.
        let other = dir.path().join("def.cwasm");
        assert_eq!(verified(&key, &other, good.clone()), None);
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verified(&key, &path, flipped), None);
        assert_eq!(verified(&[7; 32], &path, good), None);
        assert_eq!(verified(&key, &path, artifact), None);
        // RFC 4231, test case 1 (a 20-byte key is zero-padded as ours is).
        let mut rfc_key = [0u8; 32];
        rfc_key[..20].fill(0x0b);
        let mac: String = hmac(&rfc_key, &[b"Hi ", b"There"])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            mac,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn the_cache_lives_in_the_users_cache_dir() {
        let dir = user_cache_dir().unwrap();
        assert!(
            dir.ends_with("partest/plugins") && dir.is_absolute(),
            "{dir:?}"
        );
    }
}
