//! Crash recovery at the suspension points that are not steps: a durable
//! timer, a signal wait, a signal wait with a timeout.
//!
//! As in `crash.rs`, each test re-executes this test binary as a child
//! (selected by [`PLAN_VAR`]) that runs instances on an [`EmbeddedStore`].
//! The child reads its instances' status from the store until they wait
//! (phase `Waiting`, at the wait's state, the awaited signal named), says so,
//! and the parent SIGKILLs it there: the kill lands while the instance is
//! suspended, with its wait durable. The parent then opens the same store
//! with a fresh runtime and checks what a user sees: the timer fires and the
//! workflow finishes, a signal sent after the restart is consumed exactly
//! once, a timeout passes and its path completes, and no step's effect
//! (appended to an fsync'd effects file with the pid of the process that
//! ran it) is repeated.
//!
//! The timers and timeouts are an hour long, so none can pass in the child
//! however slow the machine; the resuming runtime's injected clock starts
//! an hour and a minute later (as if the process came back after that
//! long), so they are due at once there.
#![cfg(unix)]

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sagaflow::prelude::*;
use sagaflow::record;
use sagaflow::{EventKind, Phase, Status, StepError, Store};
use sagaflow_tests::harness::{Scratch, read_effect_lines, say};
use serde::{Deserialize, Serialize};

/// Selects child mode: `{workflow}:{count}` (see [`waits_child`]).
const PLAN_VAR: &str = "SAGAFLOW_WAITS_PLAN";
/// The store directory of the child.
const DIR_VAR: &str = "SAGAFLOW_WAITS_DIR";
/// The effects file of the child.
const EFFECTS_VAR: &str = "SAGAFLOW_WAITS_EFFECTS";
/// The line a child prints once its instances wait.
const WAITING: &str = "WAITING";
/// How long any wait of the parent may take before the test fails.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// The durable timer and the signal timeout: an hour, which no child lives
/// through (the tests check none passed before the kill).
const WAIT: Duration = Duration::from_secs(3600);
/// How much later than the child's the resuming runtime's clock reads.
const RESUMED_AFTER: Duration = Duration::from_secs(3660);
/// Leases of the child and of the resuming runtime.
const LEASE_TTL: Duration = Duration::from_secs(1);
/// Instances of the many-timers test, and how many must be waiting when
/// the child is killed (the others are still in their first step or
/// about to wait).
const MANY: usize = 24;
const MANY_WAITING_AT_KILL: usize = 12;

// ---------------------------------------------------------------- the sagas

/// A job: where its steps record their effects, and when its timer fires
/// (ms since the Unix epoch: [`WAIT`] after the child started it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    effects: String,
    wake_at_ms: u64,
}

#[step]
async fn prepare(job: &Job) -> Result<String, StepError> {
    effect(job, "prepare")
}

#[compensate(prepare)]
async fn unprepare(job: &Job, _key: String) -> Result<(), StepError> {
    effect(job, "unprepare").map(drop)
}

#[step(pivot)]
async fn finish(job: &Job, why: String) -> Result<String, StepError> {
    effect(job, "finish")?;
    Ok(format!("finished after {why}"))
}

#[step(pivot)]
async fn give_up(job: &Job) -> Result<String, StepError> {
    effect(job, "give_up")?;
    Ok("gave up waiting".to_owned())
}

/// Prepares, sleeps on a durable timer until the job's wake-up time (a
/// fixed time, so an instance whose first step runs again after the
/// restart waits for the same one), finishes.
#[workflow]
async fn nap(job: Job) -> Result<String, WorkflowError> {
    prepare(&job).await?;
    sagaflow::sleep_until(UNIX_EPOCH + Duration::from_millis(job.wake_at_ms)).await;
    let done = finish(&job, "the timer".to_owned()).await?;
    Ok(done)
}

/// Prepares, waits for the signal `go` (no timeout), finishes with it.
#[workflow]
async fn await_go(job: Job) -> Result<String, WorkflowError> {
    prepare(&job).await?;
    let go: String = sagaflow::signal("go").await;
    let done = finish(&job, go).await?;
    Ok(done)
}

/// Prepares, waits up to [`WAIT`] for the signal `go`: finishes with it,
/// or gives up when the wait times out.
#[workflow]
async fn await_go_or_timeout(job: Job) -> Result<String, WorkflowError> {
    prepare(&job).await?;
    let go: Option<String> = sagaflow::signal_timeout("go", WAIT).await;
    match go {
        Some(go) => {
            let done = finish(&job, go).await?;
            Ok(done)
        }
        None => {
            let done = give_up(&job).await?;
            Ok(done)
        }
    }
}

