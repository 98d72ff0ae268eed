//! Child workflows survive real process death: a process runs a parent
//! workflow whose child workflow it starts, and is SIGKILLed while the
//! parent waits for its child (in the child's steps, forward or while the
//! child compensates for its rolling-back parent) or after the child ended.
//! A fresh runtime on the same embedded store then finishes both, and the
//! effects file shows every effect once per idempotency key (a step cut
//! short after its effect runs again under the same key), in order.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sagaflow::Phase;
use sagaflow::prelude::*;
use sagaflow_tests::harness::{Scratch, read_effect_lines, say};
use serde::{Deserialize, Serialize};

/// Selects child-process mode: `{id}:{ok|fail}:{kind}:{before|after}`.
const PLAN_VAR: &str = "SAGAFLOW_CHILD_CRASH_PLAN";
const DIR_VAR: &str = "SAGAFLOW_CHILD_CRASH_DIR";
const EFFECTS_VAR: &str = "SAGAFLOW_CHILD_CRASH_EFFECTS";
const MARKER: &str = "CRASH-POINT";
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// The killed process's leases (and its parents' re-check time) expire
/// this long after the kill.
const LEASE_TTL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    effects: String,
    /// The parent's last step fails: the parent rolls back into its child.
    fail_invoice: bool,
}

#[step]
async fn charge(purchase: &Purchase) -> Result<String, StepError> {
    effect(purchase, "charge").await
}

#[compensate(charge)]
async fn refund(purchase: &Purchase, _key: String) -> Result<(), StepError> {
    effect(purchase, "refund").await.map(drop)
}

#[step]
async fn pack(purchase: &Purchase) -> Result<String, StepError> {
    effect(purchase, "pack").await
}

#[compensate(pack)]
async fn unpack(purchase: &Purchase, _key: String) -> Result<(), StepError> {
    effect(purchase, "unpack").await.map(drop)
}

#[step]
async fn book(purchase: &Purchase) -> Result<String, StepError> {
    effect(purchase, "book").await
}

#[compensate(book)]
async fn unbook(purchase: &Purchase, _key: String) -> Result<(), StepError> {
    effect(purchase, "unbook").await.map(drop)
}

#[step]
async fn invoice(purchase: &Purchase) -> Result<String, StepError> {
    if purchase.fail_invoice {
        return Err(StepError::permanent("the invoice is refused"));
    }
    effect(purchase, "invoice").await
}

#[compensate(invoice)]
async fn void(purchase: &Purchase, _key: String) -> Result<(), StepError> {
    effect(purchase, "void").await.map(drop)
}

/// The child.
#[workflow]
async fn deliver(purchase: Purchase) -> Result<String, WorkflowError> {
    let packed = pack(&purchase).await?;
    let booked = book(&purchase).await?;
    Ok(format!("{packed} {booked}"))
}

/// The parent.
#[workflow]
async fn buy(purchase: Purchase) -> Result<String, WorkflowError> {
    let charged = charge(&purchase).await?;
    let delivered = sagaflow::child(deliver, purchase.clone()).await?;
    let invoiced = invoice(&purchase).await?;
    Ok(format!("{charged} {delivered} {invoiced}"))
}

/// One side effect, appended and fsync'd between its two crash points.
async fn effect(purchase: &Purchase, kind: &str) -> Result<String, StepError> {
    let context =
        sagaflow::context().ok_or_else(|| StepError::permanent("an effect outside a step"))?;
    let key = context.idempotency_key();
    crash_point(kind, "before", &key).await;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&purchase.effects)?;
    file.write_all(format!("{kind} {key} {}\n", context.attempt).as_bytes())?;
    file.sync_data()?;
    crash_point(kind, "after", &key).await;
    Ok(key)
}

/// `kind:when`, in a child process only.
static STOP_AT: OnceLock<String> = OnceLock::new();

async fn crash_point(kind: &str, when: &str, key: &str) {
    if STOP_AT
        .get()
        .is_some_and(|point| *point == format!("{kind}:{when}"))
    {
        say(&format!("{MARKER} {kind}:{when} {key}"));
        // Hold the step here until SIGKILL.
        std::future::pending::<()>().await;
    }
}

fn runtime_builder(dir: &Path) -> sagaflow::RuntimeBuilder {
    Runtime::builder()
        .store(EmbeddedStore::open(dir).expect("open the store"))
        .register(buy)
        .register(deliver)
        .workers(4)
        .lease_ttl(LEASE_TTL)
}

