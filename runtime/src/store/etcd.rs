//! `EtcdStore`: keys in an etcd v3 cluster. Replicated and linearizable:
//! the store to scale out on.
//!
//! ```no_run
//! use sagaflow::EtcdStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sagaflow::StoreError> {
//! let store = EtcdStore::connect(["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"])
//!     .await?
//!     // Optional: keep sagaflow's keys under a prefix of the shared keyspace.
//!     .with_key_prefix("sagaflow/");
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! # How the contract maps onto etcd
//!
//! - a key's version is its `mod_revision`: the cluster-wide revision of
//!   the write that last changed it. Revisions only grow and are never
//!   handed out twice, so versions are never reused, even after a delete;
//! - [`Expect::Version`] is a transaction comparing `mod_revision`,
//!   [`Expect::Absent`] one comparing `create_revision` with 0 (etcd's
//!   "the key does not exist"): one round trip, no lock;
//! - [`scan`](Store::scan) is a range request `[start, prefix end)` with a
//!   limit; etcd returns keys in byte order and says whether more remain;
//! - [`put_batch`](Store::put_batch) is one transaction whose operations
//!   are nested transactions, one per write, each with its own condition:
//!   every write gets its own result, all in one Raft entry and fsync, at
//!   one revision. A batch etcd would refuse whole (over 127 writes, past
//!   `--max-request-bytes`, a key written twice) goes as several, in order;
//! - every read is linearizable (etcd's default), so a read sees every
//!   write acknowledged before it, whichever member answers.
//!
//! # Change notification
//!
//! The first [`Store::due_changes`] opens a watch on the due index (keys
//! under [`WAKE_PREFIX`], behind the key prefix), for
//! puts only; it is re-established with backoff after an error or a
//! cancel, waking its subscribers each time (events in between are not
//! replayed), and closed when the last subscriber is dropped.
//!
//! # Failover
//!
//! The client balances over every endpoint given; HTTP/2 keep-alive pings,
//! sent even while idle, find a dead member within seconds, so requests go
//! to the live ones, and requests require a leader (a member cut off from
//! the quorum answers "no leader", which is [`StoreError::Unavailable`],
//! rather than stalling).
//!
//! # Durability
//!
//! etcd acknowledges a write once a majority of members has it in its
//! write-ahead log, fsync'd. Run three (or five) members: a single member,
//! like the one `.ci/run` starts, survives a process crash but not the
//! loss of its disk.
//!
//! etcd keeps every past revision of every key until it is compacted, and
//! stops accepting writes ([`StoreError::Unavailable`], "database space
//! exceeded") when its backend reaches `--quota-backend-bytes` (2 GiB by
//! default). A saga rewrites its record on every step, so run etcd with
//! `--auto-compaction-mode=periodic --auto-compaction-retention=1h` (or
//! `revision` mode) and defragment now and then.
//!
//! # Limits and errors
//!
//! - one request is at most `--max-request-bytes`, 1.5 MiB by default
//!   ([`DEFAULT_MAX_REQUEST_BYTES`]): values up to that less 16 KiB
//!   ([`MAX_VALUE_SIZE`] by default; see
//!   [`EtcdStore::with_max_request_bytes`] for a server configured
//!   otherwise), keys up to [`MAX_KEY_SIZE`] bytes; larger ones fail with
//!   [`StoreError::TooLarge`] and write nothing;
//! - no member reachable, no leader, the database full:
//!   [`StoreError::Unavailable`];
//! - no answer within the operation timeout (30 s unless set with
//!   [`EtcdStore::with_timeout`]): [`StoreError::Timeout`], the write may or
//!   may not have been applied;
//! - anything else: [`StoreError::Backend`].

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse,
    WatchClient, WatchFilterType, WatchOptions,
};
use tokio::sync::watch;

use super::listening::Listening;
use super::{Expect, ScanPage, Store, Versioned, WAKE_PREFIX, Write, prefix_successor};
use crate::error::StoreError;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// What a request carries besides its value: the key twice (compare and
/// put), the transaction's framing and the Raft entry's header.
const REQUEST_OVERHEAD: usize = 16 * 1024;

/// The largest value [`EtcdStore`] accepts from a server with the default
/// request limit: 1.5 MiB less 16 KiB.
pub const MAX_VALUE_SIZE: usize = DEFAULT_MAX_REQUEST_BYTES - REQUEST_OVERHEAD;

