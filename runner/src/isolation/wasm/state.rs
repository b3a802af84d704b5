//! What one Store holds: the WASI context (no env, no stdio, no sockets, one
//! preopened scratch dir), the memory limiter, the call deadline, and the
//! connections the granted capabilities opened for this instance.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::LogSink;
use super::bindings::v0_1_0::partest::plugin::types::Error as WitError;

/// The guest path of the scratch directory.
pub const SCRATCH_GUEST: &str = "/scratch";

/// What a plugin was granted and where it lives; shared by all its stores.
pub struct Grants {
    pub plugin: String,
    pub scratch: PathBuf,
    pub root: PathBuf,
    pub process: Vec<String>,
    pub redis: Option<String>,
    pub postgres: Option<String>,
    /// SQLite files outside the scratch dir it may copy from, as granted.
    pub sqlite: Vec<String>,
    /// Most bytes the host hands back in one capability reply.
    pub boundary: usize,
    pub log: LogSink,
}

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: StoreLimits,
    pub grants: Arc<Grants>,
    /// When the current call must be over; host calls (a process, a query)
    /// get no more time than that.
    pub deadline: Instant,
    pub redis: Option<redis::Connection>,
    pub postgres: HashMap<Option<String>, postgres::Client>,
}

impl HostState {
    pub fn new(grants: Arc<Grants>, memory: usize) -> wasmtime::Result<HostState> {
        let mut wasi = WasiCtxBuilder::new();
        // Nothing ambient: the builder starts with no env, no args, closed
        // stdin and discarded stdout/stderr; sockets are denied outright.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        wasi.preopened_dir(&grants.scratch, SCRATCH_GUEST, FsPerms::ReadWrite)?;
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory)
                .instances(16)
                .tables(16)
                .memories(4)
                .table_elements(1 << 20)
                .trap_on_grow_failure(true)
                .build(),
            grants,
            deadline: Instant::now(),
            redis: None,
            postgres: HashMap::new(),
        })
    }

    /// Time left in the current call, at least a millisecond.
    pub fn remaining(&self) -> std::time::Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(std::time::Duration::from_millis(1))
    }

    pub fn check_size(&self, what: &str, len: usize) -> Result<(), WitError> {
        if len > self.grants.boundary {
            Err(WitError::Refused(format!(
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
