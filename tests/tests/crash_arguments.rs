//! A step's arguments are fixed before its first attempt: no step is ever
//! attempted with two different argument values, across a retry or a
//! `kill -9`, even when the body computes them from the clock.
//!
//! The saga reads `SystemTime::now()` for every argument and for a branch
//! before its first step. Each step appends `{step}@{argument} {key} {pid}`
//! to an fsync'd effects file. As in `crash.rs`, each test re-executes this
//! test binary as a child (selected by [`HANG_VAR`]) whose step named there
//! records its effect, says so and never returns; the parent SIGKILLs the
//! child in the middle of that step, opens the same [`EmbeddedStore`] with a
//! fresh runtime, lets the instance finish, and checks that every attempt of
//! every step (the killed one, its re-run in the parent, the retry that
//! `second` always needs) saw one argument value, and that the branch the
//! child took is the one the parent finished. A second saga, [`restamped`],
//! sets a field of its `mut` input from the clock before its first step,
//! whose only argument is that input.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sagaflow::prelude::*;
use sagaflow::{Outcome, StepError};
use sagaflow_tests::harness::{Scratch, read_effect_lines, say};
use serde::{Deserialize, Serialize};

/// Selects child mode, and names the step (or `branch`: `left` or `right`)
/// that hangs in the child after recording its effect.
const HANG_VAR: &str = "SAGAFLOW_ARGUMENTS_HANG";
/// The store directory of the child.
const DIR_VAR: &str = "SAGAFLOW_ARGUMENTS_DIR";
/// The effects file of the child.
const EFFECTS_VAR: &str = "SAGAFLOW_ARGUMENTS_EFFECTS";
/// The line a child prints once the hanging step recorded its effect.
const ATTEMPTED: &str = "ATTEMPTED";
/// How long any wait of the parent may take before the test fails.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// Leases of the child and of the resuming runtime: the parent takes the
/// instance over once the dead child's lease expired.
const LEASE_TTL: Duration = Duration::from_secs(1);
/// The instance's id.
const ID: &str = "stamp-1";

// ---------------------------------------------------------------- the saga

/// Where the steps record their effects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    effects: String,
    /// Set from the clock by [`restamped`] before its first step.
    #[serde(default)]
    stamp: u64,
}

#[step(retriable)]
async fn left(job: &Job, stamp: u64) -> Result<u64, StepError> {
    attempt(job, "left", stamp).await
}

#[step(retriable)]
async fn right(job: &Job, stamp: u64) -> Result<u64, StepError> {
    attempt(job, "right", stamp).await
}

/// Fails its first attempt (retryably), so every run retries it.
#[step(retriable, retry(initial = "10ms", max_interval = "100ms"))]
async fn second(job: &Job, stamp: u64) -> Result<u64, StepError> {
    let stamp = attempt(job, "second", stamp).await?;
    match sagaflow::context().map(|context| context.attempt) {
        Some(1) => Err(StepError::retryable("the first attempt always fails")),
        _ => Ok(stamp),
    }
}

#[step(readonly)]
async fn north(job: &Job, stamp: u64) -> Result<u64, StepError> {
    attempt(job, "north", stamp).await
}

#[step(readonly)]
async fn south(job: &Job, stamp: u64) -> Result<u64, StepError> {
    attempt(job, "south", stamp).await
}

/// Every argument and the first branch come from the clock: the code
/// between steps sees another time each time it runs.
#[workflow]
async fn stamped(job: Job) -> Result<String, WorkflowError> {
    let first: u64;
    if clock_nanos() % 2 == 0 {
        first = left(&job, clock_nanos()).await?;
    } else {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        first = right(&job, u64::from(nanos)).await?;
    }
    let again = second(&job, clock_nanos()).await?;
    let (a, b) = sagaflow::join!(north(&job, clock_nanos()), south(&job, clock_nanos()))?;
    Ok(format!("{first} {again} {a} {b}"))
}

/// Records the input's own stamp.
#[step(retriable)]
async fn stamp(job: &Job) -> Result<u64, StepError> {
    attempt(job, "stamp", job.stamp).await
}