/// Appends `{kind} {idempotency key} {pid}` to the effects file, fsync'd.
fn effect(job: &Job, kind: &str) -> Result<String, StepError> {
    let context =
        sagaflow::context().ok_or_else(|| StepError::permanent("an effect outside a step"))?;
    let key = context.idempotency_key();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.effects)?;
    // One write call per line: O_APPEND keeps concurrent lines whole.
    file.write_all(format!("{kind} {key} {}\n", std::process::id()).as_bytes())?;
    file.sync_data()?;
    Ok(key)
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since.as_millis()).expect("ms fit")
}

fn runtime_builder(store: EmbeddedStore) -> sagaflow::RuntimeBuilder {
    Runtime::builder()
        .store(store)
        .register(nap)
        .register(await_go)
        .register(await_go_or_timeout)
        .workers(8)
        .lease_ttl(LEASE_TTL)
        // Due timers and expired leases are found within 50 ms.
        .poll_interval(Duration::from_millis(50))
        .recovery_interval(Duration::from_millis(50))
}

// ---------------------------------------------------------------- the child

/// Whether `status` shows the instance suspended at the wait of `workflow`,
/// with the wait durable.
fn waits(workflow: &str, status: &Status) -> bool {
    let signal = status.awaiting_signal.as_ref().map(|s| s.name.as_str());
    status.phase == Phase::Waiting
        && match workflow {
            "nap" => status.state.starts_with("Sleep") && signal.is_none(),
            _ => status.state.starts_with("Signal") && signal == Some("go"),
        }
}

