//! `runs`: whether the run that made a resource is still alive, from the
//! machine-wide register ([`crate::runs`]). Always granted: it only reads
//! pid records and reveals nothing but alive / dead / unknown.

use super::bindings::v0_1_0::partest::plugin::runs::{Host, Liveness};
use super::state::HostState;
use crate::runs;

impl Host for HostState {
    fn liveness_of(&mut self, run_id: String) -> Liveness {
        match runs::liveness(&run_id) {
            runs::Liveness::Alive => Liveness::Alive,
            runs::Liveness::Dead => Liveness::Dead,
            runs::Liveness::Unknown => Liveness::Unknown,
        }
    }
}
