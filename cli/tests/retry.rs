//! `sagaflow retry`: a Failed instance runs again once the operator fixed
//! its cause, forward after its pivot, or through its remaining
//! compensations; and what cannot be retried says why.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::Seeded;
use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

/// A parcel to send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    pub id: String,
}

static PRINTER_OUT_OF_PAPER: AtomicBool = AtomicBool::new(true);
static HOTEL_API_DOWN: AtomicBool = AtomicBool::new(true);

#[step(pivot)]
async fn book_courier(parcel: &Parcel) -> Result<String, StepError> {
    Ok(format!("courier-{}", parcel.id))
}

#[step(retriable, retry(max_attempts = 2, initial = "10ms"))]
async fn print_label(parcel: &Parcel, courier: &String) -> Result<String, StepError> {
    if PRINTER_OUT_OF_PAPER.load(Ordering::SeqCst) {
        return Err(StepError::retryable("the label printer is out of paper"));
    }
    Ok(format!("label {} via {courier}", parcel.id))
}

/// Books a courier (the pivot), then prints the label (retriable).
#[workflow]
async fn ship_parcel(parcel: Parcel) -> Result<String, WorkflowError> {
    let courier: String = book_courier(&parcel).await?;
    let label = print_label(&parcel, &courier).await?;
    Ok(label)
}

/// Books a courier, then its own code gives up.
#[workflow]
async fn audit_parcel(parcel: Parcel) -> Result<String, WorkflowError> {
    let courier: String = book_courier(&parcel).await?;
    if courier.is_empty() {
        return Ok(courier);
    }
    Err(WorkflowError::new("the audit rejected the parcel"))
}

/// A room hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub room: u32,
}

#[step]
async fn hold_room(parcel: &Parcel) -> Result<Hold, StepError> {
    let _ = parcel;
    Ok(Hold { room: 12 })
}

#[compensate(hold_room)]
async fn release_room(parcel: &Parcel, hold: Hold) -> Result<(), StepError> {
    let _ = (parcel, hold);
    if HOTEL_API_DOWN.load(Ordering::SeqCst) {
        return Err(StepError::permanent("the hotel's API is down"));
    }
    Ok(())
}

#[step]
async fn charge_card(parcel: &Parcel) -> Result<u64, StepError> {
    let _ = parcel;
    Err(StepError::permanent("card declined"))
}

#[compensate(charge_card)]
async fn refund_card(parcel: &Parcel, amount: u64) -> Result<(), StepError> {
    let _ = (parcel, amount);
    Ok(())
}

/// Holds a room, then the card is declined: the hold must be released.
#[workflow]
async fn book_trip(parcel: Parcel) -> Result<(), WorkflowError> {
    let _hold = hold_room(&parcel).await?;
    charge_card(&parcel).await?;
    Ok(())
}

fn parcel(id: &str) -> Parcel {
    Parcel { id: id.to_owned() }
}

async fn worker_runtime(store: &Seeded) -> Runtime {
    Runtime::builder()
        .store(EmbeddedStore::open(&store.path).unwrap())
        .register(ship_parcel)
        .register(audit_parcel)
        .register(book_trip)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failed_instance_runs_again_once_its_cause_is_fixed() {
    let store = Seeded::empty();
    {
        let runtime = worker_runtime(&store).await;
        let shipped = runtime
            .start(ship_parcel, "parcel-1", parcel("parcel-1"))
            .await
            .unwrap()
            .outcome()
            .await
            .unwrap();
        assert!(matches!(shipped, Outcome::Failed(_)), "{shipped:?}");
        let trip = runtime
            .start(book_trip, "trip-1", parcel("trip-1"))
            .await
            .unwrap()
            .outcome()
            .await
            .unwrap();
        assert!(matches!(trip, Outcome::Failed(_)), "{trip:?}");
        let audit = runtime
            .start(audit_parcel, "audit-1", parcel("audit-1"))
            .await
            .unwrap()
            .outcome()
            .await
            .unwrap();
        assert!(matches!(audit, Outcome::Failed(_)), "{audit:?}");
        runtime.shutdown().await;
    }

    // What the operator sees first.
    let failed = store.sagaflow(&["list", "--phase", "failed"]).ok().stdout;
    assert_eq!(
        common::first_column(&failed),
        ["audit-1", "trip-1", "parcel-1"]
    );
    assert!(
        failed.contains("step `print_label` failed: the label printer is out of paper"),
        "{failed}"
    );

    // Fixed: the printer has paper, the hotel's API is back.
    PRINTER_OUT_OF_PAPER.store(false, Ordering::SeqCst);
    HOTEL_API_DOWN.store(false, Ordering::SeqCst);

    let forward = store.sagaflow(&["retry", "parcel-1"]).ok();
    assert_eq!(
        forward.stdout,
        "parcel-1 is Running again at PrintLabel2 (step print_label), attempt 1: a worker \
         runtime with its workflow registered runs it at its next poll\n"
    );
    let shown = store.sagaflow(&["show", "parcel-1"]).ok().stdout;
    assert!(shown.contains("\nphase          Running\n"), "{shown}");
    assert!(shown.contains("\nattempt        1\n"), "{shown}");
    assert!(!shown.contains("\nfailure "), "{shown}");
    assert!(
        shown.contains(
            "retry requested by an operator after: step `print_label` failed: the label printer \
             is out of paper"
        ),
        "{shown}"
    );
    let again = store.sagaflow(&["retry", "parcel-1"]).fails();
    assert_eq!(
        again.stderr,
        "error: instance `parcel-1` is Running, not Failed: only a Failed instance can be retried\n"
    );

    let rollback = store.sagaflow(&["--json", "retry", "trip-1"]).ok().json();
    assert_eq!(
        rollback,
        serde_json::json!({"id": "trip-1", "retry": {"result": "compensating", "step": "hold_room", "remaining": 1}})
    );

    let refused = store.sagaflow(&["retry", "audit-1"]).fails();
    assert!(
        refused.stderr.starts_with(
            "error: instance `audit-1` cannot be retried: step `book_courier` succeeded and the \
             workflow's own code then returned the error"
        ),
        "{}",
        refused.stderr
    );

    // A worker runtime with the workflows registered finishes both.
    let runtime = worker_runtime(&store).await;
    let shipped = runtime
        .handle(ship_parcel, "parcel-1")
        .outcome()
        .await
        .unwrap();
    assert!(
        matches!(&shipped, Outcome::Completed(label) if label == "label parcel-1 via courier-parcel-1"),
        "{shipped:?}"
    );
    let trip = runtime.handle(book_trip, "trip-1").outcome().await.unwrap();
    match trip {
        // Rolled back for the reason it started rolling back, not the outage.
        Outcome::Compensated(failure) => {
            assert_eq!(
                failure.to_string(),
                "step `charge_card` failed: card declined"
            );
        }
        other => panic!("{other:?}"),
    }
    runtime.shutdown().await;
    drop(runtime);
    let completed = store
        .sagaflow(&["list", "--phase", "completed,compensated"])
        .ok()
        .stdout;
    assert_eq!(common::first_column(&completed), ["trip-1", "parcel-1"]);
}
