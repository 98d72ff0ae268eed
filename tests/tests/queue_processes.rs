//! A queue's limits across worker processes on PostgreSQL, one of them
//! killed with SIGKILL mid-run.
//!
//! The parent re-executes this test binary as [`CHILDREN`] worker
//! processes (selected by [`CHILD_VAR`]), each running a runtime with the
//! queue `orders` defined as `concurrency(GLOBAL)` and
//! `partition_concurrency(1)`; a client-only runtime in the parent
//! enqueues [`ORDERS`] orders of a few customers (half of them one
//! customer's). Every step appends `begin` and `end` lines with the time
//! (one clock: the machine's) to an effects file. The victim child, at
//! its [`MARK_AFTER`]th step, prints [`MARKER`] and holds that step (and
//! every later one) forever; the parent kills it. Its slots come back
//! only through their leases ([`LEASE_TTL`]) and the instances they were
//! held for, resumed by the others.
//!
//! The parent waits until every order ended, then checks:
//! - every order completed, each transition committed once (history);
//! - each step ran, and ran twice only when the victim had begun it and
//!   was killed before its end;
//! - at every transition (every line of the file, in time order), the
//!   orders running — from their first step's begin to their last step's
//!   end — number at most [`GLOBAL`], and at most one per customer; and
//!   [`GLOBAL`] did run at once;
//! - the queue's keys are gone once the last slot is released.
//!
//! Needs the server (see `.ci/run`):
//! `cargo test -p sagaflow-tests --features backends --test queue_processes`.
#![cfg(feature = "backends")]
#![cfg(unix)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sagaflow::prelude::*;
use sagaflow::record::EventKind;
use sagaflow::store::conformance::{server_from_env, unique_name};
use sagaflow::{Phase, PostgresStore, QueueHandle, StepError, Store};
use sagaflow_tests::harness::{Scratch, say};
use serde::{Deserialize, Serialize};

/// Selects child mode; its value is the run's table.
const CHILD_VAR: &str = "SAGAFLOW_QP_CHILD";
/// Set in the victim child.
const VICTIM_VAR: &str = "SAGAFLOW_QP_VICTIM";
/// What a child prints once its runtime runs.
const READY: &str = "QP-READY";
/// What the victim prints when it holds its step.
const MARKER: &str = "QP-HOLDING";
const CHILDREN: usize = 3;
const ORDERS: usize = 48;
/// The queue's limit across processes.
const GLOBAL: usize = 4;
/// Steps the victim begins before it holds one.
const MARK_AFTER: usize = 6;
/// Instance and slot leases: how long after the kill the victim's work waits.
const LEASE_TTL: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const RECOVERY_INTERVAL: Duration = Duration::from_millis(200);
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
const FINISH_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- the saga

/// One order: its customer, and where its steps write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    customer: String,
    effects: String,
}

#[step(readonly)]
async fn reserve(order: &Order) -> Result<(), StepError> {
    effect(order, "reserve").await
}

#[step(readonly)]
async fn ship(order: &Order) -> Result<(), StepError> {
    effect(order, "ship").await
}

#[workflow]
async fn fulfil(order: Order) -> Result<String, WorkflowError> {
    reserve(&order).await?;
    ship(&order).await?;
    Ok(order.customer)
}

/// Steps begun by this process.
static BEGUN: AtomicUsize = AtomicUsize::new(0);

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

