//! A join survives `kill -9`: the child process runs a saga whose
//! `sagaflow::join!` has a fast branch and a slow one, and is SIGKILLed
//! - once the fast branch's completion is in the store while the slow
//!   branch is still running: a new process on the same embedded store
//!   finishes the saga, the slow branch runs (under its own idempotency key),
//!   the fast one does not run again, and its output reaches the code after
//!   the join;
//! - or while both branches run, the fast one past its side effect but not
//!   yet stored: both run again, each under the key it had.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow_tests::harness::{Scratch, read_effect_lines, say};
use serde::{Deserialize, Serialize};

/// Set in the child: the store directory.
const DIR_VAR: &str = "SAGAFLOW_JOIN_CRASH_DIR";
/// Set in the child: the effects file.
const EFFECTS_VAR: &str = "SAGAFLOW_JOIN_CRASH_EFFECTS";
/// Set in the child that is killed before any branch is stored.
const NONE_STORED_VAR: &str = "SAGAFLOW_JOIN_CRASH_NONE_STORED";
/// The line the child prints when it stands where it is to be killed.
const MARKER: &str = "JOIN-CRASH-POINT";
const WAIT_LIMIT: Duration = Duration::from_secs(60);
const LEASE_TTL: Duration = Duration::from_secs(1);
const ID: &str = "fan-1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    effects: String,
}

/// Appends `{kind} {idempotency key} {attempt}` to the effects file, fsync'd.
fn effect(job: &Job, kind: &str) -> Result<String, StepError> {
    let ctx = sagaflow::context().ok_or_else(|| StepError::permanent("outside a step"))?;
    let key = ctx.idempotency_key();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.effects)?;
    file.write_all(format!("{kind} {key} {}\n", ctx.attempt).as_bytes())?;
    file.sync_data()?;
    Ok(key)
}

fn in_child() -> bool {
    std::env::var_os(DIR_VAR).is_some()
}

#[step]
async fn fast(job: &Job) -> Result<String, StepError> {
    let key = effect(job, "fast")?;
    if std::env::var_os(NONE_STORED_VAR).is_some() {
        say(&format!("{MARKER} fast effect written"));
        std::future::pending::<()>().await;
    }
    Ok(key)
}

#[compensate(fast)]
async fn undo_fast(job: &Job, _key: String) -> Result<(), StepError> {
    effect(job, "undo_fast").map(drop)
}

/// In the child, never ends: it is in flight when the child dies.
#[step]
async fn slow(job: &Job) -> Result<String, StepError> {
    if in_child() {
        std::future::pending::<()>().await;
    }
    effect(job, "slow")
}

#[compensate(slow)]
async fn undo_slow(job: &Job, _key: String) -> Result<(), StepError> {
    effect(job, "undo_slow").map(drop)
}

#[step(readonly)]
async fn finish(job: &Job, a: &str, b: &str) -> Result<String, StepError> {
    effect(job, "finish")?;
    Ok(format!("{a} + {b}"))
}

#[workflow]
async fn fan_out(job: Job) -> Result<String, WorkflowError> {
    let (a, b) = sagaflow::join!(fast(&job), slow(&job))?;
    let done = finish(&job, &a, &b).await?;
    Ok(done)
}

