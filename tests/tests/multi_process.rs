//! Many worker processes on one server-backed store, one of them killed.
//!
//! For each backend (PostgreSQL, Redis, etcd; a fresh table, namespace or
//! key prefix per run) the parent re-executes this test binary as
//! [`CHILDREN`] worker processes (selected by [`CHILD_VAR`]) that each run a
//! runtime with workers on the shared store. A client-only runtime in the
//! parent (`workers(0)`) starts [`INSTANCES`] sagas; once the victim child
//! has written [`MARK_AFTER`] effects it prints [`MARKER`], holds every step
//! where it is (the last one after its effect, before its commit), and the
//! parent SIGKILLs it. The other children take its instances over once its leases
//! expire ([`LEASE_TTL`]). Every step and compensation appends
//! `{kind} {idempotency_key} {pid}` to an effects file (O_APPEND, one write
//! per line). The parent waits until every instance has ended and checks:
//! - each instance ended as its index dictates (completed, or compensated
//!   after the pivot rejected it);
//! - no transition was committed twice (the record's history: no step
//!   succeeded twice, no compensation finished twice, one start, one end);
//! - deduplicated by idempotency key, each effect once per key, in the
//!   saga's order, compensations in reverse order of their steps;
//! - a key ran twice only if the killed child had run it before the kill
//!   (in flight at the kill); how many did is printed.
//!
//! A second test runs a 3-member etcd cluster on loopback (when the `etcd`
//! binary is installed; under `CI=true` it must be), SIGKILLs one member
//! mid-run and checks that every instance still ends, nothing lost.
//!
//! Needs the servers (see `.ci/run`):
//! `cargo test -p sagaflow-tests --features backends --test multi_process`.
#![cfg(feature = "backends")]
#![cfg(unix)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow::record::EventKind;
use sagaflow::store::conformance::{server_from_env, unique_name};
use sagaflow::{EtcdStore, Phase, PostgresStore, RedisStore, RuntimeBuilder, Status, StepError};
use sagaflow_tests::harness::{Scratch, read_effect_lines, say};
use serde::{Deserialize, Serialize};

/// Selects child mode: the backend the child's workers run on.
const CHILD_VAR: &str = "SAGAFLOW_MP_CHILD";
/// The table, namespace or key prefix of the run.
const NAME_VAR: &str = "SAGAFLOW_MP_NAME";
/// After how many effects the child prints [`MARKER`] (0: never).
const MARK_VAR: &str = "SAGAFLOW_MP_MARK_AFTER";
/// Set (to anything) for a child that polls and recovers only hourly.
const HOURLY_VAR: &str = "SAGAFLOW_MP_POLL_HOURLY";
/// What a child prints once its runtime runs.
const READY: &str = "MP-READY";
/// What the victim prints after [`MARK_AFTER`] effects.
const MARKER: &str = "MP-PROGRESS";
/// Worker processes per backend.
const CHILDREN: usize = 4;
/// Sagas per backend.
const INSTANCES: usize = 1000;
/// Effects the victim writes before the parent kills it.
const MARK_AFTER: usize = 60;
/// Workers per child runtime.
const CHILD_WORKERS: usize = 16;
/// The lease on an instance: how long after the kill its instances wait.
const LEASE_TTL: Duration = Duration::from_secs(2);
const RECOVERY_INTERVAL: Duration = Duration::from_millis(200);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long the parent waits for children to come up or reach the marker.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// How long the parent waits for every instance to end.
const FINISH_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------- the saga

/// One job: where to write effects, and whether the pivot rejects it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    effects: String,
    reject: bool,
}

#[step]
async fn reserve(job: &Job) -> Result<String, StepError> {
    effect(job, "reserve").await
}

#[compensate(reserve)]
async fn undo_reserve(job: &Job, _key: String) -> Result<(), StepError> {
    effect(job, "undo_reserve").await.map(drop)
}

#[step]
async fn charge(job: &Job) -> Result<String, StepError> {
    effect(job, "charge").await
}

#[compensate(charge)]
async fn undo_charge(job: &Job, _key: String) -> Result<(), StepError> {
    effect(job, "undo_charge").await.map(drop)
}

