//! `ManualClock`: nothing that waits on time happens until the test moves
//! the clock.

use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::{Phase, Status};
use sagaflow_testkit::{ManualClock, TestEnv};

const START_MS: u64 = 1_700_000_000_000;

#[step(readonly, retry(max_attempts = 2, initial = "1m"))]
async fn once_busy(n: &u32) -> Result<u32, StepError> {
    match sagaflow::context().map_or(1, |ctx| ctx.attempt) {
        1 => Err(StepError::retryable("busy")),
        _ => Ok(*n),
    }
}

#[workflow]
async fn retried(n: u32) -> Result<(u32, u64), WorkflowError> {
    let value = once_busy(&n).await?;
    let at = sagaflow::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    Ok((value, at))
}

async fn status(env: &TestEnv, id: &str) -> Status {
    env.status(id).await.expect("status").expect("found")
}

#[tokio::test]
async fn a_retry_is_due_only_when_the_clock_reaches_it() {
    let clock = ManualClock::new(START_MS);
    let env = TestEnv::builder()
        .register(retried)
        .configure(|rt| rt.clock(clock.clone()))
        .build()
        .await;
    let handle = env.start(retried, "retried-1", 4).await.expect("starts");
    while status(&env, "retried-1").await.next_run_at.is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        status(&env, "retried-1").await.next_run_at,
        Some(START_MS + 60_000)
    );

    clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiting = status(&env, "retried-1").await;
    assert!(!waiting.phase.is_terminal(), "{:?}", waiting.phase);
    assert_eq!(waiting.attempt, 2);

    clock.advance(Duration::from_secs(1));
    // `sagaflow::now()` read the manual clock too: the time the step's
    // state was reached.
    assert_eq!(
        env.outcome(&handle).await,
        Outcome::Completed((4, START_MS))
    );
    assert_eq!(status(&env, "retried-1").await.phase, Phase::Completed);
}