/// The child: starts `{count}` instances of `{workflow}` (plan
/// `{workflow}:{count}`), reads their status from the store until enough of
/// them wait, says [`WAITING`], and waits to be killed. Does nothing when
/// run as an ordinary test.
#[test]
fn waits_child() {
    let Ok(plan) = std::env::var(PLAN_VAR) else {
        return;
    };
    let (workflow, count) = plan.split_once(':').expect("child: workflow:count");
    let count: usize = count.parse().expect("child: a count");
    let enough = if count == 1 { 1 } else { MANY_WAITING_AT_KILL };
    let dir = std::env::var(DIR_VAR).expect("child: the store directory");
    let effects = std::env::var(EFFECTS_VAR).expect("child: the effects file");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("child: tokio");
    tokio.block_on(async {
        let store = EmbeddedStore::open(&dir).expect("child: open the store");
        let rt = runtime_builder(store)
            .build()
            .await
            .expect("child: the runtime builds");
        let ids = instance_ids(workflow, count);
        let wake_at_ms = now_ms() + WAIT.as_millis() as u64;
        for id in &ids {
            let job = Job {
                effects: effects.clone(),
                wake_at_ms,
            };
            match workflow {
                "nap" => drop(rt.start(nap, id.clone(), job).await),
                "await_go" => drop(rt.start(await_go, id.clone(), job).await),
                "await_go_or_timeout" => drop(rt.start(await_go_or_timeout, id.clone(), job).await),
                other => panic!("child: an unknown workflow {other}"),
            }
        }
        // Polls the store, not a timer: the parent kills once the records
        // say the instances wait.
        loop {
            let mut waiting = Vec::new();
            for id in &ids {
                if let Some(status) = rt.status(id).await.expect("child: status")
                    && waits(workflow, &status)
                {
                    waiting.push(id.clone());
                }
            }
            if waiting.len() >= enough {
                say(&format!("{WAITING} {}", waiting.join(",")));
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        std::future::pending::<()>().await;
    });
}

fn instance_ids(workflow: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{workflow}-{n:02}")).collect()
}

// ---------------------------------------------------------------- the parent

/// Kills the child however the parent's test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a child with `plan` until it says its instances wait, SIGKILLs it,
/// and returns the ids it named as waiting and its pid.
fn run_child_until_waiting(scratch: &Scratch, plan: &str) -> (Vec<String>, u32) {
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args(["waits_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(PLAN_VAR, plan)
        .env(DIR_VAR, scratch.store())
        .env(EFFECTS_VAR, scratch.effects())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let mut child = ChildGuard(child);
    let pid = child.0.id();
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT_LIMIT;
    let waiting = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            // The harness prints `test waits_child ... ` without a newline,
            // so the child's line may follow it on the same line.
            Ok(line) => {
                if let Some((_, ids)) = line.split_once(WAITING) {
                    break ids.trim().split(',').map(str::to_owned).collect();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("plan {plan}: the child's instances did not wait within {WAIT_LIMIT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("plan {plan}: the child ended before its instances waited")
            }
        }
    };
    // SIGKILL: no destructor, no flush, no clean close of the store.
    child.0.kill().expect("kill -9 the child");
    let status = child.0.wait().expect("wait for the child");
    assert!(
        status.code().is_none(),
        "plan {plan}: the child must die by the signal: {status:?}"
    );
    (waiting, pid)
}

/// `(kind, idempotency key, pid)` of every effect, in file order.
type Effects = Vec<(String, String, u32)>;

/// The kinds of `id`'s effects, in order, with the pid that ran each.
fn kinds_of(effects: &Effects, id: &str) -> Vec<(String, u32)> {
    let prefix = format!("{id}/");
    effects
        .iter()
        .filter(|(_, key, _)| key.starts_with(&prefix))
        .map(|(kind, _, pid)| (kind.clone(), *pid))
        .collect()
}

/// No idempotency key ran its effect twice.
fn assert_no_effect_repeated(effects: &Effects) {
    let mut keys = HashSet::new();
    for (kind, key, _) in effects {
        assert!(keys.insert(key), "{kind} {key} ran twice: {effects:?}");
    }
}

/// Crashes one instance of `workflow` while it waits; returns its id and
/// the child's pid, with the effects checked to be the child's `prepare`.
fn crash_one_waiting(scratch: &Scratch, workflow: &str) -> (String, u32) {
    let (waiting, child) = run_child_until_waiting(scratch, &format!("{workflow}:1"));
    let id = format!("{workflow}-00");
    assert_eq!(waiting, std::slice::from_ref(&id));
    let before = read_effect_lines(&scratch.effects());
    assert_eq!(
        kinds_of(&before, &id),
        [("prepare".to_owned(), child)],
        "killed while waiting: only the first step ran"
    );
    (id, child)
}

/// Runs `body` with a runtime on the store the child left (and the store).
fn with_resumed_runtime<T>(
    scratch: &Scratch,
    body: impl AsyncFnOnce(&Runtime, &EmbeddedStore) -> T,
) -> T {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let store = EmbeddedStore::open(scratch.store()).expect("reopen the store after kill -9");
        let later = now_ms() + RESUMED_AFTER.as_millis() as u64;
        let rt = runtime_builder(store.clone())
            .clock(sagaflow::SystemClock::starting_at(later))
            .build()
            .await
            .expect("the resuming runtime builds");
        let result = body(&rt, &store).await;
        rt.shutdown().await;
        result
    })
}

async fn outcome_of<W: Workflow<Output = String>>(
    rt: &Runtime,
    workflow: W,
    id: &str,
) -> Outcome<String> {
    tokio::time::timeout(WAIT_LIMIT, rt.handle(workflow, id).outcome())
        .await
        .unwrap_or_else(|_| panic!("{id} did not finish within {WAIT_LIMIT:?} after the restart"))
        .unwrap_or_else(|error| panic!("{id}: {error}"))
}

#[test]
fn a_timer_wait_killed_fires_after_the_restart_and_the_workflow_finishes() {
    let scratch = Scratch::new("crash-waits", "timer");
    let (id, child) = crash_one_waiting(&scratch, "nap");
    let (outcome, status) = with_resumed_runtime(&scratch, async |rt, _| {
        let outcome = outcome_of(rt, nap, &id).await;
        (outcome, rt.status(&id).await.unwrap().unwrap())
    });
    assert_eq!(
        outcome,
        Outcome::Completed("finished after the timer".to_owned())
    );
    let effects = read_effect_lines(&scratch.effects());
    assert_no_effect_repeated(&effects);
    let parent = std::process::id();
    assert_eq!(
        kinds_of(&effects, &id),
        [("prepare".to_owned(), child), ("finish".to_owned(), parent)]
    );
    let fired: Vec<_> = status
        .history
        .iter()
        .filter(|event| event.kind == EventKind::TimerFired)
        .collect();
    assert_eq!(fired.len(), 1, "the timer fired once: {:?}", status.history);
    let started = status
        .history
        .iter()
        .find(|event| event.kind == EventKind::TimerStarted)
        .expect("the timer's start survived the kill");
    assert!(
        fired[0].at >= started.at + WAIT.as_millis() as u64,
        "the timer kept its deadline across the kill: {:?}",
        status.history
    );
}

#[test]
fn a_signal_wait_killed_takes_a_signal_sent_after_the_restart_exactly_once() {
    let scratch = Scratch::new("crash-waits", "signal");
    let (id, child) = crash_one_waiting(&scratch, "await_go");
    let (outcome, status, inbox_empty) = with_resumed_runtime(&scratch, async |rt, store| {
        let before = rt.status(&id).await.unwrap().unwrap();
        assert_eq!(
            before.phase,
            Phase::Waiting,
            "still waiting after the restart"
        );
        assert_eq!(
            before.awaiting_signal.as_ref().map(|s| s.name.as_str()),
            Some("go")
        );
        rt.signal(&id, "go", "the signal").await.unwrap();
        let outcome = outcome_of(rt, await_go, &id).await;
        let status = rt.status(&id).await.unwrap().unwrap();
        (outcome, status, inbox_is_empty(store, &id).await)
    });
    assert_eq!(
        outcome,
        Outcome::Completed("finished after the signal".to_owned())
    );
    let effects = read_effect_lines(&scratch.effects());
    assert_no_effect_repeated(&effects);
    assert_eq!(
        kinds_of(&effects, &id),
        [
            ("prepare".to_owned(), child),
            ("finish".to_owned(), std::process::id())
        ]
    );
    let received = status
        .history
        .iter()
        .filter(|event| event.kind == EventKind::SignalReceived)
        .count();
    assert_eq!(received, 1, "consumed once: {:?}", status.history);
    assert!(inbox_empty, "nothing left in the inbox");
    assert_eq!(status.awaiting_signal, None);
}

/// Whether instance `id`'s record holds no unconsumed signal.
async fn inbox_is_empty(store: &EmbeddedStore, id: &str) -> bool {
    let stored = store
        .get(&record::key(id))
        .await
        .expect("reads")
        .expect("the record");
    record::decode(&stored.value)
        .expect("decodes")
        .inbox
        .values()
        .all(|queue| queue.is_empty())
}

#[test]
fn a_signal_timeout_wait_killed_times_out_after_the_restart_and_completes() {
    let scratch = Scratch::new("crash-waits", "timeout");
    let (id, child) = crash_one_waiting(&scratch, "await_go_or_timeout");
    let (outcome, status) = with_resumed_runtime(&scratch, async |rt, _| {
        let outcome = outcome_of(rt, await_go_or_timeout, &id).await;
        (outcome, rt.status(&id).await.unwrap().unwrap())
    });
    assert_eq!(outcome, Outcome::Completed("gave up waiting".to_owned()));
    let effects = read_effect_lines(&scratch.effects());
    assert_no_effect_repeated(&effects);
    assert_eq!(
        kinds_of(&effects, &id),
        [
            ("prepare".to_owned(), child),
            ("give_up".to_owned(), std::process::id())
        ]
    );
    let timed_out = status
        .history
        .iter()
        .filter(|event| event.kind == EventKind::SignalTimedOut)
        .count();
    assert_eq!(timed_out, 1, "{:?}", status.history);
}

#[test]
fn many_instances_killed_mid_run_on_timers_all_finish_after_the_restart() {
    let scratch = Scratch::new("crash-waits", "many");
    let (waiting, child) = run_child_until_waiting(&scratch, &format!("nap:{MANY}"));
    assert!(waiting.len() >= MANY_WAITING_AT_KILL, "{waiting:?}");
    let before = read_effect_lines(&scratch.effects());
    let ids = instance_ids("nap", MANY);
    let outcomes: BTreeMap<String, Outcome<String>> =
        with_resumed_runtime(&scratch, async |rt, _| {
            let mut outcomes = BTreeMap::new();
            for id in &ids {
                outcomes.insert(id.clone(), outcome_of(rt, nap, id).await);
            }
            outcomes
        });
    let effects = read_effect_lines(&scratch.effects());
    let parent = std::process::id();
    for id in &ids {
        assert_eq!(
            outcomes[id],
            Outcome::Completed("finished after the timer".to_owned()),
            "{id}"
        );
        let kinds = kinds_of(&effects, id);
        if waiting.contains(id) {
            // Suspended at the kill: nothing runs twice.
            assert_eq!(
                kinds,
                [("prepare".to_owned(), child), ("finish".to_owned(), parent)],
                "{id}"
            );
        } else {
            // Still in its first step at the kill: that step may run again
            // (at-least-once), under the same key; `finish` runs once.
            let names: Vec<&str> = kinds.iter().map(|(kind, _)| kind.as_str()).collect();
            assert!(
                names == ["prepare", "finish"] || names == ["prepare", "prepare", "finish"],
                "{id}: {kinds:?}"
            );
        }
    }
    // Within each process, no key ran twice; across the kill only a step
    // cut short re-ran, under its own key.
    for pid in [child, parent] {
        let of_pid: Effects = effects
            .iter()
            .filter(|(_, _, p)| *p == pid)
            .cloned()
            .collect();
        assert_no_effect_repeated(&of_pid);
    }
    let finishes = effects
        .iter()
        .filter(|(kind, _, _)| kind == "finish")
        .count();
    assert_eq!(finishes, MANY, "every instance finished once");
    let rerun = effects.len() - before.len() - MANY;
    eprintln!(
        "{} effects before the kill ({} instances waiting), {rerun} prepare re-run after it",
        before.len(),
        waiting.len()
    );
}