/// The process that is killed: starts the parent and runs until its plan's
/// crash point. Does nothing as an ordinary test.
#[test]
fn child_crash_process() {
    let Ok(plan) = std::env::var(PLAN_VAR) else {
        return;
    };
    let dir = std::env::var(DIR_VAR).expect("the store directory");
    let effects = std::env::var(EFFECTS_VAR).expect("the effects file");
    let parts: Vec<&str> = plan.split(':').collect();
    let [id, mode, kind, when] = parts.as_slice() else {
        panic!("a malformed plan {plan:?}")
    };
    STOP_AT.get_or_init(|| format!("{kind}:{when}"));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let rt = runtime_builder(Path::new(&dir))
            .build()
            .await
            .expect("the runtime builds");
        let purchase = Purchase {
            effects,
            fail_invoice: *mode == "fail",
        };
        let handle = rt.start(buy, *id, purchase).await.expect("start");
        // Never reached in a passing run: the process dies at its crash point.
        let outcome = handle.outcome().await;
        say(&format!("OUTCOME {outcome:?}"));
    });
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the process with `plan` until its crash marker, then SIGKILLs it.
fn kill_at(scratch: &Scratch, plan: &str) {
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args([
            "child_crash_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PLAN_VAR, plan)
        .env(DIR_VAR, scratch.store())
        .env(EFFECTS_VAR, scratch.effects())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the process");
    let mut child = Guard(child);
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
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(MARKER) => break,
            Ok(line) => assert!(!line.contains("OUTCOME"), "plan {plan}: ended: {line}"),
            Err(error) => panic!("plan {plan}: no crash point within {WAIT_LIMIT:?}: {error}"),
        }
    }
    child.0.kill().expect("kill -9");
    let status = child.0.wait().expect("wait");
    assert!(
        status.code().is_none(),
        "plan {plan}: killed by the signal: {status:?}"
    );
}

/// Finishes the killed process's instances with a fresh runtime; returns
/// the parent's outcome and the child's phase.
fn finish(scratch: &Scratch, id: &str) -> (Outcome<String>, Phase) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let rt = runtime_builder(&scratch.store())
            .recovery_interval(Duration::from_millis(50))
            .build()
            .await
            .expect("the resuming runtime builds");
        let outcome = tokio::time::timeout(WAIT_LIMIT, rt.handle(buy, id).outcome())
            .await
            .unwrap_or_else(|_| panic!("{id} did not finish after the restart"))
            .expect("outcome");
        let child = rt
            .status(&format!("{id}/Deliver2"))
            .await
            .expect("status")
            .expect("the child's record");
        rt.shutdown().await;
        (outcome, child.phase)
    })
}

/// Runs one plan and checks what happened after the restart.
fn crash_and_finish(name: &str, fail: bool, point: &str) {
    let scratch = Scratch::new("child-crash", name);
    let id = format!("buy-{name}");
    let mode = if fail { "fail" } else { "ok" };
    kill_at(&scratch, &format!("{id}:{mode}:{point}"));
    let (outcome, child_phase) = finish(&scratch, &id);
    let effects = read_effect_lines(&scratch.effects());
    // Each effect once per key; the one cut short after its effect again.
    let mut keys: Vec<(String, String)> = Vec::new();
    for (kind, key, _) in &effects {
        let entry = (kind.clone(), key.clone());
        if keys.last() != Some(&entry) {
            assert!(
                !keys.contains(&entry),
                "{point}: {kind} {key} ran twice: {effects:?}"
            );
            keys.push(entry);
        }
    }
    let repeated = effects.len() - keys.len();
    assert!(
        repeated <= usize::from(point.ends_with(":after")),
        "{point}: only the step killed after its effect runs again: {effects:?}"
    );
    let child = format!("{id}/Deliver2");
    let expected: Vec<(String, String)> = if fail {
        vec![
            ("charge".into(), format!("{id}/Charge1")),
            ("pack".into(), format!("{child}/Pack1")),
            ("book".into(), format!("{child}/Book2")),
            ("unbook".into(), format!("{child}/compensate/1/book")),
            ("unpack".into(), format!("{child}/compensate/0/pack")),
            ("refund".into(), format!("{id}/compensate/0/charge")),
        ]
    } else {
        vec![
            ("charge".into(), format!("{id}/Charge1")),
            ("pack".into(), format!("{child}/Pack1")),
            ("book".into(), format!("{child}/Book2")),
            ("invoice".into(), format!("{id}/Invoice3")),
        ]
    };
    assert_eq!(keys, expected, "{point}");
    if fail {
        assert!(
            matches!(&outcome, Outcome::Compensated(failure) if failure.to_string().contains("the invoice is refused")),
            "{point}: {outcome:?}"
        );
        assert_eq!(child_phase, Phase::Compensated, "{point}");
    } else {
        assert!(
            matches!(outcome, Outcome::Completed(_)),
            "{point}: {outcome:?}"
        );
        assert_eq!(child_phase, Phase::Completed, "{point}");
    }
}

#[test]
fn killed_while_the_parent_waits_before_the_childs_first_effect() {
    crash_and_finish("pack-before", false, "pack:before");
}

#[test]
fn killed_after_a_childs_effect_before_its_commit() {
    crash_and_finish("book-after", false, "book:after");
}

#[test]
fn killed_in_the_parent_after_the_child_completed() {
    crash_and_finish("invoice-before", false, "invoice:before");
}

#[test]
fn killed_while_the_child_compensates_for_its_parent() {
    crash_and_finish("unbook-after", true, "unbook:after");
}

#[test]
fn killed_before_the_childs_last_compensation() {
    crash_and_finish("unpack-before", true, "unpack:before");
}

#[test]
fn killed_in_the_parents_compensation_after_the_childs() {
    crash_and_finish("refund-before", true, "refund:before");
}

#[test]
fn killed_in_the_parents_step_before_it_starts_the_child() {
    crash_and_finish("charge-after", false, "charge:after");
}

#[test]
fn killed_in_the_childs_last_step_before_its_effect() {
    crash_and_finish("book-before", true, "book:before");
}
