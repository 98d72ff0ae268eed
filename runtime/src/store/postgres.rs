//! `PostgresStore`: a table in PostgreSQL, shared by every worker that
//! connects to it. What most deployments use.
//!
//! ```no_run
//! use sagaflow::PostgresStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sagaflow::StoreError> {
//! // Creates the table `sagaflow_kv` (and its version sequence) if missing.
//! let store = PostgresStore::connect("postgres://app@db.internal/app").await?;
//! // Or a table of your own, e.g. one per environment:
//! let staging = PostgresStore::with_table("postgres://app@db.internal/app", "sagaflow_staging").await?;
//! # let _ = (store, staging);
//! # Ok(())
//! # }
//! ```
//!
//! # Schema
//!
//! One table (by default `sagaflow_kv`) and one sequence (`{table}_version`),
//! created on connect with `CREATE ... IF NOT EXISTS` under an advisory
//! lock, so many processes may start at once:
//!
//! ```sql
//! CREATE SEQUENCE IF NOT EXISTS "sagaflow_kv_version" AS bigint;
//! CREATE TABLE IF NOT EXISTS "sagaflow_kv" (
//!     key     text COLLATE "C" PRIMARY KEY,
//!     value   bytea  NOT NULL,
//!     version bigint NOT NULL
//! );
//! ```
//!
//! `COLLATE "C"` makes keys sort by their UTF-8 bytes, as in every other
//! store, whatever the database's collation. Instance records are JSON, so
//! an operator reads one with
//! `SELECT key, convert_from(value, 'UTF8') FROM sagaflow_kv WHERE key LIKE 'instances/%'`.
//!
//! # Writes
//!
//! Every write is one statement, every value a bound parameter:
//! `INSERT ... ON CONFLICT DO NOTHING` for [`Expect::Absent`],
//! `UPDATE ... WHERE key = $1 AND version = $2` for [`Expect::Version`], an
//! upsert for [`Expect::Any`]. Versions come from the sequence, so they are
//! never reused, even after a delete (a sequence never goes back, even when
//! the transaction that drew a number rolls back).
//!
//! # Change notification
//!
//! A write of a due hint (a key under [`WAKE_PREFIX`](super::WAKE_PREFIX))
//! also runs `pg_notify('{table}_due', '')` in the same statement, so the
//! notification goes out when the write commits, and only if it does. The
//! first [`Store::due_changes`] opens one more connection, outside the
//! pool, that `LISTEN`s on that channel (reconnecting with backoff, and
//! waking its subscribers after every reconnect, since notifications sent
//! while it was away are lost); it closes when the last subscriber is
//! dropped.
//!
//! # Batches
//!
//! [`Store::put_batch`] sends its writes pipelined on one connection inside
//! one transaction, sorted by key (so concurrent batches lock rows in one
//! order and cannot deadlock): one commit, one WAL flush for all of them.
//! Each write keeps its own result: a failed expectation writes nothing and
//! fails only that write. A runtime groups its concurrent writes this way
//! ([`GroupCommit`](super::GroupCommit)).
//!
//! # Durability
//!
//! A write is acknowledged when PostgreSQL commits it: with the server's
//! defaults (`fsync = on`, `synchronous_commit = on`) it is on disk. With
//! `synchronous_commit = off` the last few hundred milliseconds of
//! acknowledged transitions can be lost in a server crash, and a saga may
//! then run a step again. Use synchronous replication to survive the loss
//! of the primary.
//!
//! # Limits and errors
//!
//! - values up to [`MAX_VALUE_SIZE`] (PostgreSQL caps one field and one
//!   protocol message at 1 GiB), keys up to [`MAX_KEY_SIZE`] bytes (a B-tree
//!   entry must fit in a third of a page); larger ones fail with
//!   [`StoreError::TooLarge`] and write nothing;
//! - a key containing a NUL character cannot be stored in `text`: `put`
//!   fails with [`PostgresStoreError::NulInKey`], and such a key reads as absent;
//! - the server unreachable, a dropped connection, a shutting-down server or
//!   one out of connections: [`StoreError::Unavailable`];
//! - no answer within the operation timeout (30 s unless set with
//!   [`PostgresStore::with_timeout`]), or a statement cancelled by
//!   `statement_timeout`: [`StoreError::Timeout`] — the write may or may
//!   not have been applied;
//! - anything else: [`StoreError::Backend`] with the driver's error.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use tokio::sync::watch;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls};

