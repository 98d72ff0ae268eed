//! Store throughput and latency: CAS updates of distinct keys with 300-byte
//! values, by 1 writer and by 2,000 concurrent writers, on `MemoryStore` and
//! `EmbeddedStore` (every embedded write durable: fsync'd before it returns).
//!
//! ```text
//! cargo run --release -p sagaflow --example store_bench [-- --secs 5 --writers 2000 --dir /path --stores memory,embedded]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow::MemoryStore;
use sagaflow::store::{Expect, Store};

const VALUE_SIZE: usize = 300;

struct Args {
    secs: f64,
    writers: usize,
    dir: std::path::PathBuf,
    stores: String,
}

fn args() -> Args {
    let mut args = Args {
        secs: 5.0,
        writers: 2000,
        dir: std::env::temp_dir(),
        stores: "memory,embedded".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--secs" => args.secs = value.parse().expect("--secs: a number"),
            "--writers" => args.writers = value.parse().expect("--writers: a number"),
            "--dir" => args.dir = value.into(),
            "--stores" => args.stores = value,
            _ => panic!("unknown flag {flag}; use --secs, --writers, --dir, --stores"),
        }
    }
    args
}

/// `writers` tasks, each updating its own key by CAS as fast as it can for
/// `secs`; returns (updates/s, p50, p99, p99.9).
async fn run(
    store: Arc<dyn Store>,
    writers: usize,
    secs: f64,
) -> (f64, Duration, Duration, Duration) {
    let mut versions = Vec::with_capacity(writers);
    for w in 0..writers {
        let key = format!("bench/{w:05}");
        versions.push(
            store
                .put(&key, vec![0; VALUE_SIZE], Expect::Any)
                .await
                .expect("create"),
        );
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::with_capacity(writers);
    for (w, mut version) in versions.into_iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("bench/{w:05}");
            let mut latencies = Vec::new();
            let mut n = 0u8;
            while Instant::now() < deadline {
                n = n.wrapping_add(1);
                let t = Instant::now();
                version = store
                    .put(&key, vec![n; VALUE_SIZE], Expect::Version(version))
                    .await
                    .expect("cas update");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("writer task"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (
        latencies.len() as f64 / elapsed,
        at(0.50),
        at(0.99),
        at(0.999),
    )
}

fn report(
    store: &str,
    writers: usize,
    (rate, p50, p99, p999): (f64, Duration, Duration, Duration),
) {
    println!(
        "{store:<9} {writers:>6} writers  {rate:>10.0} puts/s   p50 {:>9.3} ms   p99 {:>9.3} ms   p99.9 {:>9.3} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        p999.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let args = args();
    println!(
        "CAS updates of distinct keys, {VALUE_SIZE}-byte values, {} s per run",
        args.secs
    );
    let memory = args.stores.contains("memory");
    for writers in [1, args.writers].into_iter().filter(|_| memory) {
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
        report("memory", writers, run(memory, writers, args.secs).await);
    }
    #[cfg(feature = "embedded")]
    for writers in [1, args.writers]
        .into_iter()
        .filter(|_| args.stores.contains("embedded"))
    {
        let dir = args.dir.join(format!(
            "sagaflow-store-bench-{}-{writers}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let embedded: Arc<dyn Store> =
            Arc::new(sagaflow::EmbeddedStore::open(&dir).expect("open the embedded store"));
        report("embedded", writers, run(embedded, writers, args.secs).await);
        let _ = std::fs::remove_dir_all(&dir);
    }
    #[cfg(not(feature = "embedded"))]
    println!("embedded: skipped (build with the `embedded` feature)");
}
