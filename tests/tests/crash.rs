//! Crash recovery with real process death.
//!
//! Each test re-executes this test binary as a child (selected by
//! [`PLAN_VAR`]) that runs a saga on an [`EmbeddedStore`]. Steps and
//! compensations append `{kind} {idempotency_key} {attempt}` to an fsync'd
//! effects file; the child stops at a precise point (before or after an
//! effect, in a step or in a compensation), prints a marker, and the parent
//! SIGKILLs it there. The parent then opens the same store, builds a runtime
//! with workers that takes the instances over once the dead child's leases
//! expire ([`LEASE_TTL`]), and checks from the effects file and the outcome that the
//! instance finished as if nothing had happened: every step's effect once per
//! idempotency key (a step cut short after its effect runs again under the
//! same key), compensations in reverse order, nothing lost.
#![cfg(unix)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow::{Phase, StepError};
use sagaflow_tests::harness::{Scratch, read_effect_lines, say};
use serde::{Deserialize, Serialize};

/// Selects child mode and says where to stop: see [`Plan::parse`].
const PLAN_VAR: &str = "SAGAFLOW_CRASH_PLAN";
/// The store directory of the child.
const DIR_VAR: &str = "SAGAFLOW_CRASH_DIR";
/// The effects file of the child.
const EFFECTS_VAR: &str = "SAGAFLOW_CRASH_EFFECTS";
/// The line a child prints when it stands at its crash point.
const MARKER: &str = "CRASH-POINT";
/// The line a child prints once an instance's start is durable.
const STARTED: &str = "STARTED";
/// How long any wait of the parent may take before the test fails.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// Instances the many-instances child starts.
const MANY: usize = 20;
/// Effects the many-instances child writes before it freezes every step.
const MANY_KILL_AFTER_EFFECTS: usize = 40;
/// The child's lease on its instances: how long after the kill the
/// restarted runtime must wait before it may take them over.
const LEASE_TTL: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- the saga

/// A money transfer: three compensable steps, a pivot, a retriable step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// The effects file the steps append to.
    effects: String,
    /// The pivot rejects the transfer (permanently): everything rolls back.
    reject: bool,
}

/// What a completed transfer returns: the idempotency key of each step, as
/// the step itself saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    debit: String,
    hold: String,
    reserve: String,
    commit: String,
    notify: String,
}

#[step]
async fn debit(transfer: &Transfer) -> Result<String, StepError> {
    effect(transfer, "debit").await
}

#[compensate(debit)]
async fn undo_debit(transfer: &Transfer, _key: String) -> Result<(), StepError> {
    effect(transfer, "undo_debit").await.map(drop)
}

#[step]
async fn hold(transfer: &Transfer) -> Result<String, StepError> {
    effect(transfer, "hold").await
}

#[compensate(hold)]
async fn undo_hold(transfer: &Transfer, _key: String) -> Result<(), StepError> {
    effect(transfer, "undo_hold").await.map(drop)
}

#[step]
async fn reserve(transfer: &Transfer) -> Result<String, StepError> {
    effect(transfer, "reserve").await
}

#[compensate(reserve)]
async fn undo_reserve(transfer: &Transfer, _key: String) -> Result<(), StepError> {
    effect(transfer, "undo_reserve").await.map(drop)
}

#[step(pivot)]
async fn commit(transfer: &Transfer) -> Result<String, StepError> {
    if transfer.reject {
        return Err(StepError::permanent("the bank rejected the transfer"));
    }
    effect(transfer, "commit").await
}

#[step(retriable)]
async fn notify(transfer: &Transfer) -> Result<String, StepError> {
    effect(transfer, "notify").await
}

#[workflow]
async fn transfer_funds(transfer: Transfer) -> Result<Receipt, WorkflowError> {
    let debited = debit(&transfer).await?;
    let held = hold(&transfer).await?;
    let reserved = reserve(&transfer).await?;
    let committed = commit(&transfer).await?;
    let notified = notify(&transfer).await?;
    Ok(Receipt {
        debit: debited,
        hold: held,
        reserve: reserved,
        commit: committed,
        notify: notified,
    })
}