use super::listening::Listening;
use super::{DueSignal, Expect, ScanPage, Store, Versioned, Write};
use crate::error::StoreError;

/// The largest value [`PostgresStore`] accepts: 1 GiB less 1 MiB, leaving
/// room for the key and the protocol's headers under PostgreSQL's 1 GiB
/// limit.
pub const MAX_VALUE_SIZE: usize = (1 << 30) - (1 << 20);

/// The longest key, in bytes, [`PostgresStore`] accepts: a B-tree index
/// entry must fit in a third of an 8 KiB page.
pub const MAX_KEY_SIZE: usize = 2048;

/// The table used by [`PostgresStore::connect`].
pub const DEFAULT_TABLE: &str = "sagaflow_kv";

/// The most connections the pool opens, unless changed with
/// [`PostgresStore::with_pool_size`].
pub const DEFAULT_POOL_SIZE: usize = 16;

/// How long one operation may take, pool wait included, unless changed
/// with [`PostgresStore::with_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting (and creating the schema) may take, unless the
/// connection string sets `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest table name: PostgreSQL's 63-byte identifiers, less the
/// sequence's `_version` suffix.
const MAX_TABLE_NAME: usize = 63 - "_version".len();

/// What [`PostgresStore`] reports inside [`StoreError::Backend`] when the
/// problem is the caller's input rather than the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresStoreError {
    /// The table name is not a plain SQL identifier.
    #[error(
        "invalid table name {name:?}: {reason}; use ASCII letters, digits and `_`, \
         starting with a letter or `_`, at most {MAX_TABLE_NAME} bytes"
    )]
    InvalidTableName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The connection string cannot be parsed.
    #[error("invalid PostgreSQL connection string: {0}")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// PostgreSQL's `text` cannot hold a NUL character.
    #[error("key {key:?} contains a NUL character, which PostgreSQL text cannot store")]
    NulInKey {
        /// The key given.
        key: String,
    },
}

/// A store in a PostgreSQL table, reached through a connection pool.
///
/// Cheap to clone: clones share the pool. See the [module docs](self) for
/// the schema, durability and errors.
///
/// ```no_run
/// use sagaflow::prelude::*;
/// # use sagaflow::PostgresStore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sagaflow::Error> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/app").await?;
/// let runtime = Runtime::builder().store(store).build().await?;
/// # let _ = runtime;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    sql: Arc<Statements>,
    timeout: Duration,
    listener: Arc<Listener>,
}

/// The `LISTEN` side of change notification, shared by clones.
struct Listener {
    config: tokio_postgres::Config,
    listening: Listening,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.sql.table)
            .field("pool", &self.pool.status())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The SQL of every operation, for one table.
struct Statements {
    table: String,
    schema: String,
    get: String,
    insert: String,
    update: String,
    upsert: String,
    exists: String,
    delete_version: String,
    delete_any: String,
    /// `insert`, `update` and `upsert`, also notifying the due channel.
    insert_notify: String,
    update_notify: String,
    upsert_notify: String,
    /// `LISTEN` on the due channel.
    listen: String,
    /// Indexed by (lower bound exclusive, has an upper bound).
    scan: [[String; 2]; 2],
}

impl Statements {
    fn new(table: &str) -> Statements {
        // `table` is a validated identifier, so quoting it is enough.
        let t = format!("\"{table}\"");
        let seq = format!("\"{table}_version\"");
        let next = format!("nextval('{seq}')");
        let scan = |exclusive: bool, upper: bool| {
            let op = if exclusive { ">" } else { ">=" };
            let upper = if upper {
                " AND key < $3 COLLATE \"C\""
            } else {
                ""
            };
            format!(
                "SELECT key, value, version FROM {t} WHERE key {op} $1 COLLATE \"C\"{upper} \
                 ORDER BY key COLLATE \"C\" LIMIT $2"
            )
        };
        let insert = format!(
            "INSERT INTO {t} (key, value, version) VALUES ($1, $2, {next}) \
             ON CONFLICT (key) DO NOTHING RETURNING version"
        );
        let update = format!(
            "UPDATE {t} SET value = $2, version = {next} \
             WHERE key = $1 AND version = $3 RETURNING version"
        );
        let upsert = format!(
            "INSERT INTO {t} (key, value, version) VALUES ($1, $2, {next}) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version \
             RETURNING version"
        );
        // A data-modifying CTE runs once; the notification goes per row
        // written, so not on a failed expectation, and at commit.
        let notify = |write: &str| {
            format!("WITH w AS ({write}) SELECT version, pg_notify('{table}_due', '')::text FROM w")
        };
        Statements {
            insert_notify: notify(&insert),
            update_notify: notify(&update),
            upsert_notify: notify(&upsert),
            listen: format!("LISTEN \"{table}_due\""),
            insert,
            update,
            upsert,
            table: table.to_owned(),
            schema: format!(
                "CREATE SEQUENCE IF NOT EXISTS {seq} AS bigint; \
                 CREATE TABLE IF NOT EXISTS {t} (\
                     key text COLLATE \"C\" PRIMARY KEY, \
                     value bytea NOT NULL, \
                     version bigint NOT NULL)"
            ),
            get: format!("SELECT value, version FROM {t} WHERE key = $1"),
            exists: format!("SELECT 1 FROM {t} WHERE key = $1"),
            delete_version: format!("DELETE FROM {t} WHERE key = $1 AND version = $2"),
            delete_any: format!("DELETE FROM {t} WHERE key = $1"),
            scan: [
                [scan(false, false), scan(false, true)],
                [scan(true, false), scan(true, true)],
            ],
        }
    }
}

