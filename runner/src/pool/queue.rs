//! What the parallel phase has left to run, and which slot takes what next.
//!
//! The plan's queues come longest first. A slot keeps taking from the queue
//! it claimed (for a long-lived worker, one file: the module's fixtures set
//! up once on that worker), in its order; when that is empty it takes a
//! retry, else claims the next unclaimed queue — first one of its own (a
//! file its worker has already imported), then anyone's; when none is left
//! it steals the back of the queue with the most expected time left, cut
//! between classes, as a queue of its own, so the tail stays short and a
//! module's tests still run in their order on each worker. Tests of a
//! higher rank (see `TestCase::rank`: Django's transactional tests after its
//! database ones) are handed out only once no test of a
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
    slots: usize,
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
    /// The unit (a plan queue, or one added) each queue was cut from.
    origin: Vec<usize>,
    /// The test each queue handed out last: a cut just before a queue's
    /// head must not fall inside that test's class.
    last: Vec<Option<u32>>,
    /// Each test's place in its unit: its collection order.
    place: Vec<u32>,
    /// `[origin * slots + slot]`: the furthest place in that unit the slot
    /// has taken. A slot never goes back in a unit, so each worker runs a
    /// module's tests in their order.
    reached: Vec<Option<u32>>,
    retries: VecDeque<Attempt>,
    /// Tests not yet handed out (retries included).
    pending: usize,
    /// Of those, how many of each rank ([`crate::model::TestCase::rank`]).
    pending_by_rank: Vec<usize>,
}

