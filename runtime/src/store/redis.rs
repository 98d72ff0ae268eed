//! `RedisStore`: keys in Redis, shared by every worker that connects to it.
//! Fast; as durable as the server is configured to be.
//!
//! ```no_run
//! use sagaflow::RedisStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sagaflow::StoreError> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
//! // Or with a namespace of its own, to share a server between deployments:
//! let staging = RedisStore::with_namespace("redis://127.0.0.1:6379", "sagaflow-staging").await?;
//! # let _ = (store, staging);
//! # Ok(())
//! # }
//! ```
//!
//! # Durability: configure the server
//!
//! A write is acknowledged when Redis has applied it in memory. Whether it
//! survives a crash is the server's configuration, not this store's:
//!
//! - run Redis with `appendonly yes` and **`appendfsync always`**: every
//!   write is fsync'd to the append-only file before Redis answers. With
//!   the default `appendfsync everysec`, up to a second of acknowledged
//!   transitions is lost in a power failure or kernel crash (a saga then
//!   runs steps again and may lose its place); with RDB snapshots only, or
//!   with nothing on disk, a restart loses every instance;
//! - set `maxmemory-policy noeviction`: an evicting policy would silently
//!   drop saga records when memory runs out; with `noeviction` a full server
//!   fails writes instead ([`StoreError::Unavailable`]);
//! - replicas are asynchronous: a failover can lose acknowledged writes.
//!
//! The Redis that `.ci/run` starts keeps nothing on disk
//! (`--save "" --appendonly no`): it tests the contract, not durability.
//!
//! # Layout
//!
//! Under the namespace `N` (default `sagaflow`):
//!
//! - `{N}:k:{key}`: a hash per key, fields `value` (the bytes) and
//!   `version` (decimal);
//! - `{N}:i`: a sorted set of every key, all with score 0, so `ZRANGEBYLEX`
//!   walks them in byte order: Redis has no ordered keyspace of its own;
//! - `{N}:v`: the version counter (`INCR`), shared by all keys, so versions
//!   strictly increase and are never reused, even after a delete.
//!
//! Every write is one Lua script (`EVALSHA`, falling back to `EVAL` when
//! the server does not have it cached) that checks the expectation, draws
//! the version and updates the hash and the index together: Redis runs a
//! script atomically, and persists and replicates its effects as one unit.
//! A scan is one script too, so it never sees a key in the index without
//! its value. The `{N}` hash tag puts every key of a namespace in one slot
//! of a Redis Cluster (the scan script reads entry keys it cannot declare
//! in advance, which a cluster allows within one slot).
//!
//! # Change notification
//!
//! A write of a due hint (a key under [`WAKE_PREFIX`](super::WAKE_PREFIX))
//! also `PUBLISH`es to `{N}:due` from inside the write's script, so it is
//! sent only when the write applies. The first [`Store::due_changes`] opens
//! a pub/sub connection subscribed to that channel (reconnecting with
//! backoff and waking its subscribers after every reconnect, since
//! messages published meanwhile are lost); it closes when the last
//! subscriber is dropped.
//!
//! # Batches
//!
//! [`Store::put_batch`] sends every write's script in one pipeline: one
//! round trip, each write with its own result. A runtime groups its
//! concurrent writes this way ([`GroupCommit`](super::GroupCommit)).
//!
//! # Limits and errors
//!
//! - values up to [`MAX_VALUE_SIZE`] (Redis's default `proto-max-bulk-len`,
//!   512 MiB); larger ones fail with [`StoreError::TooLarge`], writing
//!   nothing;
//! - the server unreachable, the connection dropped, a server loading its
//!   data, out of memory, read-only or unable to persist:
//!   [`StoreError::Unavailable`];
//! - no answer within the operation timeout (30 s unless set with
//!   [`RedisStore::with_timeout`]): [`StoreError::Timeout`], the write may
//!   or may not have been applied;
//! - anything else (e.g. a key of the namespace holding another type):
//!   [`StoreError::Backend`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};
use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::listening::Listening;
use super::{DueSignal, Expect, ScanPage, Store, Versioned, Write, prefix_successor};
use crate::error::StoreError;

