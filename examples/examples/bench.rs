//! Throughput, step latency and resume cost of the runtime, on the memory
//! store and on the embedded (durable, fsync'd) store.
//!
//! ```text
//! cargo run --release -p sagaflow-examples --example bench
//! cargo run --release -p sagaflow-examples --example bench -- --workers default,64,2000 --rounds 5
//! # On the system allocator rather than mimalloc:
//! cargo run --release -p sagaflow-examples --features system-allocator --example bench
//! # The server-backed stores (each behind its feature), with group commit
//! # on and off, and the wake-up latency across runtimes:
//! cargo run --release -p sagaflow-examples --features postgres,redis,etcd --example bench -- \
//!     --stores postgres,redis,etcd --postgres postgres://postgres@127.0.0.1:5432/test \
//!     --redis redis://127.0.0.1:6379 --etcd http://127.0.0.1:2379 \
//!     --only throughput,wake --group-commit on,off
//! ```
//!
//! The server addresses default to `SAGAFLOW_POSTGRES_URL`,
//! `SAGAFLOW_REDIS_URL` and `SAGAFLOW_ETCD_ENDPOINTS`. A server store uses
//! the table `sagaflow_bench`, the namespace `sagaflow-bench` or the key
//! prefix `sagaflow-bench/`, emptied before each run and at the end.
//!
//! - **Throughput and latency**: a four-step saga with trivial steps
//!   (two compensable steps, a pivot, a retriable step), one instance at a
//!   time, 2,000 started at once (a burst: 8,000 steps, tens of
//!   milliseconds in memory, so it includes the runtime's warm-up), and
//!   sustained: 2,000 at once until 20,000 ran (`--sustained`; each of
//!   2,000 lanes starts its next instance when its last one ended). Steps/s
//!   counts the four steps of every instance
//!   over the wall time from the first `start` to the last outcome. A step's
//!   latency is the time from its start to the start of the next step (the
//!   step, its durable transition, and the dispatch of the next step); the
//!   last step's runs to its handle seeing the outcome. Each series prints
//!   its median over the rounds (5 by default, each on a fresh store and
//!   runtime), and the throughput section ends with the project's goals
//!   against those medians.
//! - **Store operations per step**: the same concurrent run on a counting
//!   store wrapper, to show what each step costs the store.
//! - **Resume**: an instance stopped inside a loop after 10 and after 1,000
//!   steps is taken over by a new runtime (after its previous owner
//!   vanished); the time from `build` to the next step starting covers
//!   loading the record, claiming it, one step and its transition. Shown for
//!   a loop over a readonly step (the record holds the loop's position) and
//!   over a compensable step (the record's compensation stack holds one
//!   entry per completed compensable step: it grows with the saga).
//!   Memory and embedded stores only.
//! - **Wake-up** (`wake`): a worker runtime polling only hourly and a
//!   client-only runtime, each on its own store object; the time from
//!   `start` on the client to the first step running on the worker: what
//!   the store's change notification costs.

/// The allocator: a saga step allocates and frees small buffers across
/// tokio's threads, which glibc's allocator handles at roughly half the
/// speed (measured: memory store 190k against 310k–430k steps/s).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator the figures were measured with.
const ALLOCATOR_NAME: &str = if cfg!(feature = "system-allocator") {
    "the system allocator"
} else {
    "mimalloc"
};

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow::store::{Expect, ScanPage, Store, Versioned};
use sagaflow::{RuntimeBuilder as Builder, StoreError, record};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- the four-step saga

/// One benchmark instance: its index in the latency table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    n: u32,
}

#[step]
async fn reserve(job: &Job) -> Result<u32, StepError> {
    mark(job.n, 0);
    Ok(job.n)
}

#[compensate(reserve)]
async fn release(_job: &Job, _reserved: u32) -> Result<(), StepError> {
    Ok(())
}

#[step]
async fn charge(job: &Job) -> Result<u32, StepError> {
    mark(job.n, 1);
    Ok(job.n)
}

#[compensate(charge)]
async fn refund(_job: &Job, _charged: u32) -> Result<(), StepError> {
    Ok(())
}

#[step(pivot)]
async fn ship(job: &Job) -> Result<u32, StepError> {
    mark(job.n, 2);
    Ok(job.n)
}

#[step(retriable)]
async fn notify(job: &Job) -> Result<(), StepError> {
    mark(job.n, 3);
    Ok(())
}

#[workflow]
async fn four_steps(job: Job) -> Result<u32, WorkflowError> {
    let reserved = reserve(&job).await?;
    let charged = charge(&job).await?;
    let shipped = ship(&job).await?;
    notify(&job).await?;
    Ok(reserved + charged + shipped)
}

