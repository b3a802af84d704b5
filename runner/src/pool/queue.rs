//! What the parallel phase has left to run, and which slot takes what next.
//!
//! The plan's queues come longest first. A slot keeps taking from the queue
//! it claimed (for a long-lived worker, one file: the module's fixtures set
//! up once on that worker); when that is empty it claims the next unclaimed
//! queue — first one of its own (a file its worker has already imported),
//! then anyone's; when none is left it steals from the back of the queue
//! with the most expected time left, so the tail stays short. Retries come
//! before everything. Tests of a higher rank (see `TestCase::rank`: Django's
//! transactional tests after its database ones) are handed out only once no test of a
//! lower rank is left to hand out, so no worker runs one before the other.

use std::collections::VecDeque;
use std::time::Duration;

use super::groups::GroupLimits;
use crate::plan::Plan;

/// A test to run, and which attempt this is (1 for the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub test: u32,
    pub attempt: u32,
}

pub struct Queue<'a> {
    plan: &'a Plan,
    queues: Vec<VecDeque<u32>>,
    /// Expected time left in each queue.
    left: Vec<Duration>,
    claimed: Vec<bool>,
    /// Queues before this index are claimed or empty.
    cursor: usize,
    /// The queue each slot works through.
    slot_queue: Vec<Option<usize>>,
    /// The slot each queue belongs to first (the worker that imported its
    /// file), if any.
    home: Vec<Option<usize>>,
    retries: VecDeque<Attempt>,
    /// Tests not yet handed out (retries included).
    pending: usize,
    /// Of those, how many of each rank ([`crate::model::TestCase::rank`]).
    pending_by_rank: Vec<usize>,
}

