//! How the cost of a workflow changes with what is in flight and what is
//! stored: a bench of the runtime at scale, on the memory store, the
//! embedded (durable, fsync'd) store and PostgreSQL.
//!
//! ```text
//! # A smoke run (at once 2,000 and 5,000; 10,000 parked):
//! cargo run --release -p sagaflow-examples --example scale -- --quick
//! # The real sizes, memory and embedded (minutes; progress on stderr):
//! cargo run --release -p sagaflow-examples --example scale -- \
//!     --stores memory,embedded --at-once 2000,20000,100000 --parked 100000,1000000
//! # PostgreSQL (table `sagaflow_scale`, emptied first and at the end):
//! SAGAFLOW_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//! cargo run --release -p sagaflow-examples --features postgres --example scale -- \
//!     --stores postgres --parked 100000
//! # One section, a fixed worker count, more rounds:
//! cargo run --release -p sagaflow-examples --example scale -- --only resume --workers 256 --rounds 5
//! ```
//!
//! Every workflow is started with `rt.start(..)`, its `outcome()` awaited in
//! a task of a tokio `JoinSet` spawned from `#[tokio::main]`, as a user's
//! program would; the runtime is built with the library's defaults (its
//! default worker count unless `--workers` is given), on the system
//! allocator (no `#[global_allocator]`: what a user's default crate gets).
//! Per store, it prints:
//!
//! 1. **At once** (`at-once`): workflows/s of the four-step order saga
//!    (reserve and charge compensable, ship the pivot, confirm retriable;
//!    trivial bodies) with N started at once (`--at-once`, default 2,000,
//!    20,000, 100,000), each round on a fresh store and runtime, from the
//!    first `start` to the last outcome; and each figure's ratio to the
//!    2,000 figure. Goal: every ratio >= 0.7.
//! 2. **Beside parked** (`parked`): P instances of a second workflow are
//!    parked first (`--parked`, default 100,000 and 1,000,000; they sleep a
//!    day, or wait for a signal that never comes with `--park signal`),
//!    started 1,000 at a time and counted as parked once `rt.list` reports
//!    every one of them `Waiting`; then 2,000 order sagas at once beside
//!    them, and the ratio to the 2,000 figure on an empty store (goal: at
//!    least 0.7). The process's RSS (`/proc/self/status`, `VmRSS`, read
//!    after glibc's `malloc_trim(0)`, so memory freed earlier does not
//!    count) before and after parking gives the bytes per parked instance
//!    (goal: ~0, at most 100 bytes here); what dropping the runtime (after
//!    its shutdown) gives back is the runtime's share, what dropping the
//!    store then gives back the store's caches. On the memory store the
//!    records themselves are in this heap, so there the goal is checked
//!    against the runtime's share.
//! 3. **Wake** (`wake`): among the P parked, 200 instances each take a due
//!    time 1-3 s ahead in a step, `sagaflow::sleep_until` it, and record in
//!    the next step how late it ran (that step's wall clock minus the due
//!    time): p50, p99 and max.
//! 4. **Resume** (`resume`): with the P instances parked, the runtime is
//!    shut down (`rt.shutdown().await`) and dropped, and a new one built on
//!    the same store (the same `MemoryStore` object; the embedded store's
//!    directory reopened once the old holder has closed it, a wait printed
//!    apart; a new PostgreSQL connection). From the open of the store:
//!    when `build()` returns, when the first new order saga started after
//!    it completes, and the 2,000-at-once figure after the restart with its
//!    ratio. Goal: startup with 1,000,000 parked (open to the first
//!    completion) under 10 s.
//!
//! Per store the 2,000 figure comes first (after a warm-up round that is
//! not counted), then the sections with parked instances (each from a
//! small heap, for its RSS), then the larger runs at once; the summary
//! lists them with the goals. Each figure is the median over `--rounds`
//! rounds (default 3 for the 2,000-instance runs, 1 for the larger ones).
//! Every phase has a timeout (`--timeout`, default 600 s): a run that
//! times out prints "timed out after …" with how many instances ended by
//! then (its rate was below N / timeout) instead of hanging. Progress
//! (parking, long runs, wiping) goes to stderr.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sagaflow::Phase;
use sagaflow::prelude::*;
#[cfg(feature = "postgres")]
use sagaflow::store::Expect;
use sagaflow::store::Store;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

/// The allocator the figures are measured with.
const ALLOCATOR_NAME: &str = "the system allocator (no #[global_allocator])";

// ---------------------------------------------------------------- the order saga

/// One order: its number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    n: u64,
}

/// Reserves the order's inventory (compensable).
#[step]
async fn reserve(order: &Order) -> Result<u64, StepError> {
    Ok(order.n)
}

/// Releases the reservation.
#[compensate(reserve)]
async fn release(_order: &Order, _reserved: u64) -> Result<(), StepError> {
    Ok(())
}

/// Charges the order (compensable).
#[step]
async fn charge(order: &Order) -> Result<u64, StepError> {
    Ok(order.n)
}

/// Refunds the charge.
#[compensate(charge)]
async fn refund(_order: &Order, _charged: u64) -> Result<(), StepError> {
    Ok(())
}

/// Ships the order: the point of no return.
#[step(pivot)]
async fn ship(order: &Order) -> Result<u64, StepError> {
    Ok(order.n)
}

/// Confirms the order (retried until it succeeds).
#[step(retriable)]
async fn confirm(_order: &Order) -> Result<(), StepError> {
    Ok(())
}

/// The four-step order saga whose cost per workflow is measured.
#[workflow]
async fn order_saga(order: Order) -> Result<u64, WorkflowError> {
    let reserved = reserve(&order).await?;
    let charged = charge(&order).await?;
    let shipped = ship(&order).await?;
    confirm(&order).await?;
    Ok(reserved + charged + shipped)
}