/// Marks per instance: the start of each of the four steps, then the outcome.
const MARKS: usize = 5;
/// The most instances one run marks.
const MAX_INSTANCES: usize = 50_000;

static EPOCH: OnceLock<Instant> = OnceLock::new();
static TABLE: OnceLock<Vec<AtomicU64>> = OnceLock::new();

fn table() -> &'static [AtomicU64] {
    TABLE.get_or_init(|| {
        (0..MAX_INSTANCES * MARKS)
            .map(|_| AtomicU64::new(0))
            .collect()
    })
}

/// Records that instance `n` reached mark `k`, in ns since the epoch;
/// lock-free, so 2,000 instances marking at once do not contend.
fn mark(n: u32, k: usize) {
    table()[n as usize * MARKS + k].store(now_ns(), Ordering::Relaxed);
}

/// Nanoseconds since the marks' epoch.
fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn reset_marks(count: usize) {
    for slot in &table()[..count * MARKS] {
        slot.store(0, Ordering::Relaxed);
    }
}

/// Step latencies of instances `0..count`, in µs, sorted.
fn step_latencies(count: usize) -> Vec<f64> {
    let table = table();
    let mut latencies = Vec::with_capacity(count * 4);
    for n in 0..count {
        let marks: Vec<u64> = (0..MARKS)
            .map(|k| table[n * MARKS + k].load(Ordering::Relaxed))
            .collect();
        assert!(
            marks.iter().all(|&ns| ns > 0),
            "instance {n} missed a mark: {marks:?}"
        );
        for pair in marks.windows(2) {
            latencies.push(pair[1].saturating_sub(pair[0]) as f64 / 1e3);
        }
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------- stores

/// Which store a run uses; each run gets a fresh one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Memory,
    Embedded,
    #[cfg(feature = "postgres")]
    Postgres,
    #[cfg(feature = "redis")]
    Redis,
    #[cfg(feature = "etcd")]
    Etcd,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Embedded => "embedded",
            #[cfg(feature = "postgres")]
            Backend::Postgres => "postgres",
            #[cfg(feature = "redis")]
            Backend::Redis => "redis",
            #[cfg(feature = "etcd")]
            Backend::Etcd => "etcd",
        }
    }

    fn parse(name: &str) -> Backend {
        match name {
            "memory" => Backend::Memory,
            "embedded" => Backend::Embedded,
            #[cfg(feature = "postgres")]
            "postgres" => Backend::Postgres,
            #[cfg(feature = "redis")]
            "redis" => Backend::Redis,
            #[cfg(feature = "etcd")]
            "etcd" => Backend::Etcd,
            _ => panic!(
                "--stores takes memory, embedded, and postgres, redis, etcd when built \
                 with the feature of that name; not {name:?}"
            ),
        }
    }

    /// Whether its store lives in this process (and survives a tokio runtime).
    fn in_process(self) -> bool {
        matches!(self, Backend::Memory | Backend::Embedded)
    }
}

/// Where the server stores are: `--postgres`, `--redis`, `--etcd`, or the
/// `SAGAFLOW_*` variables.
#[derive(Clone, Debug, Default)]
struct Servers {
    postgres: Option<String>,
    redis: Option<String>,
    etcd: Option<String>,
}

static SERVERS: OnceLock<Servers> = OnceLock::new();

#[cfg_attr(
    not(any(feature = "postgres", feature = "redis", feature = "etcd")),
    allow(dead_code)
)]
fn servers() -> &'static Servers {
    SERVERS.get_or_init(Servers::default)
}

/// A new connection to the bench's place on a server store (a second call
/// gives a second connection to the same data, as another process would).
#[allow(unused_variables, unreachable_code)]
async fn server_store(backend: Backend) -> Arc<dyn Store> {
    let missing = |what: &str| -> ! {
        panic!(
            "--stores {}: give --{what} or set its SAGAFLOW_ variable",
            backend.name()
        )
    };
    match backend {
        Backend::Memory | Backend::Embedded => unreachable!("not a server store"),
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let url = servers()
                .postgres
                .clone()
                .unwrap_or_else(|| missing("postgres"));
            let store = sagaflow::PostgresStore::with_table(&url, "sagaflow_bench")
                .await
                .expect("connect to PostgreSQL")
                .with_pool_size(32);
            Arc::new(store)
        }
        #[cfg(feature = "redis")]
        Backend::Redis => {
            let url = servers().redis.clone().unwrap_or_else(|| missing("redis"));
            let store = sagaflow::RedisStore::with_namespace(&url, "sagaflow-bench")
                .await
                .expect("connect to Redis");
            Arc::new(store)
        }
        #[cfg(feature = "etcd")]
        Backend::Etcd => {
            let endpoints = servers().etcd.clone().unwrap_or_else(|| missing("etcd"));
            let endpoints: Vec<&str> = endpoints.split(',').map(str::trim).collect();
            let store = sagaflow::EtcdStore::connect(&endpoints)
                .await
                .expect("connect to etcd")
                .with_key_prefix("sagaflow-bench/");
            Arc::new(store)
        }
    }
}

