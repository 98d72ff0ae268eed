//! Deploys with instances in flight, with real processes and `kill -9`, on
//! the embedded store and on PostgreSQL.
//!
//! Each test re-executes this test binary as children (selected by
//! [`MODE_VAR`]) that register a set of versions of two workflows, `order`
//! (reserve, wait for the signal `approval`, charge) and `nap` (reserve,
//! sleep until an hour later, charge), and carry out a list of actions
//! ([`ACTIONS_VAR`]): start instances, wait until they wait, signal them,
//! run `Runtime::upgrade`, finish. A first child with only v1 leaves
//! instances waiting for the signal and the timer and is SIGKILLed there;
//! the children after it play the new build. Their clock reads an hour and
//! a minute later (as if the deploy took that long), so the v1 timers are
//! due in them and never in the first child, however slow the machine.
//!
//! Every step appends `{kind} {idempotency key} {pid}` to an fsync'd
//! effects file; each workflow's output names the version that finished it.
//! The tests check what a user sees after the deploy:
//! - keeping both versions: the old instances finish on v1 (no `notify`,
//!   output `v1`), new starts run v2;
//! - `upgrade = "auto"`: the waiting instances move to v2 (one `upgraded`
//!   event each) and run its new step;
//! - a migration killed halfway: each instance is migrated once (one
//!   `migrated` event, v3's fingerprint) or untouched (v1's, none), and a
//!   second run finishes the rest;
//! - a mixed fleet on PostgreSQL (a v1+v2 worker and a v2-only worker): the
//!   v1 instances run only on the worker that has v1, signals sent while no
//!   such worker was up are kept, nothing is lost or run twice.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sagaflow::prelude::*;
use sagaflow::{EventKind, Phase, RuntimeBuilder, Status, StepError};
use sagaflow_tests::harness::{Scratch, read_effect_lines, say};
use serde::{Deserialize, Serialize};

/// Selects child mode: which versions the child registers (see [`Mode`]).
const MODE_VAR: &str = "SAGAFLOW_DEPLOY_MODE";
/// The store: `embedded:{dir}` or `postgres:{table}`.
const STORE_VAR: &str = "SAGAFLOW_DEPLOY_STORE";
/// What the child does, comma-separated (see [`deploy_child`]).
const ACTIONS_VAR: &str = "SAGAFLOW_DEPLOY_ACTIONS";
/// The effects file.
const EFFECTS_VAR: &str = "SAGAFLOW_DEPLOY_EFFECTS";
/// Set for a child whose clock reads [`LATER`] ahead.
const LATER_VAR: &str = "SAGAFLOW_DEPLOY_LATER";
/// After how many calls the migrations of this child stall (0: never).
const STALL_VAR: &str = "SAGAFLOW_DEPLOY_STALL_AFTER";
/// Set for a client-only child (no workers).
const CLIENT_VAR: &str = "SAGAFLOW_DEPLOY_CLIENT";
/// How much later than the first child's the later children's clocks read.
const LATER: Duration = Duration::from_secs(3660);
/// The timer of `nap`: no child lives through it.
const NAP: Duration = Duration::from_secs(3600);
const LEASE_TTL: Duration = Duration::from_secs(1);
/// How long any wait of the parent may take before the test fails.
const LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------- the sagas

/// One job: where its steps write their effects, and when its nap ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    effects: String,
    wake_at_ms: u64,
}

#[step]
pub async fn reserve(job: &Job) -> Result<String, StepError> {
    effect(job, "reserve")
}

#[compensate(reserve)]
pub async fn unreserve(job: &Job, _key: String) -> Result<(), StepError> {
    effect(job, "unreserve").map(drop)
}

#[step]
pub async fn charge(job: &Job) -> Result<String, StepError> {
    effect(job, "charge")
}

#[compensate(charge)]
pub async fn refund(job: &Job, _key: String) -> Result<(), StepError> {
    effect(job, "refund").map(drop)
}

#[step(retriable)]
pub async fn notify(job: &Job) -> Result<String, StepError> {
    effect(job, "notify")
}

