//! The capabilities a plugin may import, one module each, in the spirit of
//! Spin's factors: a module holds its capability's grant check, its
//! linking, its per-instance state and its whole policy. Adding one is its
//! WIT, its module and a line in [`CAPABILITIES`]; loading, `plugins
//! inspect` and the grant hints loop over this list.

use wasmtime::component::Linker;

use super::state::HostState;
use super::{log, postgres, process, redis, runs, sqlite};
use crate::config::PluginTable;

pub trait Capability: Sync {
    /// The interface's name: `redis` in `partest:plugin/redis@0.1.0`.
    fn name(&self) -> &'static str;

    /// `None` when `table` grants it (or it is always granted), else the
    /// config line that would.
    fn missing_grant(&self, table: &PluginTable) -> Option<String>;

    /// What `plugins inspect` says it may reach with `table`'s grant.
    fn describe_grant(&self, table: &PluginTable) -> String;

    /// Adds its host functions to `linker`.
    fn link(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()>;
}

/// Every capability partest provides.
pub const CAPABILITIES: &[&dyn Capability] = &[
    &log::Log,
    &runs::Runs,
    &sqlite::Sqlite,
    &process::Process,
    &redis::Redis,
    &postgres::Postgres,
];

/// The capability named `name`.
pub fn find(name: &str) -> Option<&'static dyn Capability> {
    CAPABILITIES.iter().copied().find(|c| c.name() == name)
}