/// The first step's only argument is the input as it is, changed from the
/// clock before it: a `mut` parameter set by the code before the first step,
/// which no step argument computes.
#[workflow]
async fn restamped(mut job: Job) -> Result<String, WorkflowError> {
    job.stamp = clock_nanos();
    let seen = stamp(&job).await?;
    Ok(seen.to_string())
}

/// Nanoseconds since the Unix epoch, now.
fn clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// Appends `{step}@{stamp} {idempotency key} {pid}` to the effects file,
/// fsync'd; in a child whose [`HANG_VAR`] names this step, then says
/// [`ATTEMPTED`] and never returns.
async fn attempt(job: &Job, step: &str, stamp: u64) -> Result<u64, StepError> {
    let context =
        sagaflow::context().ok_or_else(|| StepError::permanent("an effect outside a step"))?;
    let key = context.idempotency_key();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.effects)?;
    // One write call per line: O_APPEND keeps concurrent lines whole.
    file.write_all(format!("{step}@{stamp} {key} {}\n", std::process::id()).as_bytes())?;
    file.sync_data()?;
    let hang = std::env::var(HANG_VAR).ok();
    let hangs_here = match hang.as_deref() {
        Some("branch") => step == "left" || step == "right",
        Some(name) => step == name,
        None => false,
    };
    if hangs_here {
        say(&format!("{ATTEMPTED} {step}"));
        std::future::pending::<()>().await;
    }
    Ok(stamp)
}

fn runtime_builder(store: EmbeddedStore) -> sagaflow::RuntimeBuilder {
    Runtime::builder()
        .store(store)
        .register(stamped)
        .register(restamped)
        .workers(4)
        .lease_ttl(LEASE_TTL)
        // Expired leases and due retries are found within 50 ms.
        .poll_interval(Duration::from_millis(50))
        .recovery_interval(Duration::from_millis(50))
}

// ---------------------------------------------------------------- the child

/// The child: starts one instance and waits to be killed (its hanging step
/// says when). Does nothing when run as an ordinary test.
#[test]
fn arguments_child() {
    if std::env::var(HANG_VAR).is_err() {
        return;
    }
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
        let job = Job { effects, stamp: 0 };
        if std::env::var(HANG_VAR).as_deref() == Ok("stamp") {
            rt.start(restamped, ID, job).await.expect("child: start");
        } else {
            rt.start(stamped, ID, job).await.expect("child: start");
        }
        std::future::pending::<()>().await;
    });
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

/// Runs a child whose step `hang` hangs, SIGKILLs it once that step
/// recorded its effect, and returns the step that hung and the child's pid.
fn kill_child_in(scratch: &Scratch, hang: &str) -> (String, u32) {
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args([
            "arguments_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HANG_VAR, hang)
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
    let hung = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            // The harness prints `test arguments_child ... ` without a
            // newline, so the child's line may follow it on the same line.
            Ok(line) => {
                if let Some((_, step)) = line.split_once(ATTEMPTED) {
                    break step.trim().to_owned();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("hang {hang}: the child's step did not run within {WAIT_LIMIT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("hang {hang}: the child ended before its step ran")
            }
        }
    };
    // SIGKILL, mid-step: no destructor, no flush, no clean close of the store.
    child.0.kill().expect("kill -9 the child");
    let status = child.0.wait().expect("wait for the child");
    assert!(
        status.code().is_none(),
        "hang {hang}: the child must die by the signal: {status:?}"
    );
    (hung, pid)
}

/// Finishes the instance of `workflow` with a fresh runtime on the store
/// the child left.
fn finish_after_the_kill<W>(scratch: &Scratch, workflow: W) -> Outcome<String>
where
    W: sagaflow::Workflow<Output = String>,
{
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let store = EmbeddedStore::open(scratch.store()).expect("reopen the store after kill -9");
        let rt = runtime_builder(store)
            .build()
            .await
            .expect("the resuming runtime builds");
        let outcome = tokio::time::timeout(WAIT_LIMIT, rt.handle(workflow, ID).outcome())
            .await
            .unwrap_or_else(|_| panic!("{ID} did not finish within {WAIT_LIMIT:?} after the kill"))
            .unwrap_or_else(|error| panic!("{ID}: {error}"));
        rt.shutdown().await;
        outcome
    })
}