/// Appends `{kind} {key} {pid}` to the effects file, fsync'd.
fn effect(job: &Job, kind: &str) -> Result<String, StepError> {
    let context =
        sagaflow::context().ok_or_else(|| StepError::permanent("an effect outside a step"))?;
    let key = context.idempotency_key();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.effects)?;
    file.write_all(format!("{kind} {key} {}\n", std::process::id()).as_bytes())?;
    file.sync_data()?;
    Ok(key)
}

fn wake_at(job: &Job) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(job.wake_at_ms)
}

pub mod v1 {
    use super::*;

    #[workflow(name = "order", version = 1)]
    pub async fn order(job: Job) -> Result<String, WorkflowError> {
        reserve(&job).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        charge(&job).await?;
        Ok("v1".to_owned())
    }

    #[workflow(name = "nap", version = 1)]
    pub async fn nap(job: Job) -> Result<String, WorkflowError> {
        reserve(&job).await?;
        sagaflow::sleep_until(wake_at(&job)).await;
        charge(&job).await?;
        Ok("v1".to_owned())
    }
}

/// v2: a notification after the charge; instances stay on their version.
pub mod v2 {
    use super::*;

    #[workflow(name = "order", version = 2)]
    pub async fn order(job: Job) -> Result<String, WorkflowError> {
        reserve(&job).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        charge(&job).await?;
        notify(&job).await?;
        Ok("v2".to_owned())
    }

    #[workflow(name = "nap", version = 2)]
    pub async fn nap(job: Job) -> Result<String, WorkflowError> {
        reserve(&job).await?;
        sagaflow::sleep_until(wake_at(&job)).await;
        charge(&job).await?;
        notify(&job).await?;
        Ok("v2".to_owned())
    }
}

/// v2 taking the older instances over where the machines allow.
pub mod v2_auto {
    use super::*;

    #[workflow(name = "order", version = 2, upgrade = "auto")]
    pub async fn order(job: Job) -> Result<String, WorkflowError> {
        reserve(&job).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        charge(&job).await?;
        notify(&job).await?;
        Ok("v2".to_owned())
    }

    #[workflow(name = "nap", version = 2, upgrade = "auto")]
    pub async fn nap(job: Job) -> Result<String, WorkflowError> {
        reserve(&job).await?;
        sagaflow::sleep_until(wake_at(&job)).await;
        charge(&job).await?;
        notify(&job).await?;
        Ok("v2".to_owned())
    }
}

/// v3 keeps a desk in the waiting state: reached from v1 by migration.
pub mod v3 {
    use super::*;

    #[workflow(name = "order", version = 3)]
    pub async fn order(job: Job) -> Result<String, WorkflowError> {
        reserve(&job).await?;
        let desk: String = "desk-1".to_owned();
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        charge(&job).await?;
        Ok(format!("v3 {desk}"))
    }

    #[workflow(name = "nap", version = 3)]
    pub async fn nap(job: Job) -> Result<String, WorkflowError> {
        reserve(&job).await?;
        let desk: String = "desk-1".to_owned();
        sagaflow::sleep_until(wake_at(&job)).await;
        charge(&job).await?;
        Ok(format!("v3 {desk}"))
    }
}

/// Calls of the migrations in this process.
static MIGRATIONS: AtomicUsize = AtomicUsize::new(0);
/// After how many calls they stall (0: never).
static STALL_AFTER: AtomicUsize = AtomicUsize::new(0);