/// The most writes in one transaction of [`Store::put_batch`]: etcd's
/// default `--max-txn-ops` (128) bounds the outer transaction's operations
/// plus those of each nested one (one put).
const MAX_TXN_OPS: usize = 127;

/// What one nested transaction of a batch adds besides its key (twice)
/// and value: its framing and condition.
const NESTED_WRITE_OVERHEAD: usize = 64;

/// The longest key, in bytes (key prefix included), [`EtcdStore`] accepts.
pub const MAX_KEY_SIZE: usize = 4096;

/// How long one operation may take unless changed with
/// [`EtcdStore::with_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response the client decodes: a scan page of many large
/// values can exceed gRPC's default of 4 MiB.
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// A store in an etcd v3 cluster.
///
/// Cheap to clone: clones share the gRPC channel. See the
/// [module docs](self) for the mapping, durability and limits.
///
/// ```no_run
/// use sagaflow::prelude::*;
/// # use sagaflow::EtcdStore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sagaflow::Error> {
/// let store = EtcdStore::connect(["http://127.0.0.1:2379"]).await?;
/// let runtime = Runtime::builder().store(store).build().await?;
/// # let _ = runtime;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    listener: Arc<Listener>,
    key_prefix: String,
    timeout: Duration,
    max_value_size: usize,
}

/// The watching side of change notification, shared by clones with the
/// same key prefix.
struct Listener {
    watch: WatchClient,
    listening: Listening,
}