/// Deletes every key of `store`: what an earlier run left.
async fn wipe(store: &Arc<dyn Store>) {
    loop {
        let page = store.scan("", None, 1_000).await.expect("scan");
        if page.entries.is_empty() {
            return;
        }
        let mut deletes = tokio::task::JoinSet::new();
        for (key, _) in page.entries {
            let store = Arc::clone(store);
            deletes.spawn(async move { store.delete(&key, Expect::Any).await });
        }
        while let Some(deleted) = deletes.join_next().await {
            deleted.expect("a delete").expect("delete");
        }
    }
}

/// A scratch directory for embedded stores, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let path =
            std::env::temp_dir().join(format!("sagaflow-bench-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh in-process store of `backend`; the scratch directory lives as
/// long as it.
fn fresh_local_store(backend: Backend, label: &str) -> (Arc<dyn Store>, Option<Scratch>) {
    match backend {
        Backend::Embedded => {
            let scratch = Scratch::new(label);
            let store = EmbeddedStore::open(&scratch.0).expect("open the embedded store");
            (Arc::new(store), Some(scratch))
        }
        _ => (Arc::new(MemoryStore::new()), None),
    }
}

/// A fresh store of `backend`: a server store emptied.
async fn fresh_store(backend: Backend, label: &str) -> (Arc<dyn Store>, Option<Scratch>) {
    if backend.in_process() {
        return fresh_local_store(backend, label);
    }
    let store = server_store(backend).await;
    wipe(&store).await;
    (store, None)
}

/// Counts the operations that reach a store.
struct Counting<S> {
    inner: S,
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    scans: AtomicU64,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Counting<S> {
        Counting {
            inner,
            gets: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            scans: AtomicU64::new(0),
        }
    }
}

#[async_trait::async_trait]
impl<S: Store> Store for Counting<S> {
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
        self.inner.name()
    }
}

// ---------------------------------------------------------------- throughput

/// What one throughput run measured.
struct Run {
    steps_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    wall: Duration,
}

/// How a throughput run sets up its runtime and starts its lanes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Workers {
    /// As a user's first program does: the library's default worker count,
    /// and the lanes spawned from the `block_on` future (what
    /// `#[tokio::main]` runs), not from a task of the runtime.
    Defaults,
    /// `.workers(n)`, and the lanes spawned from a task of the runtime, as
    /// a server's request handlers start instances.
    Tuned(usize),
}

impl Workers {
    fn parse(value: &str) -> Workers {
        match value {
            "default" | "defaults" => Workers::Defaults,
            n => Workers::Tuned(n.parse().expect("--workers default,64,2000")),
        }
    }

    /// As the bench's lines name it.
    fn label(self) -> String {
        match self {
            Workers::Defaults => format!("defaults ({} workers)", Builder::DEFAULT_WORKERS),
            Workers::Tuned(n) => format!("workers {n}"),
        }
    }

    /// Whether its figures are checked against the goals: the defaults,
    /// and tuned runs with as many workers as `concurrent` instances.
    fn judged(self, concurrent: usize) -> bool {
        match self {
            Workers::Defaults => true,
            Workers::Tuned(n) => n >= concurrent,
        }
    }
}

/// Runs `instances` four-step sagas, `lanes` at a time (1 or all), on
/// `store` as `workers` says.
async fn throughput(
    store: Arc<dyn Store>,
    instances: usize,
    lanes: usize,
    workers: Workers,
    group_commit: bool,
) -> Run {
    let mut builder = Runtime::builder()
        .store(store)
        .register(four_steps)
        .group_commit(group_commit);
    if let Workers::Tuned(n) = workers {
        builder = builder.workers(n);
    }
    let rt = builder.build().await.expect("the runtime builds");
    reset_marks(instances);
    let started = Instant::now();
    match workers {
        Workers::Defaults => run_lanes(rt.clone(), instances, lanes).await,
        // Started from a task on the runtime, as a server's handlers start
        // instances: spawning the lanes from outside it (the `block_on`
        // thread) sends each through tokio's shared queue and wakes a
        // worker thread for it.
        Workers::Tuned(_) => tokio::spawn(run_lanes(rt.clone(), instances, lanes))
            .await
            .expect("the lanes run"),
    }
    let wall = started.elapsed();
    rt.shutdown().await;
    let latencies = step_latencies(instances);
    Run {
        steps_per_sec: (instances * 4) as f64 / wall.as_secs_f64(),
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        wall,
    }
}

