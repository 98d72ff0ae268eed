//! A clock the test moves: [`ManualClock`].

use std::sync::Arc;
use std::time::Duration;

use sagaflow::Clock;
use sagaflow::clock::Sleep;
use tokio::sync::watch;

/// A [`Clock`] that stands still until the test moves it: time passes for
/// the runtime (timers, retries, backoff, lease expiry, step timeouts,
/// polling) only at [`advance`](ManualClock::advance) and
/// [`set`](ManualClock::set). Clones share one time.
///
/// Use it on tokio's real time (a plain `#[tokio::test]`), when a test must
/// look at an instance between two moments, for example while it waits on
/// a timer; paused time would have run the timer out already. Everything
/// the runtime waits for goes through its clock, so with this one nothing
/// that waits on time happens by itself: a step with a `timeout` never
/// times out, a retry is never due, and the runtime's backoff after a
/// store error (a [`FaultyStore`](crate::FaultyStore)'s, say) never ends,
/// until the test moves the clock.
///
/// ```
/// use std::time::Duration;
/// use sagaflow::prelude::*;
/// use sagaflow_testkit::{ManualClock, TestEnv};
///
/// #[workflow]
/// async fn remind(days: u64) -> Result<u64, WorkflowError> {
///     sagaflow::sleep(Duration::from_secs(days * 86_400)).await;
///     Ok(days)
/// }
///
/// # /*
/// #[tokio::test]
/// # */
/// async fn the_reminder_waits_for_its_day() {
///     let clock = ManualClock::new(1_700_000_000_000);
///     let env = TestEnv::builder()
///         .register(remind)
///         .configure(|rt| rt.clock(clock.clone()))
///         .build()
///         .await;
///     let handle = env.start(remind, "reminder-1", 2).await.unwrap();
///     while env.status("reminder-1").await.unwrap().unwrap().phase != sagaflow::Phase::Waiting {
///         tokio::task::yield_now().await;
///     }
///
///     clock.advance(Duration::from_secs(86_400)); // a day: still waiting
///     tokio::time::sleep(Duration::from_millis(20)).await;
///     assert_eq!(env.status("reminder-1").await.unwrap().unwrap().phase, sagaflow::Phase::Waiting);
///
///     clock.advance(Duration::from_secs(86_400)); // the second day: it ends
///     assert_eq!(env.outcome(&handle).await, Outcome::Completed(2));
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() { the_reminder_waits_for_its_day().await }
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now_ms: Arc<watch::Sender<u64>>,
}

impl ManualClock {
    /// A clock reading `now_ms` (milliseconds since the Unix epoch) until
    /// it is moved.
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock {
            now_ms: Arc::new(watch::Sender::new(now_ms)),
        }
    }

    /// What the clock reads (milliseconds since the Unix epoch).
    pub fn now_ms(&self) -> u64 {
        *self.now_ms.borrow()
    }

    /// Moves the clock forward by `by` (rounded down to whole
    /// milliseconds), waking every sleep that is then due.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.send_modify(|now| *now = now.saturating_add(by));
    }

    /// Moves the clock to `at_ms`, waking every sleep that is then due. A
    /// time earlier than now is ignored: the runtime's clocks never go back.
    pub fn set(&self, at_ms: u64) {
        self.now_ms.send_if_modified(|now| {
            let later = at_ms > *now;
            if later {
                *now = at_ms;
            }
            later
        });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        ManualClock::now_ms(self)
    }

    fn sleep_until(&self, at_ms: u64) -> Sleep {
        let mut now = self.now_ms.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; without
            // one, time can never reach `at_ms`.
            if now.wait_for(|now| *now >= at_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sleep_ends_when_the_clock_reaches_its_time_and_not_before() {
        let clock = ManualClock::new(1_000);
        let sleep = tokio::spawn(clock.sleep_until(1_500));
        clock.advance(Duration::from_millis(499));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!sleep.is_finished());
        clock.advance(Duration::from_millis(1));
        sleep.await.expect("the sleep ends");
        assert_eq!(clock.now_ms(), 1_500);
        // A time already passed ends at once; the clock never goes back.
        clock.sleep_until(10).await;
        clock.set(10);
        assert_eq!(clock.now_ms(), 1_500);
        clock.set(2_000);
        assert_eq!(Clock::now_ms(&clock), 2_000);
    }
}
