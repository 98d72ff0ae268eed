//! What a queue costs per start: the same one-step workflow started with
//! `rt.start` and enqueued with `rt.enqueue` into queues with and without
//! limits, on the memory and the embedded (fsync'd) stores, and on
//! PostgreSQL with the `postgres` feature.
//!
//! ```text
//! cargo run --release -p sagaflow-examples --example queue_bench
//! cargo run --release -p sagaflow-examples --example queue_bench -- --count 2000 --rounds 3
//! cargo run --release -p sagaflow-examples --features postgres --example queue_bench -- \
//!     --stores postgres --postgres postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! Each series starts `--count` instances at once (each from a task of its
//! own, which then awaits the outcome) on a fresh store and runtime, and
//! counts workflows per second from the first call to the last outcome;
//! it prints the median of `--rounds` rounds, and the queue's overhead per
//! start: the wall time per workflow beyond that of `rt.start` on the same
//! store (on 2 cores the start and the queue's dispatcher share the CPU
//! with the workflows, so this is throughput lost, not latency). A second
//! table counts the store operations per workflow, from one round on a
//! counting wrapper of the memory store. PostgreSQL uses the table
//! `sagaflow_queue_bench`, emptied before each round and at the end.

/// The allocator of the other benches (`--features system-allocator`
/// measures the system's).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow::store::{Expect, ScanPage, Store, Versioned};
use sagaflow::{Enqueue, Queue, StoreError};

#[step(readonly)]
async fn touch(n: &u32) -> Result<u32, StepError> {
    Ok(*n)
}

#[workflow]
async fn one_step(n: u32) -> Result<u32, WorkflowError> {
    let touched = touch(&n).await?;
    Ok(touched)
}

/// How instances are started in a series.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Series {
    /// `rt.start`: no queue.
    Start,
    /// A queue without limits.
    Free,
    /// `concurrency(64)`.
    Concurrency,
    /// `concurrency(64).partition_concurrency(1)`, 200 partition keys.
    Partitioned,
    /// `rate_limit(1_000_000, 1 s)`: the window record's cost, never full.
    Rate,
}

const SERIES: [Series; 5] = [
    Series::Start,
    Series::Free,
    Series::Concurrency,
    Series::Partitioned,
    Series::Rate,
];

