//! What the steps did: [`Journal`].

use std::sync::{Arc, Mutex, MutexGuard};

/// A log of side effects that steps and compensations append to, in the
/// order they happen, each tagged with the instance whose step recorded it.
///
/// Steps are plain functions the runtime calls, so they reach a journal
/// through a `static` (`LazyLock<Journal>`); clones share one log, so a
/// clone can also go to a task or thread of the test. Tests in one binary
/// run in parallel and share the static: give each test its own instance
/// ids and read [`effects_of`](Journal::effects_of) an id, not
/// [`effects`](Journal::effects).
///
/// The instance comes from [`sagaflow::context()`], which a step attempt
/// and a compensation have; an entry recorded elsewhere (the test itself, a
/// step called directly) has none.
///
/// ```
/// use std::sync::LazyLock;
/// use sagaflow::prelude::*;
/// use sagaflow_testkit::{Journal, TestEnv};
///
/// static EFFECTS: LazyLock<Journal> = LazyLock::new(Journal::new);
///
/// #[step(readonly)]
/// async fn look_up(sku: &str) -> Result<u32, StepError> {
///     EFFECTS.record(format!("look up {sku}"));
///     Ok(3)
/// }
///
/// #[workflow]
/// async fn stock(sku: String) -> Result<u32, WorkflowError> {
///     Ok(look_up(&sku).await?)
/// }
///
/// # /*
/// #[tokio::test(start_paused = true)]
/// # */
/// async fn looks_the_sku_up_once() {
///     let env = TestEnv::builder().register(stock).build().await;
///     env.run(stock, "stock-1", "mug".to_owned()).await;
///     EFFECTS.record("not from a step");
///     assert_eq!(EFFECTS.effects_of("stock-1"), ["look up mug"]);
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() { looks_the_sku_up_once().await }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Journal {
    entries: Arc<Mutex<Vec<JournalEntry>>>,
}

/// One entry of a [`Journal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    /// The id of the instance whose step or compensation recorded it, if
    /// one did.
    pub instance: Option<String>,
    /// What happened, as the step wrote it.
    pub effect: String,
}

impl Journal {
    /// An empty journal.
    pub fn new() -> Journal {
        Journal::default()
    }

    /// Appends `effect`, tagged with the instance of the step attempt or
    /// compensation running on this task, if any.
    pub fn record(&self, effect: impl Into<String>) {
        let instance = sagaflow::context().map(|context| context.workflow_id);
        self.lock().push(JournalEntry {
            instance,
            effect: effect.into(),
        });
    }

    /// The effects recorded by the steps and compensations of instance
    /// `id`, in order. A child workflow is an instance of its own: read its
    /// id (`{parent id}/{state}`) for its effects.
    pub fn effects_of(&self, id: &str) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|entry| entry.instance.as_deref() == Some(id))
            .map(|entry| entry.effect.clone())
            .collect()
    }

    /// Every effect recorded, in order, whoever recorded it.
    pub fn effects(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|entry| entry.effect.clone())
            .collect()
    }

    /// Every entry, in order.
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.lock().clone()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<JournalEntry>> {
        // A panicking test thread must not hide the journal from the others.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