impl Statements {
    /// The statement of a put of `key`: with a notification for a due hint.
    fn put(&self, key: &str, expect: Expect) -> &str {
        let due = DueSignal::is_due_key(key);
        match (expect, due) {
            (Expect::Absent, false) => &self.insert,
            (Expect::Absent, true) => &self.insert_notify,
            (Expect::Any, false) => &self.upsert,
            (Expect::Any, true) => &self.upsert_notify,
            (Expect::Version(_), false) => &self.update,
            (Expect::Version(_), true) => &self.update_notify,
        }
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or
    /// the `key=value` form) and uses the table [`DEFAULT_TABLE`], creating
    /// it if missing.
    ///
    /// Fails with [`StoreError::Unavailable`] if the server cannot be
    /// reached, [`StoreError::Timeout`] if it does not answer within the
    /// connection string's `connect_timeout` ([`DEFAULT_CONNECT_TIMEOUT`]
    /// if unset), and with [`PostgresStoreError::InvalidUrl`] (inside
    /// [`StoreError::Backend`]) if `url` does not parse.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::with_table(url, DEFAULT_TABLE).await
    }

    /// Like [`connect`](Self::connect), with the table `table`: ASCII
    /// letters, digits and `_`, not starting with a digit, at most 55 bytes;
    /// anything else fails with [`PostgresStoreError::InvalidTableName`] (inside
    /// [`StoreError::Backend`]) before connecting.
    pub async fn with_table(url: &str, table: &str) -> Result<PostgresStore, StoreError> {
        validate_table_name(table).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(Box::new(PostgresStoreError::InvalidUrl(e))))?;
        let connect_timeout = *config
            .get_connect_timeout()
            .unwrap_or(&DEFAULT_CONNECT_TIMEOUT);
        config.connect_timeout(connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("sagaflow");
        }
        let manager_config = config.clone();
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(DEFAULT_POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let listener = Arc::new(Listener {
            config: manager_config,
            listening: Listening::new(),
        });
        let store = PostgresStore {
            listener,
            pool,
            sql: Arc::new(Statements::new(table)),
            // The first connection and the schema: the connect timeout.
            timeout: connect_timeout,
        };
        store.create_schema().await?;
        Ok(store.with_timeout(DEFAULT_TIMEOUT))
    }