/// Per step: every argument value its attempts saw, with the pids that ran
/// them, in file order.
fn attempts_by_step(scratch: &Scratch) -> BTreeMap<String, Vec<(u64, u32)>> {
    let mut steps: BTreeMap<String, Vec<(u64, u32)>> = BTreeMap::new();
    for (kind, _key, pid) in read_effect_lines(&scratch.effects()) {
        let (step, stamp) = kind
            .split_once('@')
            .unwrap_or_else(|| panic!("an effect without an argument: {kind}"));
        let stamp = stamp
            .parse()
            .unwrap_or_else(|_| panic!("a malformed argument in {kind}"));
        steps.entry(step.to_owned()).or_default().push((stamp, pid));
    }
    steps
}

/// Kills the child in step `hang`, finishes in the parent, and checks what
/// every step saw; returns the step that hung.
fn crash_in(name: &str, hang: &str) -> String {
    let scratch = Scratch::new("crash-arguments", name);
    let (hung, child) = kill_child_in(&scratch, hang);
    let outcome = finish_after_the_kill(&scratch, stamped);
    let parent = std::process::id();
    let steps = attempts_by_step(&scratch);
    let Outcome::Completed(output) = outcome else {
        panic!("the workflow did not complete: {outcome:?}; attempts: {steps:?}")
    };
    // One branch ran, in both processes if it was the one killed.
    let branches: Vec<&String> = steps
        .keys()
        .filter(|step| *step == "left" || *step == "right")
        .collect();
    assert_eq!(
        branches.len(),
        1,
        "the branch chosen from the clock before the first step is the one resumed: {steps:?}"
    );
    for (step, attempts) in &steps {
        let (first, _) = attempts[0];
        assert!(
            attempts.iter().all(|&(stamp, _)| stamp == first),
            "every attempt of `{step}` saw one argument: {attempts:?}"
        );
    }
    // The killed step ran in the child and again in the parent.
    let killed = &steps[&hung];
    assert_eq!(
        killed.first().map(|&(_, pid)| pid),
        Some(child),
        "{steps:?}"
    );
    assert_eq!(
        killed.last().map(|&(_, pid)| pid),
        Some(parent),
        "{steps:?}"
    );
    // `second` failed its first attempt in whichever process ran it.
    assert!(steps["second"].len() >= 2, "{steps:?}");
    // The workflow's output is what the steps returned: their arguments.
    let first_branch = branches[0];
    let expected = format!(
        "{} {} {} {}",
        steps[first_branch][0].0, steps["second"][0].0, steps["north"][0].0, steps["south"][0].0
    );
    assert_eq!(output, expected);
    hung
}

#[test]
fn a_first_step_killed_mid_attempt_runs_again_with_its_argument_and_in_its_branch() {
    let hung = crash_in("branch", "branch");
    assert!(hung == "left" || hung == "right", "{hung}");
}

#[test]
fn a_step_after_a_step_killed_mid_attempt_runs_again_with_its_argument() {
    assert_eq!(crash_in("second", "second"), "second");
}

#[test]
fn a_join_branch_killed_mid_attempt_runs_again_with_its_argument() {
    assert_eq!(crash_in("join", "north"), "north");
}

#[test]
fn a_first_step_whose_input_the_body_changed_from_the_clock_runs_again_with_it() {
    let scratch = Scratch::new("crash-arguments", "restamped");
    let (hung, child) = kill_child_in(&scratch, "stamp");
    assert_eq!(hung, "stamp");
    let outcome = finish_after_the_kill(&scratch, restamped);
    let steps = attempts_by_step(&scratch);
    let attempts = &steps["stamp"];
    // Killed in the child, run again in the parent, with one stamp.
    assert_eq!(
        attempts.first().map(|&(_, pid)| pid),
        Some(child),
        "{steps:?}"
    );
    assert_eq!(
        attempts.last().map(|&(_, pid)| pid),
        Some(std::process::id()),
        "{steps:?}"
    );
    let (first, _) = attempts[0];
    assert!(
        attempts.iter().all(|&(stamp, _)| stamp == first),
        "every attempt of `stamp` saw the stamp set before it: {attempts:?}"
    );
    assert!(
        matches!(&outcome, Outcome::Completed(output) if *output == first.to_string()),
        "{outcome:?}"
    );
}
