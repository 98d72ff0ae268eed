//! `RedisStore` against a real server: the conformance suite, namespaces,
//! limits, errors, and a saga end to end.
//!
//! Set `SAGAFLOW_REDIS_URL` (`.ci/run` does) to run them, e.g.
//! `SAGAFLOW_REDIS_URL=redis://127.0.0.1:6379 cargo test -p sagaflow --features redis --test store_redis`.
//! Every test uses a namespace of its own.
#![cfg(feature = "redis")]

mod backends;

use std::sync::Arc;

use sagaflow::store::redis::RedisStoreError;
use sagaflow::store::{Expect, Store, conformance};
use sagaflow::{RedisStore, StoreError};

const HOW_TO_RUN: &str = "start Redis and run with \
    SAGAFLOW_REDIS_URL=redis://127.0.0.1:6379, as .ci/run does";

fn server() -> Option<String> {
    backends::server_from_env("SAGAFLOW_REDIS_URL", HOW_TO_RUN)
}

async fn store(url: &str) -> RedisStore {
    RedisStore::with_namespace(url, &backends::unique_name("sagaflow-test"))
        .await
        .expect("connects")
}

/// Removes the counter the suite leaves (it deletes its keys, and with them
/// the index entries, but the version counter stays).
async fn drop_namespace(url: &str, namespace: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{{{namespace}}}:v"))
        .arg(format!("{{{namespace}}}:i"))
        .query_async(&mut connection)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms() {
    let Some(url) = server() else { return };
    let store = Arc::new(store(&url).await);
    // Twice: the second run meets a namespace with a history.
    conformance::run(store.clone()).await;
    conformance::run(store.clone() as Arc<dyn Store>).await;
    drop_namespace(&url, store.namespace()).await;
}

#[tokio::test]
async fn redis_store_conforms_in_the_default_namespace() {
    let Some(url) = server() else { return };
    // The suite keeps to a unique prefix and cleans up after itself.
    let store = RedisStore::connect(&url).await.expect("connects");
    assert_eq!(store.namespace(), "sagaflow");
    conformance::run(Arc::new(store)).await;
}

#[tokio::test]
async fn namespaces_do_not_see_each_other() {
    let Some(url) = server() else { return };
    let (a, b) = tokio::join!(store(&url), store(&url));
    a.put("k", b"a".to_vec(), Expect::Absent).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    b.put("k", b"b".to_vec(), Expect::Absent).await.unwrap();
    assert_eq!(a.scan("", None, 10).await.unwrap().entries.len(), 1);
    a.delete("k", Expect::Any).await.unwrap();
    b.delete("k", Expect::Any).await.unwrap();
    drop_namespace(&url, a.namespace()).await;
    drop_namespace(&url, b.namespace()).await;
}

#[tokio::test]
async fn a_second_connection_continues_the_versions() {
    let Some(url) = server() else { return };
    let a = store(&url).await;
    let v1 = a.put("k", b"one".to_vec(), Expect::Absent).await.unwrap();
    a.delete("k", Expect::Version(v1)).await.unwrap();
    let b = RedisStore::with_namespace(&url, a.namespace())
        .await
        .unwrap();
    let v2 = b.put("k", b"two".to_vec(), Expect::Absent).await.unwrap();
    assert!(v2 > v1, "{v2} must exceed {v1}");
    b.delete("k", Expect::Any).await.unwrap();
    drop_namespace(&url, a.namespace()).await;
}

#[tokio::test]
async fn the_store_survives_a_flushed_script_cache() {
    let Some(url) = server() else { return };
    let store = store(&url).await;
    store
        .put("k", b"one".to_vec(), Expect::Absent)
        .await
        .unwrap();
    // EVALSHA then fails with NOSCRIPT; the store must fall back to EVAL.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut connection)
        .await
        .unwrap();
    store.put("k", b"two".to_vec(), Expect::Any).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"two");
    store.delete("k", Expect::Any).await.unwrap();
    drop_namespace(&url, store.namespace()).await;
}

#[tokio::test]
async fn invalid_namespaces_and_urls_are_typed_errors() {
    for bad in ["", "a{b", "a}b"] {
        let err = RedisStore::with_namespace("redis://127.0.0.1:1", bad)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(e) if matches!(e.downcast_ref::<RedisStoreError>(), Some(RedisStoreError::InvalidNamespace(_)))),
            "{bad:?}: {err:?}"
        );
    }
    let err = RedisStore::connect("not a url").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(e) if matches!(e.downcast_ref::<RedisStoreError>(), Some(RedisStoreError::InvalidUrl(_)))),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let err = RedisStore::connect("redis://127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

const BUSY_FOR_HALF_A_SECOND: &str = r"
local function now() local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
local start = now()
while now() - start < 500000 do end
";

#[tokio::test]
async fn a_silent_server_times_out() {
    let Some(url) = server() else { return };
    let store = store(&url)
        .await
        .with_timeout(std::time::Duration::from_millis(100));
    // Block the server for half a second with a busy script of our own (Redis
    // runs one script at a time and answers nobody meanwhile).
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let busy = tokio::spawn(async move {
        // This client gives up waiting on its own after a while: fine.
        let _: Result<(), _> = redis::cmd("EVAL")
            .arg(BUSY_FOR_HALF_A_SECOND)
            .arg(0)
            .query_async(&mut connection)
            .await;
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout(_)), "{err:?}");
    busy.await.unwrap();
    // And it works again once the server is free.
    let store = store.with_timeout(std::time::Duration::from_secs(5));
    assert_eq!(store.get("k").await.unwrap(), None);
    drop_namespace(&url, store.namespace()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_runs_end_to_end_on_redis() {
    let Some(url) = server() else { return };
    let store = Arc::new(store(&url).await);
    backends::saga_end_to_end(store.clone()).await;
    drop_namespace(&url, store.namespace()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_publishes_due_hints() {
    let Some(url) = server() else { return };
    let store = store(&url).await;
    conformance::due_notifications(&store, &conformance::unique_prefix()).await;
    drop_namespace(&url, store.namespace()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_client_wakes_a_worker_through_pub_sub() {
    let Some(url) = server() else { return };
    let worker_store = store(&url).await;
    // Its own connections, as another process would have.
    let client_store = RedisStore::with_namespace(&url, worker_store.namespace())
        .await
        .expect("connects");
    let namespace = worker_store.namespace().to_owned();
    backends::client_start_wakes_the_worker(worker_store, Arc::new(client_store)).await;
    drop_namespace(&url, &namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_group_commit_conforms() {
    let Some(url) = server() else { return };
    let store = store(&url).await;
    let namespace = store.namespace().to_owned();
    let grouped = sagaflow::store::GroupCommit::new(Arc::new(store));
    conformance::run(Arc::new(grouped)).await;
    drop_namespace(&url, &namespace).await;
}
