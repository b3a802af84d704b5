//! `runs`: whether the run that made a resource is still alive, from the
//! machine-wide register ([`crate::runs`]). Always granted: it only reads
//! pid records and reveals nothing but alive / dead / unknown.

use super::capability::{Capability, Grant};

pub struct Runs;

impl Capability for Runs {
    fn name(&self) -> &'static str {
        "runs"
    }
    fn describe_grant(&self, _grant: &Grant) -> String {
        "granted (always: is a run alive?)".into()
    }
}

/// Whether run `run_id` is alive, from the machine-wide register.
pub fn liveness_of(run_id: &str) -> crate::runs::Liveness {
    crate::runs::liveness(run_id)
}