    /// Sets how long one operation may take, waiting for a pooled
    /// connection included, before it fails with [`StoreError::Timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> PostgresStore {
        self.timeout = timeout;
        self
    }

    /// Sets the most connections the pool keeps open (at least one).
    pub fn with_pool_size(self, connections: usize) -> PostgresStore {
        self.pool.resize(connections.max(1));
        self
    }

    /// Checks what PostgreSQL cannot store, before sending anything.
    fn check_write(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > MAX_VALUE_SIZE {
            return Err(StoreError::TooLarge {
                size: value.len(),
                limit: MAX_VALUE_SIZE,
            });
        }
        if key.len() > MAX_KEY_SIZE {
            return Err(StoreError::TooLarge {
                size: key.len(),
                limit: MAX_KEY_SIZE,
            });
        }
        if key.contains('\0') {
            return Err(StoreError::Backend(Box::new(
                PostgresStoreError::NulInKey {
                    key: key.to_owned(),
                },
            )));
        }
        Ok(())
    }

    /// The table this store keeps its keys in.
    pub fn table(&self) -> &str {
        &self.sql.table
    }

    async fn create_schema(&self) -> Result<(), StoreError> {
        // Two processes running `CREATE ... IF NOT EXISTS` at once can both
        // pass the check and collide on the catalog; the lock serialises them.
        let lock_id = fnv1a(self.sql.table.as_bytes()) as i64;
        self.run(async {
            let mut client = self.pool.get().await.map_err(from_pool)?;
            let tx = client.transaction().await.map_err(from_pg)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_id])
                .await
                .map_err(from_pg)?;
            tx.batch_execute(&self.sql.schema).await.map_err(from_pg)?;
            tx.commit().await.map_err(from_pg)
        })
        .await
    }

    /// Runs `operation` under the store's timeout.
    async fn run<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(format!(
                "no answer from PostgreSQL within {:?}",
                self.timeout
            ))),
        }
    }

    /// Runs one statement and returns the rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.run(async {
            let client = self.pool.get().await.map_err(from_pool)?;
            let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
            client.query(&statement, params).await.map_err(from_pg)
        })
        .await
    }

    /// Runs one statement and returns how many rows it touched.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.run(async {
            let client = self.pool.get().await.map_err(from_pool)?;
            let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
            client.execute(&statement, params).await.map_err(from_pg)
        })
        .await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        if key.contains('\0') {
            return Ok(None);
        }
        let rows = self.query(&self.sql.get, &[&key]).await?;
        match rows.first() {
            None => Ok(None),
            Some(row) => {
                let value: Vec<u8> = row.try_get(0).map_err(from_pg)?;
                let version = version_of(row.try_get(1).map_err(from_pg)?, key)?;
                Ok(Some(Versioned { value, version }))
            }
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        self.check_write(key, &value)?;
        let Some(version) = expected_version(expect) else {
            // No row has a version beyond bigint.
            return Err(StoreError::Conflict);
        };
        let sql = self.sql.put(key, expect);
        let rows = match &version {
            None => self.query(sql, &[&key, &value]).await?,
            Some(version) => self.query(sql, &[&key, &value, version]).await?,
        };
        match rows.first() {
            None => Err(StoreError::Conflict),
            Some(row) => version_of(row.try_get(0).map_err(from_pg)?, key),
        }
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        if key.contains('\0') {
            // No such key can exist: it is absent.
            return match expect {
                Expect::Version(_) => Err(StoreError::Conflict),
                Expect::Absent | Expect::Any => Ok(()),
            };
        }
        match expect {
            Expect::Any => {
                self.execute(&self.sql.delete_any, &[&key]).await?;
                Ok(())
            }
            Expect::Absent => {
                let rows = self.query(&self.sql.exists, &[&key]).await?;
                if rows.is_empty() {
                    Ok(())
                } else {
                    Err(StoreError::Conflict)
                }
            }
            Expect::Version(version) => {
                let Ok(version) = i64::try_from(version) else {
                    return Err(StoreError::Conflict);
                };
                match self
                    .execute(&self.sql.delete_version, &[&key, &version])
                    .await?
                {
                    0 => Err(StoreError::Conflict),
                    _ => Ok(()),
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
        if prefix.contains('\0') {
            return Ok(ScanPage::default());
        }
        // Keys hold no NUL, so "strictly after `a\0…`" is "strictly after `a`".
        let after = after.map(|after| after.split('\0').next().unwrap_or(""));
        let (lower, exclusive) = match after {
            Some(after) if after >= prefix => (after, true),
            _ => (prefix, false),
        };
        let upper = prefix_successor(prefix);
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let sql = &self.sql.scan[usize::from(exclusive)][usize::from(upper.is_some())];
        let rows = match &upper {
            Some(upper) => self.query(sql, &[&lower, &fetch, upper]).await?,
            None => self.query(sql, &[&lower, &fetch]).await?,
        };
        let mut entries = Vec::with_capacity(rows.len().min(limit));
        for row in &rows {
            let key: String = row.try_get(0).map_err(from_pg)?;
            let value: Vec<u8> = row.try_get(1).map_err(from_pg)?;
            let version = version_of(row.try_get(2).map_err(from_pg)?, &key)?;
            entries.push((key, Versioned { value, version }));
        }
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        Ok(ScanPage { entries, next })
    }

    fn name(&self) -> &'static str {
        "postgres"
    }

    fn due_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.listener.listening.subscribe(|| {
            tokio::spawn(listen(Arc::clone(&self.listener), self.sql.listen.clone()));
        }))
    }

    async fn put_batch(&self, writes: Vec<Write>) -> Vec<Result<u64, StoreError>> {
        let mut results: Vec<Option<Result<u64, StoreError>>> = Vec::with_capacity(writes.len());
        let mut versions = Vec::with_capacity(writes.len());
        for write in &writes {
            let version = expected_version(write.expect);
            results.push(
                match (self.check_write(&write.key, &write.value), version) {
                    (Err(error), _) => Some(Err(error)),
                    (Ok(()), None) => Some(Err(StoreError::Conflict)),
                    (Ok(()), Some(_)) => None,
                },
            );
            versions.push(version.flatten());
        }
        // Sorted by key, so concurrent batches lock rows in the same order.
        let mut order: Vec<usize> = (0..writes.len())
            .filter(|&i| results[i].is_none())
            .collect();
        order.sort_by(|&a, &b| writes[a].key.cmp(&writes[b].key));
        if !order.is_empty() {
            let written = self
                .run(async {
                    let mut client = self.pool.get().await.map_err(from_pool)?;
                    let tx = client.transaction().await.map_err(from_pg)?;
                    let mut statements = Vec::with_capacity(order.len());
                    for &i in &order {
                        let sql = self.sql.put(&writes[i].key, writes[i].expect);
                        statements.push(tx.prepare_cached(sql).await.map_err(from_pg)?);
                    }
                    // Polled together, the queries go out pipelined, in order.
                    let transaction = &tx;
                    let queries = order.iter().zip(&statements).map(|(&i, statement)| {
                        let write = &writes[i];
                        let key: &(dyn ToSql + Sync) = &write.key;
                        let value: &(dyn ToSql + Sync) = &write.value;
                        let params: Vec<&(dyn ToSql + Sync)> = match &versions[i] {
                            None => vec![key, value],
                            Some(version) => vec![key, value, version],
                        };
                        async move { transaction.query(statement, &params).await }
                    });
                    let rows = futures_util::future::join_all(queries).await;
                    let rows = rows
                        .into_iter()
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(from_pg)?;
                    tx.commit().await.map_err(from_pg)?;
                    Ok(rows)
                })
                .await;
            match written {
                Ok(rows) => {
                    for (&i, rows) in order.iter().zip(rows) {
                        results[i] = Some(match rows.first() {
                            None => Err(StoreError::Conflict),
                            Some(row) => row
                                .try_get(0)
                                .map_err(from_pg)
                                .and_then(|version| version_of(version, &writes[i].key)),
                        });
                    }
                }
                Err(error) => {
                    // Nothing or everything was committed: each write is told.
                    let message = error.to_string();
                    for &i in &order {
                        results[i] = Some(Err(same_kind(&error, &message)));
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

/// `expect`'s version as a bigint: `Some(None)` without one, `None` when
/// it is beyond bigint (no row has it).
fn expected_version(expect: Expect) -> Option<Option<i64>> {
    match expect {
        Expect::Absent | Expect::Any => Some(None),
        Expect::Version(version) => i64::try_from(version).ok().map(Some),
    }
}

/// A copy of a batch's error for each of its writes.
fn same_kind(error: &StoreError, message: &str) -> StoreError {
    match error {
        StoreError::Conflict => StoreError::Conflict,
        StoreError::Unavailable(_) => StoreError::Unavailable(message.to_owned()),
        StoreError::Timeout(_) => StoreError::Timeout(message.to_owned()),
        _ => StoreError::Backend(message.to_owned().into()),
    }
}

/// Keeps a `LISTEN` connection open while anyone subscribes, reconnecting
/// with backoff, and wakes the subscribers on every notification and after
/// every (re)connect.
async fn listen(listener: Arc<Listener>, listen_sql: String) {
    listener
        .listening
        .supervise(|| listen_once(&listener, &listen_sql))
        .await;
}

/// One connection's life: returns when it fails.
async fn listen_once(listener: &Listener, listen_sql: &str) {
    let (client, mut connection) = match listener.config.connect(NoTls).await {
        Ok(connected) => connected,
        Err(error) => {
            tracing::warn!(%error, "cannot open the PostgreSQL LISTEN connection; polling meanwhile");
            return;
        }
    };
    let subscribe = client.batch_execute(listen_sql);
    tokio::pin!(subscribe);
    let mut subscribed = false;
    loop {
        tokio::select! {
            done = &mut subscribe, if !subscribed => match done {
                Ok(()) => {
                    subscribed = true;
                    // Notifications sent while no connection listened are lost.
                    listener.listening.connected();
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot LISTEN for due hints; polling meanwhile");
                    return;
                }
            },
            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(AsyncMessage::Notification(_))) => listener.listening.due.notify(),
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "the PostgreSQL LISTEN connection failed; reconnecting");
                    return;
                }
                None => return,
            },
        }
    }
}

fn validate_table_name(name: &str) -> Result<(), PostgresStoreError> {
    let invalid = |reason| PostgresStoreError::InvalidTableName {
        name: name.to_owned(),
        reason,
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid("it is empty")),
        Some(c) if c.is_ascii_digit() => return Err(invalid("it starts with a digit")),
        Some(_) => {}
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid(
            "it holds a character other than a letter, a digit or `_`",
        ));
    }
    if name.len() > MAX_TABLE_NAME {
        return Err(invalid("it is too long"));
    }
    Ok(())
}