// ---------------------------------------------------------------- parked instances

/// A parked instance: what it would hold of a real order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Parked {
    n: u64,
}

/// Waits a day on a durable timer: parked for the whole bench.
#[workflow]
async fn park_on_timer(parked: Parked) -> Result<u64, WorkflowError> {
    sagaflow::sleep(Duration::from_secs(86_400)).await;
    Ok(parked.n)
}

/// Waits for a signal nobody sends: parked for the whole bench.
#[workflow]
async fn park_on_signal(parked: Parked) -> Result<u64, WorkflowError> {
    let _go: bool = sagaflow::signal("go").await;
    Ok(parked.n)
}

/// What the parked instances wait on (`--park timer|signal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Park {
    Timer,
    Signal,
}

impl Park {
    /// How the bench's output names it.
    fn name(self) -> &'static str {
        match self {
            Park::Timer => "a 1-day timer",
            Park::Signal => "a signal",
        }
    }
}

// ---------------------------------------------------------------- timers due among the parked

/// One short sleeper: its number and how far ahead its timer is due.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sleeper {
    n: u64,
    delay_ms: u64,
}

/// How late each woken sleeper ran, in µs after its due time (negative:
/// early).
static LATENESS: Mutex<Vec<i64>> = Mutex::new(Vec::new());

/// Microseconds since the Unix epoch, on the wall clock the runtime's
/// timers use.
fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// Fixes the sleeper's due time, `delay_ms` from now (µs since the epoch).
#[step(readonly)]
async fn plan_wake(sleeper: &Sleeper) -> Result<u64, StepError> {
    Ok(unix_us() + sleeper.delay_ms * 1_000)
}

/// Records how late the timer woke the sleeper.
#[step(readonly)]
async fn woke(due_us: u64) -> Result<(), StepError> {
    let late =
        i64::try_from(unix_us()).unwrap_or(i64::MAX) - i64::try_from(due_us).unwrap_or(i64::MAX);
    LATENESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(late);
    Ok(())
}

/// Sleeps until a due time fixed in a step, then notes how late it woke.
#[workflow]
async fn short_sleep(sleeper: Sleeper) -> Result<u64, WorkflowError> {
    let due_us = plan_wake(&sleeper).await?;
    sagaflow::sleep_until(UNIX_EPOCH + Duration::from_micros(due_us)).await;
    woke(due_us).await?;
    Ok(sleeper.n)
}

// ---------------------------------------------------------------- stores

/// Which store a section runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Memory,
    Embedded,
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Backend {
    /// How `--stores` and the output name it.
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Embedded => "embedded",
            #[cfg(feature = "postgres")]
            Backend::Postgres => "postgres",
        }
    }

    /// The backend `--stores` names; panics on another name.
    fn parse(name: &str) -> Backend {
        match name {
            "memory" => Backend::Memory,
            "embedded" => Backend::Embedded,
            #[cfg(feature = "postgres")]
            "postgres" => Backend::Postgres,
            _ => panic!(
                "--stores takes memory, embedded, and postgres when built with \
                 `--features postgres`; not {name:?}"
            ),
        }
    }

    /// Whether the store's data lives in this process's heap.
    fn in_heap(self) -> bool {
        self == Backend::Memory
    }
}

/// The PostgreSQL table the bench uses, emptied before each use and at the end.
#[cfg(feature = "postgres")]
const POSTGRES_TABLE: &str = "sagaflow_scale";

