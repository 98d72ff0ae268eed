//! A store wrapper that injects the failures real backends have: an error
//! before the write applies, a timeout after it applied, a spurious
//! conflict, and latency. Seeded, so a failing run can be replayed.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sagaflow::StoreError;
use sagaflow::store::{Expect, ScanPage, Store, Versioned};

/// How often each fault happens, as probabilities per operation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// The operation fails with `Unavailable` and applies nothing.
    pub error_before_apply: f64,
    /// A write applies, then the caller gets `Timeout`, as when the answer is lost.
    pub timeout_after_apply: f64,
    /// A write fails with `Conflict` and applies nothing, as when another
    /// writer got there first.
    pub conflict: f64,
    /// Upper bound of a random delay before every operation.
    pub max_latency: Duration,
}

/// What one operation is going to suffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    ErrorBefore,
    TimeoutAfter,
    Conflict,
}

/// Counts of the faults injected so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// Operations failed before applying.
    pub errors_before: u64,
    /// Writes applied whose answer was lost.
    pub timeouts_after: u64,
    /// Spurious conflicts.
    pub conflicts: u64,
}

/// A [`Store`] that injects [`Faults`] into another one.
///
/// Every operation draws its fault from a generator seeded with the seed
/// given to [`new`](FaultyStore::new): the same seed gives the same draws
/// in the same order of operations, so a test that failed on a seed can be
/// run on that seed alone. (Tasks that reach the store in another order
/// draw in another order: on a runtime with several instances in flight
/// a replay may differ.)
///
/// The runtime survives every fault it injects: an error before a write
/// is retried, a lost answer is read back to see whether the write landed,
/// a conflict re-reads the record. A test asserts that instances still end
/// as they would on a healthy store, with each effect once.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use sagaflow::prelude::*;
/// use sagaflow_testkit::{Faults, FaultyStore, TestEnv};
///
/// #[step(readonly)]
/// async fn double(n: &u64) -> Result<u64, StepError> { Ok(n * 2) }
///
/// #[workflow]
/// async fn twice(n: u64) -> Result<u64, WorkflowError> {
///     let once = double(&n).await?;
///     Ok(double(&once).await?)
/// }
///
/// # /*
/// #[tokio::test(start_paused = true)]
/// # */
/// async fn ends_despite_a_flaky_store() {
///     let faults = Faults {
///         error_before_apply: 0.1,
///         timeout_after_apply: 0.1,
///         conflict: 0.1,
///         max_latency: Duration::from_millis(5),
///     };
///     let store = Arc::new(FaultyStore::new(MemoryStore::new(), faults, 42));
///     let env = TestEnv::builder().store(Arc::clone(&store)).register(twice).build().await;
///     for n in 0..20 {
///         let handle = loop {
///             // `start` itself may meet a fault; starting again attaches.
///             if let Ok(handle) = env.start(twice, format!("twice-{n}"), n).await { break handle; }
///         };
///         let outcome = loop {
///             if let Ok(outcome) = handle.outcome().await { break outcome; }
///         };
///         assert_eq!(outcome, Outcome::Completed(n * 4));
///     }
///     assert!(store.injected().errors_before > 0);
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() { ends_despite_a_flaky_store().await }
/// ```
pub struct FaultyStore<S> {
    inner: S,
    faults: Faults,
    state: Mutex<(fastrand::Rng, Injected)>,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner`, drawing faults from a generator seeded with `seed`.
    pub fn new(inner: S, faults: Faults, seed: u64) -> FaultyStore<S> {
        FaultyStore {
            inner,
            faults,
            state: Mutex::new((fastrand::Rng::with_seed(seed), Injected::default())),
        }
    }

    /// The faults injected so far.
    pub fn injected(&self) -> Injected {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .1
    }

    /// Draws the fault and the latency of one operation.
    fn draw(&self, write: bool) -> (Fault, Duration) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (rng, injected) = &mut *state;
        let latency = self.faults.max_latency.mul_f64(rng.f64());
        let roll = rng.f64();
        let f = &self.faults;
        let fault = if roll < f.error_before_apply {
            injected.errors_before += 1;
            Fault::ErrorBefore
        } else if write && roll < f.error_before_apply + f.timeout_after_apply {
            injected.timeouts_after += 1;
            Fault::TimeoutAfter
        } else if write && roll < f.error_before_apply + f.timeout_after_apply + f.conflict {
            injected.conflicts += 1;
            Fault::Conflict
        } else {
            Fault::None
        };
        (fault, latency)
    }

    async fn before(&self, write: bool) -> Result<Fault, StoreError> {
        let (fault, latency) = self.draw(write);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            Fault::ErrorBefore => Err(StoreError::Unavailable(
                "injected: error before apply".into(),
            )),
            Fault::Conflict => Err(StoreError::Conflict),
            Fault::None | Fault::TimeoutAfter => Ok(fault),
        }
    }
}

fn after<T>(fault: Fault, result: Result<T, StoreError>) -> Result<T, StoreError> {
    match (fault, result) {
        (Fault::TimeoutAfter, Ok(_)) => Err(StoreError::Timeout(
            "injected: answer lost after apply".into(),
        )),
        (_, result) => result,
    }
}

#[async_trait]
impl<S: Store> Store for FaultyStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.before(false).await?;
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        let fault = self.before(true).await?;
        after(fault, self.inner.put(key, value, expect).await)
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        let fault = self.before(true).await?;
        after(fault, self.inner.delete(key, expect).await)
    }

    async fn scan(
        &self,
        prefix: &str,
        after_key: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.before(false).await?;
        self.inner.scan(prefix, after_key, limit).await
    }

    fn name(&self) -> &'static str {
        "faulty"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sagaflow::MemoryStore;

    #[tokio::test]
    async fn a_timeout_after_apply_still_applies_and_an_error_before_does_not() {
        let always_timeout = Faults {
            timeout_after_apply: 1.0,
            ..Faults::default()
        };
        let store = FaultyStore::new(MemoryStore::new(), always_timeout, 1);
        let lost = store.put("k", b"v".to_vec(), Expect::Absent).await;
        assert!(matches!(lost, Err(StoreError::Timeout(_))), "{lost:?}");
        assert_eq!(
            store.get("k").await.expect("reads pass").map(|v| v.value),
            Some(b"v".to_vec())
        );

        let always_error = Faults {
            error_before_apply: 1.0,
            ..Faults::default()
        };
        let inner = MemoryStore::new();
        let store = FaultyStore::new(inner.clone(), always_error, 1);
        assert!(matches!(
            store.put("k", b"v".to_vec(), Expect::Any).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(inner.get("k").await.expect("memory store"), None);
        assert_eq!(store.injected().errors_before, 1);
    }

    #[tokio::test]
    async fn a_spurious_conflict_applies_nothing() {
        let store = FaultyStore::new(
            MemoryStore::new(),
            Faults {
                conflict: 1.0,
                ..Faults::default()
            },
            7,
        );
        assert!(matches!(
            store.put("k", b"v".to_vec(), Expect::Any).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.injected().conflicts, 1);
    }

    #[tokio::test]
    async fn no_faults_means_a_transparent_store() {
        let store = FaultyStore::new(MemoryStore::new(), Faults::default(), 3);
        let version = store
            .put("k", b"v".to_vec(), Expect::Absent)
            .await
            .expect("put");
        store
            .put("k", b"w".to_vec(), Expect::Version(version))
            .await
            .expect("cas");
        assert_eq!(store.injected(), Injected::default());
    }
}
