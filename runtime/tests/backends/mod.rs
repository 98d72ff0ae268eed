//! What the backend tests share: finding the server from the environment,
//! and a small saga run end to end on a store.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use sagaflow::Phase;
use sagaflow::prelude::*;
use sagaflow::store::{Expect, Store};
use serde::{Deserialize, Serialize};

// Shared with tests/tests/multi_process.rs through the crate.
#[allow(unused_imports)]
pub use sagaflow::store::conformance::{server_from_env, unique_name};

/// An order for the test saga.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: String,
    /// Whether shipping fails for good, so the saga compensates.
    pub undeliverable: bool,
}

/// Holds stock.
#[step]
async fn reserve_stock(order: &Order) -> Result<String, StepError> {
    Ok(format!("reservation-{}", order.id))
}

/// Gives the stock back.
#[compensate(reserve_stock)]
async fn release_stock(order: &Order, reservation: String) -> Result<(), StepError> {
    let _ = (order, reservation);
    Ok(())
}

/// Ships: the pivot.
#[step(pivot)]
async fn ship(order: &Order) -> Result<String, StepError> {
    if order.undeliverable {
        return Err(StepError::permanent("no carrier delivers there"));
    }
    Ok(format!("parcel-{}", order.id))
}

/// The test saga: reserve, then ship; an undeliverable order releases its stock.
#[workflow]
async fn deliver(order: Order) -> Result<String, WorkflowError> {
    let reservation = reserve_stock(&order).await?;
    let parcel = ship(&order).await?;
    Ok(format!("{reservation} {parcel}"))
}

/// Runs one saga that completes and one that compensates on `store`, then
/// reads both back through a second runtime on the same store, as another
/// process would.
pub async fn saga_end_to_end<S: Store>(store: Arc<S>) {
    let run = unique_name("run");
    let rt = Runtime::builder()
        .store(store.clone())
        .register(deliver)
        .build()
        .await
        .expect("the runtime starts on the store");

    let ok_id = format!("e2e-{run}-ok");
    let ok = Order {
        id: ok_id.clone(),
        undeliverable: false,
    };
    let handle = rt.start(deliver, ok_id.clone(), ok).await.expect("starts");
    let outcome = tokio::time::timeout(Duration::from_secs(60), handle.outcome())
        .await
        .expect("the saga ends within a minute")
        .expect("its outcome is read");
    assert_eq!(
        outcome,
        Outcome::Completed(format!("reservation-{ok_id} parcel-{ok_id}"))
    );

    let bad_id = format!("e2e-{run}-bad");
    let bad = Order {
        id: bad_id.clone(),
        undeliverable: true,
    };
    let handle = rt
        .start(deliver, bad_id.clone(), bad)
        .await
        .expect("starts");
    let outcome = tokio::time::timeout(Duration::from_secs(60), handle.outcome())
        .await
        .expect("the saga ends within a minute")
        .expect("its outcome is read");
    match outcome {
        Outcome::Compensated(failure) => assert!(
            failure.to_string().contains("no carrier delivers there"),
            "{failure}"
        ),
        other => panic!("an undeliverable order must be compensated, got {other:?}"),
    }
    rt.shutdown().await;

    // A second runtime on the same store sees both instances where they ended.
    let observer = Runtime::builder()
        .store(store.clone())
        .register(deliver)
        .workers(0)
        .build()
        .await
        .expect("a second runtime starts on the store");
    let status = observer
        .status(&ok_id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.phase, Phase::Completed);
    let status = observer
        .status(&bad_id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.phase, Phase::Compensated);
    observer.shutdown().await;

    // Each instance is one plain key in the backend; remove them.
    for id in [&ok_id, &bad_id] {
        let key = sagaflow::record::key(id);
        let record = store
            .get(&key)
            .await
            .expect("reads")
            .expect("the record exists");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&record.value).is_ok(),
            "the record is JSON an operator can read"
        );
        store
            .delete(&key, Expect::Version(record.version))
            .await
            .expect("deletes");
    }
}

/// A worker runtime that polls only once an hour and a client-only runtime
/// (0 workers) share a backend, each through its own store object (as two
/// processes would): sagas the client starts complete anyway. The worker's
/// first scan may find the first saga; the later ones are started after it
/// completed, with the worker asleep for an hour, so only the store's
/// change notification can have woken it.
pub async fn client_start_wakes_the_worker<W: Store, C: Store>(
    worker_store: W,
    client_store: Arc<C>,
) {
    const SAGAS: usize = 3;
    let run = unique_name("wake");
    let hour = Duration::from_secs(3600);
    let worker = Runtime::builder()
        .store(worker_store)
        .register(deliver)
        .poll_interval(hour)
        .recovery_interval(hour)
        .build()
        .await
        .expect("the worker runtime starts");
    let client = Runtime::builder()
        .store(client_store.clone())
        .register(deliver)
        .workers(0)
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .expect("the client runtime starts");
    let mut ids = Vec::new();
    for n in 0..SAGAS {
        let id = format!("{run}-{n}");
        let order = Order {
            id: id.clone(),
            undeliverable: false,
        };
        let handle = client
            .start(deliver, id.clone(), order)
            .await
            .expect("starts");
        let outcome = tokio::time::timeout(Duration::from_secs(60), handle.outcome())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "saga {n} did not end within a minute: the worker (polling hourly) \
                     was not woken by the store's change notification"
                )
            })
            .expect("its outcome is read");
        assert_eq!(
            outcome,
            Outcome::Completed(format!("reservation-{id} parcel-{id}"))
        );
        let status = client.status(&id).await.expect("reads").expect("exists");
        assert_eq!(
            status.lease.owner.as_deref(),
            Some(worker.runtime_id()),
            "the worker runtime ran saga {n}"
        );
        ids.push(id);
    }
    worker.shutdown().await;
    client.shutdown().await;
    for id in ids {
        client_store
            .delete(&sagaflow::record::key(&id), Expect::Any)
            .await
            .expect("deletes the saga's record");
    }
}
