//! `Handle` and `Outcome`: waiting for an instance to end, and the typed
//! signals and query of its workflow.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;

use super::local::Local;
use super::state::{Runtime, codec};
use super::status::Status;
use crate::declared::{DeclaresQuery, SignalOf, Untyped};
use crate::error::Error;
use crate::record::{Failure, Phase};

/// What [`Handle::signal`] and [`Handle::query`] return: a future of
/// their result, `Send`, borrowing the handle.
type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

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

/// A handle on one workflow instance, returned by [`Runtime::start`] and
/// [`Runtime::handle`]: `T` is the workflow's output, `W` the workflow
/// (its unit struct), whose declared signals and query the handle sends
/// and reads typed. [`Runtime::handle`] gives a typed handle;
/// [`Runtime::start`] and a start by name give one with no workflow type
/// ([`Untyped`]), which waits for the outcome and reads the status.
/// Cheap to clone; any number of handles may wait on the same instance.
pub struct Handle<T, W = Untyped> {
    runtime: Runtime,
    id: String,
    // `fn() -> ..`: the handle holds no `T` or `W`, so it is `Send + Sync` for any.
    output: PhantomData<fn() -> (T, W)>,
}

impl<T, W> Handle<T, W> {
    pub(super) fn new(runtime: Runtime, id: String) -> Handle<T, W> {
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

    /// Sends `signal`, one the workflow declares
    /// (`#[workflow(signals(approval: Decision))]`), with `value` of its
    /// declared type: [`Runtime::signal`] checked at compile time.
    ///
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # pub struct Decision { approved: bool }
    /// # #[workflow(signals(approval: Decision))]
    /// # async fn place_order(id: String) -> Result<bool, WorkflowError> {
    /// #     let decision: Decision = sagaflow::signal("approval").await;
    /// #     Ok(decision.approved && !id.is_empty())
    /// # }
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// let handle = rt.handle(place_order, "order-42");
    /// handle.signal(place_order::approval, Decision { approved: true }).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A signal the workflow does not declare, or a value of another type,
    /// does not compile. Delivery is [`Runtime::signal`]'s, with its errors.
    pub fn signal<S: SignalOf<W>>(&self, signal: S, value: S::Value) -> Pending<'_, ()> {
        // Encoded now: the future holds neither `S` nor its value, so a
        // mistake in the call is one error, on the call.
        let name = signal.name();
        let value =
            serde_json::to_value(value).map_err(|error| codec(&format!("signal `{name}`"), &error));
        Box::pin(async move {
            self.runtime
                .deliver_signal(&self.id, name, value?, None)
                .await
        })
    }

    /// The latest status the instance's workflow set with
    /// [`sagaflow::set_status`](crate::set_status), as the type it declares
    /// (`#[workflow(query = OrderStatus)]`): `None` if it has set none yet.
    /// [`Runtime::query`] with the type filled in; the same errors.
    ///
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # pub enum OrderStatus { Paid }
    /// # #[workflow(query = OrderStatus)]
    /// # async fn place_order(id: String) -> Result<String, WorkflowError> {
    /// #     sagaflow::set_status(OrderStatus::Paid);
    /// #     Ok(id)
    /// # }
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// let status = rt.handle(place_order, "order-42").query().await?;   // Option<OrderStatus>
    /// # let _ = status;
    /// # Ok(())
    /// # }
    /// ```
    // `Q` is `W::Query`, named apart so the future's type needs no bound:
    // a workflow without a query type is one error, on the call.
    pub fn query<Q: DeserializeOwned + Send + 'static>(&self) -> Pending<'_, Option<Q>>
    where
        W: DeclaresQuery<Query = Q>,
    {
        Box::pin(self.runtime.query(&self.id))
    }
}

impl<T: DeserializeOwned, W> Handle<T, W> {
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

impl<T, W> Clone for Handle<T, W> {
    fn clone(&self) -> Handle<T, W> {
        Handle::new(self.runtime.clone(), self.id.clone())
    }
}

impl<T, W> fmt::Debug for Handle<T, W> {
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