/// Where a store's data is, so it can be opened again after a restart:
/// the `MemoryStore` object itself, the embedded store's directory (removed
/// when this is dropped), or PostgreSQL's URL.
enum Site {
    Memory(MemoryStore),
    Embedded(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Site {
    /// A fresh, empty store of `backend`.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    async fn fresh(backend: Backend, label: &str, options: &Options) -> Site {
        let site = match backend {
            Backend::Memory => Site::Memory(MemoryStore::new()),
            Backend::Embedded => {
                let path = std::env::temp_dir()
                    .join(format!("sagaflow-scale-{label}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&path);
                Site::Embedded(path)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => Site::Postgres(options.postgres.clone()),
        };
        #[cfg(feature = "postgres")]
        if let Site::Postgres(_) = site {
            wipe(&site.open().await).await;
        }
        site
    }

    /// Opens the store (again): the same data as every earlier open.
    async fn open(&self) -> Arc<dyn Store> {
        self.open_timed().await.0
    }

    /// Opens the store, and says how long it waited for a previous holder
    /// to let go and when the open that succeeded began. An embedded store
    /// is opened by one holder at a time, so a reopen retries (for up to
    /// 60 s) until the previous holder's threads have closed it.
    async fn open_timed(&self) -> (Arc<dyn Store>, Duration, Instant) {
        let first = Instant::now();
        match self {
            Site::Memory(store) => (Arc::new(store.clone()), Duration::ZERO, first),
            Site::Embedded(path) => loop {
                let attempt = Instant::now();
                match EmbeddedStore::open(path) {
                    Ok(store) => return (Arc::new(store), attempt - first, attempt),
                    Err(sagaflow::StoreError::Unavailable(_))
                        if first.elapsed() < Duration::from_secs(60) =>
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(error) => panic!("open the embedded store: {error}"),
                }
            },
            #[cfg(feature = "postgres")]
            Site::Postgres(url) => (
                Arc::new(
                    PostgresStore::with_table(url, POSTGRES_TABLE)
                        .await
                        .expect("connect to PostgreSQL (SAGAFLOW_POSTGRES_URL)"),
                ),
                Duration::ZERO,
                first,
            ),
        }
    }

    /// Empties a server store at the end, so the bench leaves nothing behind.
    async fn clean_up(&self) {
        #[cfg(feature = "postgres")]
        if let Site::Postgres(_) = self {
            wipe(&self.open().await).await;
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Site::Embedded(path) = self {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Deletes every key of `store`, 64 deletes in flight, with progress on
/// stderr: what an earlier run left.
#[cfg(feature = "postgres")]
async fn wipe(store: &Arc<dyn Store>) {
    let started = Instant::now();
    let mut deleted = 0usize;
    for pages in 1.. {
        let page = store.scan("", None, 1_000).await.expect("scan to wipe");
        if page.entries.is_empty() {
            break;
        }
        let mut deletes = JoinSet::new();
        for (key, _) in page.entries {
            if deletes.len() >= 64 {
                deletes.join_next().await;
            }
            let store = Arc::clone(store);
            deletes.spawn(async move { store.delete(&key, Expect::Any).await });
            deleted += 1;
        }
        while let Some(done) = deletes.join_next().await {
            done.expect("a delete task").expect("delete");
        }
        if pages % 20 == 0 {
            eprintln!("  wiping: {deleted} keys deleted");
        }
    }
    if deleted > 0 {
        eprintln!(
            "  wiped {deleted} keys in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

// ---------------------------------------------------------------- measuring

/// A runtime on `store` with every workflow of the bench and the library's
/// defaults, except `--workers` when given.
async fn runtime(store: Arc<dyn Store>, options: &Options) -> Runtime {
    let mut builder = Runtime::builder()
        .store(store)
        .register(order_saga)
        .register(park_on_timer)
        .register(park_on_signal)
        .register(short_sleep);
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    builder.build().await.expect("the runtime builds")
}

/// Waits for `work` up to `limit`; on a timeout says so and returns `None`.
async fn within<T>(what: &str, limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(value) => Some(value),
        Err(_) => {
            println!("  {what}: timed out after {} s", limit.as_secs());
            None
        }
    }
}

/// Shuts `rt` down, within a minute.
async fn shut_down(rt: &Runtime) -> Option<Duration> {
    let started = Instant::now();
    within("shutdown", Duration::from_secs(60), rt.shutdown()).await?;
    Some(started.elapsed())
}

/// What one run of N order sagas started at once measured.
struct Burst {
    /// From the first `start` to the last outcome.
    wall: Duration,
    /// Instances that did not complete (an error or another outcome).
    failed: usize,
    /// When the median and the 99th-percentile instance completed, from
    /// the first `start`.
    p50_done: Duration,
    p99_done: Duration,
}

impl Burst {
    /// Workflows per second of a run of `count`.
    fn per_sec(&self, count: usize) -> f64 {
        count as f64 / self.wall.as_secs_f64()
    }
}

/// Starts `count` order sagas at once on `rt` (ids `{prefix}-{n}`), each
/// `start` and `outcome` in a task of a `JoinSet`, and waits for all;
/// `ended` counts the instances whose outcome came.
async fn at_once(rt: &Runtime, prefix: &str, count: usize, ended: Arc<AtomicUsize>) -> Burst {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..count {
        let rt = rt.clone();
        let id = format!("{prefix}-{n:07}");
        let ended = Arc::clone(&ended);
        tasks.spawn(async move {
            let handle = rt.start(order_saga, id, Order { n: n as u64 }).await?;
            let outcome = handle.outcome().await?;
            ended.fetch_add(1, Ordering::Relaxed);
            Ok::<_, sagaflow::Error>((matches!(outcome, Outcome::Completed(_)), started.elapsed()))
        });
    }
    let mut done = Vec::with_capacity(count);
    let mut failed = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("an instance's task") {
            Ok((true, at)) => done.push(at),
            Ok((false, _)) => failed += 1,
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    let wall = started.elapsed();
    if let Some(error) = first_error {
        println!("  ({failed} of {count} failed; the first: {error})");
    }
    done.sort();
    let at = |p: f64| {
        done.get(((done.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(wall)
    };
    Burst {
        wall,
        failed,
        p50_done: at(0.5),
        p99_done: at(0.99),
    }
}

/// Prints one run of `at_once`.
fn print_burst(label: &str, count: usize, burst: &Burst) {
    let failed = if burst.failed > 0 {
        format!("   {} NOT COMPLETED", burst.failed)
    } else {
        String::new()
    };
    println!(
        "  {label:<48} {:>9.0} workflows/s   ({:.2} s; half done at {:.2} s, 99% at {:.2} s){failed}",
        burst.per_sec(count),
        burst.wall.as_secs_f64(),
        burst.p50_done.as_secs_f64(),
        burst.p99_done.as_secs_f64(),
    );
}

/// The median of `values`, if there are any.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

/// The `p` quantile of sorted `values`.
fn percentile(sorted: &[i64], p: f64) -> i64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A workflows/s figure: measured, or the bound a run that timed out gives.
#[derive(Clone, Copy)]
enum Rate {
    /// The median of the rounds that finished.
    Measured(f64),
    /// No round finished: `ended` of `count` had ended after `limit`, so
    /// the rate was below `count / limit`.
    TimedOut {
        ended: usize,
        count: usize,
        limit: Duration,
    },
}

impl Rate {
    /// The median of `rates`, else the first timeout, else nothing.
    fn of(rates: &[f64], timed_out: Option<Rate>) -> Option<Rate> {
        median(rates).map(Rate::Measured).or(timed_out)
    }
}

/// `at_once` within the phase timeout, printed under `label`, with progress
/// on stderr every 10 s; a run that times out is reported with how many
/// ended by then.
async fn timed_at_once(
    rt: &Runtime,
    label: &str,
    prefix: &str,
    count: usize,
    options: &Options,
) -> Result<Burst, Rate> {
    let ended = Arc::new(AtomicUsize::new(0));
    let progress = {
        let ended = Arc::clone(&ended);
        let label = label.to_owned();
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "  {label}: {} of {count} ended after {:.0} s",
                    ended.load(Ordering::Relaxed),
                    started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let run = tokio::time::timeout(
        options.timeout,
        at_once(rt, prefix, count, Arc::clone(&ended)),
    )
    .await;
    progress.abort();
    match run {
        Ok(burst) => {
            print_burst(label, count, &burst);
            Ok(burst)
        }
        Err(_) => {
            let ended = ended.load(Ordering::Relaxed);
            println!(
                "  {label}: timed out after {} s, {ended} of {count} ended by then \
                 (so below {:.0} workflows/s)",
                options.timeout.as_secs(),
                count as f64 / options.timeout.as_secs_f64()
            );
            Err(Rate::TimedOut {
                ended,
                count,
                limit: options.timeout,
            })
        }
    }
}

/// `rounds` runs of `count` order sagas at once on `rt` (ids
/// `{prefix}{round}-{n}`): the median workflows/s.
async fn rounds_at_once(
    rt: &Runtime,
    what: &str,
    prefix: &str,
    count: usize,
    rounds: usize,
    options: &Options,
) -> Option<Rate> {
    let mut rates = Vec::new();
    let mut timed_out = None;
    for round in 1..=rounds {
        let label = format!("{count} at once {what} #{round}");
        match timed_at_once(rt, &label, &format!("{prefix}{round}"), count, options).await {
            Ok(burst) => rates.push(burst.per_sec(count)),
            Err(timeout) => {
                timed_out.get_or_insert(timeout);
            }
        }
    }
    Rate::of(&rates, timed_out)
}

/// `rounds` runs of `count` order sagas at once, each on a fresh store and
/// runtime: the median workflows/s.
async fn fresh_at_once(
    backend: Backend,
    count: usize,
    rounds: usize,
    options: &Options,
) -> Option<Rate> {
    let mut rates = Vec::new();
    let mut timed_out = None;
    for round in 1..=rounds {
        let site = Site::fresh(backend, "at-once", options).await;
        let rt = runtime(site.open().await, options).await;
        let label = format!("{count} at once, fresh store #{round}");
        let run = timed_at_once(&rt, &label, "burst", count, options).await;
        shut_down(&rt).await;
        drop(rt);
        site.clean_up().await;
        match run {
            Ok(burst) => rates.push(burst.per_sec(count)),
            Err(timeout) => {
                timed_out.get_or_insert(timeout);
            }
        }
    }
    Rate::of(&rates, timed_out)
}

/// The machine's load averages (1, 5, 15 minutes), as `/proc/loadavg` has them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The process's resident set size, in bytes (`VmRSS`), read after the
/// allocator gave its free memory back to the OS: memory an earlier phase
/// freed then neither counts nor hides what this phase holds.
fn rss_bytes() -> u64 {
    trim_heap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Gives the heap's free memory back to the OS (glibc's `malloc_trim`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    unsafe extern "C" {
        /// glibc's: releases free heap memory; callable at any time.
        safe fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    malloc_trim(0);
}

/// The bytes the heap has handed out and not taken back (glibc's
/// `mallinfo2`, over every arena): what the process holds, whatever the
/// RSS keeps of a fragmented heap. `None` off glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use() -> Option<u64> {
    /// glibc's `struct mallinfo2` (only two fields are read).
    #[repr(C)]
    #[allow(dead_code)]
    struct MallInfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    unsafe extern "C" {
        /// glibc's (2.33 and later): the allocator's counters.
        safe fn mallinfo2() -> MallInfo2;
    }
    let info = mallinfo2();
    Some((info.uordblks + info.hblkhd) as u64)
}

/// Off glibc the heap's counters are not read.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use() -> Option<u64> {
    None
}

/// Elsewhere the RSS is read as it is.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// Starts `count` parked instances on `rt`, 1,000 at a time, then waits
/// until `rt.list` reports every one of them `Waiting`. Returns the time
/// the starts took and the time until all were parked.
async fn park(rt: &Runtime, kind: Park, count: usize) -> Result<(Duration, Duration), String> {
    /// Starts in flight at once.
    const LANES: usize = 1_000;
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut lanes = JoinSet::new();
    for _ in 0..LANES.min(count) {
        let (rt, next, done) = (rt.clone(), Arc::clone(&next), Arc::clone(&done));
        lanes.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return Ok::<_, sagaflow::Error>(());
                }
                let id = format!("parked-{n:07}");
                let input = Parked { n: n as u64 };
                match kind {
                    Park::Timer => drop(rt.start(park_on_timer, id, input).await?),
                    Park::Signal => drop(rt.start(park_on_signal, id, input).await?),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let progress = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let done = done.load(Ordering::Relaxed);
                eprintln!(
                    "  parking: {done} of {count} started ({:.0}/s)",
                    done as f64 / started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut result = Ok(());
    while let Some(lane) = lanes.join_next().await {
        if let Err(error) = lane.expect("a parking lane") {
            result = Err(format!("a parked instance did not start: {error}"));
            lanes.abort_all();
        }
    }
    progress.abort();
    result?;
    let starts = started.elapsed();
    eprintln!(
        "  parking: {count} started in {:.1} s; waiting until every one is parked",
        starts.as_secs_f64()
    );
    loop {
        let scan = Instant::now();
        let (waiting, other) = count_parked(rt).await?;
        if waiting == count {
            eprintln!(
                "  parking: all {count} parked after {:.1} s (the last list took {:.1} s)",
                started.elapsed().as_secs_f64(),
                scan.elapsed().as_secs_f64()
            );
            return Ok((starts, started.elapsed()));
        }
        eprintln!(
            "  parking: {waiting} of {count} waiting, {other} not yet (list took {:.1} s)",
            scan.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How many `parked-` instances `rt.list` reports `Waiting`, and how many
/// it reports in another phase.
async fn count_parked(rt: &Runtime) -> Result<(usize, usize), String> {
    let (mut waiting, mut other) = (0, 0);
    let mut after: Option<String> = None;
    loop {
        let page = rt
            .list(after.as_deref(), 1_000)
            .await
            .map_err(|error| format!("list: {error}"))?;
        for status in page.instances {
            let status = status.map_err(|error| format!("list: {error}"))?;
            if !status.id.starts_with("parked-") {
                continue;
            }
            if status.phase == Phase::Waiting {
                waiting += 1;
            } else {
                other += 1;
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok((waiting, other)),
        }
    }
}

/// What the store holds: its keys, and their keys' and values' bytes.
struct Stored {
    keys: usize,
    bytes: usize,
}

/// Reads every key of `store`, in pages of 1,000.
async fn stored(store: &Arc<dyn Store>) -> Stored {
    let mut total = Stored { keys: 0, bytes: 0 };
    let mut after: Option<String> = None;
    loop {
        let page = store
            .scan("", after.as_deref(), 1_000)
            .await
            .expect("scan the store");
        for (key, value) in page.entries {
            total.keys += 1;
            total.bytes += key.len() + value.value.len();
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return total,
        }
    }
}

/// Signed difference of two RSS readings, per instance (0 with none).
fn per_instance(after: u64, before: u64, instances: usize) -> f64 {
    if instances == 0 {
        return 0.0;
    }
    (after as f64 - before as f64) / instances as f64
}

/// Bytes as MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Wake latency of timers due among the parked.
struct Wake {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    woken: usize,
}

/// Starts `count` short sleepers on `rt`, due 1-3 s ahead, waits for every
/// one to end, and returns how late their timers woke them.
async fn wake(rt: &Runtime, prefix: &str, count: usize) -> Wake {
    LATENESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clear();
    let mut tasks = JoinSet::new();
    for n in 0..count {
        let rt = rt.clone();
        let sleeper = Sleeper {
            n: n as u64,
            delay_ms: 1_000 + (2_000 * n / count.max(1)) as u64,
        };
        let id = format!("{prefix}-{n:04}");
        tasks.spawn(async move { rt.start(short_sleep, id, sleeper).await?.outcome().await });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("a sleeper's task") {
            Ok(Outcome::Completed(_)) => {}
            Ok(other) => println!("  a sleeper did not complete: {other:?}"),
            Err(error) => println!("  a sleeper failed: {error}"),
        }
    }
    let mut late = LATENESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    late.sort_unstable();
    if late.is_empty() {
        late.push(i64::MAX);
    }
    let ms = |us: i64| us as f64 / 1e3;
    Wake {
        p50_ms: ms(percentile(&late, 0.5)),
        p99_ms: ms(percentile(&late, 0.99)),
        max_ms: ms(percentile(&late, 1.0)),
        woken: late.len(),
    }
}

// ---------------------------------------------------------------- report

/// What a figure is checked against.
#[derive(Clone, Copy)]
enum Goal {
    None,
    /// At least this ratio to the 2,000 figure.
    Ratio(f64),
    /// At most this many seconds.
    Seconds(f64),
    /// At most this many bytes.
    Bytes(f64),
}

/// One line of a store's summary table.
struct Line {
    what: String,
    /// The figure as printed, or why there is none.
    figure: String,
    /// The value the goal is checked against; `None`: no figure.
    value: Option<f64>,
    /// Whether `value` is only an upper bound (a run that timed out).
    upper_bound: bool,
    goal: Goal,
}

impl Line {
    /// The goal and whether the figure meets it.
    fn verdict(&self) -> String {
        let Some(value) = self.value else {
            return match self.goal {
                Goal::None => String::new(),
                _ => "no figure".to_owned(),
            };
        };
        let (met, goal) = match self.goal {
            Goal::None => return String::new(),
            Goal::Ratio(at_least) if self.upper_bound => {
                return if value < at_least {
                    format!(">= {at_least}x: MISSED (timed out)")
                } else {
                    "timed out: unknown".to_owned()
                };
            }
            Goal::Ratio(at_least) => (value >= at_least, format!(">= {at_least}x")),
            Goal::Seconds(at_most) => (value < at_most, format!("< {at_most} s")),
            Goal::Bytes(at_most) => (value <= at_most, format!("~0 (<= {at_most} B)")),
        };
        format!("{goal}: {}", if met { "met" } else { "MISSED" })
    }
}

/// The summary of one store.
struct Report {
    backend: Backend,
    lines: Vec<Line>,
}

impl Report {
    /// Adds a line whose figure is printed as given.
    fn add(&mut self, what: String, figure: String, value: Option<f64>, goal: Goal) {
        self.lines.push(Line {
            what,
            figure,
            value,
            upper_bound: false,
            goal,
        });
    }

    /// A workflows/s figure with its ratio to the 2,000 figure.
    fn add_rate(&mut self, what: String, rate: Option<Rate>, base: Option<Rate>, goal: Goal) {
        let base = match base {
            Some(Rate::Measured(base)) => Some(base),
            _ => None,
        };
        let (rate, upper_bound, figure) = match rate {
            Some(Rate::Measured(rate)) => (Some(rate), false, format!("{rate:>9.0} wf/s")),
            Some(Rate::TimedOut {
                ended,
                count,
                limit,
            }) => {
                let below = count as f64 / limit.as_secs_f64();
                let figure = format!(
                    "timed out ({ended} of {count} in {} s): < {below:.0} wf/s",
                    limit.as_secs()
                );
                (Some(below), true, figure)
            }
            None => (None, false, "no figure".to_owned()),
        };
        let ratio = rate.zip(base).map(|(rate, base)| rate / base);
        // Rounded down, so a printed ratio agrees with its verdict.
        let shown = |ratio: f64| (ratio * 100.0).floor() / 100.0;
        let figure = match ratio {
            Some(ratio) if upper_bound => format!("{figure}, < {:.2}x", shown(ratio)),
            Some(ratio) => format!("{figure}  {:>5.2}x", shown(ratio)),
            None => figure,
        };
        self.lines.push(Line {
            what,
            figure,
            value: ratio,
            upper_bound,
            goal,
        });
    }

    /// Prints the summary table.
    fn print(&self) {
        println!(
            "\n  summary, {} (load average now {}):",
            self.backend.name(),
            load_average()
        );
        for line in &self.lines {
            println!(
                "    {:<50} {:<34} {}",
                line.what,
                line.figure,
                line.verdict()
            );
        }
    }
}

/// Formats a count with thousands separators.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

// ---------------------------------------------------------------- the sections

/// The 2,000-at-once count every ratio is taken against.
const BASE: usize = 2_000;
/// Short sleepers started among the parked.
const SLEEPERS: usize = 200;
/// The goal ratio to the 2,000 figure.
const RATIO_GOAL: f64 = 0.7;
/// The startup goal with 1,000,000 parked, in seconds.
const STARTUP_GOAL_S: f64 = 10.0;
/// RSS per parked instance that counts as "~0".
const RSS_GOAL_BYTES: f64 = 100.0;

/// Runs every selected section on `backend` and prints its summary.
async fn bench_store(backend: Backend, options: &Options) {
    println!("\n== {} store", backend.name());
    let mut report = Report {
        backend,
        lines: Vec::new(),
    };
    // A warm-up round, not counted: a process's first run is slower.
    {
        let site = Site::fresh(backend, "warm-up", options).await;
        let rt = runtime(site.open().await, options).await;
        let label = format!("{BASE} at once, warm-up (not counted)");
        let _ = timed_at_once(&rt, &label, "warm", BASE, options).await;
        shut_down(&rt).await;
        site.clean_up().await;
    }

    let base = fresh_at_once(backend, BASE, options.rounds_small, options).await;
    report.add_rate(
        format!(
            "{} at once (median of {})",
            count(BASE),
            options.rounds_small
        ),
        base,
        base,
        Goal::None,
    );
    // The parked sections first: each starts from a small heap, so the
    // RSS they measure is theirs, and a large run at once that timed out
    // leaves nothing behind in them.
    if options.has("parked") || options.has("wake") || options.has("resume") {
        for &parked in &options.parked {
            with_parked(backend, parked, base, options, &mut report).await;
        }
    }
    if options.has("at-once") {
        // Listed first in the summary, after the 2,000 figure.
        let mut lines = Vec::new();
        for &n in options.at_once.iter().filter(|&&n| n != BASE) {
            let rounds = options.rounds_for(n);
            let rate = fresh_at_once(backend, n, rounds, options).await;
            let mut line = Report {
                backend,
                lines: Vec::new(),
            };
            line.add_rate(
                format!("{} at once (median of {rounds})", count(n)),
                rate,
                base,
                Goal::Ratio(RATIO_GOAL),
            );
            lines.extend(line.lines);
        }
        report.lines.splice(1..1, lines);
    }
    report.print();
}

/// Parks `parked` instances on a fresh store, then runs the sections that
/// need them: 2,000 at once beside them, the wake latency, the restart.
async fn with_parked(
    backend: Backend,
    parked: usize,
    base: Option<Rate>,
    options: &Options,
    report: &mut Report,
) {
    let p = count(parked);
    println!(
        "  -- {p} parked on {} ({})",
        options.park.name(),
        backend.name()
    );
    let site = Site::fresh(backend, "parked", options).await;
    let store = site.open().await;
    let rt = runtime(Arc::clone(&store), options).await;
    let rss_before = rss_bytes();
    let heap_before = heap_in_use();
    let parking = within(
        &format!("parking {p}"),
        options.timeout,
        park(&rt, options.park, parked),
    )
    .await;
    let (starts, all_parked) = match parking {
        Some(Ok(times)) => times,
        Some(Err(error)) => {
            println!("  parking {p}: {error}");
            report.add(format!("with {p} parked"), error, None, Goal::None);
            shut_down(&rt).await;
            site.clean_up().await;
            return;
        }
        None => {
            report.add(
                format!("parking {p}"),
                format!("timed out after {} s", options.timeout.as_secs()),
                None,
                Goal::None,
            );
            shut_down(&rt).await;
            site.clean_up().await;
            return;
        }
    };
    let rss_after = rss_bytes();
    let heap_after = heap_in_use();
    let per_parked = per_instance(rss_after, rss_before, parked);
    println!(
        "  parked {p}: started in {:.1} s ({:.0}/s), all waiting after {:.1} s",
        starts.as_secs_f64(),
        parked as f64 / starts.as_secs_f64(),
        all_parked.as_secs_f64()
    );
    println!(
        "  RSS {:.0} MiB before parking, {:.0} MiB after: {per_parked:.0} bytes per parked instance",
        mib(rss_before),
        mib(rss_after),
    );
    // The RSS keeps pages the allocator could not give back (a heap
    // fragmented by the parking); what is allocated is what is held.
    if let (Some(before), Some(after)) = (heap_before, heap_after) {
        let held = per_instance(after, before, parked);
        println!(
            "  heap in use {:.1} MiB before parking, {:.1} MiB after: {held:.0} bytes per parked instance",
            mib(before),
            mib(after),
        );
        // A memory store's records are in this heap by design.
        if parked > 0 {
            let goal = if backend.in_heap() {
                Goal::None
            } else {
                Goal::Bytes(RSS_GOAL_BYTES)
            };
            report.add(
                format!("heap in use per parked instance, {p} (runtime and store)"),
                format!("{held:.0} B"),
                Some(held),
                goal,
            );
        }
    }
    let held = stored(&store).await;
    println!(
        "  the store holds {} keys, {:.0} bytes of keys and values per parked instance ({})",
        held.keys,
        held.bytes as f64 / parked as f64,
        if backend.in_heap() {
            "in this heap"
        } else {
            "on disk or in the server; only the store's caches are in this heap"
        }
    );

    if options.has("parked") {
        let what = format!("beside {p} parked");
        let rate = rounds_at_once(&rt, &what, "beside-", BASE, options.rounds_small, options).await;
        report.add_rate(
            format!("{} at once {what}", count(BASE)),
            rate,
            base,
            Goal::Ratio(RATIO_GOAL),
        );
    }

    if options.has("wake") {
        let label = format!("{SLEEPERS} timers due in 1-3 s among {p} parked");
        match within(&label, options.timeout, wake(&rt, "sleeper", SLEEPERS)).await {
            Some(wake) => {
                let figure = format!(
                    "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms late",
                    wake.p50_ms, wake.p99_ms, wake.max_ms
                );
                println!("  {label}: {figure} ({} woken)", wake.woken);
                report.add(format!("wake among {p} parked"), figure, None, Goal::None);
            }
            None => report.add(
                format!("wake among {p} parked"),
                "timed out".to_owned(),
                None,
                Goal::None,
            ),
        }
    }

    // What the runtime holds for the parked instances is what dropping it
    // gives back; the store's caches (or a memory store's records, which
    // stay with the bench until the end) are apart.
    let dropped = shut_and_drop(rt, store).await;
    let runtime_share = per_instance(dropped.rss_down, dropped.rss_without_runtime, parked);
    let store_share = per_instance(
        dropped.rss_without_runtime,
        dropped.rss_without_store,
        parked,
    );
    println!(
        "  RSS {:.0} MiB after the shutdown; dropping the runtime gave back {runtime_share:.0} \
         bytes per parked instance, dropping the store then {store_share:.0}{}",
        mib(dropped.rss_down),
        if backend.in_heap() {
            " (the memory store's records stay with the bench)"
        } else {
            ""
        }
    );
    // On the memory store the records are this heap's by design: the goal
    // is checked against what the runtime holds.
    let (checked, against) = if backend.in_heap() {
        (runtime_share, "runtime's")
    } else {
        (per_parked, "total")
    };
    // With nothing parked there is nothing to divide by.
    if parked > 0 {
        report.add(
            format!("RSS per parked instance, {p} ({against})"),
            format!("{per_parked:.0} B, of it the runtime's {runtime_share:.0} B"),
            Some(checked),
            Goal::Bytes(RSS_GOAL_BYTES),
        );
    }

    if options.has("resume") {
        resume(&site, dropped, parked, base, options, report).await;
    }
    site.clean_up().await;
}

/// The old runtime and store, shut down and dropped.
struct Dropped {
    /// How long `shutdown` took; `None`: it timed out.
    shutdown: Option<Duration>,
    /// How long dropping the runtime and the store took.
    took: Duration,
    /// RSS after the shutdown, after dropping the runtime, and after
    /// dropping the store too.
    rss_down: u64,
    rss_without_runtime: u64,
    rss_without_store: u64,
}

/// Shuts `rt` down and drops it, then `store`, reading the RSS after each.
async fn shut_and_drop(rt: Runtime, store: Arc<dyn Store>) -> Dropped {
    let shutdown = shut_down(&rt).await;
    let rss_down = rss_bytes();
    let dropping = Instant::now();
    drop(rt);
    let rss_without_runtime = rss_bytes();
    drop(store);
    let took = dropping.elapsed();
    Dropped {
        shutdown,
        took,
        rss_down,
        rss_without_runtime,
        rss_without_store: rss_bytes(),
    }
}

/// Builds a new runtime on the data of the dropped one: how long until it
/// runs new work.
async fn resume(
    site: &Site,
    dropped: Dropped,
    parked: usize,
    base: Option<Rate>,
    options: &Options,
    report: &mut Report,
) {
    let p = count(parked);
    let rss_down = dropped.rss_without_store;
    // Startup is timed from the open that succeeds: waiting for the old
    // holder of an embedded store to close it is a cost of restarting in
    // the same process, which a new process would not wait for.
    let (store, waited, started) = site.open_timed().await;
    let opened = started.elapsed();
    let rt = runtime(store, options).await;
    let built = started.elapsed();
    let first = within(
        &format!("the first order saga after the restart with {p} parked"),
        options.timeout,
        async {
            let handle = rt
                .start(order_saga, "after-restart", Order { n: 0 })
                .await?;
            handle.outcome().await
        },
    )
    .await;
    let first_done = started.elapsed();
    // What the new runtime holds for the parked instances it found.
    let rss_restarted = rss_bytes();
    let first = match first {
        Some(Ok(Outcome::Completed(_))) => Some(first_done),
        Some(Ok(other)) => {
            println!("  the first saga after the restart did not complete: {other:?}");
            None
        }
        Some(Err(error)) => {
            println!("  the first saga after the restart failed: {error}");
            None
        }
        None => None,
    };
    println!(
        "  restart with {p} parked: shutdown {}, the old runtime and store dropped in {:.3} s, \
         {:.3} s waiting for the old store to close; then store opened in {:.3} s, \
         build returned at {:.3} s, first new saga completed at {}",
        dropped
            .shutdown
            .map_or("timed out".to_owned(), |took| format!(
                "{:.3} s",
                took.as_secs_f64()
            )),
        dropped.took.as_secs_f64(),
        waited.as_secs_f64(),
        opened.as_secs_f64(),
        built.as_secs_f64(),
        first.map_or("-".to_owned(), |at| format!("{:.3} s", at.as_secs_f64())),
    );
    report.add(
        format!("restart with {p} parked: build returned"),
        format!("{:.3} s", built.as_secs_f64()),
        None,
        Goal::None,
    );
    let goal_note = if parked >= 1_000_000 {
        Goal::Seconds(STARTUP_GOAL_S)
    } else {
        Goal::None
    };
    report.add(
        format!("restart with {p} parked: first saga completed"),
        first.map_or("no figure".to_owned(), |at| {
            format!("{:.3} s", at.as_secs_f64())
        }),
        first.map(|at| at.as_secs_f64()),
        goal_note,
    );

    let rate = rounds_at_once(
        &rt,
        "after the restart",
        "restarted-",
        BASE,
        options.rounds_small,
        options,
    )
    .await;
    let rss_up = rss_bytes();
    let per_parked = per_instance(rss_restarted, rss_down, parked);
    println!(
        "  RSS {:.0} MiB with the old runtime and store dropped, {:.0} MiB once the new one \
         had run its first saga ({per_parked:.0} bytes per parked instance), {:.0} MiB after its \
         runs at once",
        mib(rss_down),
        mib(rss_restarted),
        mib(rss_up)
    );
    if parked > 0 {
        report.add(
            format!("RSS per parked instance after the restart, {p}"),
            format!("{per_parked:.0} B"),
            None,
            Goal::None,
        );
    }
    report.add_rate(
        format!("{} at once after the restart, {p} parked", count(BASE)),
        rate,
        base,
        Goal::Ratio(RATIO_GOAL),
    );
    shut_down(&rt).await;
}

// ---------------------------------------------------------------- options and main

/// What the command line asks for.
struct Options {
    backends: Vec<Backend>,
    at_once: Vec<usize>,
    parked: Vec<usize>,
    /// Rounds of the 2,000-instance runs, and of the larger ones.
    rounds_small: usize,
    rounds_big: usize,
    sections: Vec<String>,
    workers: Option<usize>,
    park: Park,
    timeout: Duration,
    #[cfg(feature = "postgres")]
    postgres: String,
}

impl Options {
    /// Whether `--only` selects `section`.
    fn has(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }

    /// Rounds of a run of `n` at once.
    fn rounds_for(&self, n: usize) -> usize {
        if n <= BASE {
            self.rounds_small
        } else {
            self.rounds_big
        }
    }
}

/// What `--help` prints.
const USAGE: &str = "\
usage: scale [--stores STORES] [--at-once N,N] [--parked N,N] [--rounds N]
             [--only SECTIONS] [--workers N] [--park timer|signal] [--timeout SECS] [--quick]
  STORES:   memory,embedded (default), and postgres with `--features postgres`
            (SAGAFLOW_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test)
  SECTIONS: at-once,parked,wake,resume (default: all)
  --at-once 2000,20000,100000 (default); --parked 100000,1000000 (default)
  --rounds N: rounds of every run (default 3 for 2,000 at once, 1 for larger)
  --workers N: the runtime's workers (default: the library's default)
  --park: what parked instances wait on (default timer: a 1-day sleep)
  --timeout SECS: the limit of each phase (default 600)
  --quick: at once 2000,5000; parked 10000";

/// Parses the command line.
fn options() -> Options {
    let mut options = Options {
        backends: vec![Backend::Memory, Backend::Embedded],
        at_once: vec![2_000, 20_000, 100_000],
        parked: vec![100_000, 1_000_000],
        rounds_small: 3,
        rounds_big: 1,
        sections: ["at-once", "parked", "wake", "resume"]
            .map(str::to_owned)
            .to_vec(),
        workers: None,
        park: Park::Timer,
        timeout: Duration::from_secs(600),
        #[cfg(feature = "postgres")]
        postgres: std::env::var("SAGAFLOW_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
    };
    let numbers = |flag: &str, value: &str| -> Vec<usize> {
        value
            .split(',')
            .map(|n| {
                n.trim()
                    .replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{flag} {value}: not a list of numbers"))
            })
            .collect()
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--quick" => {
                options.at_once = vec![2_000, 5_000];
                options.parked = vec![10_000];
                continue;
            }
            _ => {}
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value\n\n{USAGE}"));
        let number = || numbers(flag, value)[0];
        match flag.as_str() {
            "--stores" => options.backends = value.split(',').map(Backend::parse).collect(),
            "--at-once" => options.at_once = numbers(flag, value),
            "--parked" => options.parked = numbers(flag, value),
            "--rounds" => {
                options.rounds_small = number().max(1);
                options.rounds_big = options.rounds_small;
            }
            "--only" => options.sections = value.split(',').map(str::to_owned).collect(),
            "--workers" => options.workers = Some(number()),
            "--timeout" => options.timeout = Duration::from_secs(number() as u64),
            "--park" => {
                options.park = match value.as_str() {
                    "timer" => Park::Timer,
                    "signal" => Park::Signal,
                    _ => panic!("--park timer|signal, not {value:?}"),
                }
            }
            _ => panic!("unknown flag {flag}\n\n{USAGE}"),
        }
    }
    for section in &options.sections {
        assert!(
            ["at-once", "parked", "wake", "resume"].contains(&section.as_str()),
            "--only takes at-once,parked,wake,resume; not {section:?}"
        );
    }
    options
}

#[tokio::main]
async fn main() {
    let options = options();
    println!(
        "sagaflow scale bench: {} cores, #[tokio::main] (multi-thread, default worker threads), \
         {ALLOCATOR_NAME}, runtime workers: {}, parked instances wait on {}, phase timeout {} s, \
         load average {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        options.workers.map_or_else(
            || format!(
                "the default ({})",
                sagaflow::RuntimeBuilder::DEFAULT_WORKERS
            ),
            |workers| workers.to_string()
        ),
        options.park.name(),
        options.timeout.as_secs(),
        load_average(),
    );
    for &backend in &options.backends {
        bench_store(backend, &options).await;
    }
}
