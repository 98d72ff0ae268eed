//! `PostgresStore` against a real server: the conformance suite, schema
//! creation, limits, errors, and a saga end to end.
//!
//! Set `SAGAFLOW_POSTGRES_URL` (`.ci/run` does) to run them, e.g.
//! `SAGAFLOW_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p sagaflow --features postgres --test store_postgres`.
//! Every test uses a table of its own and drops it.
#![cfg(feature = "postgres")]

mod backends;

use std::sync::Arc;
use std::time::Duration;

use sagaflow::store::postgres::{MAX_KEY_SIZE, PostgresStoreError};
use sagaflow::store::{Expect, Store, conformance};
use sagaflow::{PostgresStore, StoreError};

const HOW_TO_RUN: &str = "start PostgreSQL and run with \
    SAGAFLOW_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test, as .ci/run does";

fn server() -> Option<String> {
    backends::server_from_env("SAGAFLOW_POSTGRES_URL", HOW_TO_RUN)
}

/// A table of its own for one test, dropped when the test ends well.
struct Table {
    url: String,
    name: String,
}

impl Table {
    fn new(url: &str) -> Table {
        Table {
            url: url.to_owned(),
            name: backends::unique_name("sagaflow_test"),
        }
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::with_table(&self.url, &self.name)
            .await
            .expect("connects and creates the table")
    }

    async fn drop_table(self) {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connects");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS \"{0}\"; DROP SEQUENCE IF EXISTS \"{0}_version\"",
                self.name
            ))
            .await
            .expect("drops the test table");
        drop(client);
        let _ = driver.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    let Some(url) = server() else { return };
    let table = Table::new(&url);
    let store = Arc::new(table.store().await);
    // Twice: the second run meets a table that already has a history.
    conformance::run(store.clone()).await;
    conformance::run(store as Arc<dyn Store>).await;
    table.drop_table().await;
}

#[tokio::test]
async fn postgres_store_conforms_on_the_default_table() {
    let Some(url) = server() else { return };
    // The suite keeps to a unique prefix and cleans up after itself, so the
    // shared default table is safe to use.
    let store = PostgresStore::connect(&url).await.expect("connects");
    assert_eq!(store.table(), "sagaflow_kv");
    conformance::run(Arc::new(store)).await;
}

#[tokio::test]
async fn stores_on_one_table_share_keys_and_versions() {
    let Some(url) = server() else { return };
    let table = Table::new(&url);
    let (a, b) = tokio::join!(table.store(), table.store());
    let v1 = a
        .put("k", b"from a".to_vec(), Expect::Absent)
        .await
        .unwrap();
    let got = b.get("k").await.unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"from a"[..], v1));
    let v2 = b
        .put("k", b"from b".to_vec(), Expect::Version(v1))
        .await
        .unwrap();
    assert!(matches!(
        a.put("k", b"stale".to_vec(), Expect::Version(v1)).await,
        Err(StoreError::Conflict)
    ));
    a.delete("k", Expect::Version(v2)).await.unwrap();
    // Reconnecting keeps the sequence: versions go on increasing.
    drop((a, b));
    let c = table.store().await;
    let v3 = c.put("k", b"again".to_vec(), Expect::Absent).await.unwrap();
    assert!(v3 > v2, "{v3} must exceed {v2}");
    table.drop_table().await;
}

#[tokio::test]
async fn table_names_must_be_identifiers() {
    // Rejected before any connection: no server needed.
    for bad in ["", "1st", "kv; DROP TABLE users", "my-table", "\"quoted\""] {
        let err = PostgresStore::with_table("postgres://postgres@127.0.0.1:1/test", bad)
            .await
            .unwrap_err();
        let StoreError::Backend(source) = &err else {
            panic!("{bad:?}: expected Backend(InvalidTableName), got {err:?}")
        };
        assert!(
            matches!(
                source.downcast_ref::<PostgresStoreError>(),
                Some(PostgresStoreError::InvalidTableName { .. })
            ),
            "{bad:?}: {err}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/test?connect_timeout=1");
    let started = std::time::Instant::now();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    hold.abort();
}

#[tokio::test]
async fn limits_are_typed_errors() {
    let Some(url) = server() else { return };
    let table = Table::new(&url);
    let store = table.store().await;
    let long_key = "k".repeat(MAX_KEY_SIZE + 1);
    let err = store
        .put(&long_key, b"x".to_vec(), Expect::Any)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TooLarge {
                limit: MAX_KEY_SIZE,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.get(&long_key).await.unwrap(), None);

    let err = store
        .put("nul\0key", b"x".to_vec(), Expect::Any)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(e) if e.downcast_ref::<PostgresStoreError>().is_some()),
        "{err:?}"
    );
    assert_eq!(store.get("nul\0key").await.unwrap(), None);
    store.delete("nul\0key", Expect::Any).await.unwrap();
    let page = store.scan("nul\0", None, 10).await.unwrap();
    assert!(page.entries.is_empty());
    table.drop_table().await;
}

#[tokio::test]
async fn values_are_parameters_not_sql() {
    let Some(url) = server() else { return };
    let table = Table::new(&url);
    let store = table.store().await;
    let key = "k'); DROP TABLE x; --";
    let value = b"'; DELETE FROM sagaflow_kv; --".to_vec();
    let v = store.put(key, value.clone(), Expect::Absent).await.unwrap();
    let got = store.get(key).await.unwrap().unwrap();
    assert_eq!((got.value, got.version), (value, v));
    table.drop_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_runs_end_to_end_on_postgres() {
    let Some(url) = server() else { return };
    let table = Table::new(&url);
    backends::saga_end_to_end(Arc::new(table.store().await)).await;
    table.drop_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_due_hints() {
    let Some(url) = server() else { return };
    let table = Table::new(&url);
    let store = table.store().await;
    conformance::due_notifications(&store, &conformance::unique_prefix()).await;
    drop(store);
    table.drop_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_client_wakes_a_worker_through_listen_notify() {
    let Some(url) = server() else { return };
    let table = Table::new(&url);
    // Two pools, as two processes would have.
    backends::client_start_wakes_the_worker(table.store().await, Arc::new(table.store().await))
        .await;
    table.drop_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_group_commit_conforms() {
    let Some(url) = server() else { return };
    let table = Table::new(&url);
    let grouped = sagaflow::store::GroupCommit::new(Arc::new(table.store().await));
    conformance::run(Arc::new(grouped)).await;
    table.drop_table().await;
}
