//! A write whose answer is lost after it applied (a timeout after the
//! server committed): the worker re-reads the record, finds its own write
//! and carries on, so no step runs twice and the instance is not given up.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use common::{EACH_STEP_ONCE, Order, log_of, place_order};
use sagaflow::store::{Expect, ScanPage, Store, Versioned};
use sagaflow::{MemoryStore, Outcome, Runtime, StoreError};

/// Applies every write of an instance record, but answers every other one
/// with a timeout, as a server whose answer was lost would; or, `refusing`,
/// refuses every other one without applying it, as a dead member would.
#[derive(Clone, Default)]
struct LostAnswers {
    inner: MemoryStore,
    record_writes: Arc<AtomicU64>,
    refusing: bool,
}

#[async_trait]
impl Store for LostAnswers {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        if self.refusing
            && key.starts_with(sagaflow::record::KEY_PREFIX)
            && self.record_writes.fetch_add(1, Ordering::SeqCst) % 2 == 1
        {
            return Err(StoreError::Unavailable("connection refused".to_owned()));
        }
        let version = self.inner.put(key, value, expect).await?;
        if self.refusing {
            return Ok(version);
        }
        if key.starts_with(sagaflow::record::KEY_PREFIX)
            && self.record_writes.fetch_add(1, Ordering::SeqCst) % 2 == 1
        {
            return Err(StoreError::Timeout("the answer was lost".to_owned()));
        }
        Ok(version)
    }
    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        self.inner.delete(key, expect).await
    }
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.inner.scan(prefix, after, limit).await
    }
    fn name(&self) -> &'static str {
        "lost-answers"
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_that_landed_without_an_answer_is_not_run_again() {
    let store = LostAnswers::default();
    let rt = Runtime::builder()
        .store(store.clone())
        .register(place_order)
        .build()
        .await
        .expect("builds");
    let key = "ambiguous-1";
    let handle = rt
        .start(place_order, key, Order::new(key))
        .await
        .expect("starts");
    let outcome = handle.outcome().await.expect("ends");
    assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
    assert!(
        store.record_writes.load(Ordering::SeqCst) >= 4,
        "several transitions lost their answer"
    );
    // Every step ran once: no transition was redone after a lost answer.
    assert_eq!(log_of(key), EACH_STEP_ONCE);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_claim_that_landed_without_an_answer_is_kept() {
    let store = LostAnswers::default();
    let client = Runtime::builder()
        .store(store.clone())
        .register(place_order)
        .workers(0)
        .build()
        .await
        .expect("builds");
    let key = "ambiguous-claim";
    // The client's create is answered; the worker's claim is not.
    let handle = client
        .start(place_order, key, Order::new(key))
        .await
        .expect("starts");
    let worker = Runtime::builder()
        .store(store.clone())
        .register(place_order)
        .build()
        .await
        .expect("builds");
    let outcome = handle.outcome().await.expect("ends");
    assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
    let status = client.status(key).await.expect("reads").expect("exists");
    // Claimed once: the worker kept its claim rather than leave the
    // instance to be claimed again when the lease expired.
    assert_eq!(status.lease.epoch, 1, "{:?}", status.lease);
    assert_eq!(status.lease.owner.as_deref(), Some(worker.runtime_id()));
    assert_eq!(log_of(key), EACH_STEP_ONCE);
    worker.shutdown().await;
    client.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_transition_is_written_again_not_run_again() {
    let store = LostAnswers {
        refusing: true,
        ..LostAnswers::default()
    };
    let rt = Runtime::builder()
        .store(store.clone())
        .register(place_order)
        .build()
        .await
        .expect("builds");
    let key = "refused-1";
    let handle = rt
        .start(place_order, key, Order::new(key))
        .await
        .expect("starts");
    let outcome = handle.outcome().await.expect("ends");
    assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
    assert!(
        store.record_writes.load(Ordering::SeqCst) >= 8,
        "every transition was refused once"
    );
    // The step's result was kept and written again: no step ran twice.
    assert_eq!(log_of(key), EACH_STEP_ONCE);
    rt.shutdown().await;
}