impl Listener {
    fn new(watch: WatchClient) -> Arc<Listener> {
        Arc::new(Listener {
            watch,
            listening: Listening::new(),
        })
    }
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("max_value_size", &self.max_value_size)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster at `endpoints` (`http://host:2379`; the
    /// client balances between them) and checks that it answers.
    ///
    /// Fails with [`StoreError::Unavailable`] if no endpoint answers within
    /// 10 seconds.
    pub async fn connect<E: AsRef<str>>(
        endpoints: impl AsRef<[E]>,
    ) -> Result<EtcdStore, StoreError> {
        let connect_timeout = Duration::from_secs(10);
        let options = ConnectOptions::new()
            .with_connect_timeout(connect_timeout)
            // Pings while idle too, so a dead member's connection is found
            // and left within seconds, not on the next request to it.
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            .with_tcp_keepalive(Duration::from_secs(5))
            .with_require_leader(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| from_etcd(e, None))?;
        let store = EtcdStore {
            listener: Listener::new(client.watch_client()),
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            key_prefix: String::new(),
            timeout: DEFAULT_TIMEOUT,
            max_value_size: MAX_VALUE_SIZE,
        };
        // The channel connects lazily: ask for one key to know that a
        // member answers (and has a leader: reads are linearizable).
        let mut kv = store.kv.clone();
        let probe = kv.get(
            "sagaflow-connect-probe",
            Some(GetOptions::new().with_count_only()),
        );
        match tokio::time::timeout(connect_timeout, probe).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(match from_etcd(e, None) {
                StoreError::Timeout(message) => StoreError::Unavailable(message),
                other => other,
            }),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no etcd member answered within {connect_timeout:?}"
            ))),
        }
    }

    /// Keeps every key under `prefix` in etcd (`prefix` is prepended on
    /// write and stripped on read), so sagaflow can share a cluster's
    /// keyspace; e.g. `"sagaflow/"`.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> EtcdStore {
        self.key_prefix = prefix.into();
        // It watches another key range.
        self.listener = Listener::new(self.listener.watch.clone());
        self
    }

    /// Sets how long one operation may take before it fails with
    /// [`StoreError::Timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> EtcdStore {
        self.timeout = timeout;
        self
    }

    /// For a server run with another `--max-request-bytes`: values up to
    /// `bytes` less 16 KiB are accepted.
    pub fn with_max_request_bytes(mut self, bytes: usize) -> EtcdStore {
        self.max_value_size = bytes.saturating_sub(REQUEST_OVERHEAD);
        self
    }

    /// The prefix every key is kept under in etcd.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The largest value this store accepts.
    pub fn max_value_size(&self) -> usize {
        self.max_value_size
    }

    fn etcd_key(&self, key: &str) -> Vec<u8> {
        [self.key_prefix.as_bytes(), key.as_bytes()].concat()
    }

    /// The store key of an etcd key read back.
    fn store_key(&self, raw: &[u8]) -> Result<String, StoreError> {
        raw.strip_prefix(self.key_prefix.as_bytes())
            .and_then(|key| std::str::from_utf8(key).ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                StoreError::Backend(
                    format!(
                        "etcd returned key {:?}, which is not UTF-8 under the prefix {:?}",
                        String::from_utf8_lossy(raw),
                        self.key_prefix
                    )
                    .into(),
                )
            })
    }

    /// The etcd key of a write of `value` to `key`, or
    /// [`StoreError::TooLarge`] if either is larger than etcd takes.
    fn checked_key(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if value.len() > self.max_value_size {
            return Err(StoreError::TooLarge {
                size: value.len(),
                limit: self.max_value_size,
            });
        }
        let etcd_key = self.etcd_key(key);
        if etcd_key.len() > MAX_KEY_SIZE {
            return Err(StoreError::TooLarge {
                size: etcd_key.len(),
                limit: MAX_KEY_SIZE,
            });
        }
        Ok(etcd_key)
    }

    /// Writes `batch` (checked writes to distinct keys) in one transaction
    /// of nested transactions, each with its own condition, and puts each
    /// write's result in `results`.
    async fn put_together(
        &self,
        batch: Vec<BatchedWrite>,
        results: &mut [Option<Result<u64, StoreError>>],
    ) {
        let mut indices = Vec::with_capacity(batch.len());
        let mut nested = Vec::with_capacity(batch.len());
        let size = batch.iter().map(|write| write.value.len()).sum();
        for write in batch {
            indices.push(write.index);
            let put = TxnOp::put(write.etcd_key, write.value, None);
            let mut txn = Txn::new();
            if let Some(compare) = write.compare {
                txn = txn.when([compare]);
            }
            nested.push(TxnOp::txn(txn.and_then([put])));
        }
        let mut kv = self.kv.clone();
        let answer = self
            .run(Some(size), kv.txn(Txn::new().and_then(nested)))
            .await
            .and_then(|response| {
                let revision = revision_of(response.header())?;
                let succeeded: Vec<bool> = response
                    .op_responses()
                    .into_iter()
                    .map(|op| matches!(op, TxnOpResponse::Txn(txn) if txn.succeeded()))
                    .collect();
                if succeeded.len() == indices.len() {
                    Ok((revision, succeeded))
                } else {
                    Err(StoreError::Backend(
                        format!(
                            "etcd answered {} of the {} writes of a transaction",
                            succeeded.len(),
                            indices.len()
                        )
                        .into(),
                    ))
                }
            });
        match answer {
            Ok((revision, succeeded)) => {
                for (index, succeeded) in indices.into_iter().zip(succeeded) {
                    results[index] = Some(if succeeded {
                        Ok(revision)
                    } else {
                        Err(StoreError::Conflict)
                    });
                }
            }
            Err(error) => {
                // Nothing or everything was applied: each write is told.
                let message = error.to_string();
                for index in indices {
                    results[index] = Some(Err(same_kind(&error, &message)));
                }
            }
        }
    }

    /// Runs `operation` under the store's timeout; `value_size` names the
    /// value a request carried, for [`StoreError::TooLarge`].
    async fn run<T>(
        &self,
        value_size: Option<usize>,
        operation: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(result) => {
                result.map_err(|e| from_etcd(e, value_size.map(|size| (size, self.max_value_size))))
            }
            Err(_) => Err(StoreError::Timeout(format!(
                "no answer from etcd within {:?}",
                self.timeout
            ))),
        }
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Result<u64, StoreError> {
    header
        .map(|header| header.revision())
        .and_then(|revision| u64::try_from(revision).ok())
        .ok_or_else(|| StoreError::Backend("etcd answered without a valid revision".into()))
}

fn version_of(mod_revision: i64, key: &str) -> Result<u64, StoreError> {
    u64::try_from(mod_revision).map_err(|_| {
        StoreError::Backend(
            format!("etcd returned key {key:?} with revision {mod_revision}").into(),
        )
    })
}

/// A checked write waiting for its transaction: where its result goes,
/// and what to write under which condition.
struct BatchedWrite {
    index: usize,
    etcd_key: Vec<u8>,
    value: Vec<u8>,
    compare: Option<Compare>,
}

