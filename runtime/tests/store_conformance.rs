//! Every store we ship passes the conformance suite.

use std::sync::Arc;

use sagaflow::store::{Expect, ScanPage, Store, Versioned, conformance};
use sagaflow::{MemoryStore, StoreError};

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms_on_many_threads() {
    conformance::run(Arc::new(MemoryStore::new())).await;
}

/// The runtime's group commit keeps the contract: its concurrent puts go
/// in batches, each with its own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_conforms() {
    let grouped = sagaflow::store::GroupCommit::new(Arc::new(MemoryStore::new()));
    conformance::run(Arc::new(grouped)).await;
}

#[tokio::test]
async fn memory_store_conforms_as_dyn_store() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    conformance::run(store).await;
}

/// Two runs share one store, as they would share a server: each keeps to
/// its own prefix and leaves nothing behind.
#[tokio::test]
async fn runs_share_a_non_empty_store() {
    let store = Arc::new(MemoryStore::new());
    store
        .put(
            "sagaflow-conformance/zz-someone-else",
            b"theirs".to_vec(),
            Expect::Absent,
        )
        .await
        .unwrap();
    store
        .put("a", b"other".to_vec(), Expect::Absent)
        .await
        .unwrap();
    let (a, b) = (store.clone(), store.clone());
    tokio::join!(conformance::run(a), conformance::run(b));
    let page = store.scan("", None, 100).await.unwrap();
    let keys: Vec<&str> = page.entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "sagaflow-conformance/zz-someone-else"]);
}

/// The suite catches a store that breaks the contract.
#[tokio::test]
#[should_panic(expected = "store conformance [lax] put_absent")]
async fn catches_a_store_that_ignores_expectations() {
    conformance::run(Arc::new(Lax(MemoryStore::new()))).await;
}

/// A broken store: ignores every expectation.
struct Lax(MemoryStore);

#[async_trait::async_trait]
impl Store for Lax {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, _: Expect) -> Result<u64, StoreError> {
        self.0.put(key, value, Expect::Any).await
    }
    async fn delete(&self, key: &str, _: Expect) -> Result<(), StoreError> {
        self.0.delete(key, Expect::Any).await
    }
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.0.scan(prefix, after, limit).await
    }
    fn name(&self) -> &'static str {
        "lax"
    }
}
