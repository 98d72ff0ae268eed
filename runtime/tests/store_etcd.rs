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
use sagaflow::store::{Expect, Store, Write, conformance};
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

/// A batch etcd would refuse as one transaction (more writes than
/// `--max-txn-ops`, values together past `--max-request-bytes`, a key
/// written twice) is cut into several: every write gets its own result and
/// lands, the second write of a key after the first.
#[tokio::test]
async fn a_batch_larger_than_one_transaction_is_written_in_several() {
    let Some(endpoints) = endpoints() else { return };
    let store = store(&endpoints).await;
    assert!(store.batches_writes());
    let mut writes: Vec<Write> = (0..300)
        .map(|i| Write {
            key: format!("small/{i:03}"),
            value: format!("value {i}").into_bytes(),
            expect: Expect::Absent,
        })
        .collect();
    for i in 0..3 {
        writes.push(Write {
            key: format!("large/{i}"),
            value: vec![i; MAX_VALUE_SIZE / 2],
            expect: Expect::Absent,
        });
    }
    writes.push(Write {
        key: "small/000".into(),
        value: b"rewritten".to_vec(),
        expect: Expect::Any,
    });
    writes.push(Write {
        key: "small/001".into(),
        value: b"clobbered".to_vec(),
        expect: Expect::Absent,
    });
    let results = store.put_batch(writes).await;
    assert_eq!(results.len(), 305);
    let versions: Vec<u64> = results[..304]
        .iter()
        .map(|result| *result.as_ref().expect("every write but the last lands"))
        .collect();
    assert!(
        matches!(results[304], Err(StoreError::Conflict)),
        "{:?}",
        results[304]
    );
    assert!(
        versions[303] > versions[0],
        "the rewrite comes after the create"
    );

    let page = store.scan("small/", None, 1000).await.unwrap();
    assert_eq!(page.entries.len(), 300);
    for (i, (key, entry)) in page.entries.iter().enumerate() {
        assert_eq!(key, &format!("small/{i:03}"));
        let expected = match i {
            0 => b"rewritten".to_vec(),
            _ => format!("value {i}").into_bytes(),
        };
        assert_eq!(entry.value, expected, "{key}");
        let version = if i == 0 { versions[303] } else { versions[i] };
        assert_eq!(entry.version, version, "{key}");
    }
    for i in 0..3u8 {
        let entry = store.get(&format!("large/{i}")).await.unwrap().unwrap();
        assert_eq!(entry.value, vec![i; MAX_VALUE_SIZE / 2]);
        assert_eq!(entry.version, versions[300 + usize::from(i)]);
    }
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