/// The condition of a write to `etcd_key` under `expect`; `None` for
/// [`Expect::Any`]. [`StoreError::Conflict`] for a version no key has.
fn compare_of(etcd_key: &[u8], expect: Expect) -> Result<Option<Compare>, StoreError> {
    match expect {
        Expect::Any => Ok(None),
        Expect::Absent => Ok(Some(Compare::create_revision(
            etcd_key.to_vec(),
            CompareOp::Equal,
            0,
        ))),
        Expect::Version(version) => match i64::try_from(version) {
            // An absent key compares as revision 0, and no present key
            // has it: `Version(0)` must not create the key.
            Ok(version) if version > 0 => Ok(Some(Compare::mod_revision(
                etcd_key.to_vec(),
                CompareOp::Equal,
                version,
            ))),
            _ => Err(StoreError::Conflict),
        },
    }
}

/// `error` again, for another write of the same failed transaction.
fn same_kind(error: &StoreError, message: &str) -> StoreError {
    match error {
        StoreError::Conflict => StoreError::Conflict,
        StoreError::Unavailable(_) => StoreError::Unavailable(message.to_owned()),
        StoreError::Timeout(_) => StoreError::Timeout(message.to_owned()),
        StoreError::TooLarge { size, limit } => StoreError::TooLarge {
            size: *size,
            limit: *limit,
        },
        StoreError::Backend(_) => StoreError::Backend(message.to_owned().into()),
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let mut kv = self.kv.clone();
        let response = self.run(None, kv.get(self.etcd_key(key), None)).await?;
        match response.kvs().first() {
            None => Ok(None),
            Some(entry) => Ok(Some(Versioned {
                value: entry.value().to_vec(),
                version: version_of(entry.mod_revision(), key)?,
            })),
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        let etcd_key = self.checked_key(key, &value)?;
        let size = Some(value.len());
        let mut kv = self.kv.clone();
        let Some(compare) = compare_of(&etcd_key, expect)? else {
            let response = self.run(size, kv.put(etcd_key, value, None)).await?;
            return revision_of(response.header());
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(etcd_key, value, None)]);
        let response = self.run(size, kv.txn(txn)).await?;
        if response.succeeded() {
            revision_of(response.header())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        let etcd_key = self.etcd_key(key);
        let mut kv = self.kv.clone();
        match expect {
            Expect::Any => {
                self.run(None, kv.delete(etcd_key, None)).await?;
                Ok(())
            }
            Expect::Absent => {
                let options = GetOptions::new().with_count_only();
                let response = self.run(None, kv.get(etcd_key, Some(options))).await?;
                if response.count() == 0 {
                    Ok(())
                } else {
                    Err(StoreError::Conflict)
                }
            }
            Expect::Version(version) => {
                let version = match i64::try_from(version) {
                    Ok(version) if version > 0 => version,
                    _ => return Err(StoreError::Conflict),
                };
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        etcd_key.clone(),
                        CompareOp::Equal,
                        version,
                    )])
                    .and_then([TxnOp::delete(etcd_key, None)]);
                let response = self.run(None, kv.txn(txn)).await?;
                if response.succeeded() {
                    Ok(())
                } else {
                    Err(StoreError::Conflict)
                }
            }
        }
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        if limit == 0 {
            // etcd reads a limit of 0 as "no limit".
            return Ok(ScanPage::default());
        }
        let full_prefix = self.etcd_key(prefix);
        let start = match after {
            // The smallest key strictly after `after`.
            Some(after) if after >= prefix => [self.etcd_key(after).as_slice(), b"\0"].concat(),
            _ => full_prefix.clone(),
        };
        // `\0` as range end means "every key from start on".
        let end = prefix_successor(&full_prefix).unwrap_or_else(|| vec![0]);
        let options = GetOptions::new()
            .with_range(end)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let mut kv = self.kv.clone();
        let response = self.run(None, kv.get(start, Some(options))).await?;
        let mut entries = Vec::with_capacity(response.kvs().len());
        for entry in response.kvs() {
            let key = self.store_key(entry.key())?;
            let version = version_of(entry.mod_revision(), &key)?;
            entries.push((
                key,
                Versioned {
                    value: entry.value().to_vec(),
                    version,
                },
            ));
        }
        let next = if response.more() {
            entries.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        Ok(ScanPage { entries, next })
    }

    async fn put_batch(&self, writes: Vec<Write>) -> Vec<Result<u64, StoreError>> {
        let mut results: Vec<Option<Result<u64, StoreError>>> =
            std::iter::repeat_with(|| None).take(writes.len()).collect();
        // etcd refuses a transaction writing one key twice, more than
        // `--max-txn-ops` operations or more than `--max-request-bytes`:
        // such a batch is cut into several transactions, sent in order.
        let request_budget = self.max_value_size + REQUEST_OVERHEAD;
        let mut batch: Vec<BatchedWrite> = Vec::new();
        let mut batch_keys: HashSet<Vec<u8>> = HashSet::new();
        let mut batch_bytes = 0;
        for (index, write) in writes.into_iter().enumerate() {
            let checked = self
                .checked_key(&write.key, &write.value)
                .and_then(|etcd_key| Ok((compare_of(&etcd_key, write.expect)?, etcd_key)));
            let (compare, etcd_key) = match checked {
                Ok(checked) => checked,
                Err(error) => {
                    results[index] = Some(Err(error));
                    continue;
                }
            };
            let bytes = write.value.len() + 2 * etcd_key.len() + NESTED_WRITE_OVERHEAD;
            if !batch.is_empty()
                && (batch.len() == MAX_TXN_OPS
                    || batch_bytes + bytes > request_budget
                    || batch_keys.contains(&etcd_key))
            {
                self.put_together(std::mem::take(&mut batch), &mut results)
                    .await;
                batch_keys.clear();
                batch_bytes = 0;
            }
            batch_keys.insert(etcd_key.clone());
            batch_bytes += bytes;
            batch.push(BatchedWrite {
                index,
                etcd_key,
                value: write.value,
                compare,
            });
        }
        if !batch.is_empty() {
            self.put_together(batch, &mut results).await;
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(StoreError::Backend(
                        "a write of the batch was never sent".into(),
                    ))
                })
            })
            .collect()
    }

    fn batches_writes(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "etcd"
    }

    fn due_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.listener.listening.subscribe(|| {
            tokio::spawn(listen(
                Arc::clone(&self.listener),
                self.etcd_key(WAKE_PREFIX),
            ));
        }))
    }
}

