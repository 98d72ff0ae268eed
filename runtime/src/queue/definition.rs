//! [`Queue`]: a queue's name and limits, as every process defines it.

use std::time::Duration;

/// A named queue and its limits, defined on the runtime builder with
/// [`RuntimeBuilder::queue`](crate::RuntimeBuilder::queue): the same in
/// every process that enqueues into it or runs its instances.
///
/// Every limit is optional; a queue without any starts its items in
/// priority order, oldest first, as fast as this process's workers take
/// them. Limits of zero are taken as one.
///
/// ```
/// # use std::time::Duration;
/// use sagaflow::Queue;
///
/// let orders = Queue::new("orders")
///     .concurrency(10) // at most 10 running, across all processes
///     .per_process(4) // at most 4 of them in any one process
///     .rate_limit(100, Duration::from_secs(1)) // at most 100 starts in any second
///     .partition_concurrency(1); // one running per partition key (a customer)
/// assert_eq!(orders.name(), "orders");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    name: String,
    concurrency: Option<u32>,
    per_process: Option<u32>,
    rate_limit: Option<RateLimit>,
    partition_concurrency: Option<u32>,
}

/// At most `starts` instances started in any window of `period`:
/// [`Queue::rate_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Starts allowed per window.
    pub starts: u32,
    /// The window's length.
    pub period: Duration,
}

impl Queue {
    /// A queue named `name`, without limits.
    pub fn new(name: impl Into<String>) -> Queue {
        Queue {
            name: name.into(),
            concurrency: None,
            per_process: None,
            rate_limit: None,
            partition_concurrency: None,
        }
    }

    /// At most `limit` instances of this queue run at once, across every
    /// process sharing the store (an instance runs from its start until it
    /// ends, waits for timers and signals included).
    pub fn concurrency(mut self, limit: u32) -> Queue {
        self.concurrency = Some(limit.max(1));
        self
    }

    /// At most `limit` instances of this queue run at once that this
    /// process started. Defaults to the runtime's
    /// [`workers`](crate::RuntimeBuilder::workers).
    pub fn per_process(mut self, limit: u32) -> Queue {
        self.per_process = Some(limit.max(1));
        self
    }

    /// At most `starts` instances of this queue start in any window of
    /// `period` (a sliding window, across every process). `period` is at
    /// least a millisecond.
    pub fn rate_limit(mut self, starts: u32, period: Duration) -> Queue {
        self.rate_limit = Some(RateLimit {
            starts: starts.max(1),
            period: period.max(Duration::from_millis(1)),
        });
        self
    }

    /// Makes this a partitioned queue: every item is enqueued with a
    /// partition key ([`Enqueue::partition`](crate::Enqueue::partition),
    /// say a customer id), and at most `limit` instances of one partition
    /// run at once, across every process. Items of a full partition wait
    /// without holding up the others.
    pub fn partition_concurrency(mut self, limit: u32) -> Queue {
        self.partition_concurrency = Some(limit.max(1));
        self
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limit across every process, if any.
    pub fn concurrency_limit(&self) -> Option<u32> {
        self.concurrency
    }

    /// The limit in one process, if set.
    pub fn per_process_limit(&self) -> Option<u32> {
        self.per_process
    }

    /// The rate limit, if any.
    pub fn rate(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// The limit per partition key, if the queue is partitioned.
    pub fn partition_limit(&self) -> Option<u32> {
        self.partition_concurrency
    }
}
