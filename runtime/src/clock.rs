//! Time as the runtime sees it: an injectable [`Clock`].
//!
//! The runtime reads wall-clock milliseconds for everything it writes to the
//! store (record times, lease expiries, due-index keys, retry times) and
//! sleeps until such a time for backoff, polling and lease renewal. Both go
//! through one `Clock`, set with
//! [`RuntimeBuilder::clock`](crate::RuntimeBuilder::clock).
//!
//! The default, [`SystemClock`], reads the system's wall clock once and then
//! advances with tokio's clock. Under `#[tokio::test(start_paused = true)]`
//! tokio's clock is paused and jumps ahead whenever every task is idle, so
//! retries with backoff, lease expiry and polling happen at once and in a
//! deterministic order; tests need no clock of their own:
//!
//! ```
//! # use std::time::Duration;
//! # use sagaflow::prelude::*;
//! # #[workflow]
//! # async fn wf(n: u32) -> Result<u32, WorkflowError> { Ok(n) }
//! # fn main() {}
//! #[tokio::test(start_paused = true)]
//! async fn a_crashed_owner_is_taken_over() -> Result<(), sagaflow::Error> {
//!     let store = MemoryStore::new();
//!     let rt = Runtime::builder()
//!         .store(store)
//!         .register(wf)
//!         .lease_ttl(Duration::from_secs(30))
//!         .build()
//!         .await?;
//!     // ... 30 s of lease expiry pass in no real time.
//!     # rt.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! Step timeouts (`#[step(timeout = "..")]`) run on the same clock: a clock
//! of your own makes an attempt's time pass as it makes backoff and lease
//! expiry pass.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A future that completes at a time a [`Clock`] chose.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of wall-clock time, and a way to wait for one.
///
/// Every process sharing a store compares lease expiries written by the
/// others, so their clocks must agree to well within the lease TTL (NTP is
/// enough for the 30 s default).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// A future that completes once `now_ms() >= at_ms` (at once if that
    /// time has passed).
    fn sleep_until(&self, at_ms: u64) -> Sleep;
}

/// The default clock: the system's wall clock, advancing with tokio's clock.
///
/// It reads the system time once, when created, and adds the time tokio's
/// clock has advanced since; so under tokio's paused time
/// (`start_paused = true`, `tokio::time::advance`) it is paused and advanced
/// with it.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    base_ms: u64,
    base: tokio::time::Instant,
}

impl SystemClock {
    /// A clock reading the system's wall clock now.
    pub fn new() -> SystemClock {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        SystemClock::starting_at(base_ms)
    }

    /// A clock that reads `base_ms` now and advances with tokio's clock from
    /// there: fixed wall times, for tests that snapshot records.
    pub fn starting_at(base_ms: u64) -> SystemClock {
        SystemClock {
            base_ms,
            base: tokio::time::Instant::now(),
        }
    }

    /// The tokio instant of wall time `ms`.
    fn instant_at(&self, ms: u64) -> tokio::time::Instant {
        self.base + Duration::from_millis(ms.saturating_sub(self.base_ms))
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_ms.saturating_add(elapsed)
    }

    fn sleep_until(&self, at_ms: u64) -> Sleep {
        Box::pin(tokio::time::sleep_until(self.instant_at(at_ms)))
    }
}

tokio::task_local! {
    /// The clock of the runtime whose worker drives the current task: set
    /// once per driven instance, read only by an attempt with a timeout.
    static RUNTIME_CLOCK: Arc<dyn Clock>;
}

/// Runs `driver` (a worker's task) with `clock` as the runtime's clock.
pub(crate) fn driving<F: Future>(
    clock: Arc<dyn Clock>,
    driver: F,
) -> impl Future<Output = F::Output> {
    RUNTIME_CLOCK.scope(clock, driver)
}

/// The clock of the runtime driving the current task, if one does.
pub(crate) fn of_runtime() -> Option<Arc<dyn Clock>> {
    RUNTIME_CLOCK.try_with(Arc::clone).ok()
}

/// Milliseconds in a duration, saturating, rounded up so a wait is never short.
pub(crate) fn duration_ms(duration: Duration) -> u64 {
    let ms = duration.as_millis() + u128::from(!duration.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let clock = SystemClock::starting_at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(clock.now_ms(), 1_250);
        clock.sleep_until(5_000).await;
        assert_eq!(clock.now_ms(), 5_000);
        // A time in the past completes at once.
        clock.sleep_until(10).await;
        assert_eq!(clock.now_ms(), 5_000);
    }

    #[test]
    fn durations_round_up_to_whole_milliseconds() {
        assert_eq!(duration_ms(Duration::from_micros(1)), 1);
        assert_eq!(duration_ms(Duration::from_millis(7)), 7);
        assert_eq!(duration_ms(Duration::MAX), u64::MAX);
    }
}
