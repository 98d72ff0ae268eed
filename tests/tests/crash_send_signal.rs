//! `sagaflow::send_signal` delivers exactly once across real process death.
//!
//! A child process (this test binary, selected by [`PLAN_VAR`]) runs a
//! receiver that waits for signal `go` and a sender whose step sends it, on
//! an [`EmbeddedStore`] wrapped so that the sender's commit after the
//! delivery never happens: the child says [`DELIVERED`] and blocks in that
//! write, and the parent SIGKILLs it there. The receiver's record then holds
//! the signal and the sender's record still stands before its send. A fresh
//! runtime on the same store runs the send again (steps are at-least-once),
//! and the receiver's record shows what a user must see: one signal
//! recorded, consumed once.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sagaflow::prelude::*;
use sagaflow::record;
use sagaflow::store::{Expect, ScanPage, Store, Versioned};
use sagaflow::{Phase, StoreError};
use sagaflow_tests::harness::{Scratch, say};

/// Selects child mode.
const PLAN_VAR: &str = "SAGAFLOW_SEND_SIGNAL_CHILD";
/// The store directory of the child.
const DIR_VAR: &str = "SAGAFLOW_SEND_SIGNAL_DIR";
/// The line a child prints once the signal is delivered and the sender's
/// commit is held.
const DELIVERED: &str = "DELIVERED";
const LEASE_TTL: Duration = Duration::from_secs(1);

#[workflow]
async fn receiver(start: u32) -> Result<u32, WorkflowError> {
    let go: u32 = sagaflow::signal("go").await;
    Ok(start + go)
}

#[workflow]
async fn sender(target: String) -> Result<(), WorkflowError> {
    let value: serde_json::Value = serde_json::json!(7);
    sagaflow::send_signal(&target, "go", &value).await?;
    Ok(())
}

/// An embedded store whose sender's first write after the receiver got its
/// keyed signal blocks for ever: where the child is killed.
#[derive(Debug)]
struct HoldAfterDelivery {
    inner: EmbeddedStore,
    delivered: AtomicBool,
}

#[async_trait]
impl Store for HoldAfterDelivery {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        if key == record::key("sender") && self.delivered.load(Ordering::SeqCst) {
            say(DELIVERED);
            std::future::pending::<()>().await;
        }
        let keyed = key == record::key("receiver")
            && String::from_utf8_lossy(&value).contains("\"signal_keys\"");
        let version = self.inner.put(key, value, expect).await?;
        if keyed {
            self.delivered.store(true, Ordering::SeqCst);
        }
        Ok(version)
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        self.inner.delete(key, expect).await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.inner.scan(prefix, after, limit).await
    }

    fn name(&self) -> &'static str {
        "embedded"
    }
}

fn builder(store: impl Store) -> sagaflow::RuntimeBuilder {
    Runtime::builder()
        .store(store)
        .register(receiver)
        .register(sender)
        .lease_ttl(LEASE_TTL)
        .poll_interval(Duration::from_millis(50))
}

/// The child: a receiver waiting for `go`, then the sender. Does nothing
/// when run as an ordinary test.
#[test]
fn send_signal_child() {
    if std::env::var(PLAN_VAR).is_err() {
        return;
    }
    let dir = std::env::var(DIR_VAR).expect("child: the store directory");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("child: tokio");
    tokio.block_on(async {
        let store = HoldAfterDelivery {
            inner: EmbeddedStore::open(&dir).expect("child: open the store"),
            delivered: AtomicBool::new(false),
        };
        let rt = builder(store).build().await.expect("child: builds");
        drop(
            rt.start(receiver, "receiver", 35)
                .await
                .expect("child: starts"),
        );
        loop {
            let status = rt.status("receiver").await.expect("child: status");
            if status.is_some_and(|status| status.phase == Phase::Waiting) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(
            rt.start(sender, "sender", "receiver".to_owned())
                .await
                .expect("child: starts"),
        );
        std::future::pending::<()>().await;
    });
}

async fn record_of(store: &EmbeddedStore, id: &str) -> record::InstanceRecord {
    let stored = store
        .get(&record::key(id))
        .await
        .expect("reads")
        .unwrap_or_else(|| panic!("no record for {id}"));
    record::decode(&stored.value).expect("decodes")
}

#[test]
fn a_signal_sent_again_after_the_sender_was_killed_is_delivered_once() {
    let scratch = Scratch::new("send-signal", "once");
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([
            "send_signal_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PLAN_VAR, "1")
        .env(DIR_VAR, scratch.store())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().expect("the child's stdout");
    let said = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.ends_with(DELIVERED));
    assert!(said, "the child ended without delivering the signal");
    // SIGKILL, while the sender's commit after its send is held.
    child.kill().expect("kill -9 the child");
    let status = child.wait().expect("the child is reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed, not ended"
    );

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let store = EmbeddedStore::open(scratch.store()).expect("reopens");
        // At the kill: the signal is in the receiver's record, and the
        // sender has not committed its send, so it must run it again.
        let delivered = record_of(&store, "receiver").await;
        assert_eq!(delivered.signal_seq, 1);
        assert_eq!(
            Vec::from(delivered.signal_keys.clone()),
            ["sender/SendSignal1"]
        );
        let before = record_of(&store, "sender").await;
        assert_eq!(before.state_name, "SendSignal1", "{before:?}");
        assert!(!before.phase.is_terminal());

        let rt = builder(store.clone()).build().await.expect("builds");
        let (sent, received) = (rt.handle(sender, "sender"), rt.handle(receiver, "receiver"));
        let (sent, received) = tokio::time::timeout(Duration::from_secs(60), async {
            (sent.outcome().await, received.outcome().await)
        })
        .await
        .expect("both end within a minute");
        assert!(matches!(sent, Ok(Outcome::Completed(()))), "{sent:?}");
        assert!(
            matches!(received, Ok(Outcome::Completed(42))),
            "{received:?}"
        );
        rt.shutdown().await;

        let after = record_of(&store, "receiver").await;
        assert_eq!(after.signal_seq, 1, "the repeated send recorded nothing");
        assert!(after.inbox.is_empty(), "{:?}", after.inbox);
    });
}
