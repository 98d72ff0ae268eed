//! What this process knows about each instance besides its record
//! ([`Local`]): whether a worker here drives it, and the latest write of it
//! here ([`Written`], with its end once a worker here wrote it), which wakes
//! the handles waiting on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::record::{Failure, Phase};

/// What this process knows about one instance besides its record.
pub(super) struct Local {
    /// Changed after every write of the record by this process; carries
    /// the outcome once a worker here has written the instance's end, so
    /// handles need not read the store to learn it.
    pub(super) changed: Changes,
    /// Whether a worker of this process drives the instance.
    pub(super) driving: AtomicBool,
}

impl Local {
    pub(super) fn new() -> Local {
        Local {
            changed: Changes {
                written: Mutex::new(Written::default()),
                notify: Notify::new(),
            },
            driving: AtomicBool::new(false),
        }
    }

    /// No worker of this process drives the instance any more. Handles
    /// waiting on it without polling the store (a worker here would tell
    /// them its end) learn that they must read it: it waits, failed to be
    /// claimed, or went to another process.
    pub(super) fn stop_driving(&self) {
        self.driving.store(false, Ordering::SeqCst);
        self.changed.send_if_modified(|written| {
            if written.ended.is_some() {
                return false;
            }
            written.bump();
            true
        });
    }
}

/// The latest write of an instance by this process, and the wake-up of the
/// handles waiting on it: one per instance, so a mutex and a `Notify`
/// rather than a channel.
pub(super) struct Changes {
    written: Mutex<Written>,
    notify: Notify,
}

impl Changes {
    /// Applies `change`, and wakes the waiting handles if it returns true.
    pub(super) fn send_if_modified(&self, change: impl FnOnce(&mut Written) -> bool) {
        let wake = {
            // Only ever changed by the closures here, which cannot panic
            // halfway through.
            let mut written = self
                .written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            change(&mut written)
        };
        if wake {
            self.notify.notify_waiters();
        }
    }

    /// Applies `change` and wakes the waiting handles.
    pub(super) fn send_modify(&self, change: impl FnOnce(&mut Written)) {
        self.send_if_modified(|written| {
            change(written);
            true
        });
    }

    /// The latest write.
    pub(super) fn latest(&self) -> Written {
        self.written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A wake-up for the next change: enable it before reading
    /// [`latest`](Self::latest), so a change in between is not missed.
    pub(super) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

/// The latest write of an instance by this process, as its handles see it.
#[derive(Clone, Debug, Default)]
pub(super) struct Written {
    /// Written by this process's worker, which tells its handles how the
    /// instance ends: nothing but `ended` needs a read of the store.
    pub(super) by_worker: bool,
    /// How the instance ended, as durably written by a worker here.
    pub(super) ended: Option<Arc<Ended>>,
}

/// An instance's end, as its terminal record states it.
#[derive(Debug)]
pub(super) struct Ended {
    pub(super) phase: Phase,
    pub(super) output: Option<serde_json::Value>,
    pub(super) failure: Option<Failure>,
}

impl Written {
    /// A write by `cancel` or `signal`: the handles re-read the record.
    pub(super) fn bump(&mut self) {
        self.by_worker = false;
    }
}