/// One side effect: appended and fsync'd, between the two crash points of
/// its kind. Returns the attempt's idempotency key.
async fn effect(transfer: &Transfer, kind: &str) -> Result<String, StepError> {
    let context =
        sagaflow::context().ok_or_else(|| StepError::permanent("an effect outside a step"))?;
    let key = context.idempotency_key();
    crash_point(kind, "before", &key).await;
    append_effect(
        Path::new(&transfer.effects),
        &format!("{kind} {key} {}", context.attempt),
    )?;
    crash_point(kind, "after", &key).await;
    Ok(key)
}

fn append_effect(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write call per line: O_APPEND keeps concurrent lines whole.
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()
}

// ---------------------------------------------------------------- the child

/// Where a child stops. Only a child has one; the parent's steps never stop.
#[derive(Debug)]
enum Plan {
    /// `one:{id}:{reject}:{kind}:{before|after}`: one instance; stop at the
    /// first `kind` effect's crash point.
    One {
        id: String,
        reject: bool,
        point: String,
    },
    /// `many`: [`MANY`] instances; once all are started and
    /// [`MANY_KILL_AFTER_EFFECTS`] effects are written, every step and
    /// compensation stops before its effect.
    Many,
}

impl Plan {
    fn parse(text: &str) -> Plan {
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            ["one", id, reject, kind, when] => Plan::One {
                id: (*id).to_owned(),
                reject: *reject == "reject",
                point: format!("{kind}:{when}"),
            },
            ["many"] => Plan::Many,
            _ => panic!("child: a malformed plan {text:?}"),
        }
    }
}

static PLAN: OnceLock<Plan> = OnceLock::new();
/// A child's steps wait here until every start is durable and announced.
static ALL_STARTED: OnceLock<tokio::sync::watch::Sender<bool>> = OnceLock::new();
static EFFECTS_WRITTEN: AtomicUsize = AtomicUsize::new(0);
static MARKED: AtomicBool = AtomicBool::new(false);

fn all_started() -> &'static tokio::sync::watch::Sender<bool> {
    ALL_STARTED.get_or_init(|| tokio::sync::watch::Sender::new(false))
}

async fn crash_point(kind: &str, when: &str, key: &str) {
    let Some(plan) = PLAN.get() else { return };
    // The parent learns of every start before any crash point, so it knows
    // exactly which instances must survive.
    let _ = all_started().subscribe().wait_for(|started| *started).await;
    let stop = match plan {
        Plan::One { point, .. } => *point == format!("{kind}:{when}"),
        Plan::Many => {
            if when == "before" {
                EFFECTS_WRITTEN.load(Ordering::SeqCst) >= MANY_KILL_AFTER_EFFECTS
            } else {
                EFFECTS_WRITTEN.fetch_add(1, Ordering::SeqCst);
                false
            }
        }
    };
    if stop {
        if !MARKED.swap(true, Ordering::SeqCst) {
            say(&format!("{MARKER} {kind}:{when} {key}"));
        }
        // Wait for SIGKILL, holding the step where it is.
        std::future::pending::<()>().await;
    }
}