impl<'a> Queue<'a> {
    pub fn new(plan: &'a Plan, slots: usize, home: Option<Vec<Option<usize>>>) -> Queue<'a> {
        let queues: Vec<VecDeque<u32>> = plan
            .parallel
            .iter()
            .map(|q| q.iter().copied().collect())
            .collect();
        let left = queues
            .iter()
            .map(|q| q.iter().map(|&t| plan.estimate[t as usize]).sum())
            .collect();
        let mut queue = Queue {
            plan,
            home: home.unwrap_or_else(|| vec![None; queues.len()]),
            claimed: vec![false; queues.len()],
            pending: plan.parallel_count(),
            pending_by_rank: Vec::new(),
            queues,
            left,
            cursor: 0,
            slot_queue: vec![None; slots],
            retries: VecDeque::new(),
        };
        for &t in plan.parallel.iter().flatten() {
            queue.count_rank(plan.tests[t as usize].rank, 1);
        }
        queue
    }

    /// Adds a queue of tests (`--shard queue`: a unit this machine claimed).
    pub fn add(&mut self, tests: Vec<u32>) {
        self.pending += tests.len();
        for &t in &tests {
            self.count_rank(self.plan.tests[t as usize].rank, 1);
        }
        self.left
            .push(tests.iter().map(|&t| self.plan.estimate[t as usize]).sum());
        self.queues.push(tests.into_iter().collect());
        self.home.push(None);
        self.claimed.push(false);
    }

    /// Whether `slot` would have to steal (or find nothing): no retry, its
    /// own queue empty, no queue unclaimed. Then a unit from the shared queue
    /// is worth more than a test stolen from another slot's module.
    pub fn would_steal(&self, slot: usize) -> bool {
        self.retries.is_empty()
            && self.slot_queue[slot].is_none_or(|q| self.queues[q].is_empty())
            && !(self.cursor..self.queues.len())
                .any(|q| !self.claimed[q] && !self.queues[q].is_empty())
    }

    /// A queue with nothing in it yet (`--shard queue`: units are added as
    /// they are claimed).
    pub fn empty(plan: &'a Plan, slots: usize) -> Queue<'a> {
        Queue {
            plan,
            queues: Vec::new(),
            left: Vec::new(),
            home: Vec::new(),
            claimed: Vec::new(),
            cursor: 0,
            slot_queue: vec![None; slots],
            retries: VecDeque::new(),
            pending: 0,
            pending_by_rank: Vec::new(),
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Tests not yet handed out (retries included).
    pub fn pending(&self) -> usize {
        self.pending
    }

    pub fn retry(&mut self, attempt: Attempt) {
        self.pending += 1;
        self.count_rank(self.plan.tests[attempt.test as usize].rank, 1);
        self.retries.push_back(attempt);
    }

    fn count_rank(&mut self, rank: u8, by: isize) {
        let rank = usize::from(rank);
        if self.pending_by_rank.len() <= rank {
            self.pending_by_rank.resize(rank + 1, 0);
        }
        self.pending_by_rank[rank] = self.pending_by_rank[rank].saturating_add_signed(by);
    }

    /// The lowest rank of a test not yet handed out: only those go now.
    fn rank_now(&self) -> u8 {
        self.pending_by_rank
            .iter()
            .position(|&n| n > 0)
            .map_or(0, |r| r as u8)
    }

    /// The next test for `slot` whose group has room, if any.
    pub fn take(&mut self, slot: usize, groups: &GroupLimits) -> Option<Attempt> {
        if self.pending == 0 {
            return None;
        }
        let rank = self.rank_now();
        let plan = self.plan;
        let now = |t: &u32| plan.tests[*t as usize].rank == rank;
        let room = |t: &u32| groups.has_room(plan.group_of[*t as usize]) && now(t);
        if let Some(i) = self.retries.iter().position(|a| room(&a.test)) {
            self.pending -= 1;
            self.count_rank(rank, -1);
            return self.retries.remove(i);
        }
        let first = |t: u32| Attempt {
            test: t,
            attempt: 1,
        };
        if let Some(q) = self.slot_queue[slot]
            && let Some(t) = self.take_from(q, false, groups)
        {
            return Some(first(t));
        }
        while self.cursor < self.queues.len()
            && (self.claimed[self.cursor] || self.queues[self.cursor].is_empty())
        {
            self.cursor += 1;
        }
        for own in [true, false] {
            for q in self.cursor..self.queues.len() {
                if self.claimed[q]
                    || self.queues[q].is_empty()
                    || (own
                        && self
                            .home
                            .get(q)
                            .copied()
                            .flatten()
                            .is_some_and(|h| h != slot))
                {
                    continue;
                }
                if let Some(t) = self.take_from(q, false, groups) {
                    self.claimed[q] = true;
                    self.slot_queue[slot] = Some(q);
                    return Some(first(t));
                }
            }
        }
        // Everything is claimed: steal from the longest remaining queue.
        let mut by_left: Vec<usize> = (0..self.queues.len())
            .filter(|&q| !self.queues[q].is_empty())
            .collect();
        by_left.sort_by_key(|&q| std::cmp::Reverse(self.left[q]));
        by_left
            .into_iter()
            .find_map(|q| self.take_from(q, true, groups))
            .map(first)
    }

    /// The first test of queue `q` (from its back when stealing) whose group
    /// has room, if the queue's tests are of the rank handed out now.
    fn take_from(&mut self, q: usize, from_back: bool, groups: &GroupLimits) -> Option<u32> {
        let queue = &self.queues[q];
        let rank = self.rank_now();
        let plan = self.plan;
        let room = |t: &u32| {
            plan.tests[*t as usize].rank == rank && groups.has_room(plan.group_of[*t as usize])
        };
        let at = if from_back {
            queue.iter().rposition(room)
        } else {
            queue.iter().position(room)
        }?;
        let t = self.queues[q].remove(at)?;
        self.left[q] = self.left[q].saturating_sub(self.plan.estimate[t as usize]);
        self.pending -= 1;
        self.count_rank(rank, -1);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TestCase;
    use crate::plan::Group;

    fn plan(queues: Vec<Vec<u32>>, group_of: Vec<Option<u16>>, groups: Vec<Group>) -> Plan {
        let n = group_of.len();
        Plan {
            tests: (0..n).map(|i| TestCase::new(format!("t{i}"))).collect(),
            parallel: queues,
            serial: Vec::new(),
            skipped: Vec::new(),
            groups,
            group_of,
            estimate: vec![Duration::from_millis(10); n],
            known: vec![true; n],
            shard: None,
            queue_units: None,
        }
    }

    #[test]
    fn a_slot_keeps_its_queue_then_claims_then_steals() {
        let plan = plan(vec![vec![0, 1, 2], vec![3, 4]], vec![None; 5], vec![]);
        let groups = GroupLimits::new(&plan.groups);
        let mut queue = Queue::new(&plan, 2, None);
        let take = |q: &mut Queue, slot| q.take(slot, &groups).map(|a| a.test);
        assert_eq!(take(&mut queue, 0), Some(0));
        assert_eq!(take(&mut queue, 1), Some(3));
        assert_eq!(take(&mut queue, 1), Some(4));
        // Slot 1's queue is done and none is unclaimed: it steals from the back.
        assert_eq!(take(&mut queue, 1), Some(2));
        assert_eq!(take(&mut queue, 0), Some(1));
        assert_eq!(take(&mut queue, 0), None);
        assert!(queue.is_empty());
    }

    #[test]
    fn claimed_units_are_added_and_taken_before_stealing() {
        let plan = plan(vec![vec![0, 1, 2], vec![3]], vec![None; 4], vec![]);
        let groups = GroupLimits::new(&plan.groups);
        let mut queue = Queue::empty(&plan, 2);
        assert!(queue.would_steal(0));
        assert_eq!(queue.take(0, &groups), None);
        queue.add(vec![0, 1, 2]);
        assert!(!queue.would_steal(0));
        assert_eq!(queue.take(0, &groups).map(|a| a.test), Some(0));
        // Slot 1 has no queue and none is unclaimed: a new unit is wanted.
        assert!(queue.would_steal(1));
        queue.add(vec![3]);
        assert_eq!(queue.take(1, &groups).map(|a| a.test), Some(3));
        assert!(queue.would_steal(1));
        assert_eq!(queue.take(1, &groups).map(|a| a.test), Some(2));
    }

    #[test]
    fn a_slot_claims_its_own_queues_before_others() {
        let plan = plan(
            vec![vec![0], vec![1], vec![2], vec![3]],
            vec![None; 4],
            vec![],
        );
        let groups = GroupLimits::new(&plan.groups);
        let home = vec![Some(0), Some(0), Some(1), None];
        let mut queue = Queue::new(&plan, 2, Some(home));
        let take = |q: &mut Queue, slot| q.take(slot, &groups).map(|a| a.test);
        // Slot 1 skips slot 0's queues for its own, then takes the homeless one.
        assert_eq!(take(&mut queue, 1), Some(2));
        assert_eq!(take(&mut queue, 1), Some(3));
        assert_eq!(take(&mut queue, 0), Some(0));
        // Out of its own, slot 1 takes slot 0's unclaimed queue.
        assert_eq!(take(&mut queue, 1), Some(1));
        assert_eq!(take(&mut queue, 0), None);
        assert!(queue.is_empty());
    }

    #[test]
    fn no_test_of_a_higher_rank_is_handed_out_while_a_lower_one_waits() {
        // Queue 0 (rank 1) is the longest and comes first; queue 1 is rank 0.
        let mut plan = plan(vec![vec![0, 1], vec![2, 3]], vec![None; 4], vec![]);
        plan.tests[0].rank = 1;
        plan.tests[1].rank = 1;
        let groups = GroupLimits::new(&plan.groups);
        let mut queue = Queue::new(&plan, 2, None);
        let take = |q: &mut Queue, slot| q.take(slot, &groups).map(|a| a.test);
        assert_eq!(take(&mut queue, 0), Some(2));
        // Slot 1 steals the last rank-0 test rather than start rank 1.
        assert_eq!(take(&mut queue, 1), Some(3));
        assert_eq!(take(&mut queue, 0), Some(0));
        // A retry of a rank-0 test goes before any more rank-1 tests.
        queue.retry(Attempt {
            test: 2,
            attempt: 2,
        });
        assert_eq!(take(&mut queue, 1), Some(2));
        assert_eq!(take(&mut queue, 1), Some(1));
        assert!(queue.is_empty());
    }

    #[test]
    fn retries_first_and_full_groups_skipped() {
        let groups_def = vec![Group {
            name: "db".into(),
            max: 1,
        }];
        let plan = plan(vec![vec![0], vec![1]], vec![Some(0), None], groups_def);
        let mut groups = GroupLimits::new(&plan.groups);
        groups.enter(Some(0));
        let mut queue = Queue::new(&plan, 1, None);
        assert_eq!(queue.take(0, &groups).map(|a| a.test), Some(1));
        assert_eq!(queue.take(0, &groups), None);
        assert!(!queue.is_empty());
        groups.leave(Some(0));
        queue.retry(Attempt {
            test: 1,
            attempt: 2,
        });
        assert_eq!(
            queue.take(0, &groups),
            Some(Attempt {
                test: 1,
                attempt: 2
            })
        );
        assert_eq!(queue.take(0, &groups).map(|a| a.test), Some(0));
        assert!(queue.is_empty());
    }
}
