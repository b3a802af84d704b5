//! The scratch-disk quota: what a plugin's files occupy on disk (blocks,
//! so a sparse file counts for what it holds), links never followed, and a
//! cap on how many entries there may be, so that neither bytes nor inodes
//! run out because of a plugin.

use std::path::Path;

use crate::config::ByteSize;

/// The most files and directories a plugin may keep.
pub const MAX_ENTRIES: u64 = 100_000;

/// The bytes used under `dirs`, counted up to a little past `cap`.
pub fn used(dirs: &[&Path], cap: u64) -> u64 {
    let mut usage = Usage::default();
    for dir in dirs {
        usage.add_dir(dir, cap);
    }
    usage.bytes
}

/// The bytes used under `dirs`, as text, when they are over `quota` (or
/// the entries over [`MAX_ENTRIES`]).
pub fn exceeded(dirs: &[&Path], quota: u64) -> Option<String> {
    let mut usage = Usage::default();
    for dir in dirs {
        usage.add_dir(dir, quota);
    }
    if usage.entries > MAX_ENTRIES {
        Some(format!("more than {MAX_ENTRIES} files"))
    } else if usage.bytes > quota {
        Some(ByteSize(usage.bytes).to_string())
    } else {
        None
    }
}

#[derive(Default)]
struct Usage {
    bytes: u64,
    entries: u64,
}

impl Usage {
    /// Adds what is under `dir`, stopping as soon as it is over either cap.
    fn add_dir(&mut self, dir: &Path, quota: u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if self.bytes > quota || self.entries > MAX_ENTRIES {
                return;
            }
            self.entries += 1;
            // symlink_metadata: a link counts as itself, never its target.
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            self.bytes += std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
            if meta.is_dir() {
                self.add_dir(&entry.path(), quota);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_blocks_and_not_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        let big = tempfile::tempdir().unwrap();
        std::fs::write(big.path().join("big"), vec![1u8; 4 << 20]).unwrap();
        std::os::unix::fs::symlink(big.path(), dir.path().join("link")).unwrap();
        std::fs::write(dir.path().join("small"), vec![1u8; 64 << 10]).unwrap();
        assert_eq!(exceeded(&[dir.path()], 1 << 20), None);
        assert!(exceeded(&[dir.path(), big.path()], 1 << 20).is_some());
    }
}
