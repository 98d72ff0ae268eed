//! Two worker processes on one PostgreSQL store fire one schedule: every
//! tick starts exactly one instance, over 1,000 ticks, with one process
//! killed (`SIGKILL`) and a new one started mid-run.
//!
//! The parent re-executes this test binary as worker children (selected by
//! [`CHILD_VAR`]), each a runtime with workers on a fresh table. A
//! client-only runtime in the parent creates the schedule: every 20 ms,
//! `AllowAll`, catching up every missed tick within a minute. Each
//! instance's one step appends `run {instance id} {pid}` to an effects
//! file. After about 300 ticks the parent kills child 0 and starts child 2;
//! once 1,000 ticks have passed it pauses the schedule and waits until the
//! instances of those ticks have ended, then checks:
//! - the instances of the 1,000 ticks are exactly `{schedule}/{tick}` for
//!   each tick, none missing (the killed process's decided starts are made
//!   by the others), and each record was created once (one `Created`
//!   event);
//! - each instance's step ran once, or twice only if the killed child ran
//!   it first (a step in flight at the kill runs again: steps are
//!   at-least-once);
//! - the schedule counted 1,000 or more starts and no tick skipped or
//!   missed.
//!
//! It prints how late instances were created after their tick (p50, p99).
//!
//! Needs PostgreSQL (see `.ci/run`):
//! `cargo test -p sagaflow-tests --features backends --test schedule_processes`.
#![cfg(feature = "backends")]
#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow::record::EventKind;
use sagaflow::schedule::format_time;
use sagaflow::store::conformance::{server_from_env, unique_name};
use sagaflow::{CatchUp, Overlap, Phase, PostgresStore, ScheduleOptions, ScheduleSpec, StepError};
use sagaflow_tests::harness::{Scratch, read_effect_lines, say};

const CHILD_VAR: &str = "SAGAFLOW_SCHED_CHILD";
const TABLE_VAR: &str = "SAGAFLOW_SCHED_TABLE";
const READY: &str = "SCHED-READY";
/// The schedule's interval.
const EVERY: Duration = Duration::from_millis(20);
/// Ticks checked.
const TICKS: u64 = 1_000;
/// After how many ticks child 0 is killed and child 2 started.
const KILL_AT: u64 = 300;
const LIMIT: Duration = Duration::from_secs(120);

#[step(readonly)]
async fn run_tick(effects: &str) -> Result<(), StepError> {
    let context = sagaflow::context().ok_or_else(|| StepError::permanent("not in a step"))?;
    let line = format!("run {} {}\n", context.workflow_id, std::process::id());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(effects)
        .map_err(|e| StepError::permanent(format!("open the effects file: {e}")))?;
    file.write_all(line.as_bytes())
        .map_err(|e| StepError::permanent(format!("append an effect: {e}")))?;
    Ok(())
}