impl<'a> Queue<'a> {
    pub fn new(plan: &'a Plan, slots: usize, home: Option<Vec<Option<usize>>>) -> Queue<'a> {
        let mut queue = Queue::empty(plan, slots);
        for tests in &plan.parallel {
            queue.add(tests.clone());
        }
        if let Some(home) = home {
            queue.home = home;
        }
        queue
    }

    /// Adds a queue of tests, in collection order (`--shard queue`: a unit
    /// this machine claimed).
    pub fn add(&mut self, tests: Vec<u32>) {
        self.pending += tests.len();
        for (place, &t) in tests.iter().enumerate() {
            self.count_rank(self.plan.tests[t as usize].rank, 1);
            self.place[t as usize] = place as u32;
        }
        self.left
            .push(tests.iter().map(|&t| self.plan.estimate[t as usize]).sum());
        self.origin.push(self.reached.len() / self.slots);
        self.reached.extend(std::iter::repeat_n(None, self.slots));
        self.queues.push(tests.into_iter().collect());
        self.home.push(None);
        self.claimed.push(false);
        self.last.push(None);
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
            slots: slots.max(1),
            queues: Vec::new(),
            left: Vec::new(),
            home: Vec::new(),
            claimed: Vec::new(),
            origin: Vec::new(),
            last: Vec::new(),
            place: vec![0; plan.tests.len()],
            reached: Vec::new(),
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

    /// The next test for `slot` whose group has room, if any. A slot works
    /// through its unit first: a retry or another unit starts only between
    /// units, so that a module's (and a class's) tests run together, in
    /// their collection order.
    pub fn take(&mut self, slot: usize, groups: &GroupLimits) -> Option<Attempt> {
        if self.pending == 0 {
            return None;
        }
        let first = |t: u32| Attempt {
            test: t,
            attempt: 1,
        };
        if let Some(q) = self.slot_queue[slot]
            && let Some(t) = self.take_from(slot, q, groups)
        {
            return Some(first(t));
        }
        let rank = self.rank_now();
        let plan = self.plan;
        let room = |t: &u32| {
            groups.has_room(plan.group_of[*t as usize]) && plan.tests[*t as usize].rank == rank
        };
        if let Some(i) = self.retries.iter().position(|a| room(&a.test)) {
            self.pending -= 1;
            self.count_rank(rank, -1);
            return self.retries.remove(i);
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
                if let Some(t) = self.take_from(slot, q, groups) {
                    self.claimed[q] = true;
                    self.slot_queue[slot] = Some(q);
                    return Some(first(t));
                }
            }
        }
        self.steal(slot, groups).map(first)
    }

    /// The head of queue `q`, if its group has room and it is of the rank
    /// handed out now. Only the head: a unit's tests go in their order.
    fn take_from(&mut self, slot: usize, q: usize, groups: &GroupLimits) -> Option<u32> {
        let &t = self.queues[q].front()?;
        let rank = self.rank_now();
        let test = t as usize;
        if self.plan.tests[test].rank != rank || !groups.has_room(self.plan.group_of[test]) {
            return None;
        }
        self.queues[q].pop_front();
        self.last[q] = Some(t);
        self.reached[self.origin[q] * self.slots + slot] = Some(self.place[test]);
        self.left[q] = self.left[q].saturating_sub(self.plan.estimate[test]);
        self.pending -= 1;
        self.count_rank(rank, -1);
        Some(t)
    }

    /// Everything is claimed: `slot` takes the back of the queue with the
    /// most expected time left, as a queue of its own. The cut falls between
    /// classes where it can (near half the time left), so both halves run
    /// in collection order; a queue nobody works through is taken whole.
    fn steal(&mut self, slot: usize, groups: &GroupLimits) -> Option<u32> {
        let rank = self.rank_now();
        let plan = self.plan;
        let mut by_left: Vec<usize> = (0..self.queues.len())
            .filter(|&q| {
                self.queues[q]
                    .front()
                    .is_some_and(|&t| plan.tests[t as usize].rank == rank)
            })
            .collect();
        by_left.sort_by_key(|&q| std::cmp::Reverse(self.left[q]));
        for q in by_left {
            let worked = self.slot_queue.contains(&Some(q));
            let Some(cut) = self.cut(slot, q, worked) else {
                continue;
            };
            let head = self.queues[q][cut] as usize;
            if !groups.has_room(plan.group_of[head]) {
                continue;
            }
            let before = match cut {
                0 => self.last[q],
                k => Some(self.queues[q][k - 1]),
            };
            let tail = self.queues[q].split_off(cut);
            let tail_left: Duration = tail.iter().map(|&t| plan.estimate[t as usize]).sum();
            self.left[q] = self.left[q].saturating_sub(tail_left);
            self.queues.push(tail);
            self.left.push(tail_left);
            self.home.push(None);
            self.claimed.push(true);
            self.origin.push(self.origin[q]);
            self.last.push(before);
            let stolen = self.queues.len() - 1;
            self.slot_queue[slot] = Some(stolen);
            return self.take_from(slot, stolen, groups);
        }
        None
    }

    /// Where `slot` may cut queue `q`: never inside a class, never before
    /// a place in the unit it has already passed. A queue nobody works
    /// through is taken whole where it may be; one that a slot works
    /// through is cut so that the back holds about half its expected time.
    fn cut(&self, slot: usize, q: usize, worked: bool) -> Option<usize> {
        let queue = &self.queues[q];
        let tests = &self.plan.tests;
        let reached = self.reached[self.origin[q] * self.slots + slot];
        let allowed = |k: usize| {
            let before = if k == 0 {
                self.last[q]
            } else {
                Some(queue[k - 1])
            };
            let head = queue[k];
            reached.is_none_or(|r| self.place[head as usize] > r)
                && before.is_none_or(|b| tests[b as usize].unit_ends_before(&tests[head as usize]))
        };
        if !worked {
            return (0..queue.len()).find(|&k| allowed(k));
        }
        let half = self.left[q] / 2;
        let mut best: Option<(Duration, usize)> = None;
        let mut back = Duration::ZERO;
        for k in (0..queue.len()).rev() {
            back += self.plan.estimate[queue[k] as usize];
            let off = back.abs_diff(half);
            if allowed(k) && best.is_none_or(|(d, _)| off < d) {
                best = Some((off, k));
            }
        }
        best.map(|(_, k)| k)
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
            from_last_run: None,
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
    fn a_thief_takes_whole_classes_from_the_back_in_their_order() {
        let mut plan = plan(vec![(0..7).collect()], vec![None; 7], vec![]);
        let names = [
            "a.py::TestA::t1",
            "a.py::TestA::t2",
            "a.py::TestA::t3",
            "a.py::TestB::t1[x]",
            "a.py::TestB::t1[y]",
            "a.py::TestB::t2",
            "a.py::test_last",
        ];
        for (t, name) in plan.tests.iter_mut().zip(names) {
            *t = TestCase::new(name);
        }
        let groups = GroupLimits::new(&plan.groups);
        let mut queue = Queue::new(&plan, 2, None);
        let take = |q: &mut Queue, slot| q.take(slot, &groups).map(|a| a.test);
        assert_eq!(take(&mut queue, 0), Some(0));
        // Half the time left lies inside TestB: the cut goes before it,
        // not inside it, and the thief runs TestB and what follows in order.
        assert_eq!(take(&mut queue, 1), Some(3));
        assert_eq!(take(&mut queue, 1), Some(4));
        assert_eq!(take(&mut queue, 0), Some(1));
        assert_eq!(take(&mut queue, 1), Some(5));
        assert_eq!(take(&mut queue, 1), Some(6));
        // TestA's last test stays with the slot running TestA.
        assert_eq!(take(&mut queue, 1), None);
        assert_eq!(take(&mut queue, 0), Some(2));
        assert!(queue.is_empty());
    }

    #[test]
    fn a_class_is_never_cut() {
        let mut plan = plan(vec![(0..4).collect()], vec![None; 4], vec![]);
        for (i, t) in plan.tests.iter_mut().enumerate() {
            *t = TestCase::new(format!("a.py::TestA::t{i}"));
        }
        let groups = GroupLimits::new(&plan.groups);
        let mut queue = Queue::new(&plan, 2, None);
        let take = |q: &mut Queue, slot| q.take(slot, &groups).map(|a| a.test);
        assert_eq!(take(&mut queue, 0), Some(0));
        assert_eq!(take(&mut queue, 1), None);
        for t in 1..4 {
            assert_eq!(take(&mut queue, 0), Some(t));
        }
        assert!(queue.is_empty());
    }

    #[test]
    fn a_slot_never_goes_back_in_a_module() {
        let mut plan = plan(vec![(0..6).collect()], vec![None; 6], vec![]);
        for (i, t) in plan.tests.iter_mut().enumerate() {
            *t = TestCase::new(format!("a.py::test_{i}"));
        }
        let groups = GroupLimits::new(&plan.groups);
        let mut queue = Queue::new(&plan, 2, None);
        let take = |q: &mut Queue, slot| q.take(slot, &groups).map(|a| a.test);
        assert_eq!(take(&mut queue, 0), Some(0));
        // The back of what is left, about half of it, in order.
        assert_eq!(take(&mut queue, 1), Some(4));
        assert_eq!(take(&mut queue, 1), Some(5));
        // Tests 1 to 3 come before what slot 1 ran: it may not take them.
        assert_eq!(take(&mut queue, 1), None);
        for t in 1..4 {
            assert_eq!(take(&mut queue, 0), Some(t));
        }
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
    fn retries_between_units_and_full_groups_skipped() {
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