/// Runs `instances` four-step sagas on `rt`, `lanes` at a time. Each lane
/// starts its next instance when its last one ended, until `instances` ran.
/// Lanes are tasks of their own: one caller starting 2,000 instances in
/// turn would wait for 2,000 durable writes one after another.
async fn run_lanes(rt: Runtime, instances: usize, lanes: usize) {
    let mut waiters = Vec::with_capacity(lanes);
    for lane in 0..lanes.min(instances) {
        let rt = rt.clone();
        waiters.push(tokio::spawn(async move {
            for n in (lane..instances).step_by(lanes) {
                let handle = rt
                    .start(four_steps, format!("job-{n:06}"), Job { n: n as u32 })
                    .await
                    .expect("start");
                let outcome = handle.outcome().await.expect("an outcome");
                mark(n as u32, 4);
                assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
            }
        }));
    }
    for waiter in waiters {
        waiter.await.expect("the lane runs");
    }
}

/// The median of `rates`, if there are any.
fn median(rates: &[f64]) -> Option<f64> {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

/// The project's goals on a 2-core machine, against the medians measured
/// with `concurrent` instances at once (and as many workers).
fn print_goals(goals: &[(Backend, &str, Workers, f64)], concurrent: usize) {
    let goal_of = |backend: Backend| match backend {
        Backend::Memory => Some((500_000.0, "in memory")),
        Backend::Embedded => Some((100_000.0, "durable, on the embedded store")),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    if goals.is_empty() {
        return;
    }
    println!("\n  goals, {concurrent} instances at once (medians):");
    for &(backend, kind, workers, median) in goals {
        let Some((goal, what)) = goal_of(backend) else {
            continue;
        };
        let verdict = if median >= goal { "met" } else { "MISSED" };
        println!(
            "    {what}, {kind}, {}: {median:.0} steps/s against {goal:.0}: {verdict}",
            workers.label()
        );
    }
    // The user's default setup against the tuned one, store by store.
    for &(backend, kind, workers, median) in goals {
        if workers != Workers::Defaults {
            continue;
        }
        let tuned = goals
            .iter()
            .filter(|&&(b, k, w, _)| b == backend && k == kind && w != Workers::Defaults)
            .map(|&(_, _, _, rate)| rate)
            .fold(None, |best: Option<f64>, rate| {
                Some(best.map_or(rate, |b| b.max(rate)))
            });
        if let Some(tuned) = tuned {
            println!(
                "    {}, {kind}: the defaults reach {:.0}% of the tuned figure",
                backend.name(),
                100.0 * median / tuned
            );
        }
    }
}

fn print_run(label: &str, run: &Run) {
    println!(
        "  {label:<44} {:>10.0} steps/s   p50 {:>9.1} us   p99 {:>9.1} us   ({:.2} s)",
        run.steps_per_sec,
        run.p50_us,
        run.p99_us,
        run.wall.as_secs_f64()
    );
}

/// Store operations per step of a concurrent run.
async fn operations_per_step(backend: Backend, instances: usize, workers: Workers) {
    let (store, _scratch) = fresh_store(backend, "count").await;
    let counting = Arc::new(Counting::new(store));
    throughput(
        Arc::clone(&counting) as Arc<dyn Store>,
        instances,
        instances,
        workers,
        false,
    )
    .await;
    let steps = (instances * 4) as f64;
    let per = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64 / steps;
    println!(
        "  {:<9} {:<22}: per step {:.2} puts, {:.2} gets, {:.2} deletes, {:.3} scans",
        backend.name(),
        workers.label(),
        per(&counting.puts),
        per(&counting.gets),
        per(&counting.deletes),
        per(&counting.scans)
    );
}

/// Record-sized CAS updates by `writers` tasks for two seconds, straight to
/// the store: the ceiling the runtime works under.
async fn store_alone(backend: Backend, writers: usize) {
    let (store, _scratch) = fresh_store(backend, "store").await;
    let value = vec![b'x'; RECORD_BYTES];
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(&store);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("instances/w{w:05}");
            let mut version = store
                .put(&key, value.clone(), Expect::Absent)
                .await
                .expect("create");
            let mut updates = 0u64;
            while Instant::now() < deadline {
                version = store
                    .put(&key, value.clone(), Expect::Version(version))
                    .await
                    .expect("cas");
                updates += 1;
            }
            updates
        }));
    }
    let started = Instant::now();
    let mut updates = 0;
    for task in tasks {
        updates += task.await.expect("a writer");
    }
    println!(
        "  {:<9} {writers:>5} writer(s): {:>10.0} CAS/s",
        backend.name(),
        updates as f64 / started.elapsed().as_secs_f64()
    );
}

