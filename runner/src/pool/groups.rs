//! `[groups.*] max-workers`: how many of each group's tests are running (or
//! promised to a slot as its next test). Owned by the coordinator alone.

use crate::plan::Group;

pub struct GroupLimits {
    running: Vec<usize>,
    max: Vec<usize>,
}

impl GroupLimits {
    pub fn new(groups: &[Group]) -> GroupLimits {
        GroupLimits {
            running: vec![0; groups.len()],
            max: groups.iter().map(|g| g.max).collect(),
        }
    }

    /// Whether `group` has a free place.
    pub fn has_room(&self, group: Option<u16>) -> bool {
        group.is_none_or(|g| self.running[g as usize] < self.max[g as usize])
    }

    pub fn enter(&mut self, group: Option<u16>) {
        if let Some(g) = group {
            self.running[g as usize] += 1;
        }
    }

    pub fn leave(&mut self, group: Option<u16>) {
        if let Some(g) = group {
            self.running[g as usize] -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_group_has_no_room_until_someone_leaves() {
        let mut limits = GroupLimits::new(&[Group {
            name: "db".into(),
            max: 2,
        }]);
        limits.enter(Some(0));
        assert!(limits.has_room(Some(0)));
        limits.enter(Some(0));
        assert!(!limits.has_room(Some(0)));
        assert!(limits.has_room(None));
        limits.leave(Some(0));
        assert!(limits.has_room(Some(0)));
    }
}
