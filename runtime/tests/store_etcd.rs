//! `EtcdStore` against a real cluster: the conformance suite, key prefixes,
//! limits, errors, and a saga end to end.
//!
//! Set `SAGAFLOW_ETCD_ENDPOINTS` (comma-separated; `.ci/run` starts a member
//! and sets it) to run them, e.g.
//! `SAGAFLOW_ETCD_ENDPOINTS=http://127.0.0.1:23790 cargo test -p sagaflow --features etcd --test store_etcd`.
//! Every test keeps its keys under a key prefix of its own.
#![cfg(feature = "etcd")]

mod backends;

use std::sync::Arc;

use sagaflow::store::etcd::{MAX_KEY_SIZE, MAX_VALUE_SIZE};
use sagaflow::store::{Expect, Store, conformance};
use sagaflow::{EtcdStore, StoreError};

const HOW_TO_RUN: &str = "start etcd and run with \
    SAGAFLOW_ETCD_ENDPOINTS=http://127.0.0.1:23790, as .ci/run does";

fn endpoints() -> Option<Vec<String>> {
    let list = backends::server_from_env("SAGAFLOW_ETCD_ENDPOINTS", HOW_TO_RUN)?;
    Some(
        list.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// A store whose keys live under a prefix no other test run uses.
async fn store(endpoints: &[String]) -> EtcdStore {
    EtcdStore::connect(endpoints)
        .await
        .expect("connects")
        .with_key_prefix(format!("{}/", backends::unique_name("sagaflow-test")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_conforms() {
    let Some(endpoints) = endpoints() else { return };
    let store = Arc::new(store(&endpoints).await);
    // Twice: the second run meets a keyspace with a history.
    conformance::run(store.clone()).await;
    conformance::run(store as Arc<dyn Store>).await;
}

#[tokio::test]
async fn etcd_store_conforms_without_a_key_prefix() {
    let Some(endpoints) = endpoints() else { return };
    // The suite keeps to a unique prefix and cleans up after itself.
    let store = EtcdStore::connect(&endpoints).await.expect("connects");
    conformance::run(Arc::new(store)).await;
}

#[tokio::test]
async fn key_prefixes_separate_stores() {
    let Some(endpoints) = endpoints() else { return };
    let (a, b) = tokio::join!(store(&endpoints), store(&endpoints));
    let plain = EtcdStore::connect(&endpoints).await.unwrap();
    let v = a.put("k", b"a".to_vec(), Expect::Absent).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    // Without a prefix, the key is visible under its full name.
    let full = format!("{}k", a.key_prefix());
    assert_eq!(plain.get(&full).await.unwrap().unwrap().version, v);
    let page = a.scan("", None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].0, "k");
    a.delete("k", Expect::Version(v)).await.unwrap();
}

#[tokio::test]
async fn versions_are_mod_revisions_and_never_reused() {
    let Some(endpoints) = endpoints() else { return };
    let store = store(&endpoints).await;
    let v1 = store.put("k", b"1".to_vec(), Expect::Absent).await.unwrap();
    store.delete("k", Expect::Version(v1)).await.unwrap();
    // Version 0 is what etcd compares an absent key as: it must not match.
    let r = store.put("k", b"x".to_vec(), Expect::Version(0)).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    let r = store.delete("k", Expect::Version(0)).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    let v2 = store.put("k", b"2".to_vec(), Expect::Absent).await.unwrap();
    assert!(v2 > v1);
    store.delete("k", Expect::Any).await.unwrap();
}

#[tokio::test]
async fn limits_are_typed_errors() {
    let Some(endpoints) = endpoints() else { return };
    let store = store(&endpoints).await;
    let err = store
        .put("big", vec![7; MAX_VALUE_SIZE + 1], Expect::Any)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TooLarge {
                limit: MAX_VALUE_SIZE,
                ..
            }
        ),
        "{err:?}"
    );
    // The largest accepted value does fit in the server's request limit.
    let v = store
        .put("big", vec![7; MAX_VALUE_SIZE], Expect::Absent)
        .await
        .unwrap();
    store.delete("big", Expect::Version(v)).await.unwrap();
    let err = store
        .put(&"k".repeat(MAX_KEY_SIZE), b"x".to_vec(), Expect::Any)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");

    // A store told the server takes more is stopped by the server.
    let lax = store.clone().with_max_request_bytes(8 << 20);
    let err = lax
        .put("big", vec![7; 4 << 20], Expect::Any)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");
    assert_eq!(store.get("big").await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_cluster_is_unavailable() {
    let err = EtcdStore::connect(["http://127.0.0.1:1"])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_runs_end_to_end_on_etcd() {
    let Some(endpoints) = endpoints() else { return };
    backends::saga_end_to_end(Arc::new(store(&endpoints).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watches_due_hints() {
    let Some(endpoints) = endpoints() else { return };
    let store = store(&endpoints).await;
    conformance::due_notifications(&store, &conformance::unique_prefix()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_client_wakes_a_worker_through_a_watch() {
    let Some(endpoints) = endpoints() else { return };
    let worker_store = store(&endpoints).await;
    // Its own connection, as another process would have.
    let client_store = EtcdStore::connect(&endpoints)
        .await
        .expect("connects")
        .with_key_prefix(worker_store.key_prefix());
    backends::client_start_wakes_the_worker(worker_store, Arc::new(client_store)).await;
}
