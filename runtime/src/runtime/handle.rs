//! `Handle` and `Outcome`: waiting for an instance to end.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;

use super::local::Local;
use super::state::Runtime;
use super::status::Status;
use crate::error::Error;
use crate::record::{Failure, Phase};

/// The longest wait between two reads of a [`Handle::outcome`] waiting on
/// an instance no worker of this process drives, in poll intervals.
const MAX_POLL_BACKOFF: u64 = 8;

/// How an instance ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<T> {
    /// The workflow returned `Ok` with this output.
    Completed(T),
    /// The workflow failed (or was cancelled) before its pivot, and every
    /// completed step was compensated.
    Compensated(Failure),
    /// The instance needs an operator: it failed after its pivot, or a
    /// compensation could not finish.
    Failed(Failure),
}

/// A handle on one workflow instance, returned by [`Runtime::start`].
/// Cheap to clone; any number of handles may wait on the same instance.
pub struct Handle<T> {
    runtime: Runtime,
    id: String,
    // `fn() -> T`: the handle holds no `T`, so it is `Send + Sync` for any `T`.
    output: PhantomData<fn() -> T>,
}

impl<T> Handle<T> {
    pub(super) fn new(runtime: Runtime, id: String) -> Handle<T> {
        Handle {
            runtime,
            id,
            output: PhantomData,
        }
    }

    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the runtime knows about the instance now.
    pub async fn status(&self) -> Result<Option<Status>, Error> {
        self.runtime.status(&self.id).await
    }
}

impl<T: DeserializeOwned> Handle<T> {
    /// Waits until the instance ends, and returns how.
    ///
    /// Wakes as soon as a worker of this process ends the instance (or
    /// stops driving it), and re-reads the store while no worker of this
    /// process drives it or holds it in its backlog (instances run by other
    /// processes): after one poll interval, then at intervals doubling up to
    /// eight poll intervals, so that many handles waiting on
    /// long-running instances elsewhere cost the store little. Waiting runs nothing: the instance is run by whichever
    /// worker runtime holds its lease. An instance this runtime cannot advance (an unregistered
    /// workflow, another fingerprint, a corrupt record) is an error rather
    /// than an endless wait.
    pub async fn outcome(&self) -> Result<Outcome<T>, Error> {
        let local = self.runtime.local(&self.id);
        let result = self.wait(&local).await;
        self.runtime.release_local(&self.id, local);
        result
    }

    async fn wait(&self, local: &Local) -> Result<Outcome<T>, Error> {
        let inner = &self.runtime.inner;
        let mut shutdown = inner.shutdown.subscribe();
        // A worker of this process drives it: the instance is runnable here,
        // and the worker delivers its end through `changed`.
        let mut read = !local.driving.load(Ordering::SeqCst);
        // Poll intervals to the next read while nothing here tells us more.
        let mut backoff = 1;
        loop {
            // Listen before reading, so a write landing after the read
            // still wakes us.
            let changed = local.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if let Some(ended) = local.changed.latest().ended {
                return outcome_of(
                    &self.id,
                    ended.phase,
                    ended.output.clone(),
                    ended.failure.clone(),
                );
            }
            if read {
                let Some((instance, _)) = self.runtime.load(&self.id).await? else {
                    return Err(Error::NotFound(self.id.clone()));
                };
                if instance.phase.is_terminal() {
                    return outcome_of(&self.id, instance.phase, instance.output, instance.failure);
                }
                // An instance no runtime here can advance would be an endless wait.
                self.runtime.runnable(&instance)?;
            }
            if *shutdown.borrow_and_update() {
                return Err(Error::Shutdown);
            }
            // While a worker here drives it, it tells its end, or that it
            // stopped without one (read after listening, so a stop from
            // here on wakes us): the poll is for instances run elsewhere,
            // and needs no timer meanwhile.
            let poll = (!local.driving.load(Ordering::SeqCst)).then(|| {
                inner.clock.sleep_until(inner.clock.now_ms().saturating_add(
                    crate::clock::duration_ms(inner.poll_interval).saturating_mul(backoff),
                ))
            });
            // A write by this process's worker that did not end the instance
            // needs no read; anything else (a cancel, a signal, the worker
            // stopping, the poll for other processes' writes, shutdown) does.
            read = tokio::select! {
                () = changed => {
                    backoff = 1;
                    !local.changed.latest().by_worker
                }
                _ = shutdown.changed() => true,
                () = async {
                    match poll {
                        Some(poll) => poll.await,
                        None => std::future::pending().await,
                    }
                } => {
                    backoff = (backoff * 2).min(MAX_POLL_BACKOFF);
                    !local.driving.load(Ordering::SeqCst)
                }
            };
        }
    }
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Handle<T> {
        Handle::new(self.runtime.clone(), self.id.clone())
    }
}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The outcome of instance `id`, ended in `phase`.
fn outcome_of<T: DeserializeOwned>(
    id: &str,
    phase: Phase,
    output: Option<serde_json::Value>,
    failure: Option<Failure>,
) -> Result<Outcome<T>, Error> {
    let failure = || failure.unwrap_or_else(|| Failure::new("no failure recorded"));
    Ok(match phase {
        Phase::Completed => {
            let output = output.unwrap_or(serde_json::Value::Null);
            let output = serde_json::from_value(output).map_err(|error| Error::Codec {
                what: format!("the output of instance `{id}`"),
                reason: error.to_string(),
            })?;
            Outcome::Completed(output)
        }
        Phase::Compensated => Outcome::Compensated(failure()),
        Phase::Failed => Outcome::Failed(failure()),
        Phase::Running | Phase::Waiting | Phase::Compensating => {
            return Err(Error::Corrupt {
                id: id.to_owned(),
                reason: "the instance has not ended".to_owned(),
            });
        }
    })
}
