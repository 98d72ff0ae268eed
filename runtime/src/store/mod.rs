//! The key-value contract every backend implements, and the backends.
//!
//! The runtime needs only single-key compare-and-swap and an ordered prefix
//! scan; never a multi-key transaction. A backend is usable as
//! `Arc<dyn Store>`.

use async_trait::async_trait;

use crate::error::StoreError;

pub mod conformance;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

/// The smallest byte string greater than every one starting with `prefix`,
/// or `None` (an empty prefix, or only `0xFF` bytes) when there is none.
#[cfg_attr(not(any(feature = "redis", feature = "etcd")), allow(dead_code))]
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < u8::MAX {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

/// The precondition of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this version.
    Version(u64),
    /// No precondition.
    Any,
}

/// A stored value and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes, as written.
    pub value: Vec<u8>,
    /// Changes on every write of the key; compare it with [`Expect::Version`].
    pub version: u64,
}

/// One page of an ordered prefix scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys and values in ascending key order.
    pub entries: Vec<(String, Versioned)>,
    /// Pass as `after` to read the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A key-value store the runtime keeps its instances in.
///
/// Versions are per key, strictly increase with every write of that key and
/// are never reused, even after a delete.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads a key.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Writes a key if `expect` holds, returning the new version; fails with
    /// [`StoreError::Conflict`] (and writes nothing) if it does not.
    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError>;

    /// Deletes a key if `expect` holds; [`StoreError::Conflict`] if it does
    /// not. Deleting an absent key with [`Expect::Any`] succeeds.
    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError>;

    /// Keys starting with `prefix`, ascending, strictly after `after` if
    /// given, at most `limit` of them.
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError>;

    /// A short name for logs and errors (`memory`, `embedded`, `postgres`).
    fn name(&self) -> &'static str;
}

#[async_trait]
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        (**self).get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        (**self).put(key, value, expect).await
    }
    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        (**self).delete(key, expect).await
    }
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        (**self).scan(prefix, after, limit).await
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
}