/// One step: a `begin` line, 20-40 ms of work, an `end` line. In the
/// victim, the [`MARK_AFTER`]th begin prints [`MARKER`] and holds its step
/// forever, and every later step holds before its begin.
async fn effect(order: &Order, step: &str) -> Result<(), StepError> {
    let context = sagaflow::context().ok_or_else(|| StepError::permanent("not in a step"))?;
    let id = context
        .idempotency_key()
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let victim = std::env::var(VICTIM_VAR).is_ok();
    if victim && BEGUN.load(Ordering::SeqCst) >= MARK_AFTER {
        std::future::pending::<()>().await;
    }
    let write = |kind: &str| -> Result<(), StepError> {
        let line = format!(
            "{kind} {id} {step} {} {} {}\n",
            order.customer,
            std::process::id(),
            now_ns()
        );
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&order.effects)
            .map_err(|e| StepError::permanent(format!("open the effects file: {e}")))?;
        // One write per line: O_APPEND keeps concurrent lines whole.
        file.write_all(line.as_bytes())
            .map_err(|e| StepError::permanent(format!("append an effect: {e}")))
    };
    write("begin")?;
    let begun = BEGUN.fetch_add(1, Ordering::SeqCst) + 1;
    if victim && begun == MARK_AFTER {
        say(&format!("{MARKER} {id} {step}"));
        std::future::pending::<()>().await;
    }
    let work = 20 + (id.len() as u64 * 7 + step.len() as u64) % 21;
    tokio::time::sleep(Duration::from_millis(work)).await;
    write("end")
}

fn queue() -> Queue {
    Queue::new("orders")
        .concurrency(GLOBAL as u32)
        .partition_concurrency(1)
}