/// The child: runs the plan in [`PLAN_VAR`] until the parent kills it. Does
/// nothing when run as an ordinary test.
#[test]
fn crash_child() {
    let Ok(plan) = std::env::var(PLAN_VAR) else {
        return;
    };
    let dir = std::env::var(DIR_VAR).expect("child: the store directory");
    let effects = std::env::var(EFFECTS_VAR).expect("child: the effects file");
    let plan = PLAN.get_or_init(|| Plan::parse(&plan));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("child: tokio");
    tokio.block_on(async {
        let rt = Runtime::builder()
            .store(EmbeddedStore::open(&dir).expect("child: open the store"))
            .register(transfer_funds)
            .workers(4)
            .lease_ttl(LEASE_TTL)
            .build()
            .await
            .expect("child: the runtime builds");
        let mut handles = Vec::new();
        match plan {
            Plan::One { id, reject, .. } => {
                let input = Transfer {
                    effects: effects.clone(),
                    reject: *reject,
                };
                handles.push(
                    rt.start(transfer_funds, id.clone(), input)
                        .await
                        .expect("child: start"),
                );
                say(&format!("{STARTED} {id}"));
            }
            Plan::Many => {
                for (id, reject) in many_ids() {
                    let input = Transfer {
                        effects: effects.clone(),
                        reject,
                    };
                    handles.push(
                        rt.start(transfer_funds, id.clone(), input)
                            .await
                            .expect("child: start"),
                    );
                    say(&format!("{STARTED} {id}"));
                }
            }
        }
        all_started().send_replace(true);
        // Never reached in a passing run: the child dies at its crash point.
        for handle in handles {
            let outcome = handle.outcome().await;
            say(&format!("OUTCOME {} {outcome:?}", handle.id()));
        }
    });
}

fn many_ids() -> Vec<(String, bool)> {
    (0..MANY)
        .map(|n| (format!("many-{n:02}"), n % 4 == 0))
        .collect()
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

/// What the child said before it was killed.
struct Killed {
    started: Vec<String>,
    marker: String,
}

/// Runs a child with `plan` until it prints its crash marker, then SIGKILLs it.
fn run_child_until_crash_point(scratch: &Scratch, plan: &str) -> Killed {
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(PLAN_VAR, plan)
        .env(DIR_VAR, scratch.store())
        .env(EFFECTS_VAR, scratch.effects())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let mut child = ChildGuard(child);
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
    let mut started = Vec::new();
    let marker = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            // The harness prints `test crash_child ... ` without a newline,
            // so a child's line may follow it on the same line.
            Ok(line) if line.contains(MARKER) => break line,
            Ok(line) => {
                if let Some((_, id)) = line.split_once(STARTED) {
                    started.push(id.trim().to_owned());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("plan {plan}: the child did not reach its crash point within {WAIT_LIMIT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("plan {plan}: the child ended without reaching its crash point")
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
    Killed { started, marker }
}

/// One line of the effects file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Effect {
    kind: String,
    key: String,
    attempt: u32,
}

fn read_effects(path: &Path) -> Vec<Effect> {
    read_effect_lines(path)
        .into_iter()
        .map(|(kind, key, attempt)| Effect { kind, key, attempt })
        .collect()
}

/// What the resumed instances ended with.
type Outcomes = BTreeMap<String, Outcome<Receipt>>;

/// Opens the store the child left, resumes every instance with a fresh
/// runtime's workers (resume on build), and waits for `ids` to end.
fn resume_and_finish(scratch: &Scratch, ids: &[String]) -> Outcomes {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let store = EmbeddedStore::open(scratch.store()).expect("reopen the store after kill -9");
        let rt = Runtime::builder()
            .store(store)
            .register(transfer_funds)
            .workers(4)
            .lease_ttl(LEASE_TTL)
            // The dead child's leases expire within LEASE_TTL of the kill;
            // look for them often, so the takeover follows at once.
            .recovery_interval(Duration::from_millis(50))
            .build()
            .await
            .expect("the resuming runtime builds");
        let mut outcomes = Outcomes::new();
        for id in ids {
            let handle = rt.handle(transfer_funds, id.clone());
            let outcome = tokio::time::timeout(WAIT_LIMIT, handle.outcome())
                .await
                .unwrap_or_else(|_| {
                    panic!("{id} did not finish within {WAIT_LIMIT:?} after the restart")
                })
                .unwrap_or_else(|error| panic!("{id}: {error}"));
            outcomes.insert(id.clone(), outcome);
        }
        // Every record in the store decodes and has ended: no instance lost
        // or stuck half-way.
        let page = rt.list(None, 1000).await.expect("list");
        assert!(page.next.is_none());
        assert_eq!(
            page.instances.len(),
            ids.len(),
            "the store holds exactly the started instances"
        );
        for status in page.instances {
            let status = status.expect("every record decodes");
            assert!(
                matches!(status.phase, Phase::Completed | Phase::Compensated),
                "{}: {:?}",
                status.id,
                status.phase
            );
        }
        rt.shutdown().await;
        outcomes
    })
}

/// The effects of instance `id`, in file order.
fn of_instance<'a>(effects: &'a [Effect], id: &str) -> Vec<&'a Effect> {
    let prefix = format!("{id}/");
    effects
        .iter()
        .filter(|effect| effect.key.starts_with(&prefix))
        .collect()
}

