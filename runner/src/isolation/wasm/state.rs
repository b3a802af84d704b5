//! What one Store holds: the WASI context (no env, no stdio, no sockets, one
//! preopened scratch dir), the memory limiter, the call deadline, and each
//! capability's per-instance state (its connections, its log budget).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::capability::{Granted, InstanceState, Instances};
use super::types::Error;
use super::{LogSink, quota};

/// The guest path of the scratch directory.
pub const SCRATCH_GUEST: &str = "/scratch";

/// What a plugin was granted and where it lives; shared by all its stores.
pub struct Grants {
    pub plugin: String,
    /// `<state>/plugins/<name>`: the plugin's scratch dirs and databases.
    /// The plugin never sees it, only one scratch dir inside.
    pub home: PathBuf,
    pub root: PathBuf,
    /// A built-in plugin: partest's own code, granted its own `url`.
    pub builtin: bool,
    /// What each capability was granted.
    pub caps: Granted,
    /// Most bytes the host hands back in one capability reply.
    pub boundary: usize,
    /// Most bytes its scratch dir and databases may hold.
    pub scratch_quota: u64,
    /// Keep the run's scratch dir when the run failed (`keep-on-failure`).
    pub keep_on_failure: bool,
    pub log: LogSink,
    /// The run id, from setup-run on: names carrying it are this run's.
    pub run_id: OnceLock<String>,
    /// The project's id, the first 8 hex digits of its set-ups' keys.
    pub project: String,
    /// The key of the run's set-up, when it is kept or reused.
    pub setup_key: OnceLock<String>,
}

impl Grants {
    /// Where the sqlite capability keeps the plugin's databases.
    pub fn databases(&self) -> PathBuf {
        self.home.join("databases")
    }
}

/// A plugin's memory limit: growing past it stops the call with a
/// [`MemoryLimitExceeded`] the host recognises by type. Tables, instances and
/// memories are bounded by wasmtime's own limiter.
pub struct MemoryLimit {
    bytes: usize,
    others: StoreLimits,
}

/// A call tried to grow a plugin's linear memory past its limit (or the
/// host could not give it the memory).
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    pub desired: usize,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "memory growth to {} bytes refused", self.desired)
    }
}

impl std::error::Error for MemoryLimitExceeded {}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            return Err(wasmtime::Error::new(MemoryLimitExceeded { desired }));
        }
        self.others.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(MemoryLimitExceeded { desired: 0 }))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.others.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.others.instances()
    }

    fn tables(&self) -> usize {
        self.others.tables()
    }

    fn memories(&self) -> usize {
        self.others.memories()
    }
}

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: MemoryLimit,
    pub grants: Arc<Grants>,
    /// The host directory preopened as [`SCRATCH_GUEST`].
    pub scratch: PathBuf,
    /// When the current call must be over; host calls (a process, a query)
    /// get no more time than that.
    pub deadline: Instant,
    /// Whether Ctrl-C stops the current call's processes: during set-up
    /// (nothing to keep), not during teardown or a sweep (which release
    /// what a run holds, and must finish).
    pub interruptible: bool,
    /// What the plugin's files may hold during the current call: its quota;
    /// in a call that releases (teardown, a sweep) what they held when it
    /// began, if more, so that files already over the quota can still be
    /// removed, though not grown.
    pub quota_now: u64,
    /// Each capability's state in this instance.
    caps: Instances,
}

impl HostState {
    pub fn new(grants: Arc<Grants>, memory: usize, scratch: &Path) -> wasmtime::Result<HostState> {
        let mut wasi = WasiCtxBuilder::new();
        // Nothing ambient: the builder starts with no env, no args, closed
        // stdin and discarded stdout/stderr; sockets are denied outright.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        wasi.preopened_dir(scratch, SCRATCH_GUEST, FsPerms::ReadWrite)?;
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: MemoryLimit {
                bytes: memory,
                others: StoreLimitsBuilder::new()
                    .instances(16)
                    .tables(16)
                    .memories(4)
                    .table_elements(1 << 20)
                    .build(),
            },
            quota_now: grants.scratch_quota,
            grants,
            scratch: scratch.to_path_buf(),
            deadline: Instant::now(),
            interruptible: false,
            caps: Instances::new(),
        })
    }

    /// A new call begins: it must end within `limit`; Ctrl-C stops its
    /// processes when `interruptible`.
    pub fn begin_call(&mut self, limit: Duration, interruptible: bool) {
        self.deadline = Instant::now() + limit;
        self.interruptible = interruptible;
        self.quota_now = self.grants.scratch_quota;
        if !interruptible {
            let dirs = [self.scratch.as_path(), &self.grants.databases()];
            let held = quota::used(&dirs, u64::MAX);
            self.quota_now = self.quota_now.max(held);
        }
        self.caps.begin_call();
    }

    /// The state a capability keeps in this instance.
    pub fn instance<T: InstanceState>(&mut self) -> &mut T {
        self.caps.get::<T>()
    }

    /// Time left in the current call, at least a millisecond.
    pub fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }

    /// Why the plugin's files are over its quota, if they are.
    pub fn over_quota(&self) -> Option<String> {
        quota::exceeded(&[&self.scratch, &self.grants.databases()], self.quota_now).map(|used| {
            format!(
                "its scratch dir and databases hold {used}, over its quota of {} \
                 ([plugins.{}] limits = {{ scratch = \"...\" }})",
                crate::config::ByteSize(self.grants.scratch_quota),
                self.grants.plugin
            )
        })
    }

    pub fn check_size(&self, what: &str, len: usize) -> Result<(), Error> {
        if len > self.grants.boundary {
            Err(Error::Refused(format!(
                "{what} is {len} bytes, over the plugin's boundary limit of {} bytes (limits.boundary)",
                self.grants.boundary
            )))
        } else {
            Ok(())
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
