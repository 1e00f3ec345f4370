//! The two-way quests this side sent and waits for, by sequence number and by deadline.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Who waits for an answer.
pub(crate) enum Waiter<W> {
    /// The user of the connection.
    User(W),
    /// The connection's own keep-alive ping.
    Ping,
}

pub(crate) struct Entry<W> {
    pub waiter: Waiter<W>,
    pub deadline: Instant,
    pub timeout: Duration,
}

/// Quests waiting for an answer: found by seq when the answer comes, by deadline when it
/// does not. Both maps hold the same quests; every operation keeps them in step.
pub(crate) struct Pending<W> {
    by_seq: HashMap<u32, Entry<W>>,
    by_deadline: BTreeSet<(Instant, u32)>,
}

impl<W> Default for Pending<W> {
    fn default() -> Self {
        Pending {
            by_seq: HashMap::new(),
            by_deadline: BTreeSet::new(),
        }
    }
}

impl<W> Pending<W> {
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn contains(&self, seq: u32) -> bool {
        self.by_seq.contains_key(&seq)
    }

    /// Adds quest `seq`; the caller never reuses a seq that is still waiting.
    pub fn insert(&mut self, seq: u32, waiter: Waiter<W>, now: Instant, timeout: Duration) {
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        if let Some(old) = self.by_seq.insert(
            seq,
            Entry {
                waiter,
                deadline,
                timeout,
            },
        ) {
            self.by_deadline.remove(&(old.deadline, seq));
        }
        self.by_deadline.insert((deadline, seq));
    }

    pub fn remove(&mut self, seq: u32) -> Option<Entry<W>> {
        let entry = self.by_seq.remove(&seq)?;
        self.by_deadline.remove(&(entry.deadline, seq));
        Some(entry)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// Removes and returns the next quest whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Entry<W>> {
        let &(at, seq) = self.by_deadline.first()?;
        if at > now {
            return None;
        }
        self.by_deadline.pop_first();
        self.by_seq.remove(&seq)
    }

    /// Removes every quest.
    pub fn drain(&mut self) -> impl Iterator<Item = Entry<W>> + '_ {
        self.by_deadline.clear();
        self.by_seq.drain().map(|(_, entry)| entry)
    }

    /// Gives back the tables' memory once they are empty (after a burst of quests).
    pub fn shrink_if_empty(&mut self) {
        if self.by_seq.is_empty() && self.by_seq.capacity() > 64 {
            self.by_seq = HashMap::new();
        }
    }
}
