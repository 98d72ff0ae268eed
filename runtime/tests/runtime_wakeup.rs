//! Change notification on the in-process stores: a worker runtime that
//! polls hourly runs what a client runtime on the same store object starts,
//! woken by the store ([`Store::due_changes`]); and the stores notify
//! writes of due keys as the contract says.
//!
//! [`Store::due_changes`]: sagaflow::store::Store::due_changes

mod backends;

use std::sync::Arc;

use sagaflow::store::{Expect, Store, WAKE_PREFIX, conformance};
use sagaflow::{EmbeddedStore, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_client_wakes_a_worker_on_one_memory_store() {
    let store = Arc::new(MemoryStore::new());
    backends::client_start_wakes_the_worker(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_client_wakes_a_worker_on_one_embedded_store() {
    let dir = std::env::temp_dir().join(backends::unique_name("sagaflow-wakeup"));
    let store = Arc::new(EmbeddedStore::open(&dir).expect("opens"));
    backends::client_start_wakes_the_worker(store.clone(), store.clone()).await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn in_process_stores_notify_due_keys_only() {
    let dir = std::env::temp_dir().join(backends::unique_name("sagaflow-wakeup"));
    let embedded = EmbeddedStore::open(&dir).expect("opens");
    let stores: [Arc<dyn Store>; 2] = [Arc::new(MemoryStore::new()), Arc::new(embedded)];
    for store in stores {
        conformance::due_notifications(&*store, &conformance::unique_prefix()).await;
        let changes = store.due_changes().expect("in-process stores notify");
        store
            .put("instances/x", b"{}".to_vec(), Expect::Any)
            .await
            .expect("writes");
        assert!(
            !changes.has_changed().expect("open"),
            "{}: a write outside the due index must not notify",
            store.name()
        );
        let key = format!("{WAKE_PREFIX}00000000000000000001/x");
        store
            .put(&key, b"x".to_vec(), Expect::Any)
            .await
            .expect("writes");
        assert!(
            changes.has_changed().expect("open"),
            "{}: a due hint must notify",
            store.name()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