/// Bytes per value in the store-alone run: a long saga's record at step 10
/// (the four-step saga's record is 1.1 to 1.4 KB), so a conservative size.
const RECORD_BYTES: usize = 2_300;

/// Decode + encode of a real four-step record, the work of one transition's
/// codec (a worker decodes on load or conflict, encodes on every write).
async fn codec() {
    let store = MemoryStore::new();
    let rt = Runtime::builder()
        .store(store.clone())
        .register(four_steps)
        .build()
        .await
        .expect("builds");
    let handle = rt
        .start(four_steps, "codec", Job { n: 0 })
        .await
        .expect("start");
    handle.outcome().await.expect("an outcome");
    rt.shutdown().await;
    let stored = store
        .get(&record::key("codec"))
        .await
        .expect("get")
        .expect("the record");
    let rounds = 20_000;
    let started = Instant::now();
    for _ in 0..rounds {
        let decoded = record::decode(std::hint::black_box(&stored.value)).expect("decodes");
        std::hint::black_box(record::encode(&decoded).expect("encodes"));
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    let decoded = record::decode(&stored.value).expect("decodes");
    let time = |work: &dyn Fn()| {
        let started = Instant::now();
        for _ in 0..rounds {
            work();
        }
        started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    };
    let decode = time(&|| drop(std::hint::black_box(record::decode(&stored.value))));
    let encode = time(&|| drop(std::hint::black_box(record::encode(&decoded))));
    let clone = time(&|| drop(std::hint::black_box(decoded.clone())));
    println!(
        "  a completed four-step record: {} bytes; decode + encode {per:.1} us \
         (decode {decode:.1}, encode {encode:.1}; a clone of the decoded record {clone:.1})",
        stored.value.len()
    );
    println!(
        "  (its JSON, for the curious: {})",
        String::from_utf8_lossy(&stored.value)
            .chars()
            .take(400)
            .collect::<String>()
    );
}

// ---------------------------------------------------------------- resume

/// The loop's step stops the instance here (blocks until its runtime is
/// dropped), and announces when it starts the step after it.
static STOP_AT: AtomicU64 = AtomicU64::new(u64::MAX);
static NEXT_STARTED: OnceLock<tokio::sync::Notify> = OnceLock::new();
static RESUMED_AT: OnceLock<std::sync::Mutex<Option<Instant>>> = OnceLock::new();

fn next_started() -> &'static tokio::sync::Notify {
    NEXT_STARTED.get_or_init(tokio::sync::Notify::new)
}

fn resumed_at() -> &'static std::sync::Mutex<Option<Instant>> {
    RESUMED_AT.get_or_init(|| std::sync::Mutex::new(None))
}

/// Where a loop's step stands: block at the stop, note the step resumed
/// after it, announce the one after that.
async fn loop_point(i: u64) {
    let stop = STOP_AT.load(Ordering::SeqCst);
    if i == stop {
        *resumed_at()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }
    if i == stop.wrapping_add(1) {
        next_started().notify_one();
        std::future::pending::<()>().await;
    }
}

#[step(readonly)]
async fn look(i: u64) -> Result<u64, StepError> {
    loop_point(i).await;
    Ok(i)
}

#[step]
async fn take(i: u64) -> Result<u64, StepError> {
    loop_point(i).await;
    Ok(i)
}

#[compensate(take)]
async fn give_back(_i: u64, _taken: u64) -> Result<(), StepError> {
    Ok(())
}

#[step(pivot)]
async fn finish(total: u64) -> Result<u64, StepError> {
    Ok(total)
}

/// A long saga of readonly steps: the record holds the loop's position.
#[workflow]
async fn long_readonly(count: u64) -> Result<u64, WorkflowError> {
    let mut total: u64 = 0;
    for i in 0..count {
        let seen = look(i).await?;
        total += seen;
    }
    Ok(total)
}

/// A long saga of compensable steps, then a pivot: the record holds one
/// compensation entry per completed step.
#[workflow]
async fn long_compensable(count: u64) -> Result<u64, WorkflowError> {
    let mut total: u64 = 0;
    for i in 0..count {
        let taken = take(i).await?;
        total += taken;
    }
    let finished = finish(total).await?;
    Ok(finished)
}