/// Counts a migration call; the one that reaches [`STALL_AFTER`] says so
/// and never returns, so the parent kills the child in the middle.
fn migrating() {
    let calls = MIGRATIONS.fetch_add(1, Ordering::SeqCst) + 1;
    if calls == STALL_AFTER.load(Ordering::SeqCst) {
        say("STALLED");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

#[migrate(from = v1::order, to = v3::order)]
fn order_v1_to_v3(old: v1::OrderState) -> Migration<v3::OrderState> {
    migrating();
    let desk = "desk-migrated".to_owned();
    match old {
        v1::OrderState::Start { job } => Migration::To(v3::OrderState::Start { job }),
        v1::OrderState::Reserve1 { job } => Migration::To(v3::OrderState::Reserve1 { job }),
        v1::OrderState::Signal2 { job } => Migration::To(v3::OrderState::Signal2 { job, desk }),
        v1::OrderState::Charge3 { job } => Migration::To(v3::OrderState::Charge3 { job, desk }),
    }
}

#[migrate(from = v1::nap, to = v3::nap)]
fn nap_v1_to_v3(old: v1::NapState) -> Migration<v3::NapState> {
    migrating();
    let desk = "desk-migrated".to_owned();
    match old {
        v1::NapState::Start { job } => Migration::To(v3::NapState::Start { job }),
        v1::NapState::Reserve1 { job } => Migration::To(v3::NapState::Reserve1 { job }),
        v1::NapState::SleepUntil2 { job, __timer } => {
            Migration::To(v3::NapState::SleepUntil2 { job, desk, __timer })
        }
        v1::NapState::Charge3 { job } => Migration::To(v3::NapState::Charge3 { job, desk }),
    }
}

// ---------------------------------------------------------------- the child

/// Which versions a child registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// v1 only: the build before the deploy.
    Old,
    /// v1 and v2 (pinned): keep both, drain v1.
    Pinned,
    /// v1 and v2 with `upgrade = "auto"`.
    Auto,
    /// v2 only (pinned): a worker without v1's code.
    NewOnly,
    /// v1, v3 and the migrations v1 → v3.
    Migrate,
    /// v3 and the migrations, v1's code deleted.
    Migrated,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Old => "old",
            Mode::Pinned => "pinned",
            Mode::Auto => "auto",
            Mode::NewOnly => "new-only",
            Mode::Migrate => "migrate",
            Mode::Migrated => "migrated",
        }
    }

    fn parse(text: &str) -> Mode {
        [
            Mode::Old,
            Mode::Pinned,
            Mode::Auto,
            Mode::NewOnly,
            Mode::Migrate,
            Mode::Migrated,
        ]
        .into_iter()
        .find(|mode| mode.name() == text)
        .unwrap_or_else(|| panic!("an unknown mode {text:?}"))
    }

    fn register(self, builder: RuntimeBuilder) -> RuntimeBuilder {
        match self {
            Mode::Old => builder.register(v1::order).register(v1::nap),
            Mode::Pinned => builder
                .register(v1::order)
                .register(v1::nap)
                .register(v2::order)
                .register(v2::nap),
            Mode::Auto => builder
                .register(v1::order)
                .register(v1::nap)
                .register(v2_auto::order)
                .register(v2_auto::nap),
            Mode::NewOnly => builder.register(v2::order).register(v2::nap),
            Mode::Migrate => builder
                .register(v1::order)
                .register(v1::nap)
                .register(v3::order)
                .register(v3::nap)
                .migrate(order_v1_to_v3)
                .migrate(nap_v1_to_v3),
            Mode::Migrated => builder
                .register(v3::order)
                .register(v3::nap)
                .migrate(order_v1_to_v3)
                .migrate(nap_v1_to_v3),
        }
    }

    /// Starts `{prefix}-order-{i}` and `{prefix}-nap-{i}` on the newest
    /// version this mode registers.
    async fn start(self, rt: &Runtime, job: &Job, id: &str, nap: bool) {
        let job = job.clone();
        let started = match (self, nap) {
            (Mode::Old, false) => rt.start(v1::order, id, job).await.map(drop),
            (Mode::Old, true) => rt.start(v1::nap, id, job).await.map(drop),
            (Mode::Pinned | Mode::NewOnly, false) => rt.start(v2::order, id, job).await.map(drop),
            (Mode::Pinned | Mode::NewOnly, true) => rt.start(v2::nap, id, job).await.map(drop),
            (Mode::Auto, false) => rt.start(v2_auto::order, id, job).await.map(drop),
            (Mode::Auto, true) => rt.start(v2_auto::nap, id, job).await.map(drop),
            (Mode::Migrate | Mode::Migrated, false) => rt.start(v3::order, id, job).await.map(drop),
            (Mode::Migrate | Mode::Migrated, true) => rt.start(v3::nap, id, job).await.map(drop),
        };
        started.expect("child: start an instance");
    }
}