/// Kinds in order of first appearance, one per idempotency key.
fn deduplicated(effects: &[&Effect]) -> Vec<String> {
    let mut seen = HashSet::new();
    effects
        .iter()
        .filter(|effect| seen.insert(effect.key.clone()))
        .map(|effect| effect.kind.clone())
        .collect()
}

/// The invariants every instance keeps across the crash, given its effects
/// before the kill (`child`) and after the restart (`parent`):
/// - within one process, no idempotency key ran its effect twice (a re-run
///   happens only across the crash, at most once);
/// - one key, one kind: a re-run uses the same key as the cut-short run;
/// - deduplicated by key, the effects are exactly the saga's, in order, with
///   compensations in reverse order of their steps and only for steps that
///   succeeded;
/// - the outcome is right, and a receipt names each step's key once.
fn check_instance(
    id: &str,
    reject: bool,
    child: &[Effect],
    parent: &[Effect],
    outcome: &Outcome<Receipt>,
) {
    let child = of_instance(child, id);
    let parent = of_instance(parent, id);
    for (side, effects) in [("before the crash", &child), ("after the restart", &parent)] {
        let mut keys = HashSet::new();
        for effect in effects {
            assert!(
                keys.insert(&effect.key),
                "{id}: {} ran twice {side}",
                effect.key
            );
        }
    }
    let mut kind_of: HashMap<&str, &str> = HashMap::new();
    for effect in child.iter().chain(&parent) {
        let kind = kind_of.entry(&effect.key).or_insert(&effect.kind);
        assert_eq!(
            *kind, effect.kind,
            "{id}: key {} names two effects",
            effect.key
        );
    }
    let all: Vec<&Effect> = child.iter().chain(&parent).copied().collect();
    let expected: &[&str] = if reject {
        &[
            "debit",
            "hold",
            "reserve",
            "undo_reserve",
            "undo_hold",
            "undo_debit",
        ]
    } else {
        &["debit", "hold", "reserve", "commit", "notify"]
    };
    assert_eq!(
        deduplicated(&all),
        expected,
        "{id}: the effects, once per key, in order"
    );
    match (reject, outcome) {
        (false, Outcome::Completed(receipt)) => {
            let keys = [
                &receipt.debit,
                &receipt.hold,
                &receipt.reserve,
                &receipt.commit,
                &receipt.notify,
            ];
            for (kind, key) in expected.iter().zip(keys) {
                assert_eq!(
                    kind_of.get(key.as_str()),
                    Some(kind),
                    "{id}: the receipt's {kind} key {key}"
                );
            }
            assert_eq!(
                keys.iter().collect::<HashSet<_>>().len(),
                keys.len(),
                "{id}: a key twice in the receipt"
            );
        }
        (true, Outcome::Compensated(failure)) => {
            assert!(
                failure
                    .to_string()
                    .contains("the bank rejected the transfer"),
                "{id}: {failure}"
            );
        }
        (_, outcome) => panic!("{id}: the wrong outcome {outcome:?} (reject: {reject})"),
    }
}

