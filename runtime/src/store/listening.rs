//! The part of change notification every server-backed store shares: the
//! subscribers, the one task that listens for them, and how that task
//! reconnects.
//!
//! A store keeps a [`Listening`] beside its own connection details. Its
//! `due_changes` calls [`Listening::subscribe`], which starts the listening
//! task on the first subscription; the task runs
//! [`Listening::supervise`] with the store's own "one connection's life"
//! future, which calls [`Listening::connected`] once it listens and
//! [`DueSignal::notify`] on every notice.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::DueSignal;

/// The first wait before a reconnect, and the one after a connection that
/// got as far as listening.
const FIRST_BACKOFF_MS: u64 = 50;
/// The longest wait before a reconnect.
const MAX_BACKOFF_MS: u64 = 2_000;

/// The subscribers of a server store's due changes and the state of the task
/// that listens for them.
#[derive(Debug)]
pub(crate) struct Listening {
    /// The subscribers.
    pub(crate) due: DueSignal,
    /// Whether the listening task runs.
    running: AtomicBool,
    /// The wait before the next reconnect, in ms.
    backoff_ms: AtomicU64,
}

impl Listening {
    /// Nobody subscribed, no task.
    pub(crate) fn new() -> Listening {
        Listening {
            due: DueSignal::new(),
            running: AtomicBool::new(false),
            backoff_ms: AtomicU64::new(FIRST_BACKOFF_MS),
        }
    }

    /// A receiver of the due changes; `start` spawns the listening task
    /// when none runs.
    pub(crate) fn subscribe(&self, start: impl FnOnce()) -> watch::Receiver<u64> {
        let changes = self.due.subscribe();
        if !self.running.swap(true, Ordering::SeqCst) {
            start();
        }
        changes
    }

    /// Tells the task that its connection listens: the next reconnect waits
    /// the shortest backoff again. Wakes the subscribers, since notices sent
    /// while nothing listened are lost.
    pub(crate) fn connected(&self) {
        self.backoff_ms.store(FIRST_BACKOFF_MS, Ordering::SeqCst);
        self.due.notify();
    }

    /// Runs `connection` (one connection's life: it returns when the
    /// connection fails) again and again, with a doubling backoff between
    /// tries, for as long as anyone subscribes.
    pub(crate) async fn supervise<F, C>(&self, mut connection: F)
    where
        F: FnMut() -> C,
        C: Future<Output = ()>,
    {
        loop {
            tokio::select! {
                () = connection() => {}
                () = self.due.unsubscribed() => {}
            }
            if !self.due.has_subscribers() {
                self.running.store(false, Ordering::SeqCst);
                // A subscriber that came after the check found `running`
                // still set and started nothing: carry on for it.
                if !self.due.has_subscribers() || self.running.swap(true, Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            let backoff = self.backoff_ms.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            self.backoff_ms
                .store((backoff * 2).min(MAX_BACKOFF_MS), Ordering::SeqCst);
        }
    }
}