/// The child: starts the saga and prints the marker once the fast
/// branch's completion is stored, the slow one still running. Does nothing
/// when run as an ordinary test.
#[test]
fn join_crash_child() {
    let (Ok(dir), Ok(effects)) = (std::env::var(DIR_VAR), std::env::var(EFFECTS_VAR)) else {
        return;
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("child: tokio");
    tokio.block_on(async {
        let rt = Runtime::builder()
            .store(EmbeddedStore::open(&dir).expect("child: open the store"))
            .register(fan_out)
            .lease_ttl(LEASE_TTL)
            .build()
            .await
            .expect("child: the runtime builds");
        rt.start(fan_out, ID, Job { effects })
            .await
            .expect("child: start");
        if std::env::var_os(NONE_STORED_VAR).is_some() {
            // `fast` prints the marker itself, past its effect.
            std::future::pending::<()>().await;
        }
        loop {
            let status = rt.status(ID).await.expect("child: status");
            if let Some(status) = status
                && status.state == "Join1"
                && status.compensation_stack.len() == 1
            {
                say(&format!("{MARKER} {}", status.compensation_stack[0].step));
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        std::future::pending::<()>().await;
    });
}

/// Kills the child however the test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_child_until_marker(scratch: &Scratch, none_stored: bool) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let mut command = Command::new(exe);
    if none_stored {
        command.env(NONE_STORED_VAR, "1");
    }
    let child = command
        .args([
            "join_crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
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
    let marker = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(MARKER) => break line,
            Ok(_) => {}
            Err(error) => panic!("the child did not reach its crash point: {error:?}"),
        }
    };
    child.0.kill().expect("kill -9 the child");
    let status = child.0.wait().expect("wait for the child");
    assert!(status.code().is_none(), "killed by the signal: {status:?}");
    marker
}

fn effects(path: &Path) -> Vec<(String, String)> {
    read_effect_lines(path)
        .into_iter()
        .map(|(kind, key, _)| (kind, key))
        .collect()
}

/// Opens the store the killed child left and finishes the saga.
fn resume_and_finish(scratch: &Scratch) -> Outcome<String> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let store = EmbeddedStore::open(scratch.store()).expect("reopen the store after kill -9");
        let rt = Runtime::builder()
            .store(store)
            .register(fan_out)
            .lease_ttl(LEASE_TTL)
            .recovery_interval(Duration::from_millis(50))
            .build()
            .await
            .expect("the resuming runtime builds");
        let outcome = tokio::time::timeout(WAIT_LIMIT, rt.handle(fan_out, ID).outcome())
            .await
            .expect("finished in time")
            .expect("an outcome");
        rt.shutdown().await;
        outcome
    })
}

#[test]
fn a_join_killed_with_one_branch_done_finishes_without_repeating_it() {
    let scratch = Scratch::new("join-crash", "one-done");
    let marker = run_child_until_marker(&scratch, false);
    assert!(marker.ends_with(" fast"), "{marker}");
    let before = effects(&scratch.effects());
    assert_eq!(before, [("fast".to_owned(), format!("{ID}/Join1/0"))]);
    let outcome = resume_and_finish(&scratch);
    assert_eq!(
        outcome,
        Outcome::Completed(format!("{ID}/Join1/0 + {ID}/Join1/1"))
    );
    assert_eq!(
        effects(&scratch.effects()),
        [
            ("fast".to_owned(), format!("{ID}/Join1/0")),
            ("slow".to_owned(), format!("{ID}/Join1/1")),
            ("finish".to_owned(), format!("{ID}/Finish2")),
        ],
        "the fast branch ran once, before the crash"
    );
}

#[test]
fn a_join_killed_before_any_branch_is_stored_runs_both_again_under_their_keys() {
    let scratch = Scratch::new("join-crash", "none-stored");
    run_child_until_marker(&scratch, true);
    assert_eq!(
        effects(&scratch.effects()),
        [("fast".to_owned(), format!("{ID}/Join1/0"))]
    );
    let outcome = resume_and_finish(&scratch);
    assert_eq!(
        outcome,
        Outcome::Completed(format!("{ID}/Join1/0 + {ID}/Join1/1"))
    );
    let after = effects(&scratch.effects());
    // The fast branch's effect happened before the kill and again after it
    // (steps are at-least-once), under the same key.
    assert_eq!(after[0], ("fast".to_owned(), format!("{ID}/Join1/0")));
    let mut rest = after[1..3].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        [
            ("fast".to_owned(), format!("{ID}/Join1/0")),
            ("slow".to_owned(), format!("{ID}/Join1/1")),
        ]
    );
    assert_eq!(after[3..], [("finish".to_owned(), format!("{ID}/Finish2"))]);
}
