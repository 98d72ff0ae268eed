//! A running step learns that its instance was cancelled: through its
//! heartbeat (`Error::Cancelled`) and `sagaflow::cancel_requested()`, at
//! the worker's next lease renewal, so a long step can stop early. Time is
//! tokio's paused clock.

use std::sync::Mutex;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::{Error, Phase};

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(entry: impl Into<String>) {
    LOG.lock().unwrap().push(entry.into());
}

fn logged() -> Vec<String> {
    LOG.lock().unwrap().clone()
}

/// Chunks the copy would take if nobody stopped it: 100 s of work.
const CHUNKS: u32 = 1_000;

#[step]
async fn reserve_disk(job: u32) -> Result<u32, StepError> {
    log("reserve_disk");
    Ok(job)
}

#[compensate(reserve_disk)]
async fn release_disk(_job: u32, _reservation: u32) -> Result<(), StepError> {
    log("release_disk");
    Ok(())
}

#[step]
async fn copy_all(job: u32) -> Result<u32, StepError> {
    for chunk in 0..CHUNKS {
        match sagaflow::heartbeat(chunk).await {
            Ok(()) => {}
            Err(Error::Cancelled { id }) => {
                log(format!(
                    "{id} stopped at chunk {chunk}, cancel_requested = {}",
                    sagaflow::cancel_requested()
                ));
                return Err(StepError::permanent("cancelled while copying"));
            }
            Err(error) => return Err(error.into()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    log("copied everything");
    Ok(job)
}

#[compensate(copy_all)]
async fn delete_copy(_job: u32, _copied: u32) -> Result<(), StepError> {
    log("delete_copy");
    Ok(())
}

#[workflow]
async fn copy_job(job: u32) -> Result<u32, WorkflowError> {
    let reservation = reserve_disk(job).await?;
    copy_all(job).await?;
    Ok(reservation)
}

#[tokio::test(start_paused = true)]
async fn a_long_step_stops_early_when_its_instance_is_cancelled() {
    let ttl = Duration::from_secs(3);
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(copy_job)
        .lease_ttl(ttl)
        .build()
        .await
        .expect("builds");
    assert!(!sagaflow::cancel_requested(), "false outside a step");

    let handle = rt.start(copy_job, "job-1", 7).await.expect("starts");
    // Two seconds into the copy (20 chunks), an operator cancels.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running = rt.status("job-1").await.expect("reads").expect("exists");
    assert_eq!(running.phase, Phase::Running);
    assert_eq!(running.state, "CopyAll2");
    rt.cancel("job-1").await.expect("cancel is recorded");

    let Outcome::Compensated(failure) = handle.outcome().await.expect("ends") else {
        panic!("a cancelled instance rolls back")
    };
    assert!(failure.to_string().contains("cancelled"), "{failure}");
    let log = logged();
    assert_eq!(log.first().map(String::as_str), Some("reserve_disk"));
    assert_eq!(log.last().map(String::as_str), Some("release_disk"));
    assert_eq!(log.len(), 3, "{log:?}");
    // The renewal after the cancel (every third of the TTL: 1 s) told the
    // step: it stopped within about a second, not after its 100 s of work.
    let stopped: u32 = log[1]
        .strip_prefix("job-1 stopped at chunk ")
        .and_then(|rest| rest.strip_suffix(", cancel_requested = true"))
        .and_then(|chunk| chunk.parse().ok())
        .unwrap_or_else(|| panic!("the step did not learn of the cancel: {log:?}"));
    assert!(
        (20..=35).contains(&stopped),
        "stopped at chunk {stopped}: the cancel came at chunk 20, the next renewal within 1 s"
    );
}