#[step(pivot)]
async fn ship(job: &Job) -> Result<String, StepError> {
    if job.reject {
        return Err(StepError::permanent("the carrier refused the parcel"));
    }
    effect(job, "ship").await
}

#[step(retriable, retry(initial = "50ms", max_interval = "500ms"))]
async fn notify(job: &Job) -> Result<String, StepError> {
    effect(job, "notify").await
}

#[workflow]
async fn fulfil(job: Job) -> Result<String, WorkflowError> {
    let reserved = reserve(&job).await?;
    let charged = charge(&job).await?;
    let shipped = ship(&job).await?;
    let notified = notify(&job).await?;
    Ok(format!("{reserved} {charged} {shipped} {notified}"))
}

const ACCEPTED: &[&str] = &["reserve", "charge", "ship", "notify"];
const REJECTED: &[&str] = &["reserve", "charge", "undo_charge", "undo_reserve"];

/// Effects written by this process.
static EFFECTS_WRITTEN: AtomicUsize = AtomicUsize::new(0);
/// The same count, to wait on.
fn effects_watch() -> &'static tokio::sync::watch::Sender<usize> {
    static WATCH: OnceLock<tokio::sync::watch::Sender<usize>> = OnceLock::new();
    WATCH.get_or_init(|| tokio::sync::watch::Sender::new(0))
}
/// After how many effects this process prints [`MARKER`] (0: never).
static MARK_AT: AtomicUsize = AtomicUsize::new(0);

/// One side effect: one appended line. Returns the idempotency key.
///
/// In the victim child (a non-zero [`MARK_AT`]) the effect that makes the
/// count reach it prints [`MARKER`] and then holds its step forever, after
/// the effect and before the step's commit, and so does every later step
/// and compensation, before its effect: the victim dies with work in
/// flight, and at least one key (the marker's) must run again elsewhere.
async fn effect(job: &Job, kind: &str) -> Result<String, StepError> {
    let context =
        sagaflow::context().ok_or_else(|| StepError::permanent("an effect outside a step"))?;
    let key = context.idempotency_key();
    let mark = MARK_AT.load(Ordering::SeqCst);
    if mark > 0 && EFFECTS_WRITTEN.load(Ordering::SeqCst) >= mark {
        std::future::pending::<()>().await;
    }
    let line = format!("{kind} {key} {}\n", std::process::id());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.effects)
        .map_err(|e| StepError::permanent(format!("open the effects file: {e}")))?;
    // One write call per line: O_APPEND keeps concurrent lines whole.
    file.write_all(line.as_bytes())
        .map_err(|e| StepError::permanent(format!("append an effect: {e}")))?;
    let written = EFFECTS_WRITTEN.fetch_add(1, Ordering::SeqCst) + 1;
    effects_watch().send_replace(written);
    if mark > 0 && written == mark {
        say(&format!("{MARKER} {written} {key}"));
        std::future::pending::<()>().await;
    }
    Ok(key)
}

