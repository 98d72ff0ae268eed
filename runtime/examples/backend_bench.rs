//! CAS throughput of the server-backed stores: one writer, then 64
//! concurrent writers, each doing read-free compare-and-swap puts of a
//! 300-byte value on a key of its own (`Expect::Version` of its last write),
//! as the runtime does once per step.
//!
//! ```text
//! SAGAFLOW_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//! SAGAFLOW_REDIS_URL=redis://127.0.0.1:6379 \
//! SAGAFLOW_ETCD_ENDPOINTS=http://127.0.0.1:23790 \
//! cargo run --release -p sagaflow --features postgres,redis,etcd --example backend_bench [seconds]
//! ```
//!
//! A backend whose variable is unset is skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow::store::{Expect, Store};
use sagaflow::{EtcdStore, PostgresStore, RedisStore, StoreError};

const VALUE_SIZE: usize = 300;

#[tokio::main]
async fn main() -> Result<(), StoreError> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(seconds);
    let run = format!("bench-{}-{}/", std::process::id(), now_ms());

    if let Ok(url) = std::env::var("SAGAFLOW_POSTGRES_URL") {
        let table = format!("sagaflow_bench_{}", std::process::id());
        let store = PostgresStore::with_table(&url, &table)
            .await?
            .with_pool_size(64);
        bench(Arc::new(store), &run, duration).await?;
        drop_table(&url, &table).await;
    }
    if let Ok(url) = std::env::var("SAGAFLOW_REDIS_URL") {
        let store =
            RedisStore::with_namespace(&url, &format!("sagaflow-bench-{}", now_ms())).await?;
        bench(Arc::new(store), &run, duration).await?;
    }
    if let Ok(list) = std::env::var("SAGAFLOW_ETCD_ENDPOINTS") {
        let endpoints: Vec<&str> = list.split(',').map(str::trim).collect();
        let store = EtcdStore::connect(&endpoints).await?;
        bench(Arc::new(store), &run, duration).await?;
    }
    Ok(())
}

async fn bench<S: Store>(store: Arc<S>, run: &str, duration: Duration) -> Result<(), StoreError> {
    for writers in [1, 64] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let store = store.clone();
            let key = format!("{run}{writers}/{writer}");
            tasks.push(tokio::spawn(async move {
                let value = vec![b'x'; VALUE_SIZE];
                let mut version = store.put(&key, value.clone(), Expect::Absent).await?;
                let mut puts = 1u64;
                while started.elapsed() < duration {
                    version = store
                        .put(&key, value.clone(), Expect::Version(version))
                        .await?;
                    puts += 1;
                }
                store.delete(&key, Expect::Version(version)).await?;
                Ok::<u64, StoreError>(puts)
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.map_err(|e| StoreError::Backend(Box::new(e)))??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{:<8} {writers:>2} writer(s): {:>8.0} CAS puts/s ({total} in {elapsed:.1} s)",
            store.name(),
            total as f64 / elapsed
        );
    }
    Ok(())
}

async fn drop_table(url: &str, table: &str) {
    if let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        let driver = tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS \"{table}\"; DROP SEQUENCE IF EXISTS \"{table}_version\""
            ))
            .await;
        drop(client);
        let _ = driver.await;
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}
