//! `TestEnv`: a runtime on a memory store, paused time, a time limit on
//! waiting for an outcome.

use std::time::Duration;

use sagaflow::Phase;
use sagaflow::prelude::*;
use sagaflow_testkit::TestEnv;

#[step(readonly)]
async fn greet(name: &str) -> Result<String, StepError> {
    Ok(format!("hello, {name}"))
}

#[workflow]
async fn hello(name: String) -> Result<String, WorkflowError> {
    Ok(greet(&name).await?)
}

#[step(
    readonly,
    retry(max_attempts = 4, initial = "10m", backoff = 2.0, max_interval = "1h")
)]
async fn flaky(n: &u32) -> Result<u32, StepError> {
    let attempt = sagaflow::context().map_or(1, |ctx| ctx.attempt);
    if attempt < 4 {
        return Err(StepError::retryable("not yet"));
    }
    Ok(*n)
}

/// Succeeds at its fourth attempt, after 10, 20 and 40 minutes of backoff.
#[workflow]
async fn patient(n: u32) -> Result<u32, WorkflowError> {
    Ok(flaky(&n).await?)
}

#[workflow]
async fn waits_forever(n: u32) -> Result<u32, WorkflowError> {
    let approved: bool = sagaflow::signal("approval").await;
    Ok(if approved { n } else { 0 })
}

async fn test_env() -> TestEnv {
    TestEnv::builder()
        .register(hello)
        .register(patient)
        .register(waits_forever)
        .build()
        .await
}

#[tokio::test(start_paused = true)]
async fn run_starts_an_instance_and_returns_its_outcome() {
    let env = test_env().await;
    let outcome = env.run(hello, "hello-1", "Ada".to_owned()).await;
    assert_eq!(outcome, Outcome::Completed("hello, Ada".to_owned()));
    // Through `Deref`, the env is its runtime.
    let status = env.status("hello-1").await.expect("status").expect("found");
    assert_eq!(status.phase, Phase::Completed);
    assert_eq!(env.runtime().runtime_id(), env.runtime_id());
}

#[tokio::test(start_paused = true)]
async fn paused_time_makes_backoff_pass_at_once() {
    let env = test_env().await;
    let paused = tokio::time::Instant::now();
    let real = std::time::Instant::now();
    let outcome = env.run(patient, "patient-1", 9).await;
    assert_eq!(outcome, Outcome::Completed(9));
    // 10 + 20 + 40 minutes of backoff on tokio's clock ...
    assert!(
        paused.elapsed() >= Duration::from_secs(70 * 60),
        "{:?}",
        paused.elapsed()
    );
    // ... and next to none on the wall clock.
    assert!(
        real.elapsed() < Duration::from_secs(10),
        "{:?}",
        real.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn an_instance_that_never_ends_fails_the_test_at_the_time_limit_saying_where_it_waits() {
    let waited = tokio::spawn(async {
        let env = TestEnv::builder()
            .register(waits_forever)
            .time_limit(Duration::from_secs(3600))
            .build()
            .await;
        env.run(waits_forever, "forever-1", 1).await;
    })
    .await
    .expect_err("the time limit fails the test");
    let payload = waited.into_panic();
    let message = payload.downcast_ref::<String>().expect("a formatted panic");
    assert!(
        message.contains("instance `forever-1` did not end within 3600s"),
        "{message}"
    );
    assert!(
        message.contains("Waiting at state `Signal1`, attempt 1, waiting for signal `approval`"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn outcome_waits_for_an_instance_started_and_signalled_by_the_test() {
    let env = test_env().await;
    let handle = env
        .start(waits_forever, "signalled-1", 5)
        .await
        .expect("starts");
    env.signal("signalled-1", "approval", true)
        .await
        .expect("signals");
    assert_eq!(env.outcome(&handle).await, Outcome::Completed(5));
}

#[tokio::test(start_paused = true)]
async fn a_second_env_on_the_store_sees_the_first_ones_instances() {
    let first = test_env().await;
    first.run(hello, "shared-1", "Grace".to_owned()).await;
    let second = TestEnv::builder()
        .store(first.store())
        .register(hello)
        .build()
        .await;
    let status = second
        .status("shared-1")
        .await
        .expect("status")
        .expect("found");
    assert_eq!(status.phase, Phase::Completed);
    assert_eq!(
        second
            .handle(hello, "shared-1")
            .outcome()
            .await
            .expect("outcome"),
        Outcome::Completed("hello, Grace".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn configure_reaches_the_runtime_builder() {
    let env = TestEnv::builder()
        .register(hello)
        .configure(|rt| rt.workers(0))
        .build()
        .await;
    // A client-only runtime runs nothing: the instance stays where it started.
    env.start(hello, "client-1", "Alan".to_owned())
        .await
        .expect("starts");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = env
        .status("client-1")
        .await
        .expect("status")
        .expect("found");
    assert_eq!(status.phase, Phase::Running);
    assert_eq!(status.state, "Start");
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "the test runtime cannot be built")]
async fn a_runtime_that_cannot_be_built_fails_the_test() {
    TestEnv::builder()
        .register(hello)
        .register(hello)
        .build()
        .await;
}