/// The smallest string greater than every string starting with `prefix`,
/// or `None` if there is none (an empty prefix, or only `char::MAX`s).
///
/// UTF-8 preserves the order of code points, so incrementing the last code
/// point that can be incremented, and dropping what follows it, gives the
/// bound in byte order too.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            char::MAX => continue,
            '\u{D7FF}' => '\u{E000}',
            c => match char::from_u32(u32::from(c) + 1) {
                Some(next) => next,
                None => continue,
            },
        };
        chars.push(next);
        return Some(chars.into_iter().collect());
    }
    None
}

fn version_of(raw: i64, key: &str) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| {
        StoreError::Backend(format!("key {key:?} has a negative version {raw} in the table").into())
    })
}

fn from_pool(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => from_pg(error),
        PoolError::Timeout(kind) => {
            StoreError::Timeout(format!("no PostgreSQL connection in time ({kind:?})"))
        }
        PoolError::Closed => StoreError::Unavailable("the PostgreSQL pool is closed".into()),
        other => StoreError::Backend(Box::new(other)),
    }
}

fn from_pg(error: tokio_postgres::Error) -> StoreError {
    use std::error::Error as _;
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        // Class 08: connection exceptions; 53: out of resources (connections,
        // disk, memory); 57P0x: the server is shutting down or starting.
        if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
            return StoreError::Unavailable(format!("PostgreSQL: {db}"));
        }
        // query_canceled: `statement_timeout` or `lock_timeout` fired.
        if code == "57014" || code == "55P03" {
            return StoreError::Timeout(format!("PostgreSQL: {db}"));
        }
        return StoreError::Backend(Box::new(error));
    }
    if error.is_closed() {
        return StoreError::Unavailable(format!("PostgreSQL connection closed: {error}"));
    }
    let io = error
        .source()
        .and_then(|source| source.downcast_ref::<std::io::Error>());
    if let Some(io) = io {
        return if io.kind() == std::io::ErrorKind::TimedOut {
            StoreError::Timeout(format!("PostgreSQL: {error}: {io}"))
        } else {
            StoreError::Unavailable(format!("PostgreSQL: {error}: {io}"))
        };
    }
    // The driver's connect timeout has no source and no public kind.
    if error.to_string().contains("timeout") {
        return StoreError::Timeout(format!("PostgreSQL: {error}"));
    }
    StoreError::Backend(Box::new(error))
}

/// FNV-1a: a stable 64-bit hash, for the schema's advisory lock id.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_identifiers() {
        for good in ["sagaflow_kv", "_t", "T1", &"a".repeat(MAX_TABLE_NAME)] {
            assert!(validate_table_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"; DROP TABLE x; --",
            "schema.table",
            "é",
            &"a".repeat(MAX_TABLE_NAME + 1),
        ] {
            assert!(
                matches!(
                    validate_table_name(bad),
                    Err(PostgresStoreError::InvalidTableName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prefix_successor_bounds_the_prefix() {
        assert_eq!(prefix_successor("in/").as_deref(), Some("in0"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        let upper = prefix_successor("日本/").unwrap();
        for key in ["日本/", "日本/x", "日本/\u{10FFFF}"] {
            assert!(key < upper.as_str(), "{key}");
        }
        assert!("日本0" >= upper.as_str());
    }
}