/// Crashes one instance at `point` (`{kind}:{before|after}`), resumes it in
/// this process, checks it; returns the effects before and after the crash.
fn crash_one_at(name: &str, reject: bool, point: &str) -> (Vec<Effect>, Vec<Effect>) {
    let scratch = Scratch::new("crash", name);
    let id = format!("t-{name}");
    let plan = format!(
        "one:{id}:{}:{point}",
        if reject { "reject" } else { "accept" }
    );
    let killed = run_child_until_crash_point(&scratch, &plan);
    assert_eq!(killed.started, std::slice::from_ref(&id));
    let (kind, _) = point.split_once(':').expect("kind:when");
    assert!(
        killed.marker.contains(&format!("{MARKER} {point} {id}/")),
        "{}",
        killed.marker
    );
    let before = read_effects(&scratch.effects());
    let outcomes = resume_and_finish(&scratch, std::slice::from_ref(&id));
    let after = read_effects(&scratch.effects()).split_off(before.len());
    check_instance(&id, reject, &before, &after, &outcomes[&id]);
    // The crash point itself: the crashed kind ran under one key.
    let keys: HashSet<&str> = before
        .iter()
        .chain(&after)
        .filter(|effect| effect.kind == kind)
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(keys.len(), 1, "{id}: {kind} under one key: {keys:?}");
    (before, after)
}

#[test]
fn a_step_killed_before_its_effect_runs_it_once_after_the_restart() {
    let (before, after) = crash_one_at("step-before", false, "hold:before");
    assert_eq!(
        kinds(&before),
        ["debit"],
        "the child stopped before hold's effect"
    );
    assert_eq!(kinds(&after), ["hold", "reserve", "commit", "notify"]);
}

#[test]
fn a_step_killed_after_its_effect_runs_again_under_the_same_key() {
    let (before, after) = crash_one_at("step-after", false, "hold:after");
    assert_eq!(kinds(&before), ["debit", "hold"]);
    assert_eq!(
        kinds(&after),
        ["hold", "reserve", "commit", "notify"],
        "hold re-runs: at-least-once"
    );
    assert_eq!(
        before[1].key, after[0].key,
        "the re-run has the cut-short run's idempotency key"
    );
    assert!(after[0].attempt >= 1);
}

#[test]
fn a_compensation_killed_before_its_effect_continues_the_rollback_in_order() {
    let (before, after) = crash_one_at("undo-before", true, "undo_hold:before");
    assert_eq!(
        kinds(&before),
        ["debit", "hold", "reserve", "undo_reserve"],
        "one compensation ran"
    );
    assert_eq!(kinds(&after), ["undo_hold", "undo_debit"]);
}

#[test]
fn a_compensation_killed_after_its_effect_runs_again_under_the_same_key() {
    let (before, after) = crash_one_at("undo-after", true, "undo_hold:after");
    assert_eq!(
        kinds(&before),
        ["debit", "hold", "reserve", "undo_reserve", "undo_hold"]
    );
    assert_eq!(kinds(&after), ["undo_hold", "undo_debit"]);
    assert_eq!(
        before[4].key, after[0].key,
        "the re-run has the cut-short run's idempotency key"
    );
}

#[test]
fn twenty_instances_killed_mid_run_all_finish_after_the_restart() {
    let scratch = Scratch::new("crash", "many");
    let killed = run_child_until_crash_point(&scratch, "many");
    let ids = many_ids();
    let names: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        killed.started, names,
        "every start was acknowledged before the crash"
    );
    let before = read_effects(&scratch.effects());
    assert!(
        before.len() >= MANY_KILL_AFTER_EFFECTS,
        "the child was killed mid-run, after {} effects",
        before.len()
    );
    let outcomes = resume_and_finish(&scratch, &names);
    let after = read_effects(&scratch.effects()).split_off(before.len());
    assert!(!after.is_empty(), "work was left for the restart");
    for (id, reject) in &ids {
        check_instance(id, *reject, &before, &after, &outcomes[id]);
    }
    let rerun = after
        .iter()
        .filter(|effect| before.iter().any(|b| b.key == effect.key))
        .count();
    eprintln!(
        "{} effects before the kill, {} after the restart, {rerun} re-run under the same key",
        before.len(),
        after.len()
    );
}

fn kinds(effects: &[Effect]) -> Vec<&str> {
    effects.iter().map(|effect| effect.kind.as_str()).collect()
}
