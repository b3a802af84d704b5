//! `[groups.*] max-workers` as counting semaphores that never block: a
//! worker that cannot enter a group puts the unit back and takes another.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::plan::Group;

pub struct GroupLimits {
    running: Vec<AtomicUsize>,
    max: Vec<usize>,
}

impl GroupLimits {
    pub fn new(groups: &[Group]) -> GroupLimits {
        GroupLimits {
            running: groups.iter().map(|_| AtomicUsize::new(0)).collect(),
            max: groups.iter().map(|g| g.max).collect(),
        }
    }

    /// Takes a place in `group` if one is free.
    pub fn try_enter(&self, group: Option<u16>) -> bool {
        let Some(g) = group else { return true };
        let g = g as usize;
        self.running[g]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max[g]).then_some(n + 1)
            })
            .is_ok()
    }

    pub fn leave(&self, group: Option<u16>) {
        if let Some(g) = group {
            self.running[g as usize].fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_group_refuses_until_someone_leaves() {
        let limits = GroupLimits::new(&[Group {
            name: "db".into(),
            max: 2,
        }]);
        assert!(limits.try_enter(Some(0)));
        assert!(limits.try_enter(Some(0)));
        assert!(!limits.try_enter(Some(0)));
        assert!(limits.try_enter(None));
        limits.leave(Some(0));
        assert!(limits.try_enter(Some(0)));
    }
}