/// The largest value [`RedisStore`] accepts: Redis's default
/// `proto-max-bulk-len`, 512 MiB.
pub const MAX_VALUE_SIZE: usize = 512 << 20;

/// The namespace used by [`RedisStore::connect`].
pub const DEFAULT_NAMESPACE: &str = "sagaflow";

/// How long one operation may take unless changed with
/// [`RedisStore::with_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`RedisStore`] reports inside [`StoreError::Backend`] when the
/// problem is the caller's input rather than the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The namespace is empty or holds `{` or `}`, which would break its
    /// hash tag.
    #[error("invalid Redis namespace {0:?}: it must be non-empty, without `{{` or `}}`")]
    InvalidNamespace(String),
    /// The connection URL cannot be parsed.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[source] RedisError),
}

/// Checks the expectation, draws a version, writes the hash and indexes
/// the key; publishes to the channel ARGV[5] unless it is empty. Returns
/// the new version, or nil on a failed expectation.
const PUT: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == 'absent' then
  if current then return false end
elseif ARGV[1] == 'version' then
  if current ~= ARGV[2] then return false end
end
redis.call('INCR', KEYS[3])
-- Read the counter back as a string: no trip through Lua's doubles.
local version = redis.call('GET', KEYS[3])
redis.call('HSET', KEYS[1], 'value', ARGV[3], 'version', version)
redis.call('ZADD', KEYS[2], 0, ARGV[4])
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], '') end
return version
";

/// Checks the expectation and removes the hash and its index entry.
/// Returns 1, or 0 on a failed expectation.
const DELETE: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == 'absent' then
  if current then return 0 end
elseif ARGV[1] == 'version' then
  if current ~= ARGV[2] then return 0 end
end
if current then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return 1
";