async fn store_builder(store: &str) -> RuntimeBuilder {
    let builder = Runtime::builder();
    if let Some(dir) = store.strip_prefix("embedded:") {
        return builder.store(EmbeddedStore::open(dir).expect("open the embedded store"));
    }
    #[cfg(feature = "backends")]
    if let Some(table) = store.strip_prefix("postgres:") {
        let url = std::env::var("SAGAFLOW_POSTGRES_URL").expect("the PostgreSQL url");
        return builder.store(
            sagaflow::PostgresStore::with_table(&url, table)
                .await
                .expect("connect to PostgreSQL"),
        );
    }
    panic!("an unknown store {store:?} (PostgreSQL needs the `backends` feature)")
}

/// Every status in the store.
async fn statuses(rt: &Runtime) -> Vec<Status> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = rt.list(after.as_deref(), 200).await.expect("list");
        all.extend(
            page.instances
                .into_iter()
                .map(|status| status.expect("decodable")),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return all,
        }
    }
}

/// Polls the store until `done` holds for the statuses.
async fn until(rt: &Runtime, what: &str, done: impl Fn(&[Status]) -> bool) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let all = statuses(rt).await;
        if done(&all) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {all:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The child: registers [`MODE_VAR`]'s versions on [`STORE_VAR`]'s store
/// and carries out [`ACTIONS_VAR`] in order:
/// - `start={prefix}:{n}`: starts `n` orders and `n` naps;
/// - `wait`: until every unfinished instance waits, then says `WAITING`;
/// - `signal`: approves every waiting order, says `SIGNALLED`;
/// - `upgrade`: `Runtime::upgrade(false)`, says `UPGRADED {applied}`;
/// - `finish`: until every instance ended, says `DONE`, shuts down;
/// - `hold`: runs its workers until the parent kills it.
///
/// Does nothing when run as an ordinary test.
#[test]
fn deploy_child() {
    let Ok(mode) = std::env::var(MODE_VAR) else {
        return;
    };
    let mode = Mode::parse(&mode);
    let store = std::env::var(STORE_VAR).expect("child: the store");
    let actions = std::env::var(ACTIONS_VAR).expect("child: the actions");
    let effects = std::env::var(EFFECTS_VAR).expect("child: the effects file");
    STALL_AFTER.store(
        std::env::var(STALL_VAR)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        Ordering::SeqCst,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(async {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let mut builder = mode
            .register(store_builder(&store).await)
            .lease_ttl(LEASE_TTL)
            .poll_interval(Duration::from_millis(50))
            .recovery_interval(Duration::from_millis(200));
        if std::env::var(LATER_VAR).is_ok() {
            builder = builder.clock(sagaflow::SystemClock::starting_at(
                now_ms + LATER.as_millis() as u64,
            ));
        }
        if std::env::var(CLIENT_VAR).is_ok() {
            builder = builder.workers(0);
        }
        let rt = builder.build().await.expect("child: the runtime builds");
        let job = Job {
            effects,
            wake_at_ms: now_ms + NAP.as_millis() as u64,
        };
        for action in actions.split(',') {
            match action.split_once('=') {
                Some(("start", spec)) => {
                    let (prefix, count) = spec.split_once(':').expect("start={prefix}:{n}");
                    for index in 0..count.parse::<usize>().expect("a count") {
                        mode.start(&rt, &job, &format!("{prefix}-order-{index}"), false)
                            .await;
                        mode.start(&rt, &job, &format!("{prefix}-nap-{index}"), true)
                            .await;
                    }
                }
                _ => match action {
                    "wait" => {
                        until(&rt, "wait", |all| {
                            all.iter().all(|status| {
                                status.phase.is_terminal()
                                    || (status.phase == Phase::Waiting
                                        && (status.state.starts_with("Signal")
                                            || status.state.starts_with("Sleep")))
                            })
                        })
                        .await;
                        say("WAITING");
                    }
                    "signal" => {
                        for status in statuses(&rt).await {
                            if status.workflow == "order" && !status.phase.is_terminal() {
                                rt.signal(&status.id, "approval", true)
                                    .await
                                    .expect("child: signal");
                            }
                        }
                        say("SIGNALLED");
                    }
                    "upgrade" => {
                        let report = rt.upgrade(false).await.expect("child: upgrade");
                        let applied = report.instances.iter().filter(|i| i.applied).count();
                        say(&format!("UPGRADED {applied}"));
                    }
                    "finish" => {
                        until(&rt, "finish", |all| {
                            all.iter().all(|status| status.phase.is_terminal())
                        })
                        .await;
                        say("DONE");
                    }
                    "hold" => std::future::pending::<()>().await,
                    other => panic!("an unknown action {other:?}"),
                },
            }
        }
        rt.shutdown().await;
    });
}

// ---------------------------------------------------------------- the parent

/// One run of a child: its mode, store, actions, and the lines it says.
struct Run {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
}

/// What a child is given besides its mode and actions.
#[derive(Clone, Default)]
struct Setup {
    later: bool,
    stall_after: usize,
    client: bool,
}

impl Run {
    fn spawn(mode: Mode, store: &str, effects: &Path, actions: &str, setup: &Setup) -> Run {
        let exe = std::env::current_exe().expect("current_exe");
        let mut command = Command::new(exe);
        command
            .args(["deploy_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(MODE_VAR, mode.name())
            .env(STORE_VAR, store)
            .env(ACTIONS_VAR, actions)
            .env(EFFECTS_VAR, effects)
            .env(STALL_VAR, setup.stall_after.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if setup.later {
            command.env(LATER_VAR, "1");
        }
        if setup.client {
            command.env(CLIENT_VAR, "1");
        }
        let mut child = command.spawn().expect("spawn a child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Run {
            child: Some(child),
            lines,
        }
    }

    /// Waits for a line containing `word`; returns it.
    fn wait_for(&self, word: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The harness prints `test deploy_child ... ` without a
                // newline, so the child's line may follow it.
                Ok(line) if line.contains(word) => return line,
                Ok(_) => {}
                Err(error) => panic!("waiting for {word}: {error}"),
            }
        }
    }

    /// The child's process id.
    #[cfg_attr(not(feature = "backends"), allow(dead_code))]
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("alive").id()
    }

    /// SIGKILL.
    fn kill(mut self) {
        let mut child = self.child.take().expect("alive");
        child.kill().expect("kill -9 the child");
        let status = child.wait().expect("wait for the child");
        assert!(status.code().is_none(), "killed by the signal: {status:?}");
    }

    /// Waits for the child to exit by itself, successfully.
    fn finish(mut self) {
        let mut child = self.child.take().expect("alive");
        let status = child.wait().expect("wait for the child");
        assert!(status.success(), "the child failed: {status:?}");
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where a test's children keep their instances.
enum Backend {
    Embedded(PathBuf),
    #[cfg_attr(not(feature = "backends"), allow(dead_code))]
    Postgres(String),
}

impl Backend {
    fn spec(&self) -> String {
        match self {
            Backend::Embedded(dir) => format!("embedded:{}", dir.display()),
            Backend::Postgres(table) => format!("postgres:{table}"),
        }
    }
}

/// The instances as the parent reads them once no child runs, with their
/// outputs: a client-only runtime knowing every version.
struct Ended {
    statuses: BTreeMap<String, Status>,
    outputs: BTreeMap<String, Option<String>>,
}

fn read_back(backend: &Backend) -> Ended {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
        .block_on(async {
            let rt = store_builder(&backend.spec())
                .await
                .workers(0)
                .build()
                .await
                .expect("the reading runtime builds");
            let mut statuses = BTreeMap::new();
            let mut outputs = BTreeMap::new();
            for status in self::statuses(&rt).await {
                let output = if status.phase == Phase::Completed {
                    match rt.handle(v2::order, &status.id).outcome().await {
                        Ok(Outcome::Completed(output)) => Some(output),
                        other => panic!("{}: {other:?}", status.id),
                    }
                } else {
                    None
                };
                outputs.insert(status.id.clone(), output);
                statuses.insert(status.id.clone(), status);
            }
            rt.shutdown().await;
            Ended { statuses, outputs }
        })
}

fn events(status: &Status, kind: EventKind) -> usize {
    status
        .history
        .iter()
        .filter(|event| event.kind == kind)
        .count()
}

/// The effects of instance `id`, in order: `(kind, pid)`.
fn effects_of(effects: &Path, id: &str) -> Vec<(String, u32)> {
    read_effect_lines(effects)
        .into_iter()
        .filter(|(_, key, _)| key.split('/').next() == Some(id))
        .map(|(kind, _, pid)| (kind, pid))
        .collect()
}

fn kinds(effects: &[(String, u32)]) -> Vec<&str> {
    effects.iter().map(|(kind, _)| kind.as_str()).collect()
}

/// The first child: v1 only, leaves `n` orders and `n` naps waiting, and is
/// killed there.
fn park_on_v1(backend: &Backend, effects: &Path, n: usize) {
    let old = Run::spawn(
        Mode::Old,
        &backend.spec(),
        effects,
        &format!("start=old:{n},wait,hold"),
        &Setup::default(),
    );
    old.wait_for("WAITING");
    old.kill();
}

fn later() -> Setup {
    Setup {
        later: true,
        ..Setup::default()
    }
}

// ---------------------------------------------------------------- the tests

fn keep_both_versions(backend: &Backend, effects: &Path) {
    park_on_v1(backend, effects, 3);
    let new = Run::spawn(
        Mode::Pinned,
        &backend.spec(),
        effects,
        "start=new:2,wait,signal,finish",
        &later(),
    );
    new.wait_for("DONE");
    new.finish();
    let ended = read_back(backend);
    assert_eq!(ended.statuses.len(), 10);
    for (id, status) in &ended.statuses {
        assert_eq!(status.phase, Phase::Completed, "{id}");
        let (version, output, steps) = if id.starts_with("old-") {
            (1, "v1", vec!["reserve", "charge"])
        } else {
            (2, "v2", vec!["reserve", "charge", "notify"])
        };
        assert_eq!(status.version, version, "{id}");
        assert_eq!(ended.outputs[id].as_deref(), Some(output), "{id}");
        assert_eq!(events(status, EventKind::Upgraded), 0, "{id}");
        assert_eq!(kinds(&effects_of(effects, id)), steps, "{id}");
    }
}

fn auto_upgrade(backend: &Backend, effects: &Path) {
    park_on_v1(backend, effects, 3);
    let new = Run::spawn(
        Mode::Auto,
        &backend.spec(),
        effects,
        "signal,finish",
        &later(),
    );
    new.wait_for("DONE");
    new.finish();
    let ended = read_back(backend);
    assert_eq!(ended.statuses.len(), 6);
    for (id, status) in &ended.statuses {
        assert_eq!(
            (status.phase, status.version),
            (Phase::Completed, 2),
            "{id}"
        );
        assert_eq!(ended.outputs[id].as_deref(), Some("v2"), "{id}");
        assert_eq!(events(status, EventKind::Upgraded), 1, "{id}");
        // Reserved once by v1 before the kill; v2's new step ran after.
        let effects = effects_of(effects, id);
        assert_eq!(kinds(&effects), ["reserve", "charge", "notify"], "{id}");
        assert_ne!(
            effects[0].1, effects[1].1,
            "{id}: reserved by the old child"
        );
    }
}

fn migration_across_a_kill(backend: &Backend, effects: &Path) {
    const N: usize = 10;
    park_on_v1(backend, effects, N);
    let v1_order = v1::order.state_machine().fingerprint();
    let v1_nap = v1::nap.state_machine().fingerprint();
    let v3_order = v3::order.state_machine().fingerprint();
    let v3_nap = v3::nap.state_machine().fingerprint();
    // A client-only child migrates with `upgrade`; its migrations stall at
    // the 2N-th call (each instance is migrated once on trial, once for
    // good), about halfway, and it is killed there.
    let migrating = Run::spawn(
        Mode::Migrate,
        &backend.spec(),
        effects,
        "upgrade,hold",
        &Setup {
            later: true,
            stall_after: 2 * N,
            client: true,
        },
    );
    migrating.wait_for("STALLED");
    migrating.kill();
    let halfway = read_back(backend);
    let (mut migrated, mut untouched) = (0, 0);
    for (id, status) in &halfway.statuses {
        let v1 = if id.contains("-nap-") {
            v1_nap
        } else {
            v1_order
        };
        let v3 = if id.contains("-nap-") {
            v3_nap
        } else {
            v3_order
        };
        match (status.fingerprint, events(status, EventKind::Migrated)) {
            (fingerprint, 0) if fingerprint == v1 => untouched += 1,
            (fingerprint, 1) if fingerprint == v3 => {
                assert_eq!(status.version, 3, "{id}");
                migrated += 1;
            }
            other => panic!("{id} is neither migrated once nor untouched: {other:?} {status:#?}"),
        }
        assert_eq!(status.phase, Phase::Waiting, "{id}");
    }
    assert!(
        migrated > 0 && untouched > 0,
        "killed halfway: {migrated} migrated, {untouched} untouched"
    );
    // The new build without v1's code finishes the migration and the work.
    let finish = Run::spawn(
        Mode::Migrated,
        &backend.spec(),
        effects,
        "upgrade,signal,finish",
        &later(),
    );
    finish.wait_for("DONE");
    finish.finish();
    let ended = read_back(backend);
    assert_eq!(ended.statuses.len(), 2 * N);
    for (id, status) in &ended.statuses {
        assert_eq!(
            (status.phase, status.version),
            (Phase::Completed, 3),
            "{id}"
        );
        assert_eq!(events(status, EventKind::Migrated), 1, "{id}");
        assert_eq!(
            ended.outputs[id].as_deref(),
            Some("v3 desk-migrated"),
            "{id}"
        );
        assert_eq!(
            kinds(&effects_of(effects, id)),
            ["reserve", "charge"],
            "{id}"
        );
    }
    println!("migration killed after {migrated} of {} instances", 2 * N);
}

/// Runs `test` on a fresh embedded store.
fn on_embedded(name: &str, test: fn(&Backend, &Path)) {
    let scratch = Scratch::new("deploys", name);
    test(&Backend::Embedded(scratch.store()), &scratch.effects());
}

#[test]
fn embedded_old_instances_finish_on_their_version_and_new_starts_run_the_new_one() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    on_embedded("keep-both", keep_both_versions);
}

#[test]
fn embedded_an_auto_upgrade_moves_waiting_instances_to_the_new_version() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    on_embedded("auto", auto_upgrade);
}

#[test]
fn embedded_a_migration_killed_halfway_leaves_each_instance_migrated_once_or_untouched() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    on_embedded("migrate", migration_across_a_kill);
}

#[cfg(feature = "backends")]
mod postgres {
    use super::*;
    use sagaflow::store::conformance::{server_from_env, unique_name};

    const HOW: &str =
        "set SAGAFLOW_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test, or run .ci/run";

    /// Runs `test` on a fresh table, dropped after it passes.
    fn on_postgres(name: &str, test: fn(&Backend, &Path)) {
        if std::env::var(MODE_VAR).is_ok() {
            return;
        }
        let Some(url) = server_from_env("SAGAFLOW_POSTGRES_URL", HOW) else {
            return;
        };
        let scratch = Scratch::new("deploys-pg", name);
        let table = unique_name("sagaflow_deploy");
        test(&Backend::Postgres(table.clone()), &scratch.effects());
        drop_table(&url, &table);
    }

    fn drop_table(url: &str, table: &str) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio")
            .block_on(async {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .expect("connect to drop the table");
                tokio::spawn(connection);
                client
                    .batch_execute(&format!(
                        "DROP TABLE IF EXISTS \"{table}\"; DROP SEQUENCE IF EXISTS \"{table}_version\""
                    ))
                    .await
                    .expect("drop the table");
            });
    }

    #[test]
    fn postgres_old_instances_finish_on_their_version_and_new_starts_run_the_new_one() {
        on_postgres("keep-both", keep_both_versions);
    }

    #[test]
    fn postgres_an_auto_upgrade_moves_waiting_instances_to_the_new_version() {
        on_postgres("auto", auto_upgrade);
    }

    #[test]
    fn postgres_a_migration_killed_halfway_leaves_each_instance_migrated_once_or_untouched() {
        on_postgres("migrate", migration_across_a_kill);
    }

    /// A v1+v2 worker and a v2-only worker on one table: v1 instances run
    /// only where v1's code is; signals sent while that worker was down are
    /// kept; nothing runs twice, nothing is lost.
    #[test]
    fn postgres_a_mixed_fleet_runs_each_instance_on_a_worker_that_has_its_version() {
        on_postgres("fleet", mixed_fleet);
    }

    fn mixed_fleet(backend: &Backend, effects: &Path) {
        park_on_v1(backend, effects, 4);
        let spec = backend.spec();
        // The new workers' clocks agree with each other (leases are compared
        // across them), an hour later than the first child's.
        let both = Run::spawn(Mode::Pinned, &spec, effects, "hold", &later());
        let new_only = Run::spawn(
            Mode::NewOnly,
            &spec,
            effects,
            "start=fresh:4,wait,hold",
            &later(),
        );
        new_only.wait_for("WAITING");
        let (both_pid, new_only_pid) = (both.pid(), new_only.pid());
        // The worker with v1's code goes down; the signals sent now reach
        // v1 instances that only it could run, and must be kept.
        both.kill();
        let client = Run::spawn(
            Mode::Pinned,
            &spec,
            effects,
            "signal,finish",
            &Setup {
                later: true,
                client: true,
                ..Setup::default()
            },
        );
        client.wait_for("SIGNALLED");
        let again = Run::spawn(Mode::Pinned, &spec, effects, "hold", &later());
        client.wait_for("DONE");
        client.finish();
        let again_pid = again.pid();
        again.kill();
        new_only.kill();
        let ended = read_back(backend);
        assert_eq!(ended.statuses.len(), 16);
        for (id, status) in &ended.statuses {
            assert_eq!(status.phase, Phase::Completed, "{id}");
            let effects = effects_of(effects, id);
            if id.starts_with("old-") {
                assert_eq!(status.version, 1, "{id}");
                assert_eq!(ended.outputs[id].as_deref(), Some("v1"), "{id}");
                let mut ran: Vec<&str> = kinds(&effects);
                ran.dedup();
                assert_eq!(ran, ["reserve", "charge"], "{id}");
                // Charged only where v1's code is.
                for (kind, pid) in effects.iter().skip(1) {
                    assert!(
                        *pid == both_pid || *pid == again_pid,
                        "{id}: {kind} ran on {pid}, which has no v1 (v2-only: {new_only_pid})"
                    );
                }
            } else {
                assert_eq!(status.version, 2, "{id}");
                assert_eq!(ended.outputs[id].as_deref(), Some("v2"), "{id}");
                assert_eq!(kinds(&effects), ["reserve", "charge", "notify"], "{id}");
            }
        }
        // A step ran twice only if the killed worker was running it.
        let mut first: BTreeMap<(String, String), (u32, usize)> = BTreeMap::new();
        for (kind, key, pid) in read_effect_lines(effects) {
            first.entry((kind, key)).or_insert((pid, 0)).1 += 1;
        }
        for ((kind, key), (pid, count)) in &first {
            assert!(
                *count == 1 || (*count == 2 && *pid == both_pid),
                "{kind} {key} ran {count} times, first on {pid}"
            );
        }
    }
}