/// The lease of the runtime that is abandoned mid-saga: short, so the next
/// runtime may take over soon after.
const ABANDONED_LEASE: Duration = Duration::from_millis(100);

/// Runs a long saga to step `done` on a runtime that then vanishes; builds
/// a new runtime on the same store and returns (record bytes, time from
/// `build` to the stopped step running again, time to the next step).
fn resume_once<W: Workflow<Input = u64> + Copy>(
    workflow: W,
    backend: Backend,
    done: u64,
) -> (usize, Duration, Duration) {
    let (store, _scratch) = fresh_local_store(backend, "resume");
    let id = format!("long-{done}");
    let threads = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio")
    };

    STOP_AT.store(done.wrapping_sub(1), Ordering::SeqCst);
    let abandoned = threads();
    let bytes = abandoned.block_on(async {
        let rt = Runtime::builder()
            .store(Arc::clone(&store))
            .register(workflow)
            .lease_ttl(ABANDONED_LEASE)
            .build()
            .await
            .expect("the runtime builds");
        rt.start(workflow, id.clone(), done + 10)
            .await
            .expect("start");
        tokio::time::timeout(Duration::from_secs(120), next_started().notified())
            .await
            .expect("the saga reaches its stop");
        let stored = store
            .get(&record::key(&id))
            .await
            .expect("get")
            .expect("the record");
        stored.value.len()
    });
    // Dropping the tokio runtime drops the sagaflow runtime mid-step, as a
    // crash would (its lease stays in the record until it expires).
    drop(abandoned);
    std::thread::sleep(ABANDONED_LEASE * 2);

    // The instance is at step `done` (0-based), whose attempt was lost: the
    // new runtime runs it again, then starts step `done + 1` and stops.
    STOP_AT.store(done, Ordering::SeqCst);
    *resumed_at()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    let resumer = threads();
    let (to_step, to_next) = resumer.block_on(async {
        let notified = next_started().notified();
        let started = Instant::now();
        let _rt = Runtime::builder()
            .store(Arc::clone(&store))
            .register(workflow)
            .build()
            .await
            .expect("the runtime builds");
        tokio::time::timeout(Duration::from_secs(60), notified)
            .await
            .expect("the saga resumes");
        let next = started.elapsed();
        let resumed = resumed_at()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .expect("the step resumed");
        (resumed - started, next)
    });
    drop(resumer);
    (bytes, to_step, to_next)
}

fn resume_figures<W: Workflow<Input = u64> + Copy>(
    label: &str,
    workflow: W,
    backend: Backend,
    repeats: usize,
) {
    for done in [10, 1_000] {
        let mut to_step = Vec::new();
        let mut to_next = Vec::new();
        let mut bytes = 0;
        for _ in 0..repeats {
            let (size, step, next) = resume_once(workflow, backend, done);
            bytes = size;
            to_step.push(step.as_secs_f64() * 1e3);
            to_next.push(next.as_secs_f64() * 1e3);
        }
        to_step.sort_by(f64::total_cmp);
        to_next.sort_by(f64::total_cmp);
        println!(
            "  {label:<24} {:<9} after {done:>5} steps: record {bytes:>7} bytes; build -> step runs {:>7.2} ms, -> next step {:>7.2} ms (median of {repeats})",
            backend.name(),
            to_step[repeats / 2],
            to_next[repeats / 2],
        );
    }
}

// ---------------------------------------------------------------- wake-up

/// `count` sagas started one at a time on a client-only runtime; a worker
/// runtime polling hourly runs them, each on its own store object. Returns
/// the times from `start` to the first step running, in µs, sorted.
async fn wake_latency(backend: Backend, count: usize) -> Vec<f64> {
    let (worker_store, _scratch) = fresh_store(backend, "wake").await;
    let client_store = if backend.in_process() {
        Arc::clone(&worker_store)
    } else {
        server_store(backend).await
    };
    let hour = Duration::from_secs(3600);
    let worker = Runtime::builder()
        .store(worker_store)
        .register(four_steps)
        .poll_interval(hour)
        .recovery_interval(hour)
        .build()
        .await
        .expect("the worker runtime builds");
    let client = Runtime::builder()
        .store(client_store)
        .register(four_steps)
        .workers(0)
        .poll_interval(Duration::from_millis(2))
        .build()
        .await
        .expect("the client runtime builds");
    reset_marks(count + 1);
    let mut latencies = Vec::with_capacity(count);
    // Saga 0 warms up (the worker's listener connects); not counted.
    for n in 0..=count {
        let before = now_ns();
        let handle = client
            .start(four_steps, format!("wake-{n:06}"), Job { n: n as u32 })
            .await
            .expect("start");
        let outcome = tokio::time::timeout(Duration::from_secs(60), handle.outcome())
            .await
            .expect("the worker was woken within a minute")
            .expect("an outcome");
        assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
        let first_step = table()[n * MARKS].load(Ordering::Relaxed);
        if n > 0 {
            latencies.push(first_step.saturating_sub(before) as f64 / 1e3);
        }
    }
    worker.shutdown().await;
    client.shutdown().await;
    latencies.sort_by(f64::total_cmp);
    latencies
}

