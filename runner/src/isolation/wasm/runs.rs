//! `runs`: whether the run that made a resource is still alive, from the
//! machine-wide register ([`crate::runs`]). Always granted: it only reads
//! pid records and reveals nothing but alive / dead / unknown.

use wasmtime::component::{HasSelf, Linker};

use super::bindings::v0_1_0::partest::plugin::runs::{self as wit, Host, Liveness};
use super::capability::Capability;
use super::state::HostState;
use crate::config::PluginTable;
use crate::runs;

pub struct Runs;

impl Capability for Runs {
    fn name(&self) -> &'static str {
        "runs"
    }
    fn missing_grant(&self, _table: &PluginTable) -> Option<String> {
        None
    }
    fn describe_grant(&self, _table: &PluginTable) -> String {
        "granted (always: is a run alive?)".into()
    }
    fn link(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }
}

impl Host for HostState {
    fn liveness_of(&mut self, run_id: String) -> Liveness {
        match runs::liveness(&run_id) {
            runs::Liveness::Alive => Liveness::Alive,
            runs::Liveness::Dead => Liveness::Dead,
            runs::Liveness::Unknown => Liveness::Unknown,
        }
    }
}
