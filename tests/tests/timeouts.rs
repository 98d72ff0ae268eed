//! Start-to-close timeouts of step attempts (`#[step(timeout = "..")]`):
//! an attempt that outlives its timeout is cut off and retried, as a user
//! sees it in the outcome and the history; and the timeout runs on the
//! runtime's clock, so an injected clock drives it like backoff and leases.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sagaflow::clock::{Clock, Sleep};
use sagaflow::prelude::*;
use sagaflow::{EventKind, Phase, StepError};
use tokio::sync::watch;

/// Attempts of `stall_once`, and of `stall_once_for_an_hour`.
static FIVE_SECOND_ATTEMPTS: AtomicU32 = AtomicU32::new(0);
static HOUR_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Never finishes its first attempt; the next one returns its number.
async fn stall_first(attempts: &AtomicU32) -> Result<u32, StepError> {
    let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
    if attempt == 1 {
        std::future::pending::<()>().await;
    }
    Ok(attempt)
}

#[step(readonly, timeout = "5s")]
async fn stall_once(_job: u32) -> Result<u32, StepError> {
    stall_first(&FIVE_SECOND_ATTEMPTS).await
}

#[step(readonly, timeout = "1h")]
async fn stall_once_for_an_hour(_job: u32) -> Result<u32, StepError> {
    stall_first(&HOUR_ATTEMPTS).await
}

#[workflow]
async fn five_seconds(job: u32) -> Result<u32, WorkflowError> {
    let attempt = stall_once(job).await?;
    Ok(attempt)
}

#[workflow]
async fn an_hour(job: u32) -> Result<u32, WorkflowError> {
    let attempt = stall_once_for_an_hour(job).await?;
    Ok(attempt)
}

/// The history's retry of the stalled attempt, with its error.
fn retried_because(status: &sagaflow::Status) -> Vec<String> {
    status
        .history
        .iter()
        .filter(|event| event.kind == EventKind::StepRetried)
        .map(|event| event.error.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_outlives_its_timeout_is_cut_off_and_retried() {
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(five_seconds)
        .build()
        .await
        .unwrap();
    let handle = rt.start(five_seconds, "five-1", 1).await.unwrap();
    let outcome = handle.outcome().await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed(2),
        "the second attempt finished"
    );
    assert_eq!(FIVE_SECOND_ATTEMPTS.load(Ordering::SeqCst), 2);
    let status = rt.status("five-1").await.unwrap().unwrap();
    assert_eq!(status.phase, Phase::Completed);
    assert_eq!(
        retried_because(&status),
        ["attempt timed out after 5s"],
        "{:?}",
        status.history
    );
    rt.shutdown().await;
}

/// A clock an operator (here, the test) moves by hand.
#[derive(Debug, Clone)]
struct HandClock {
    now_ms: Arc<watch::Sender<u64>>,
}

impl HandClock {
    fn starting_at(ms: u64) -> HandClock {
        HandClock {
            now_ms: Arc::new(watch::Sender::new(ms)),
        }
    }

    fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).expect("a short step");
        self.now_ms.send_modify(|now| *now += by);
    }
}

impl Clock for HandClock {
    fn now_ms(&self) -> u64 {
        *self.now_ms.borrow()
    }

    fn sleep_until(&self, at_ms: u64) -> Sleep {
        let mut now = self.now_ms.subscribe();
        Box::pin(async move {
            // The clock gone: nothing will ever be due, so wake now.
            let _ = now.wait_for(|now| *now >= at_ms).await;
        })
    }
}

/// On real time: only the injected clock can make an hour pass within the
/// test's minute.
#[tokio::test]
async fn the_timeout_runs_on_the_runtimes_clock() {
    let clock = HandClock::starting_at(1_700_000_000_000);
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(an_hour)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let handle = rt.start(an_hour, "hour-1", 1).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        let mut outcome = std::pin::pin!(handle.outcome());
        loop {
            tokio::select! {
                outcome = &mut outcome => break outcome,
                // Moves the clock along (the first attempt's hour, then the
                // retry's backoff), however fast the runtime gets there.
                () = tokio::time::sleep(Duration::from_millis(5)) => {
                    if HOUR_ATTEMPTS.load(Ordering::SeqCst) > 0 {
                        clock.advance(Duration::from_secs(600));
                    }
                }
            }
        }
    })
    .await
    .expect("the injected clock passed the hour, not the wall clock")
    .unwrap();
    assert_eq!(outcome, Outcome::Completed(2));
    let status = rt.status("hour-1").await.unwrap().unwrap();
    assert_eq!(
        retried_because(&status),
        ["attempt timed out after 3600s"],
        "{:?}",
        status.history
    );
    rt.shutdown().await;
}