/// Reads up to ARGV[3] keys of the index between ARGV[1] and ARGV[2]
/// (ZRANGEBYLEX bounds) with their values. Returns
/// `{more, last, key1, value1, version1, ...}`: `more` is '1' if the range
/// holds further keys, `last` the last key read.
const SCAN: &str = r"
local limit = tonumber(ARGV[3])
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, limit + 1)
local n = math.min(#members, limit)
local out = {'0', ''}
if #members > limit and n > 0 then
  out[1] = '1'
  out[2] = members[n]
end
for i = 1, n do
  local entry = redis.call('HMGET', ARGV[4] .. members[i], 'value', 'version')
  if entry[2] then
    out[#out + 1] = members[i]
    out[#out + 1] = entry[1]
    out[#out + 1] = entry[2]
  end
end
return out
";

/// A store in Redis, through one multiplexed connection that reconnects by
/// itself.
///
/// Cheap to clone: clones share the connection. See the
/// [module docs](self) for the durability settings the server needs.
///
/// ```no_run
/// use sagaflow::prelude::*;
/// # use sagaflow::RedisStore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sagaflow::Error> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let runtime = Runtime::builder().store(store).build().await?;
/// # let _ = runtime;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    scripts: Arc<Scripts>,
    timeout: Duration,
    listener: Arc<Listener>,
}

/// The subscribing side of change notification, shared by clones.
struct Listener {
    client: Client,
    /// `{N}:due`.
    channel: String,
    listening: Listening,
}

struct Scripts {
    namespace: String,
    /// `{N}:k:`, followed by the key.
    entry_prefix: String,
    index: String,
    counter: String,
    put: Script,
    delete: Script,
    scan: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.scripts.namespace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` for TLS if the `redis` crate is built with it) and uses
    /// the namespace [`DEFAULT_NAMESPACE`].
    ///
    /// Fails with [`StoreError::Unavailable`] if the server cannot be
    /// reached, and with [`RedisStoreError::InvalidUrl`] (inside
    /// [`StoreError::Backend`]) if `url` does not parse.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::with_namespace(url, DEFAULT_NAMESPACE).await
    }

    /// Like [`connect`](Self::connect), with every key under `namespace`:
    /// stores with different namespaces share a server without seeing each
    /// other's keys. Any non-empty string without `{` and `}`.
    pub async fn with_namespace(url: &str, namespace: &str) -> Result<RedisStore, StoreError> {
        if namespace.is_empty() || namespace.contains(['{', '}']) {
            return Err(StoreError::Backend(Box::new(
                RedisStoreError::InvalidNamespace(namespace.to_owned()),
            )));
        }
        let client = Client::open(url)
            .map_err(|e| StoreError::Backend(Box::new(RedisStoreError::InvalidUrl(e))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(10)))
            // The crate's default gives up on an answer after 500 ms, too
            // soon for a large value or `appendfsync always` under load:
            // the store's own timeout bounds each operation instead.
            .set_response_timeout(None)
            // Reconnecting is the manager's job, but a dead server must
            // not stall `connect`.
            .set_number_of_retries(1);
        let connect = ConnectionManager::new_with_config(client.clone(), config);
        let connection = match tokio::time::timeout(DEFAULT_TIMEOUT, connect).await {
            Ok(connection) => connection.map_err(from_redis)?,
            Err(_) => {
                return Err(StoreError::Timeout(format!(
                    "no connection to Redis within {DEFAULT_TIMEOUT:?}"
                )));
            }
        };
        let tag = format!("{{{namespace}}}");
        Ok(RedisStore {
            connection,
            listener: Arc::new(Listener {
                client,
                channel: format!("{tag}:due"),
                listening: Listening::new(),
            }),
            scripts: Arc::new(Scripts {
                namespace: namespace.to_owned(),
                entry_prefix: format!("{tag}:k:"),
                index: format!("{tag}:i"),
                counter: format!("{tag}:v"),
                put: Script::new(PUT),
                delete: Script::new(DELETE),
                scan: Script::new(SCAN),
            }),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets how long one operation may take before it fails with
    /// [`StoreError::Timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> RedisStore {
        self.timeout = timeout;
        self
    }

    /// The namespace this store keeps its keys under.
    pub fn namespace(&self) -> &str {
        &self.scripts.namespace
    }

    /// The put script's call for one write.
    fn put_invocation(
        &self,
        key: &str,
        value: Vec<u8>,
        expect: Expect,
    ) -> ::redis::ScriptInvocation<'_> {
        let (mode, expected) = expectation(expect);
        let s = &self.scripts;
        let channel = if DueSignal::is_due_key(key) {
            self.listener.channel.as_str()
        } else {
            ""
        };
        let mut invocation = s.put.prepare_invoke();
        invocation
            .key(self.entry_key(key))
            .key(&s.index)
            .key(&s.counter)
            .arg(mode)
            .arg(expected)
            .arg(value)
            .arg(key)
            .arg(channel);
        invocation
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}{key}", self.scripts.entry_prefix)
    }

    /// Runs `operation` under the store's timeout.
    async fn run<T>(
        &self,
        operation: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(result) => result.map_err(from_redis),
            Err(_) => Err(StoreError::Timeout(format!(
                "no answer from Redis within {:?}",
                self.timeout
            ))),
        }
    }
}

/// The mode and expected version the scripts take.
fn expectation(expect: Expect) -> (&'static str, String) {
    match expect {
        Expect::Absent => ("absent", String::new()),
        Expect::Version(version) => ("version", version.to_string()),
        Expect::Any => ("any", String::new()),
    }
}