#[workflow]
async fn tick(effects: String) -> Result<(), WorkflowError> {
    run_tick(&effects).await?;
    Ok(())
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

/// The worker child: a runtime with workers (and so a scheduler) until the
/// parent kills it. Does nothing when run as an ordinary test.
#[test]
fn schedule_worker_child() {
    let Ok(table) = std::env::var(TABLE_VAR) else {
        return;
    };
    if std::env::var(CHILD_VAR).is_err() {
        return;
    }
    let server = std::env::var("SAGAFLOW_POSTGRES_URL").expect("child: the server");
    tokio_runtime().block_on(async {
        let _rt = Runtime::builder()
            .store(
                PostgresStore::with_table(&server, &table)
                    .await
                    .expect("connect to PostgreSQL"),
            )
            .register(tick)
            .workers(64)
            .poll_interval(Duration::from_millis(100))
            .schedule_interval(Duration::from_millis(100))
            .lease_ttl(Duration::from_secs(2))
            .recovery_interval(Duration::from_millis(500))
            .build()
            .await
            .expect("child: the runtime builds");
        say(READY);
        std::future::pending::<()>().await;
    });
}

struct Children {
    children: Vec<Option<Child>>,
    lines: mpsc::Receiver<(usize, String)>,
    sender: mpsc::Sender<(usize, String)>,
    table: String,
}

impl Children {
    fn new(table: &str) -> Children {
        let (sender, lines) = mpsc::channel();
        Children {
            children: Vec::new(),
            lines,
            sender,
            table: table.to_owned(),
        }
    }

    /// Starts a child and waits until its runtime runs; returns its pid.
    fn spawn(&mut self) -> u32 {
        let index = self.children.len();
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "schedule_worker_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_VAR, "1")
            .env(TABLE_VAR, &self.table)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a worker child");
        let stdout = child.stdout.take().expect("piped stdout");
        let sender = self.sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send((index, line)).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        self.children.push(Some(child));
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((from, line)) if from == index && line.contains(READY) => return pid,
                Ok(_) => {}
                Err(error) => panic!("worker child {index} did not start: {error}"),
            }
        }
    }

    fn kill(&mut self, index: usize) {
        let mut child = self.children[index].take().expect("alive");
        child.kill().expect("kill -9 the child");
        let status = child.wait().expect("wait for the child");
        assert!(status.code().is_none(), "killed by the signal: {status:?}");
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

#[test]
fn two_worker_processes_start_one_instance_per_tick_over_1000_ticks() {
    let Some(server) = server_from_env(
        "SAGAFLOW_POSTGRES_URL",
        "set SAGAFLOW_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test, or run .ci/run",
    ) else {
        return;
    };
    let table = unique_name("sagaflow_schedules");
    let scratch = Scratch::new("schedules", "processes");
    let effects = scratch.effects();
    let started = Instant::now();
    tokio_runtime().block_on(async {
        let client = Runtime::builder()
            .store(
                PostgresStore::with_table(&server, &table)
                    .await
                    .expect("connect to PostgreSQL"),
            )
            .register(tick)
            .workers(0)
            .build()
            .await
            .expect("the client runtime");
        let mut children = Children::new(&table);
        let first_pid = children.spawn();
        children.spawn();

        let schedules = client.schedules();
        let created = schedules
            .create(
                "fast",
                ScheduleSpec::every(EVERY),
                tick,
                effects.display().to_string(),
                ScheduleOptions::new()
                    .overlap(Overlap::AllowAll)
                    .catch_up(CatchUp::All, Duration::from_secs(60)),
            )
            .await
            .expect("create the schedule");
        let first = created.schedule.next_tick.expect("a first tick");
        let every = EVERY.as_millis() as u64;
        let last = first + (TICKS - 1) * every;
        let mut killed = false;
        let deadline = Instant::now() + LIMIT;
        loop {
            let schedule = schedules.describe("fast").await.expect("describe").schedule;
            let handled = schedule.last_tick.unwrap_or(0);
            if !killed && handled >= first + KILL_AT * every {
                children.kill(0);
                children.spawn();
                killed = true;
            }
            if killed && handled >= last && schedule.starting.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "1,000 ticks not handled within {LIMIT:?}: at {}",
                format_time(handled, 1)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        schedules
            .pause("fast", "the test has its 1,000 ticks")
            .await
            .expect("pause");

        let expected: Vec<String> = (0..TICKS)
            .map(|k| format!("fast/{}", format_time(first + k * every, 1)))
            .collect();
        // Wait until every instance of those ticks has ended.
        let statuses = loop {
            let mut statuses = BTreeMap::new();
            let mut after: Option<String> = None;
            loop {
                let page = client.list(after.as_deref(), 1_000).await.expect("list");
                for status in page.instances {
                    let status = status.expect("a record decodes");
                    statuses.insert(status.id.clone(), status);
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            let ended = expected
                .iter()
                .all(|id| statuses.get(id).is_some_and(|s| s.phase.is_terminal()));
            if ended {
                break statuses;
            }
            assert!(
                Instant::now() < deadline,
                "the instances did not end within {LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };

        // One instance per tick, created once, none missing.
        let mut lateness = Vec::new();
        for (k, id) in expected.iter().enumerate() {
            let status = statuses
                .get(id)
                .unwrap_or_else(|| panic!("tick {k} started no instance: {id}"));
            assert_eq!(status.phase, Phase::Completed, "{id}");
            let created = status
                .history
                .iter()
                .filter(|event| event.kind == EventKind::Created)
                .count();
            assert_eq!(created, 1, "{id} created once");
            lateness.push(status.created_at.saturating_sub(first + k as u64 * every));
        }
        // Nothing else in the window: ids are the ticks, so a second
        // instance of a tick cannot exist; count the window's ids anyway.
        let in_window = statuses
            .keys()
            .filter(|id| {
                id.as_str() >= expected[0].as_str()
                    && id.as_str() <= expected[expected.len() - 1].as_str()
            })
            .count();
        assert_eq!(in_window, TICKS as usize);

        // Each step ran once, or again only after the kill.
        let mut runs: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (_, id, pid) in read_effect_lines(&effects) {
            runs.entry(id).or_default().push(pid);
        }
        let mut reran = 0;
        for id in &expected {
            let pids = runs.get(id).map(Vec::as_slice).unwrap_or(&[]);
            match pids {
                [_] => {}
                [killed_pid, _] if *killed_pid == first_pid => reran += 1,
                _ => panic!("{id}: its step ran {pids:?}"),
            }
        }

        let schedule = schedules.describe("fast").await.expect("describe").schedule;
        assert!(schedule.counts.started >= TICKS, "{:?}", schedule.counts);
        assert_eq!(
            (
                schedule.counts.skipped,
                schedule.counts.missed,
                schedule.counts.failed
            ),
            (0, 0, 0),
            "{:?}",
            schedule.counts
        );
        lateness.sort_unstable();
        println!(
            "{TICKS} ticks every {every} ms on two processes (one killed and replaced after \
             {KILL_AT}): one instance each; {reran} step(s) ran again after the kill; created \
             after its tick p50 {} ms, p99 {} ms, max {} ms; {:.1} s in all",
            lateness[lateness.len() / 2],
            lateness[lateness.len() * 99 / 100],
            lateness[lateness.len() - 1],
            started.elapsed().as_secs_f64()
        );
        drop(children);
        client.shutdown().await;
        drop_table(&server, &table).await;
    });
}