async fn builder(server: &str, table: &str) -> sagaflow::RuntimeBuilder {
    let store = PostgresStore::with_table(server, table)
        .await
        .expect("connect to PostgreSQL");
    Runtime::builder()
        .store(store)
        .register(fulfil)
        .queue(queue())
        .lease_ttl(LEASE_TTL)
        .poll_interval(POLL_INTERVAL)
        .recovery_interval(RECOVERY_INTERVAL)
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

// ---------------------------------------------------------------- the child

/// The worker child: runs the queue's dispatcher and workers until the
/// parent kills it. Does nothing when run as an ordinary test.
#[test]
fn qp_worker_child() {
    let Ok(table) = std::env::var(CHILD_VAR) else {
        return;
    };
    let server = std::env::var("SAGAFLOW_POSTGRES_URL").expect("child: the server");
    tokio_runtime().block_on(async {
        let _rt = builder(&server, &table)
            .await
            .workers(16)
            .build()
            .await
            .expect("child: the runtime builds");
        say(READY);
        std::future::pending::<()>().await;
    });
}

// ---------------------------------------------------------------- the parent

/// The worker children, killed however the test ends.
struct Children {
    children: Vec<Option<Child>>,
    lines: mpsc::Receiver<(usize, String)>,
}

impl Children {
    fn spawn(table: &str, victim: usize) -> Children {
        let exe = std::env::current_exe().expect("current_exe");
        let (tx, lines) = mpsc::channel();
        let mut children = Vec::new();
        for index in 0..CHILDREN {
            let mut command = Command::new(&exe);
            command
                .args([
                    "qp_worker_child",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_VAR, table)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if index == victim {
                command.env(VICTIM_VAR, "1");
            }
            let mut child = command.spawn().expect("spawn a worker child");
            let stdout = child.stdout.take().expect("piped stdout");
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((index, line)).is_err() {
                        break;
                    }
                }
            });
            children.push(Some(child));
        }
        Children { children, lines }
    }

    fn pid(&self, index: usize) -> u32 {
        self.children[index].as_ref().expect("alive").id()
    }

    /// Waits until `wanted` holds for a line of a child.
    fn wait_for(&self, what: &str, mut wanted: impl FnMut(usize, &str) -> bool) {
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((index, line)) if wanted(index, &line) => return,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{what}: not within {STARTUP_LIMIT:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: every child ended"),
            }
        }
    }

    /// SIGKILL child `index`.
    fn kill(&mut self, index: usize) {
        let mut child = self.children[index].take().expect("alive");
        child.kill().expect("kill -9 the child");
        let status = child.wait().expect("wait for the child");
        assert!(
            status.code().is_none(),
            "the child died by the signal: {status:?}"
        );
    }

    /// No child that should run has ended on its own.
    fn assert_alive(&mut self) {
        for (index, child) in self.children.iter_mut().enumerate() {
            if let Some(child) = child {
                let status = child.try_wait().expect("try_wait");
                assert!(status.is_none(), "worker child {index} ended: {status:?}");
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One line of the effects file.
#[derive(Clone, Debug)]
struct Line {
    began: bool,
    id: String,
    step: String,
    customer: String,
    pid: u32,
    at_ns: u128,
}

fn read_lines(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<Line> = text
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            let [kind, id, step, customer, pid, at] = parts.as_slice() else {
                panic!("a malformed effect line {line:?}")
            };
            Line {
                began: *kind == "begin",
                id: (*id).to_owned(),
                step: (*step).to_owned(),
                customer: (*customer).to_owned(),
                pid: pid.parse().expect("a pid"),
                at_ns: at.parse().expect("a time"),
            }
        })
        .collect();
    lines.sort_by_key(|line| line.at_ns);
    lines
}

/// Order `index`'s customer: half of the orders are `c0`'s.
fn customer(index: usize) -> String {
    match index % 8 {
        0..=3 => "c0".to_owned(),
        other => format!("c{}", other - 3),
    }
}

/// The most orders running at once, overall and per customer, at every
/// line: an order runs from its first step's begin to its last step's end.
fn most_running(lines: &[Line]) -> (usize, usize) {
    let mut first: HashMap<&str, u128> = HashMap::new();
    let mut last: HashMap<&str, u128> = HashMap::new();
    let mut customer_of: HashMap<&str, &str> = HashMap::new();
    for line in lines {
        first.entry(&line.id).or_insert(line.at_ns);
        if !line.began {
            last.insert(&line.id, line.at_ns);
        }
        customer_of.insert(&line.id, &line.customer);
    }
    // (time, +1 or -1, order); at one time, ends before begins.
    let mut changes: Vec<(u128, i32, &str)> = Vec::new();
    for (id, at) in &first {
        changes.push((*at, 1, id));
        let end = last.get(id).copied().unwrap_or(u128::MAX);
        changes.push((end, -1, id));
    }
    changes.sort();
    let mut running = 0i32;
    let mut most = 0i32;
    let mut by_customer: HashMap<&str, i32> = HashMap::new();
    let mut most_per_customer = 0i32;
    for (_, change, id) in changes {
        running += change;
        most = most.max(running);
        let count = by_customer.entry(customer_of[id]).or_default();
        *count += change;
        most_per_customer = most_per_customer.max(*count);
    }
    (most as usize, most_per_customer as usize)
}

#[test]
fn queue_limits_hold_across_processes_one_killed() {
    let Some(server) = server_from_env(
        "SAGAFLOW_POSTGRES_URL",
        "set SAGAFLOW_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test, or run .ci/run",
    ) else {
        return;
    };
    let began = Instant::now();
    let table = unique_name("sagaflow_qp");
    let scratch = Scratch::new("qp", &table);
    let effects = scratch.effects();
    let victim = 0;
    let mut children = Children::spawn(&table, victim);
    let victim_pid = children.pid(victim);
    let mut ready = HashSet::new();
    children.wait_for("every worker child is ready", |index, line| {
        if line.contains(READY) {
            ready.insert(index);
        }
        ready.len() == CHILDREN
    });
    tokio_runtime().block_on(async {
        let client = builder(&server, &table)
            .await
            .workers(0)
            .build()
            .await
            .expect("the client runtime builds");
        let mut handles: Vec<QueueHandle<String>> = Vec::new();
        for index in 0..ORDERS {
            let order = Order {
                customer: customer(index),
                effects: effects.display().to_string(),
            };
            let to = Enqueue::new("orders").partition(order.customer.clone());
            let handle = client
                .enqueue(to, fulfil, format!("order-{index:02}"), order)
                .await
                .expect("enqueue");
            handles.push(handle);
        }
        // The victim holds a step: kill it there, slots and all.
        children.wait_for("the victim's marker", |index, line| {
            index == victim && line.contains(MARKER)
        });
        children.kill(victim);
        let killed_at = began.elapsed();
        let waited = tokio::time::timeout(FINISH_LIMIT, async {
            for handle in &handles {
                let outcome = handle.outcome().await.expect("an outcome");
                assert!(
                    matches!(outcome, Outcome::Completed(_)),
                    "{}: {outcome:?}",
                    handle.id()
                );
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "not every order ended within {FINISH_LIMIT:?}"
        );
        let ended_in = began.elapsed();
        children.assert_alive();

        // Each transition committed once.
        for handle in &handles {
            let status = client
                .status(handle.id())
                .await
                .expect("a status")
                .expect("the instance");
            assert_eq!(status.phase, Phase::Completed);
            let succeeded = status
                .history
                .iter()
                .filter(|event| event.kind == EventKind::StepSucceeded)
                .count();
            assert_eq!(succeeded, 2, "{}: {:#?}", handle.id(), status.history);
        }

        let lines = read_lines(&effects);
        // Each step of each order ran; twice only where the victim began
        // it and died before its end.
        let mut runs: BTreeMap<(&str, &str), Vec<&Line>> = BTreeMap::new();
        for line in &lines {
            runs.entry((&line.id, &line.step)).or_default().push(line);
        }
        let mut reruns = 0;
        for index in 0..ORDERS {
            let id = format!("order-{index:02}");
            for step in ["reserve", "ship"] {
                let of_step = runs
                    .get(&(id.as_str(), step))
                    .unwrap_or_else(|| panic!("{id} {step}: never ran"));
                let begins: Vec<&&Line> = of_step.iter().filter(|line| line.began).collect();
                let ends: Vec<&&Line> = of_step.iter().filter(|line| !line.began).collect();
                assert_eq!(
                    ends.len(),
                    1,
                    "{id} {step} ended {} times: {of_step:?}",
                    ends.len()
                );
                if begins.len() > 1 {
                    let cut_short = begins.iter().filter(|line| line.pid == victim_pid).count();
                    let victim_ends = ends.iter().filter(|line| line.pid == victim_pid).count();
                    assert!(
                        begins.len() == 2 && cut_short == 1 && victim_ends == 0,
                        "{id} {step} began {} times, not explained by the kill: {of_step:?}",
                        begins.len()
                    );
                    reruns += 1;
                }
            }
        }
        assert!(
            reruns > 0,
            "the step the victim held did not run again elsewhere"
        );
        let (most, most_per_customer) = most_running(&lines);
        assert!(most <= GLOBAL, "{most} orders ran at once, over {GLOBAL}");
        assert_eq!(
            most_per_customer, 1,
            "a customer had two orders running at once"
        );
        assert_eq!(most, GLOBAL, "the queue never ran {GLOBAL} at once");
        let mut per_pid: BTreeMap<u32, usize> = BTreeMap::new();
        for line in &lines {
            *per_pid.entry(line.pid).or_default() += 1;
        }
        // The victim and at least one other ran orders: the limits held
        // across processes, not inside one.
        assert!(
            per_pid.len() >= 2 && per_pid.contains_key(&victim_pid),
            "orders ran in one process only: {per_pid:?}"
        );

        // Every slot comes back once the last holder sees its order end.
        let store = PostgresStore::with_table(&server, &table)
            .await
            .expect("connect to PostgreSQL");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = store.scan("queues/", None, 100).await.expect("a scan");
            let left: Vec<String> = left
                .entries
                .into_iter()
                .map(|(key, _)| key)
                .filter(|key| !key.ends_with("/rate"))
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "queue keys left: {left:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(children);
        client.shutdown().await;
        eprintln!(
            "queue on {CHILDREN} worker processes: {ORDERS} orders, concurrency {GLOBAL}, one \
             per customer; victim {victim_pid} killed at {killed_at:.1?}; all ended at \
             {ended_in:.1?}; at most {most} running, {most_per_customer} per customer; \
             {reruns} steps re-run after the kill; lines per pid {per_pid:?}"
        );
        drop_table(&server, &table).await;
    });
}

/// Drops a run's PostgreSQL table and its version sequence.
async fn drop_table(url: &str, table: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connects to drop the run's table");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS \"{table}\"; DROP SEQUENCE IF EXISTS \"{table}_version\""
        ))
        .await
        .expect("drops the run's table");
    drop(client);
    let _ = driver.await;
}