fn parse_version(raw: &[u8], key: &str) -> Result<u64, StoreError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|raw| raw.parse::<u64>().ok())
        .ok_or_else(|| {
            StoreError::Backend(
                format!(
                    "key {key:?} has a malformed version {:?} in Redis",
                    String::from_utf8_lossy(raw)
                )
                .into(),
            )
        })
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let mut connection = self.connection.clone();
        let (value, version): (Option<Vec<u8>>, Option<Vec<u8>>) = self
            .run(
                ::redis::cmd("HMGET")
                    .arg(self.entry_key(key))
                    .arg("value")
                    .arg("version")
                    .query_async(&mut connection),
            )
            .await?;
        match (value, version) {
            (Some(value), Some(version)) => Ok(Some(Versioned {
                value,
                version: parse_version(&version, key)?,
            })),
            (None, None) => Ok(None),
            _ => Err(StoreError::Backend(
                format!("key {key:?} has a value or a version but not both in Redis").into(),
            )),
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        if value.len() > MAX_VALUE_SIZE {
            return Err(StoreError::TooLarge {
                size: value.len(),
                limit: MAX_VALUE_SIZE,
            });
        }
        let mut connection = self.connection.clone();
        let version: Option<Vec<u8>> = self
            .run(
                self.put_invocation(key, value, expect)
                    .invoke_async(&mut connection),
            )
            .await?;
        match version {
            Some(version) => parse_version(&version, key),
            None => Err(StoreError::Conflict),
        }
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        let (mode, expected) = expectation(expect);
        let mut connection = self.connection.clone();
        let s = &self.scripts;
        let deleted: i64 = self
            .run(
                s.delete
                    .key(self.entry_key(key))
                    .key(&s.index)
                    .arg(mode)
                    .arg(expected)
                    .arg(key)
                    .invoke_async(&mut connection),
            )
            .await?;
        if deleted == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let min: Vec<u8> = match after {
            Some(after) if after >= prefix => [b"(", after.as_bytes()].concat(),
            _ => [b"[", prefix.as_bytes()].concat(),
        };
        let max: Vec<u8> = match prefix_successor(prefix.as_bytes()) {
            Some(upper) => [&b"("[..], &upper].concat(),
            None => b"+".to_vec(),
        };
        let mut connection = self.connection.clone();
        let s = &self.scripts;
        let reply: Vec<Vec<u8>> = self
            .run(
                s.scan
                    .key(&s.index)
                    .arg(min)
                    .arg(max)
                    .arg(limit)
                    .arg(&s.entry_prefix)
                    .invoke_async(&mut connection),
            )
            .await?;
        let malformed = || StoreError::Backend("Redis returned a malformed scan reply".into());
        let [more, last, rest @ ..] = reply.as_slice() else {
            return Err(malformed());
        };
        if rest.len() % 3 != 0 {
            return Err(malformed());
        }
        let mut entries = Vec::with_capacity(rest.len() / 3);
        for entry in rest.chunks_exact(3) {
            let key = String::from_utf8(entry[0].clone()).map_err(|_| {
                StoreError::Backend(
                    format!(
                        "the index of namespace {:?} holds a key that is not UTF-8: {:?}",
                        s.namespace,
                        String::from_utf8_lossy(&entry[0])
                    )
                    .into(),
                )
            })?;
            let version = parse_version(&entry[2], &key)?;
            entries.push((
                key,
                Versioned {
                    value: entry[1].clone(),
                    version,
                },
            ));
        }
        let next = if more.as_slice() == b"1" {
            Some(String::from_utf8(last.clone()).map_err(|_| malformed())?)
        } else {
            None
        };
        Ok(ScanPage { entries, next })
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    fn due_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.listener.listening.subscribe(|| {
            tokio::spawn(listen(Arc::clone(&self.listener)));
        }))
    }

    async fn put_batch(&self, writes: Vec<Write>) -> Vec<Result<u64, StoreError>> {
        let mut results: Vec<Option<Result<u64, StoreError>>> = Vec::with_capacity(writes.len());
        let mut invocations = Vec::new();
        let mut sent = Vec::new();
        for (i, write) in writes.iter().enumerate() {
            if write.value.len() > MAX_VALUE_SIZE {
                results.push(Some(Err(StoreError::TooLarge {
                    size: write.value.len(),
                    limit: MAX_VALUE_SIZE,
                })));
                continue;
            }
            results.push(None);
            invocations.push(self.put_invocation(&write.key, write.value.clone(), write.expect));
            sent.push(i);
        }
        if !invocations.is_empty() {
            // Loaded first in the same pipeline: the calls then find it cached.
            let mut pipeline = ::redis::pipe();
            pipeline.load_script(&self.scripts.put);
            for invocation in &invocations {
                pipeline.invoke_script(invocation);
            }
            let mut connection = self.connection.clone();
            let replies: Result<Vec<::redis::Value>, StoreError> =
                self.run(pipeline.query_async(&mut connection)).await;
            match replies {
                Ok(replies) if replies.len() == sent.len() + 1 => {
                    for (&i, reply) in sent.iter().zip(&replies[1..]) {
                        let key = &writes[i].key;
                        results[i] = Some(match reply {
                            ::redis::Value::Nil => Err(StoreError::Conflict),
                            ::redis::Value::BulkString(raw) => parse_version(raw, key),
                            other => Err(StoreError::Backend(
                                format!("Redis answered a put of {key:?} with {other:?}").into(),
                            )),
                        });
                    }
                }
                Ok(replies) => {
                    let message = format!(
                        "Redis answered a pipeline of {} commands with {} replies",
                        sent.len() + 1,
                        replies.len()
                    );
                    for &i in &sent {
                        results[i] = Some(Err(StoreError::Backend(message.clone().into())));
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    for &i in &sent {
                        results[i] = Some(Err(match &error {
                            StoreError::Unavailable(_) => StoreError::Unavailable(message.clone()),
                            StoreError::Timeout(_) => StoreError::Timeout(message.clone()),
                            _ => StoreError::Backend(message.clone().into()),
                        }));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| result.unwrap_or(Err(StoreError::Conflict)))
            .collect()
    }

    fn batches_writes(&self) -> bool {
        true
    }
}

/// Keeps a pub/sub connection subscribed while anyone subscribes,
/// reconnecting with backoff, and wakes the subscribers on every message
/// and after every (re)subscribe.
async fn listen(listener: Arc<Listener>) {
    listener
        .listening
        .supervise(|| listen_once(&listener))
        .await;
}

/// One subscription's life: returns when its connection fails.
async fn listen_once(listener: &Listener) {
    let mut pubsub = match listener.client.get_async_pubsub().await {
        Ok(pubsub) => pubsub,
        Err(error) => {
            tracing::warn!(%error, "cannot open the Redis pub/sub connection; polling meanwhile");
            return;
        }
    };
    if let Err(error) = pubsub.subscribe(&listener.channel).await {
        tracing::warn!(%error, "cannot subscribe to due hints; polling meanwhile");
        return;
    }
    // Messages published while no connection subscribed are lost.
    listener.listening.connected();
    let mut messages = pubsub.on_message();
    while messages.next().await.is_some() {
        listener.listening.due.notify();
    }
    tracing::warn!("the Redis pub/sub connection closed; reconnecting");
}

fn from_redis(error: RedisError) -> StoreError {
    if error.is_timeout() {
        return StoreError::Timeout(format!("Redis: {error}"));
    }
    if error.is_connection_refusal() || error.is_connection_dropped() || error.is_io_error() {
        return StoreError::Unavailable(format!("Redis: {error}"));
    }
    // The server is loading, failing over, out of memory, read-only, cannot
    // persist, or busy with a long script: it may work again later.
    const UNAVAILABLE: &[&str] = &[
        "LOADING",
        "MASTERDOWN",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "READONLY",
        "OOM",
        "MISCONF",
        "NOREPLICAS",
        "BUSY",
    ];
    if error.code().is_some_and(|code| UNAVAILABLE.contains(&code)) {
        return StoreError::Unavailable(format!("Redis: {error}"));
    }
    StoreError::Backend(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successor_bounds_the_prefix() {
        assert_eq!(prefix_successor(b"in/"), Some(b"in0".to_vec()));
        assert_eq!(prefix_successor(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(b"\xff"), None);
    }
}
