//! Where a queue lives in the store, all under `queues/{queue}/`:
//!
//! | key | what |
//! |---|---|
//! | `items/{priority}/{enqueued ms}-{seq}/{id}` | an item waiting to start; a scan reads them in priority order, oldest first |
//! | `ids/{id}` | the item of instance `id`, while it waits: how a second enqueue of `id` finds the first |
//! | `slots/{n}` | one of the queue's `concurrency` slots, held for a running instance |
//! | `partitions/{key}/{n}` | one of a partition's slots |
//! | `rate` | the start times of the rate limit's window |
//!
//! Queue names and partition keys are escaped (`%` and `/`), so one never
//! reads as a prefix of another.

use std::borrow::Cow;

/// The prefix of every queue key.
pub(crate) const PREFIX: &str = "queues/";

/// `part` with `%` and `/` escaped, so it is one path segment.
fn escape(part: &str) -> Cow<'_, str> {
    if !part.contains(['%', '/']) {
        return Cow::Borrowed(part);
    }
    Cow::Owned(part.replace('%', "%25").replace('/', "%2F"))
}

/// The keys of one queue.
#[derive(Clone, Debug)]
pub(crate) struct QueueKeys {
    /// `queues/{queue}/`.
    root: String,
}

impl QueueKeys {
    pub(crate) fn new(queue: &str) -> QueueKeys {
        QueueKeys {
            root: format!("{PREFIX}{}/", escape(queue)),
        }
    }

    /// The prefix of the items.
    pub(crate) fn items(&self) -> String {
        format!("{}items/", self.root)
    }

    /// An item's key: priority first, then the enqueue time and a
    /// sequence number of the enqueuing process, then the id.
    pub(crate) fn item(&self, priority: u32, enqueued_ms: u64, seq: u64, id: &str) -> String {
        format!(
            "{}items/{priority:010}/{enqueued_ms:020}-{seq:020}/{id}",
            self.root
        )
    }

    /// The key naming the waiting item of instance `id`.
    pub(crate) fn id(&self, id: &str) -> String {
        format!("{}ids/{id}", self.root)
    }

    /// The prefix of the queue's concurrency slots.
    pub(crate) fn slots(&self) -> String {
        format!("{}slots/", self.root)
    }

    /// The prefix of partition `key`'s slots.
    pub(crate) fn partition(&self, key: &str) -> String {
        format!("{}partitions/{}/", self.root, escape(key))
    }

    /// The rate limit's window.
    pub(crate) fn rate(&self) -> String {
        format!("{}rate", self.root)
    }
}

/// Slot `index` under `prefix` (one of [`QueueKeys::slots`] or
/// [`QueueKeys::partition`]).
pub(crate) fn slot(prefix: &str, index: u32) -> String {
    format!("{prefix}{index:010}")
}

/// The index of slot key `key` under `prefix`.
pub(crate) fn slot_index(prefix: &str, key: &str) -> Option<u32> {
    key.strip_prefix(prefix)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_sort_by_priority_then_time_then_sequence() {
        let keys = QueueKeys::new("orders");
        let urgent_late = keys.item(0, 2_000, 0, "b");
        let urgent_early = keys.item(0, 1_000, 9, "z");
        let later = keys.item(1, 0, 0, "a");
        let mut sorted = vec![later.clone(), urgent_late.clone(), urgent_early.clone()];
        sorted.sort();
        assert_eq!(sorted, [urgent_early, urgent_late, later]);
        assert!(keys.item(0, 1, 1, "x").starts_with(&keys.items()));
    }

    #[test]
    fn names_and_partition_keys_are_one_segment() {
        let keys = QueueKeys::new("a/b");
        assert_eq!(keys.slots(), "queues/a%2Fb/slots/");
        assert_eq!(keys.partition("x/y%"), "queues/a%2Fb/partitions/x%2Fy%25/");
        // A partition key is never a prefix of another's slots.
        assert!(!keys.partition("a/b").starts_with(&keys.partition("a")));
        let prefix = keys.slots();
        assert_eq!(slot_index(&prefix, &slot(&prefix, 7)), Some(7));
    }
}
