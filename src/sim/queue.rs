//! Event queue ordered by `(time, seq)`: the sequence number breaks ties, so the order is
//! total and the same on every run.
//!
//! A radix heap: the simulator never schedules before the event it is handling, so keys only
//! grow, and each pending event sits in the bucket of the highest bit in which its key differs
//! from the last one popped. A pop takes the one key equal to the last, or else empties the
//! lowest non-empty bucket into lower ones around its minimum. Buckets are plain vectors
//! scanned in order, which the cache likes far better than a binary heap's jumps (the heap's
//! pops were a third of a million-gateway run).

use crate::time::Time;

/// `(time, seq)` as one number: time in the high half, so keys order as the pairs do.
type Key = u128;

const BUCKETS: usize = 129;

pub struct EventQueue<E> {
    buckets: Vec<Vec<(Key, E)>>,
    /// Bit `b` set: bucket `b` holds something.
    occupied: [u64; 3],
    last: Key,
    len: usize,
    seq: u64,
    popped: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            occupied: [0; 3],
            last: 0,
            len: 0,
            seq: 0,
            popped: 0,
        }
    }
}

/// The bucket of `key` relative to `last`: 0 if equal, else one more than the index of the
/// highest differing bit.
fn bucket(key: Key, last: Key) -> usize {
    (Key::BITS - (key ^ last).leading_zeros()) as usize
}

impl<E> EventQueue<E> {
    fn put(&mut self, key: Key, event: E) {
        let b = bucket(key, self.last);
        self.buckets[b].push((key, event));
        self.occupied[b / 64] |= 1 << (b % 64);
    }

    fn first_occupied(&self) -> Option<usize> {
        self.occupied
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
    }

    pub fn push(&mut self, time: Time, event: E) {
        let mut key = (Key::from(time.0) << 64) | Key::from(self.seq);
        debug_assert!(
            key >= self.last,
            "an event scheduled before the one being handled"
        );
        if key < self.last {
            // Never in the simulator; as a binary heap would, it comes next.
            key = (self.last & !Key::from(u64::MAX)) | Key::from(self.seq);
        }
        self.seq += 1;
        self.len += 1;
        self.put(key, event);
    }

    pub fn pop(&mut self) -> Option<(Time, E)> {
        let b = self.first_occupied()?;
        if b > 0 {
            // The new last is this bucket's minimum; everything in it moves lower.
            let mut moved = std::mem::take(&mut self.buckets[b]);
            self.occupied[b / 64] &= !(1 << (b % 64));
            self.last = moved.iter().map(|(k, _)| *k).min().unwrap_or(self.last);
            for (k, e) in moved.drain(..) {
                self.put(k, e);
            }
            self.buckets[b] = moved;
        }
        let (key, event) = self.buckets[0].pop()?;
        if self.buckets[0].is_empty() {
            self.occupied[0] &= !1;
        }
        self.len -= 1;
        self.popped += 1;
        Some((Time((key >> 64) as u64), event))
    }

    pub fn peek_time(&self) -> Option<Time> {
        let b = self.first_occupied()?;
        let min = self.buckets[b].iter().map(|(k, _)| *k).min()?;
        Some(Time((min >> 64) as u64))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Events popped so far: the simulator's work counter.
    pub fn popped(&self) -> u64 {
        self.popped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_time_then_insertion() {
        let mut q = EventQueue::default();
        q.push(Time(5), "b");
        q.push(Time(1), "a");
        q.push(Time(5), "c");
        q.push(Time(3), "x");
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(got, vec!["a", "x", "b", "c"]);
    }

    /// Against a sorted list, with pushes between pops that never go before the last pop.
    #[test]
    fn pops_in_the_order_a_sort_gives() {
        let mut q = EventQueue::default();
        let mut all = Vec::new();
        let mut x: u64 = 12345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut now = 0u64;
        let mut seq = 0u64;
        let mut got = Vec::new();
        for round in 0..2000 {
            for _ in 0..(next() % 5) {
                let t = now + next() % [3, 1000, 1 << 40][round % 3];
                q.push(Time(t), seq);
                all.push((t, seq));
                seq += 1;
            }
            if next() % 3 > 0 {
                if let Some((t, e)) = q.pop() {
                    assert!(q.peek_time().map_or(u64::MAX, |p| p.0) >= t.0);
                    now = t.0;
                    got.push((t.0, e));
                }
            }
        }
        while let Some((t, e)) = q.pop() {
            got.push((t.0, e));
        }
        all.sort();
        assert_eq!(got, all);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
    }
}
