//! Per-target upload scheduling: which missing paths go together in one AddMultipleToStore batch.
//!
//! Layer: `copy`, pure (no I/O, no tokio), so the ordering rules are unit-tested on their own.
//!
//! Rules, from the daemon's side:
//! - a path is sent only after all of its references are registered on the target, or come
//!   earlier in the same batch (Nix adds a batch's paths one after the other, in order);
//! - a path is in at most one batch at a time (two concurrent uploads of one path desynchronise
//!   AddMultipleToStore on Nix < 2.18);
//! - a batch that failed puts its paths back, to be sent again after reconnecting.
//!
//! Batches are cut by path count and NAR bytes so that several sessions can work at once when
//! the reference graph allows it; a long chain simply ends up in one batch.

/// What a worker should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Upload these paths (indices into the schedule's list), in this order.
    Batch(Vec<usize>),
    /// Nothing can start until a batch in flight completes.
    Wait,
    /// Every path is done.
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    InFlight,
    Done,
}

/// The missing paths of one target, in reference order, and their progress.
#[derive(Debug)]
pub struct Schedule {
    /// For each path, the indices of its references that are also missing (all smaller).
    refs: Vec<Vec<usize>>,
    sizes: Vec<u64>,
    state: Vec<State>,
    /// Every index below this one is Done or InFlight.
    first_pending: usize,
    done: usize,
    max_paths: usize,
    max_bytes: u64,
}

impl Schedule {
    /// `refs[i]` are the indices of path `i`'s missing references; each must be `< i` (reference
    /// order). Indices that are not smaller are ignored (a self-reference).
    pub fn new(refs: Vec<Vec<usize>>, sizes: Vec<u64>, max_paths: usize, max_bytes: u64) -> Self {
        let refs = refs
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.into_iter().filter(|&j| j < i).collect())
            .collect::<Vec<Vec<usize>>>();
        let n = refs.len();
        Schedule {
            refs,
            sizes,
            state: vec![State::Pending; n],
            first_pending: 0,
            done: 0,
            max_paths: max_paths.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Limits that spread `total_bytes` over `sessions` batches at least, within sane bounds.
    pub fn limits(paths: usize, total_bytes: u64, sessions: usize) -> (usize, u64) {
        let sessions = sessions.max(1);
        let max_paths = paths.div_ceil(sessions).clamp(16, 1000);
        let max_bytes = (total_bytes / sessions as u64).clamp(4 << 20, 512 << 20);
        (max_paths, max_bytes)
    }

    pub fn len(&self) -> usize {
        self.state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    pub fn done(&self) -> usize {
        self.done
    }

    /// Take the next batch: pending paths in order whose references are done or earlier in the
    /// same batch, up to the limits (at least one path).
    pub fn next_batch(&mut self) -> Next {
        while self.first_pending < self.state.len()
            && self.state[self.first_pending] != State::Pending
        {
            self.first_pending += 1;
        }
        if self.done == self.state.len() {
            return Next::Finished;
        }
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        for i in self.first_pending..self.state.len() {
            if self.state[i] != State::Pending {
                continue;
            }
            let ready = self.refs[i].iter().all(|&j| {
                self.state[j] == State::Done
                    || (self.state[j] == State::InFlight && batch.contains(&j))
            });
            if !ready {
                continue;
            }
            let size = self.sizes.get(i).copied().unwrap_or(0);
            if !batch.is_empty() && (batch.len() >= self.max_paths || bytes + size > self.max_bytes)
            {
                break;
            }
            self.state[i] = State::InFlight;
            batch.push(i);
            bytes += size;
        }
        if batch.is_empty() {
            Next::Wait
        } else {
            Next::Batch(batch)
        }
    }

    /// Record how a batch ended: registered on the target, or to be sent again.
    pub fn complete(&mut self, batch: &[usize], ok: bool) {
        for &i in batch {
            if let Some(s) = self.state.get_mut(i)
                && *s == State::InFlight
            {
                if ok {
                    *s = State::Done;
                    self.done += 1;
                } else {
                    *s = State::Pending;
                    self.first_pending = self.first_pending.min(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_goes_in_one_batch_in_order() {
        let refs = vec![vec![], vec![0], vec![1, 0], vec![2]];
        let mut s = Schedule::new(refs, vec![1; 4], 100, 100);
        assert_eq!(s.next_batch(), Next::Batch(vec![0, 1, 2, 3]));
        assert_eq!(s.next_batch(), Next::Wait);
        s.complete(&[0, 1, 2, 3], true);
        assert_eq!(s.next_batch(), Next::Finished);
    }

    #[test]
    fn independent_paths_spread_over_batches_and_dependents_wait() {
        // 0,1,2,3 are leaves; 4 needs 0 and 3.
        let refs = vec![vec![], vec![], vec![], vec![], vec![0, 3]];
        let mut s = Schedule::new(refs, vec![1; 5], 2, 100);
        assert_eq!(s.next_batch(), Next::Batch(vec![0, 1]));
        assert_eq!(s.next_batch(), Next::Batch(vec![2, 3]));
        // 4's references are in flight in other batches: it must not start.
        assert_eq!(s.next_batch(), Next::Wait);
        s.complete(&[0, 1], true);
        assert_eq!(s.next_batch(), Next::Wait);
        s.complete(&[2, 3], true);
        assert_eq!(s.next_batch(), Next::Batch(vec![4]));
        s.complete(&[4], true);
        assert_eq!(s.next_batch(), Next::Finished);
    }

    #[test]
    fn a_failed_batch_is_sent_again_and_never_twice_at_once() {
        let refs = vec![vec![], vec![0]];
        let mut s = Schedule::new(refs, vec![10, 10], 100, 15);
        // The byte limit cuts after the first path; the second waits for it.
        assert_eq!(s.next_batch(), Next::Batch(vec![0]));
        assert_eq!(s.next_batch(), Next::Wait);
        s.complete(&[0], false);
        assert_eq!(s.next_batch(), Next::Batch(vec![0]));
        s.complete(&[0], true);
        assert_eq!(s.next_batch(), Next::Batch(vec![1]));
        assert_eq!(s.next_batch(), Next::Wait);
        s.complete(&[1], true);
        assert_eq!(s.done(), 2);
        assert_eq!(s.next_batch(), Next::Finished);
    }

    #[test]
    fn an_empty_schedule_is_finished() {
        let mut s = Schedule::new(vec![], vec![], 1, 1);
        assert_eq!(s.next_batch(), Next::Finished);
    }
}