// ---------------------------------------------------------------- the stores

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Postgres,
    Redis,
    Etcd,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Redis => "redis",
            Backend::Etcd => "etcd",
        }
    }

    fn parse(text: &str) -> Backend {
        match text {
            "postgres" => Backend::Postgres,
            "redis" => Backend::Redis,
            "etcd" => Backend::Etcd,
            _ => panic!("an unknown backend {text:?}"),
        }
    }

    fn variable(self) -> &'static str {
        match self {
            Backend::Postgres => "SAGAFLOW_POSTGRES_URL",
            Backend::Redis => "SAGAFLOW_REDIS_URL",
            Backend::Etcd => "SAGAFLOW_ETCD_ENDPOINTS",
        }
    }

    fn how_to_run(self) -> &'static str {
        match self {
            Backend::Postgres => {
                "set SAGAFLOW_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test, or run .ci/run"
            }
            Backend::Redis => "set SAGAFLOW_REDIS_URL=redis://127.0.0.1:6379, or run .ci/run",
            Backend::Etcd => {
                "set SAGAFLOW_ETCD_ENDPOINTS=http://127.0.0.1:2379 (comma-separated), or run .ci/run"
            }
        }
    }

    /// A runtime builder on this backend's store, under `name`.
    async fn builder(self, server: &str, name: &str) -> RuntimeBuilder {
        let builder = Runtime::builder();
        match self {
            Backend::Postgres => builder.store(
                PostgresStore::with_table(server, name)
                    .await
                    .expect("connect to PostgreSQL"),
            ),
            Backend::Redis => builder.store(
                RedisStore::with_namespace(server, name)
                    .await
                    .expect("connect to Redis"),
            ),
            Backend::Etcd => {
                let endpoints: Vec<&str> = server.split(',').map(str::trim).collect();
                builder.store(
                    EtcdStore::connect(&endpoints)
                        .await
                        .expect("connect to etcd")
                        .with_key_prefix(format!("{name}/")),
                )
            }
        }
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

// ---------------------------------------------------------------- the child

/// The worker child: runs workers on the store in [`CHILD_VAR`] until the
/// parent kills it. Does nothing when run as an ordinary test.
#[test]
fn mp_worker_child() {
    let Ok(backend) = std::env::var(CHILD_VAR) else {
        return;
    };
    let backend = Backend::parse(&backend);
    let name = std::env::var(NAME_VAR).expect("child: the store name");
    let mark: usize = std::env::var(MARK_VAR)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    MARK_AT.store(mark, Ordering::SeqCst);
    let server = std::env::var(backend.variable()).expect("child: the server address");
    let (poll, recovery) = if std::env::var(HOURLY_VAR).is_ok() {
        (Duration::from_secs(3600), Duration::from_secs(3600))
    } else {
        (POLL_INTERVAL, RECOVERY_INTERVAL)
    };
    tokio_runtime().block_on(async {
        let _rt = backend
            .builder(&server, &name)
            .await
            .register(fulfil)
            .workers(CHILD_WORKERS)
            .lease_ttl(LEASE_TTL)
            .recovery_interval(recovery)
            .poll_interval(poll)
            .build()
            .await
            .expect("child: the runtime builds");
        say(READY);
        // Work until the parent kills this process.
        std::future::pending::<()>().await;
    });
}

// ---------------------------------------------------------------- the parent

/// The backend tests run one at a time: 4 children each on 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Worker children, killed however the test ends.
struct Children {
    children: Vec<Option<Child>>,
    /// `(child index, line)` from every child's stdout.
    lines: mpsc::Receiver<(usize, String)>,
}

impl Children {
    fn spawn(backend: Backend, name: &str, count: usize, victim: usize) -> Children {
        Children::spawn_with(backend, name, count, victim, false)
    }

    /// `hourly`: the children poll and recover only once an hour.
    fn spawn_with(
        backend: Backend,
        name: &str,
        count: usize,
        victim: usize,
        hourly: bool,
    ) -> Children {
        let exe = std::env::current_exe().expect("current_exe");
        let (tx, lines) = mpsc::channel();
        let mut children = Vec::new();
        for index in 0..count {
            let mark = if index == victim { MARK_AFTER } else { 0 };
            let mut command = Command::new(&exe);
            command
                .args([
                    "mp_worker_child",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_VAR, backend.name())
                .env(NAME_VAR, name)
                .env(MARK_VAR, mark.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if hourly {
                command.env(HOURLY_VAR, "1");
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

    /// Waits until `wanted` holds for a line of child `index`.
    fn wait_for(&self, what: &str, mut wanted: impl FnMut(usize, &str) -> bool) {
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The harness prints `test mp_worker_child ... ` without a
                // newline, so a child's line may follow it on the same line.
                Ok((index, line)) => {
                    if wanted(index, &line) {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{what}: not within {STARTUP_LIMIT:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("{what}: every child ended")
                }
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
            "the child must die by the signal: {status:?}"
        );
    }

    /// Every child that is still running must still be running (none died
    /// on its own).
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
#[derive(Clone, Debug, PartialEq, Eq)]
struct Effect {
    kind: String,
    key: String,
    pid: u32,
}

fn read_effects(path: &Path) -> Vec<Effect> {
    read_effect_lines(path)
        .into_iter()
        .map(|(kind, key, pid)| Effect { kind, key, pid })
        .collect()
}

fn instance_id(run: &str, index: usize) -> String {
    format!("{run}-{index:04}")
}

/// Which instances the pivot rejects, by index.
fn rejected(index: usize) -> bool {
    index % 5 == 2
}

/// The instance an idempotency key belongs to (`{id}/...`).
fn key_instance(key: &str) -> &str {
    key.split_once('/').map_or(key, |(id, _)| id)
}

/// Starts `count` instances from `rt`, eight at a time. With `retry`, a
/// start that fails on a store error (its request died with an etcd
/// member: the caller cannot know whether it was written) is retried until
/// the instance exists, within [`FINISH_LIMIT`]; without, it fails the
/// test. Returns how many starts failed and were retried.
async fn start_all(rt: &Runtime, run: &str, count: usize, effects: &Path, retry: bool) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..8 {
        let rt = rt.clone();
        let run = run.to_owned();
        let effects = effects.display().to_string();
        tasks.spawn(async move {
            let mut failed = 0;
            for index in (lane..count).step_by(8) {
                let id = instance_id(&run, index);
                let deadline = Instant::now() + FINISH_LIMIT;
                loop {
                    let job = Job {
                        effects: effects.clone(),
                        reject: rejected(index),
                    };
                    let Err(error) = rt.start(fulfil, id.clone(), job).await else {
                        break;
                    };
                    assert!(
                        retry && Instant::now() < deadline,
                        "start instance {index}: {error}"
                    );
                    failed += 1;
                    if let Ok(Some(_)) = rt.status(&id).await {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            failed
        });
    }
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        failed += done.expect("a start lane");
    }
    failed
}

/// Waits (bounded) until every instance in the store has ended; returns
/// their statuses by id and how many polls failed on a store error (a read
/// that hit a dead etcd member: retried at the next poll, until the limit).
async fn wait_all_ended(
    rt: &Runtime,
    count: usize,
    what: &str,
) -> (BTreeMap<String, Status>, usize) {
    let deadline = Instant::now() + FINISH_LIMIT;
    let mut failed_polls = 0;
    let mut last_error = None;
    loop {
        let mut statuses = BTreeMap::new();
        let mut after: Option<String> = None;
        let mut complete = true;
        loop {
            let page = match rt.list(after.as_deref(), 500).await {
                Ok(page) => page,
                Err(error) => {
                    failed_polls += 1;
                    last_error = Some(error.to_string());
                    complete = false;
                    break;
                }
            };
            for status in page.instances {
                let status = status.unwrap_or_else(|e| panic!("{what}: a record decodes: {e}"));
                statuses.insert(status.id.clone(), status);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if !complete {
            assert!(
                Instant::now() < deadline,
                "{what}: no complete listing within {FINISH_LIMIT:?} ({failed_polls} failed, \
                 last: {last_error:?})"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        let open: Vec<&Status> = statuses
            .values()
            .filter(|s| !matches!(s.phase, Phase::Completed | Phase::Compensated))
            .collect();
        if statuses.len() == count && open.is_empty() {
            return (statuses, failed_polls);
        }
        if Instant::now() >= deadline {
            let sample: Vec<String> = open
                .iter()
                .take(5)
                .map(|s| {
                    format!(
                        "{} {:?} at {} (attempt {}, last error {:?}, lease {:?})",
                        s.id, s.phase, s.state, s.attempt, s.last_error, s.lease
                    )
                })
                .collect();
            panic!(
                "{what}: after {FINISH_LIMIT:?}, {} of {count} instances in the store, {} not \
                 ended, e.g. {sample:#?} ({failed_polls} polls failed, last: {last_error:?})",
                statuses.len(),
                open.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the checks found, for the report.
#[derive(Debug, Default)]
struct Findings {
    /// Keys whose effect ran more than once.
    rerun_keys: usize,
    /// Instances with such a key.
    rerun_instances: usize,
}

/// The invariants of every instance: its outcome, its history, its effects.
/// `may_rerun(key, lines)` says whether a key may have run more than once.
fn check_all(
    run: &str,
    count: usize,
    statuses: &BTreeMap<String, Status>,
    effects: &[Effect],
    mut may_rerun: impl FnMut(&str, &[&Effect]) -> bool,
) -> Findings {
    let mut by_instance: HashMap<&str, Vec<&Effect>> = HashMap::new();
    for effect in effects {
        by_instance
            .entry(key_instance(&effect.key))
            .or_default()
            .push(effect);
    }
    let mut findings = Findings::default();
    for index in 0..count {
        let id = instance_id(run, index);
        let status = statuses
            .get(&id)
            .unwrap_or_else(|| panic!("{id}: lost: not in the store"));
        // The outcome its index dictates.
        if rejected(index) {
            assert_eq!(status.phase, Phase::Compensated, "{id}");
            let failure = status.failure.as_ref().expect("a compensated failure");
            assert!(
                failure
                    .to_string()
                    .contains("the carrier refused the parcel"),
                "{id}: {failure}"
            );
        } else {
            assert_eq!(status.phase, Phase::Completed, "{id}: {:?}", status.failure);
        }
        // No transition committed twice.
        assert!(
            status.history.len() < sagaflow::record::HISTORY_LIMIT,
            "{id}: the history was truncated: {} events",
            status.history.len()
        );
        let mut seen: HashMap<(String, Option<String>), usize> = HashMap::new();
        for event in &status.history {
            if matches!(
                event.kind,
                EventKind::Created
                    | EventKind::StepSucceeded
                    | EventKind::StepFailed
                    | EventKind::Compensating
                    | EventKind::Compensated
                    | EventKind::Completed
                    | EventKind::RolledBack
            ) {
                *seen
                    .entry((
                        format!("{:?}", event.kind),
                        event.step.as_deref().map(str::to_owned),
                    ))
                    .or_default() += 1;
            }
        }
        for ((kind, step), times) in &seen {
            assert_eq!(
                *times, 1,
                "{id}: {kind} {step:?} committed {times} times: {:#?}",
                status.history
            );
        }
        let succeeded = seen
            .keys()
            .filter(|(kind, _)| kind == "StepSucceeded")
            .count();
        let undone = seen
            .keys()
            .filter(|(kind, _)| kind == "Compensated")
            .count();
        if rejected(index) {
            assert_eq!((succeeded, undone), (2, 2), "{id}: {:#?}", status.history);
        } else {
            assert_eq!((succeeded, undone), (4, 0), "{id}: {:#?}", status.history);
        }
        // Effects: one kind per key; deduplicated, the saga's, in order.
        let mine = by_instance.get(id.as_str()).cloned().unwrap_or_default();
        let mut lines_of: BTreeMap<&str, Vec<&Effect>> = BTreeMap::new();
        let mut order = Vec::new();
        for effect in &mine {
            let lines = lines_of.entry(&effect.key).or_default();
            if lines.is_empty() {
                order.push(effect.kind.as_str());
            }
            lines.push(effect);
        }
        let expected = if rejected(index) { REJECTED } else { ACCEPTED };
        assert_eq!(order, expected, "{id}: the effects, once per key, in order");
        let mut reran = false;
        for (key, lines) in &lines_of {
            let kinds: HashSet<&str> = lines.iter().map(|e| e.kind.as_str()).collect();
            assert_eq!(kinds.len(), 1, "{id}: key {key} names two effects");
            if lines.len() > 1 {
                assert!(
                    may_rerun(key, lines),
                    "{id}: key {key} ran {} times, not explained by the kill: {lines:?}",
                    lines.len()
                );
                findings.rerun_keys += 1;
                reran = true;
            }
        }
        findings.rerun_instances += usize::from(reran);
    }
    findings
}

/// The multi-process run on one backend.
fn four_workers_one_killed(backend: Backend) {
    let Some(server) = server_from_env(backend.variable(), backend.how_to_run()) else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let began = Instant::now();
    let name = unique_name(&format!("sagaflow_mp_{}", backend.name()));
    let scratch = Scratch::new("mp", &name);
    let run = format!("mp{}", std::process::id());
    let victim = 0;
    let mut children = Children::spawn(backend, &name, CHILDREN, victim);
    let pids: Vec<u32> = (0..CHILDREN).map(|i| children.pid(i)).collect();
    let victim_pid = pids[victim];
    let mut ready = HashSet::new();
    children.wait_for("every worker child is ready", |index, line| {
        if line.contains(READY) {
            ready.insert(index);
        }
        ready.len() == CHILDREN
    });
    tokio_runtime().block_on(async move {
        let client = backend
            .builder(&server, &name)
            .await
            .register(fulfil)
            .workers(0)
            .build()
            .await
            .expect("the client runtime builds");
        let effects = scratch.effects();
        let starter = {
            let client = client.clone();
            let run = run.clone();
            let effects = effects.clone();
            tokio::spawn(async move { start_all(&client, &run, INSTANCES, &effects, false).await })
        };
        // The victim's progress, read off-thread: the kill happens while
        // the starts go on.
        // (block_on's thread is not one of tokio's workers: blocking it
        // here does not hold the starts back.)
        children.wait_for("the victim's progress marker", |index, line| {
            index == victim && line.contains(MARKER)
        });
        children.kill(victim);
        let at_kill = read_effects(&effects);
        let killed_at = began.elapsed();
        starter.await.expect("every instance starts");
        let started_in = began.elapsed();
        let (statuses, failed_polls) = wait_all_ended(&client, INSTANCES, backend.name()).await;
        assert_eq!(failed_polls, 0, "{}: a status poll failed", backend.name());
        let ended_in = began.elapsed();
        children.assert_alive();
        drop(children);
        client.shutdown().await;

        let all = read_effects(&effects);
        let victim_keys: HashSet<&str> = at_kill
            .iter()
            .filter(|e| e.pid == victim_pid)
            .map(|e| e.key.as_str())
            .collect();
        let findings = check_all(&run, INSTANCES, &statuses, &all, |key, _| {
            victim_keys.contains(key)
        });
        // Someone else finished what the victim had begun.
        let victim_instances: HashSet<&str> =
            victim_keys.iter().map(|key| key_instance(key)).collect();
        let taken_over = victim_instances
            .iter()
            .filter(|id| {
                all.iter()
                    .any(|e| key_instance(&e.key) == **id && e.pid != victim_pid)
            })
            .count();
        assert!(
            taken_over > 0,
            "no instance the victim had begun was finished by another worker"
        );
        assert!(
            findings.rerun_keys > 0,
            "the key the victim held after its effect did not run again elsewhere"
        );
        let mut per_pid: BTreeMap<u32, usize> = BTreeMap::new();
        for effect in &all {
            *per_pid.entry(effect.pid).or_default() += 1;
        }
        for pid in &pids {
            assert!(
                per_pid.contains_key(pid),
                "worker child {pid} did no work: {per_pid:?}"
            );
        }
        eprintln!(
            "{}: {INSTANCES} instances on {CHILDREN} worker processes; victim {victim_pid} \
             killed at {killed_at:.1?} after {} effects in the file; all started at \
             {started_in:.1?}, all ended at {ended_in:.1?}; {} effects in all, per pid \
             {per_pid:?}; the victim had begun {} instances, {taken_over} finished by others; \
             re-run: {} keys in {} instances (all begun by the victim before the kill)",
            backend.name(),
            at_kill.len(),
            all.len(),
            victim_instances.len(),
            findings.rerun_keys,
            findings.rerun_instances,
        );
        if backend == Backend::Postgres {
            drop_table(&server, &name).await;
        }
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

/// A worker process that polls only hourly runs what a client in this
/// process starts, one saga after another: only the store's change
/// notification (LISTEN/NOTIFY, pub/sub, a watch) can have woken it.
fn a_worker_process_is_woken_by_notification(backend: Backend) {
    let Some(server) = server_from_env(backend.variable(), backend.how_to_run()) else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique_name(&format!("sagaflow_wake_{}", backend.name()));
    let scratch = Scratch::new("wake", &name);
    let children = Children::spawn_with(backend, &name, 1, usize::MAX, true);
    children.wait_for("the worker child is ready", |_, line| line.contains(READY));
    tokio_runtime().block_on(async move {
        let client = backend
            .builder(&server, &name)
            .await
            .register(fulfil)
            .workers(0)
            .poll_interval(Duration::from_millis(20))
            .build()
            .await
            .expect("the client runtime builds");
        let effects = scratch.effects();
        for n in 0..3 {
            let job = Job {
                effects: effects.display().to_string(),
                reject: false,
            };
            let handle = client
                .start(fulfil, format!("wake-{name}-{n}"), job)
                .await
                .expect("starts");
            let outcome = tokio::time::timeout(Duration::from_secs(60), handle.outcome())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: saga {n} did not end within a minute: the worker process \
                         (polling hourly) was not woken by a notification",
                        backend.name()
                    )
                })
                .expect("its outcome is read");
            assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
        }
        client.shutdown().await;
        if backend == Backend::Postgres {
            drop_table(&server, &name).await;
        }
    });
    drop(children);
}

#[test]
fn postgres_worker_process_is_woken_by_notify() {
    a_worker_process_is_woken_by_notification(Backend::Postgres);
}

#[test]
fn redis_worker_process_is_woken_by_pub_sub() {
    a_worker_process_is_woken_by_notification(Backend::Redis);
}

#[test]
fn etcd_worker_process_is_woken_by_a_watch() {
    a_worker_process_is_woken_by_notification(Backend::Etcd);
}

#[test]
fn postgres_four_worker_processes_one_killed() {
    four_workers_one_killed(Backend::Postgres);
}

#[test]
fn redis_four_worker_processes_one_killed() {
    four_workers_one_killed(Backend::Redis);
}

#[test]
fn etcd_four_worker_processes_one_killed() {
    four_workers_one_killed(Backend::Etcd);
}

// ---------------------------------------------------------------- a 3-member etcd

/// Instances of the cluster run.
const CLUSTER_INSTANCES: usize = 200;
/// Effects before one member is killed.
const CLUSTER_KILL_AFTER: usize = 150;

/// A 3-member etcd cluster on loopback; killed and removed however the
/// test ends.
struct EtcdCluster {
    members: Vec<Option<Child>>,
    clients: Vec<String>,
    dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl EtcdCluster {
    fn start(name: &str) -> EtcdCluster {
        let dir = std::env::temp_dir().join(format!("sagaflow-mp-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        let mut ports = HashSet::new();
        while ports.len() < 6 {
            ports.insert(free_port());
        }
        let ports: Vec<u16> = ports.into_iter().collect();
        let clients: Vec<String> = (0..3)
            .map(|i| format!("http://127.0.0.1:{}", ports[i]))
            .collect();
        let peers: Vec<String> = (0..3)
            .map(|i| format!("http://127.0.0.1:{}", ports[3 + i]))
            .collect();
        let initial = (0..3)
            .map(|i| format!("m{i}={}", peers[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members: Vec::new(),
            clients: clients.clone(),
            dir: dir.clone(),
        };
        for i in 0..3 {
            let log = std::fs::File::create(dir.join(format!("m{i}.log"))).expect("a log file");
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.join(format!("m{i}")))
                .args(["--listen-client-urls", &clients[i]])
                .args(["--advertise-client-urls", &clients[i]])
                .args(["--listen-peer-urls", &peers[i]])
                .args(["--initial-advertise-peer-urls", &peers[i]])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", name])
                .args(["--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start an etcd member");
            cluster.members.push(Some(child));
        }
        cluster
    }

    /// Waits until every member answers a linearizable read.
    async fn wait_healthy(&self) {
        let deadline = Instant::now() + STARTUP_LIMIT;
        for endpoint in &self.clients {
            loop {
                if EtcdStore::connect([endpoint.as_str()]).await.is_ok() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {endpoint} not healthy within {STARTUP_LIMIT:?} (logs in {})",
                    self.dir.display()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    fn kill(&mut self, index: usize) {
        let mut member = self.members[index].take().expect("running");
        member.kill().expect("kill -9 the member");
        let _ = member.wait();
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in self.members.iter_mut().flatten() {
            let _ = member.kill();
            let _ = member.wait();
        }
        if std::thread::panicking() {
            eprintln!("etcd cluster logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn etcd_installed() -> bool {
    Command::new("sh")
        .args(["-c", "command -v etcd"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn etcd_three_member_cluster_survives_a_member_killed_mid_run() {
    if !etcd_installed() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the etcd binary is not installed, but CI=true (apt-get install etcd-server)");
        }
        println!(
            "skipped: the etcd binary is not installed (apt-get install etcd-server, or run .ci/run)"
        );
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let began = Instant::now();
    let name = unique_name("sagaflow_mp_cluster");
    let mut cluster = EtcdCluster::start(&name);
    let scratch = Scratch::new("mp", &format!("{name}_effects"));
    let run = format!("cl{}", std::process::id());
    // Effects of this process so far (none: the other tests' parents run
    // no workers).
    let base = EFFECTS_WRITTEN.load(Ordering::SeqCst);
    tokio_runtime().block_on(async {
        cluster.wait_healthy().await;
        let healthy_in = began.elapsed();
        let store = EtcdStore::connect(&cluster.clients)
            .await
            .expect("connect to the cluster")
            .with_key_prefix(format!("{name}/"));
        let rt = Runtime::builder()
            .store(store)
            .register(fulfil)
            .workers(CHILD_WORKERS)
            .lease_ttl(LEASE_TTL)
            .recovery_interval(RECOVERY_INTERVAL)
            .poll_interval(POLL_INTERVAL)
            .build()
            .await
            .expect("the runtime builds on the cluster");
        let effects = scratch.effects();
        // The starts go on while the member dies: a start whose request
        // dies with it is retried (see `start_all`).
        let starter = {
            let rt = rt.clone();
            let run = run.clone();
            let effects = effects.clone();
            tokio::spawn(
                async move { start_all(&rt, &run, CLUSTER_INSTANCES, &effects, true).await },
            )
        };
        tokio::time::timeout(
            STARTUP_LIMIT,
            effects_watch()
                .subscribe()
                .wait_for(|n| *n >= base + CLUSTER_KILL_AFTER),
        )
        .await
        .expect("progress before the member kill")
        .expect("the effects watch");
        // The first endpoint: the one the client most likely talks to.
        cluster.kill(0);
        let killed_at = began.elapsed();
        let at_kill = read_effects(&effects).len();
        assert!(
            at_kill < CLUSTER_INSTANCES * 4,
            "the member was killed mid-run ({at_kill} effects at the kill)"
        );
        let failed_starts = starter.await.expect("every instance starts");
        let started_in = began.elapsed();
        let (statuses, failed_polls) =
            wait_all_ended(&rt, CLUSTER_INSTANCES, "the etcd cluster").await;
        let ended_in = began.elapsed();
        rt.shutdown().await;
        let all = read_effects(&effects);
        // One process: a key re-runs only if a store write was lost with
        // the member (the instance then re-ran after its lease expired);
        // allowed, counted.
        let findings = check_all(&run, CLUSTER_INSTANCES, &statuses, &all, |_, _| true);
        // A write that fails while the member dies is written again, not
        // given up: at most the steps in flight at the kill run again.
        assert!(
            findings.rerun_instances <= CHILD_WORKERS,
            "{} instances re-ran a step after the member died; at most the {CHILD_WORKERS} \
             in flight may",
            findings.rerun_instances
        );
        eprintln!(
            "etcd 3-member cluster: healthy at {healthy_in:.1?}; all started at \
             {started_in:.1?}; member m0 killed at \
             {killed_at:.1?} after {at_kill} effects; all {CLUSTER_INSTANCES} ended at \
             {ended_in:.1?}; {} effects; re-run: {} keys in {} instances; {failed_polls} \
             status polls and {failed_starts} starts failed on a store error after the kill \
             (retried)",
            all.len(),
            findings.rerun_keys,
            findings.rerun_instances,
        );
    });
}