/// Keeps a watch on the due index while anyone subscribes, re-establishing
/// it with backoff, and wakes the subscribers on every put and after every
/// (re)established watch.
async fn listen(listener: Arc<Listener>, prefix: Vec<u8>) {
    listener
        .listening
        .supervise(|| listen_once(&listener, &prefix))
        .await;
}

/// One watch's life: returns when it fails or is cancelled.
async fn listen_once(listener: &Listener, prefix: &[u8]) {
    let options = WatchOptions::new()
        .with_prefix()
        .with_filters([WatchFilterType::NoDelete]);
    let mut watch = listener.watch.clone();
    let mut stream = match watch.watch(prefix.to_vec(), Some(options)).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the etcd due index; polling meanwhile");
            return;
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(response)) if response.canceled() => {
                tracing::warn!(
                    reason = response.cancel_reason(),
                    "etcd cancelled the watch of the due index; re-establishing it"
                );
                return;
            }
            Ok(Some(response)) => {
                if response.created() {
                    // Puts made while nothing watched are not replayed.
                    listener.listening.connected();
                } else {
                    listener.listening.due.notify();
                }
            }
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "the etcd watch of the due index failed; re-establishing it");
                return;
            }
        }
    }
}

/// Maps an etcd error; `too_large` is the size and limit of the value the
/// request carried, if it carried one.
fn from_etcd(error: etcd_client::Error, too_large: Option<(usize, usize)>) -> StoreError {
    use etcd_client::Error as E;
    use tonic::Code;
    match &error {
        E::GRpcStatus(status) => {
            let message = status.message();
            let request_too_large =
                message.contains("request is too large") || message.contains("larger than max");
            match (status.code(), too_large) {
                (_, Some((size, limit))) if request_too_large => {
                    StoreError::TooLarge { size, limit }
                }
                (Code::DeadlineExceeded, _) => StoreError::Timeout(format!("etcd: {message}")),
                (Code::Unavailable | Code::Cancelled | Code::Aborted, _) => {
                    StoreError::Unavailable(format!("etcd: {message}"))
                }
                // "database space exceeded", "no leader", too many requests.
                (Code::ResourceExhausted, _) => StoreError::Unavailable(format!("etcd: {message}")),
                _ if message.contains("no leader") || message.contains("leader changed") => {
                    StoreError::Unavailable(format!("etcd: {message}"))
                }
                _ => StoreError::Backend(Box::new(error)),
            }
        }
        E::TransportError(_) | E::IoError(_) => StoreError::Unavailable(format!("etcd: {error}")),
        _ => StoreError::Backend(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successor_bounds_the_prefix() {
        assert_eq!(prefix_successor(b"in/"), Some(b"in0".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b""), None);
    }
}