impl Series {
    fn label(self) -> &'static str {
        match self {
            Series::Start => "rt.start (no queue)",
            Series::Free => "queue, no limits",
            Series::Concurrency => "queue, concurrency(64)",
            Series::Partitioned => "queue, concurrency(64), partition_concurrency(1), 200 keys",
            Series::Rate => "queue, rate_limit(1,000,000 per s)",
        }
    }

    fn queue(self) -> Queue {
        let queue = Queue::new("bench");
        match self {
            Series::Start | Series::Free => queue,
            Series::Concurrency => queue.concurrency(64),
            Series::Partitioned => queue.concurrency(64).partition_concurrency(1),
            Series::Rate => queue.rate_limit(1_000_000, Duration::from_secs(1)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Memory,
    Embedded,
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Backend {
    fn parse(name: &str) -> Backend {
        match name {
            "memory" => Backend::Memory,
            "embedded" => Backend::Embedded,
            #[cfg(feature = "postgres")]
            "postgres" => Backend::Postgres,
            other => panic!(
                "--stores takes memory, embedded, and postgres when built with \
                 `--features postgres`; not {other:?}"
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Embedded => "embedded",
            #[cfg(feature = "postgres")]
            Backend::Postgres => "postgres",
        }
    }
}

/// A scratch directory for an embedded store, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh store of `backend`, and the directory it lives in.
#[allow(unused_variables)]
async fn fresh_store(
    backend: Backend,
    postgres: Option<&str>,
) -> (Arc<dyn Store>, Option<Scratch>) {
    match backend {
        Backend::Memory => (Arc::new(MemoryStore::new()), None),
        Backend::Embedded => {
            let path = std::env::temp_dir().join(format!(
                "sagaflow-queue-bench-{}-{}",
                std::process::id(),
                ROUND.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            let store = EmbeddedStore::open(&path).expect("open the embedded store");
            (Arc::new(store), Some(Scratch(path)))
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let url =
                postgres.expect("--stores postgres: give --postgres or set SAGAFLOW_POSTGRES_URL");
            let store = sagaflow::PostgresStore::with_table(url, "sagaflow_queue_bench")
                .await
                .expect("connect to PostgreSQL")
                .with_pool_size(32);
            let store: Arc<dyn Store> = Arc::new(store);
            wipe(&store).await;
            (store, None)
        }
    }
}

static ROUND: AtomicU64 = AtomicU64::new(0);

/// Deletes every key of `store`.
#[cfg(feature = "postgres")]
async fn wipe(store: &Arc<dyn Store>) {
    loop {
        let page = store.scan("", None, 1_000).await.expect("scan");
        if page.entries.is_empty() {
            return;
        }
        for (key, _) in page.entries {
            store.delete(&key, Expect::Any).await.expect("delete");
        }
    }
}

/// Starts `count` instances at once as `series` says, and returns the
/// wall time from the first call to the last outcome.
async fn round(store: Arc<dyn Store>, series: Series, count: u32) -> Duration {
    let rt = Runtime::builder()
        .store(store)
        .register(one_step)
        .queue(series.queue())
        .build()
        .await
        .expect("the runtime builds");
    let began = Instant::now();
    let mut lanes = tokio::task::JoinSet::new();
    for n in 0..count {
        let rt = rt.clone();
        lanes.spawn(async move {
            let id = format!("wf-{n:06}");
            let output = match series {
                Series::Start => rt.start(one_step, id, n).await?.outcome().await?,
                Series::Partitioned => {
                    let to = Enqueue::new("bench").partition(format!("key-{}", n % 200));
                    rt.enqueue(to, one_step, id, n).await?.outcome().await?
                }
                _ => {
                    rt.enqueue("bench", one_step, id, n)
                        .await?
                        .outcome()
                        .await?
                }
            };
            assert_eq!(output, Outcome::Completed(n));
            Ok::<(), sagaflow::Error>(())
        });
    }
    while let Some(done) = lanes.join_next().await {
        done.expect("a lane").expect("an instance");
    }
    let wall = began.elapsed();
    rt.shutdown().await;
    wall
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Counts the operations that reach a store.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    scans: AtomicU64,
}

#[async_trait::async_trait]
impl Store for Counting {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.put(key, value, expect).await
    }
    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        self.deletes.fetch_add(1, Ordering::Relaxed);
        self.inner.delete(key, expect).await
    }
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.scans.fetch_add(1, Ordering::Relaxed);
        self.inner.scan(prefix, after, limit).await
    }
    fn name(&self) -> &'static str {
        "counting memory"
    }
}

struct Options {
    stores: Vec<Backend>,
    count: u32,
    rounds: usize,
    postgres: Option<String>,
}

fn options() -> Options {
    let mut options = Options {
        stores: vec![Backend::Memory, Backend::Embedded],
        count: 2_000,
        rounds: 5,
        postgres: std::env::var("SAGAFLOW_POSTGRES_URL").ok(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} takes a value"));
        match flag.as_str() {
            "--stores" => options.stores = value.split(',').map(Backend::parse).collect(),
            "--count" => options.count = value.parse().expect("--count takes a number"),
            "--rounds" => {
                options.rounds = value
                    .parse::<usize>()
                    .expect("--rounds takes a number")
                    .max(1)
            }
            "--postgres" => options.postgres = Some(value.clone()),
            other => panic!(
                "unknown flag {other}; usage: queue_bench [--stores memory,embedded,postgres] \
                 [--count N] [--rounds N] [--postgres URL]"
            ),
        }
    }
    options
}

#[tokio::main]
async fn main() {
    let options = options();
    let count = options.count;
    println!(
        "{count} one-step workflows at once, median of {} rounds (workflows/s; the queue's \
         wall time per workflow beyond rt.start's)",
        options.rounds
    );
    for backend in &options.stores {
        println!("\n{}", backend.name());
        let mut start_per_workflow = None;
        for series in SERIES {
            let mut rates = Vec::new();
            for _ in 0..options.rounds {
                let (store, scratch) = fresh_store(*backend, options.postgres.as_deref()).await;
                // Run on a task of the runtime, as a server's handlers would.
                let wall = tokio::spawn(round(store, series, count))
                    .await
                    .expect("a round");
                drop(scratch);
                rates.push(f64::from(count) / wall.as_secs_f64());
            }
            let rate = median(rates);
            let per_workflow_us = 1e6 / rate;
            let overhead = match (series, start_per_workflow) {
                (Series::Start, _) => {
                    start_per_workflow = Some(per_workflow_us);
                    String::new()
                }
                (_, Some(start)) => format!("  +{:.1} µs per start", per_workflow_us - start),
                (_, None) => String::new(),
            };
            println!("  {:<62} {:>9.0}/s{overhead}", series.label(), rate);
        }
        #[cfg(feature = "postgres")]
        if *backend == Backend::Postgres {
            let (store, _) = fresh_store(*backend, options.postgres.as_deref()).await;
            wipe(&store).await;
        }
    }

    println!("\nstore operations per workflow (memory store, one round of {count})");
    println!(
        "  {:<62} {:>6} {:>6} {:>7} {:>6}",
        "", "gets", "puts", "deletes", "scans"
    );
    for series in SERIES {
        let counting = Arc::new(Counting::default());
        let store: Arc<dyn Store> = Arc::clone(&counting) as Arc<dyn Store>;
        tokio::spawn(round(store, series, count))
            .await
            .expect("a round");
        let per = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64 / f64::from(count);
        println!(
            "  {:<62} {:>6.2} {:>6.2} {:>7.2} {:>6.2}",
            series.label(),
            per(&counting.gets),
            per(&counting.puts),
            per(&counting.deletes),
            per(&counting.scans)
        );
    }
}