// ---------------------------------------------------------------- main

struct Options {
    workers: Vec<Workers>,
    rounds: usize,
    concurrent: usize,
    /// Instances of the sustained run (`concurrent` of them at once); 0: none.
    sustained: usize,
    sequential_memory: usize,
    sequential_embedded: usize,
    sequential_server: usize,
    sections: Vec<String>,
    backends: Vec<Backend>,
    group_commit: Vec<bool>,
}

/// What `--help` prints.
const USAGE: &str = "\
usage: bench [--only SECTIONS] [--stores STORES] [--workers W,W] [--rounds N]
             [--concurrent N] [--sustained N] [--group-commit on,off]
             [--sequential-memory N] [--sequential-embedded N] [--sequential-server N]
             [--postgres URL] [--redis URL] [--etcd ENDPOINTS]
  SECTIONS: throughput,ops,store,codec,resume,wake (default: all)
  STORES:   memory,embedded, and postgres,redis,etcd with their features
  --workers: `default` (the library's, lanes started as `#[tokio::main]` does)
            or a count (lanes started from a runtime task); default: default,64,2000
  --sustained N: N instances, --concurrent (2,000) at once; 0 skips the run";

fn options() -> Options {
    let mut options = Options {
        workers: vec![Workers::Defaults, Workers::Tuned(64), Workers::Tuned(2_000)],
        rounds: 5,
        concurrent: 2_000,
        sustained: 20_000,
        sequential_memory: 20_000,
        sequential_embedded: 500,
        sequential_server: 500,
        group_commit: vec![true],
        sections: vec![
            "throughput".into(),
            "ops".into(),
            "store".into(),
            "codec".into(),
            "resume".into(),
            "wake".into(),
        ],
        backends: vec![Backend::Memory, Backend::Embedded],
    };
    let mut servers = Servers {
        postgres: std::env::var("SAGAFLOW_POSTGRES_URL").ok(),
        redis: std::env::var("SAGAFLOW_REDIS_URL").ok(),
        etcd: std::env::var("SAGAFLOW_ETCD_ENDPOINTS").ok(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value\n\n{USAGE}"));
        let number = || {
            value
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--workers" => {
                options.workers = value.split(',').map(Workers::parse).collect();
            }
            "--rounds" => options.rounds = number(),
            "--concurrent" => options.concurrent = number(),
            "--sustained" => options.sustained = number(),
            "--sequential-memory" => options.sequential_memory = number(),
            "--sequential-embedded" => options.sequential_embedded = number(),
            "--only" => options.sections = value.split(',').map(str::to_owned).collect(),
            "--sequential-server" => options.sequential_server = number(),
            "--stores" => options.backends = value.split(',').map(Backend::parse).collect(),
            "--postgres" => servers.postgres = Some(value.clone()),
            "--redis" => servers.redis = Some(value.clone()),
            "--etcd" => servers.etcd = Some(value.clone()),
            "--group-commit" => {
                options.group_commit = value
                    .split(',')
                    .map(|on| match on {
                        "on" => true,
                        "off" => false,
                        _ => panic!("--group-commit on,off"),
                    })
                    .collect();
            }
            _ => panic!("unknown flag {flag}\n\n{USAGE}"),
        }
    }
    assert!(
        [
            options.concurrent,
            options.sustained,
            options.sequential_memory
        ]
        .iter()
        .all(|&count| count <= MAX_INSTANCES)
    );
    SERVERS
        .set(servers)
        .expect("the servers are set once, before any run");
    options
}

fn main() {
    let options = options();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    println!(
        "sagaflow bench: {} cores, tokio multi-thread with 2 workers, {ALLOCATOR_NAME}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let has = |section: &str| options.sections.iter().any(|s| s == section);

    if has("throughput") {
        println!("\nfour-step saga, trivial steps");
        // Per store: the medians of the bursts and sustained runs with as
        // many workers as instances at once, group commit on, for the goals.
        let mut goals: Vec<(Backend, &str, Workers, f64)> = Vec::new();
        for &backend in &options.backends {
            let sequential = match backend {
                Backend::Memory => options.sequential_memory,
                Backend::Embedded => options.sequential_embedded,
                #[allow(unreachable_patterns)]
                _ => options.sequential_server,
            };
            for &group_commit in &options.group_commit {
                // Group commit only changes a store that batches.
                let batching = if backend == Backend::Memory {
                    String::new()
                } else if group_commit {
                    ", group commit".to_owned()
                } else {
                    ", one by one".to_owned()
                };
                let (store, _scratch) = tokio.block_on(fresh_store(backend, "seq"));
                let run = tokio.block_on(throughput(
                    store,
                    sequential,
                    1,
                    Workers::Tuned(64),
                    group_commit,
                ));
                print_run(
                    &format!(
                        "{}: 1 at a time ({sequential} instances{batching})",
                        backend.name()
                    ),
                    &run,
                );
                for &workers in &options.workers {
                    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
                    for round in 1..=options.rounds {
                        // A burst of `concurrent` instances, then the
                        // sustained run: `concurrent` at once until
                        // `sustained` ran.
                        let runs = [
                            (options.concurrent, "conc", String::new()),
                            (
                                options.sustained,
                                "sust",
                                format!(" for {}", options.sustained),
                            ),
                        ];
                        for (kind, (instances, scratch, sustained)) in runs.into_iter().enumerate()
                        {
                            if instances == 0 {
                                continue;
                            }
                            let (store, _scratch) = tokio.block_on(fresh_store(backend, scratch));
                            let run = tokio.block_on(throughput(
                                store,
                                instances,
                                options.concurrent,
                                workers,
                                group_commit,
                            ));
                            let label = format!(
                                "{}: {} at once{sustained}, {}{batching} #{round}",
                                backend.name(),
                                options.concurrent,
                                workers.label(),
                            );
                            print_run(&label, &run);
                            rates[kind].push(run.steps_per_sec);
                        }
                    }
                    for (kind, rates) in ["burst", "sustained"].into_iter().zip(rates) {
                        let Some(median) = median(&rates) else {
                            continue;
                        };
                        println!(
                            "    {}, {kind}, {}{batching}: median {median:.0} steps/s over {} rounds ({:.0}-{:.0})",
                            backend.name(),
                            workers.label(),
                            rates.len(),
                            rates.iter().copied().fold(f64::INFINITY, f64::min),
                            rates.iter().copied().fold(0.0, f64::max),
                        );
                        // Group commit changes nothing in memory.
                        let grouped = group_commit || backend == Backend::Memory;
                        if grouped && workers.judged(options.concurrent) {
                            goals.push((backend, kind, workers, median));
                        }
                    }
                }
                if backend == Backend::Memory {
                    break;
                }
            }
        }
        print_goals(&goals, options.concurrent);
    }

    if has("ops") {
        println!(
            "\nstore operations per step, {} instances at once",
            options.concurrent
        );
        for &backend in &options.backends {
            for &workers in &options.workers {
                tokio.block_on(operations_per_step(backend, options.concurrent, workers));
            }
        }
    }
    if has("store") {
        println!("\nthe store alone: CAS updates of distinct keys with record-sized values");
        for &backend in &options.backends {
            for writers in [1, options.concurrent] {
                tokio.block_on(store_alone(backend, writers));
            }
        }
    }

    if has("wake") {
        println!(
            "\nwake-up: start on a client runtime -> first step on a worker runtime polling hourly"
        );
        for &backend in &options.backends {
            let latencies = tokio.block_on(wake_latency(backend, 200));
            println!(
                "  {:<9} p50 {:>9.1} us   p99 {:>9.1} us   max {:>9.1} us   (200 sagas, one at a time)",
                backend.name(),
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.99),
                percentile(&latencies, 1.0)
            );
        }
    }
    for &backend in &options.backends {
        if !backend.in_process() {
            tokio.block_on(async { wipe(&server_store(backend).await).await });
        }
    }

    if has("codec") {
        println!("\nthe instance record's JSON codec (what every step pays at least once)");
        tokio.block_on(codec());
    }
    drop(tokio);

    if has("resume") {
        println!(
            "\nresume of an abandoned instance by a new runtime (load record + claim + one step)"
        );
        for &backend in options.backends.iter().filter(|b| b.in_process()) {
            resume_figures("readonly steps in a loop", long_readonly, backend, 5);
            resume_figures("compensable steps", long_compensable, backend, 5);
        }
    }
}
