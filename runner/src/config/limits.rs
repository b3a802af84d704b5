//! `[limits]`: the caps that `workers = "auto"` respects, each one shown by
//! `partest report`.

use serde::Deserialize;

use super::values::ByteSize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsTable {
    #[serde(default = "default_memory_per_worker")]
    pub memory_per_worker: ByteSize,
    /// Hosted CI runners are small and shared; two is what they sustain.
    #[serde(default = "default_ci_max")]
    pub ci_max_workers: usize,
    #[serde(default = "default_container_max")]
    pub container_max_workers: usize,
}

impl Default for LimitsTable {
    fn default() -> Self {
        LimitsTable {
            memory_per_worker: default_memory_per_worker(),
            ci_max_workers: default_ci_max(),
            container_max_workers: default_container_max(),
        }
    }
}

fn default_memory_per_worker() -> ByteSize {
    ByteSize(512 << 20)
}

fn default_ci_max() -> usize {
    2
}

fn default_container_max() -> usize {
    4
}
