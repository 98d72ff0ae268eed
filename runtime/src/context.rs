//! What a step can learn about the attempt it runs in, and how it reports
//! progress ([`heartbeat`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use std::future::Future;

use crate::error::{Error, StepError};
use crate::step::Step;

tokio::task_local! {
    static CONTEXT: AttemptContext;
    static ATTEMPT: Arc<AttemptLink>;
    /// How the steps of the instance a worker drives reach other instances:
    /// set once per driven instance, read only by `sagaflow::send_signal`.
    static SIGNALS: Arc<dyn SignalSender>;
}

/// A future the runtime returns to the layers below it.
pub(crate) type SendFuture = std::pin::Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// What the runtime offers the step `sagaflow::send_signal`: recording a
/// signal for another instance, once per delivery key. Implemented by the
/// runtime, which sits above this module.
pub(crate) trait SignalSender: Send + Sync {
    /// Records signal `name` with `value` for instance `target`, unless a
    /// signal with delivery key `key` was recorded there already.
    fn send_once(
        self: Arc<Self>,
        target: String,
        name: String,
        value: serde_json::Value,
        key: String,
    ) -> SendFuture;
}

/// Runs `driver` (a worker's task) with `signals` as the way its steps send
/// signals.
pub(crate) fn sending<F: Future>(
    signals: Arc<dyn SignalSender>,
    driver: F,
) -> impl Future<Output = F::Output> {
    SIGNALS.scope(signals, driver)
}

/// The signal sender of the runtime driving the current task, if one does.
pub(crate) fn signal_sender() -> Option<Arc<dyn SignalSender>> {
    SIGNALS.try_with(Arc::clone).ok()
}

/// The context of one step attempt, readable inside a step with
/// [`context()`](crate::context()).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepContext {
    /// The workflow instance's id, as given to `Runtime::start`.
    pub workflow_id: String,
    /// The state (suspension point) the step runs in, e.g. `ChargePayment1`.
    pub state: String,
    /// The step's name.
    pub step: &'static str,
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub attempt: u32,
    /// For a step inside a loop (a state on a cycle of the state machine):
    /// how many transitions the instance had committed when this step's
    /// state was entered, which differs from one iteration to the next and
    /// is the same for every attempt of one iteration. `None` elsewhere.
    pub iteration: Option<u64>,
}

impl StepContext {
    /// A key that is the same for every attempt of this step call in this
    /// instance: `{workflow id}/{state}`, or `{workflow id}/{state}/{n}` for
    /// a step inside a loop, where `n` is [`iteration`](Self::iteration), so
    /// each iteration has its own key. Pass it to external systems so a
    /// re-run after a crash is recognised as a duplicate.
    pub fn idempotency_key(&self) -> String {
        match self.iteration {
            Some(n) => format!("{}/{}/{n}", self.workflow_id, self.state),
            None => format!("{}/{}", self.workflow_id, self.state),
        }
    }

    /// The details of the last [`heartbeat`] an earlier attempt of this step
    /// recorded in the instance's record, decoded as `T`; `None` on a first
    /// attempt, when no earlier attempt heartbeated, or when the details do
    /// not decode as `T`.
    ///
    /// Read it on the step's own task (where `context()` was called): it
    /// lets a retried step resume from its last reported progress.
    ///
    /// ```
    /// # use sagaflow::prelude::*;
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # pub struct File { rows: u64 }
    /// # async fn import(file: &File, row: u64) -> Result<(), StepError> { let _ = (file.rows, row); Ok(()) }
    /// #[step(retriable, retry(max_attempts = 10))]
    /// async fn import_rows(file: &File) -> Result<u64, StepError> {
    ///     let done: u64 = sagaflow::context()
    ///         .and_then(|ctx| ctx.heartbeat_details())
    ///         .unwrap_or(0);
    ///     for row in done..file.rows {
    ///         import(file, row).await?;
    ///         sagaflow::heartbeat(row + 1).await.ok();
    ///     }
    ///     Ok(file.rows)
    /// }
    /// ```
    pub fn heartbeat_details<T: DeserializeOwned>(&self) -> Option<T> {
        let previous = ATTEMPT.try_with(|link| link.previous.clone()).ok()??;
        serde_json::from_value(previous).ok()
    }
}

impl fmt::Display for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} attempt {}", self.idempotency_key(), self.attempt)
    }
}

/// The context of the step attempt running on this task, or `None` outside
/// a step (for example when a step function is called directly in a test).
pub fn context() -> Option<StepContext> {
    CONTEXT.try_with(AttemptContext::to_public).ok()
}

/// What [`StepContext`] is made from, kept without copying the instance's
/// id and state name for every attempt: most steps never ask.
#[derive(Debug)]
pub(crate) struct AttemptContext {
    pub(crate) workflow_id: Arc<str>,
    pub(crate) state: Cow<'static, str>,
    pub(crate) step: &'static str,
    pub(crate) attempt: u32,
    pub(crate) iteration: Option<u64>,
}

impl AttemptContext {
    fn to_public(&self) -> StepContext {
        StepContext {
            workflow_id: self.workflow_id.to_string(),
            state: self.state.clone().into_owned(),
            step: self.step,
            attempt: self.attempt,
            iteration: self.iteration,
        }
    }
}

/// Records progress of the running step attempt, and tells the runtime the
/// attempt is alive.
///
/// `details` (any `Serialize` value, stored as JSON) is kept in memory and
/// written to the instance's record with the next lease renewal: the worker
/// renews its lease every third of the lease TTL while a step runs (10 s by
/// default), and each renewal is one compare-and-swap carrying the latest
/// details, however often the step heartbeats in between. The details are
/// also written with the attempt's result. A later attempt of the same step
/// reads them with [`StepContext::heartbeat_details`]; they are cleared once
/// the instance moves to its next state.
///
/// Errors: [`Error::NotInStep`] outside a step attempt run by the runtime
/// (nothing is recorded: calling a step function directly stays harmless);
/// [`Error::LeaseLost`] when another worker has taken the instance over, so
/// this attempt's result will be discarded and the step may stop early;
/// [`Error::Cancelled`] once the instance was cancelled, so a long step
/// may stop early (the instance rolls back after the attempt whatever it
/// returns; see [`cancel_requested`]); [`Error::Codec`] when `details` does
/// not serialize.
///
/// ```
/// # use sagaflow::prelude::*;
/// # #[step(retriable)]
/// # async fn copy(bytes: u64) -> Result<u64, StepError> {
/// sagaflow::heartbeat(serde_json::json!({ "copied": bytes })).await?;
/// # Ok(bytes)
/// # }
/// ```
pub async fn heartbeat(details: impl Serialize) -> Result<(), Error> {
    let Ok(link) = ATTEMPT.try_with(Arc::clone) else {
        return Err(Error::NotInStep);
    };
    if link.lost.load(Ordering::SeqCst) {
        return Err(Error::LeaseLost {
            id: link.workflow_id.to_string(),
        });
    }
    if link.cancelled.load(Ordering::SeqCst) {
        return Err(Error::Cancelled {
            id: link.workflow_id.to_string(),
        });
    }
    let details = serde_json::to_value(details).map_err(|error| Error::Codec {
        what: "the heartbeat details".to_owned(),
        reason: error.to_string(),
    })?;
    *link.lock_latest() = Some(details);
    Ok(())
}

/// Whether the instance this step attempt runs for has been cancelled since
/// the attempt started; `false` outside a step attempt run by the runtime.
///
/// The worker holding the instance learns of a cancel at its next lease
/// renewal (every third of the lease TTL while a step runs: 10 s by
/// default), wherever the cancel was asked. A long step checks this (or
/// [`heartbeat`], which then fails with [`Error::Cancelled`]) between units
/// of work to stop early; the instance rolls back once the attempt ends,
/// whatever the attempt returns. Compensations are never told: they run
/// because of the cancel.
///
/// ```
/// # use sagaflow::prelude::*;
/// # async fn copy_chunk(i: u32) {}
/// #[step(retriable)]
/// async fn copy_all(chunks: u32) -> Result<u32, StepError> {
///     for i in 0..chunks {
///         if sagaflow::cancel_requested() {
///             return Err(StepError::permanent("cancelled"));
///         }
///         copy_chunk(i).await;
///     }
///     Ok(chunks)
/// }
/// ```
pub fn cancel_requested() -> bool {
    ATTEMPT
        .try_with(|link| link.cancelled.load(Ordering::SeqCst))
        .unwrap_or(false)
}

/// What connects a running attempt to the worker holding the instance's
/// lease: the details an earlier attempt left, the latest heartbeat, and
/// whether the lease was lost.
#[derive(Debug)]
pub(crate) struct AttemptLink {
    workflow_id: Arc<str>,
    previous: Option<serde_json::Value>,
    latest: Mutex<Option<serde_json::Value>>,
    lost: AtomicBool,
    cancelled: AtomicBool,
}

impl AttemptLink {
    pub(crate) fn new(workflow_id: Arc<str>, previous: Option<serde_json::Value>) -> AttemptLink {
        AttemptLink {
            workflow_id,
            previous,
            latest: Mutex::new(None),
            lost: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
        }
    }

    fn lock_latest(&self) -> std::sync::MutexGuard<'_, Option<serde_json::Value>> {
        // Only ever replaced whole, so a panic cannot leave it half-written.
        self.latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The details last heartbeated by this attempt, if any.
    pub(crate) fn latest(&self) -> Option<serde_json::Value> {
        self.lock_latest().clone()
    }

    /// Makes further heartbeats of this attempt fail with `LeaseLost`.
    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    /// Makes further heartbeats of this attempt fail with `Cancelled`, and
    /// [`cancel_requested`] answer `true`.
    pub(crate) fn mark_cancelled(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

/// Runs `fut` with `ctx` as its step context.
pub(crate) async fn scope<F: std::future::Future>(ctx: AttemptContext, fut: F) -> F::Output {
    CONTEXT.scope(ctx, fut).await
}

/// Runs `fut` (a step attempt, with the code around it) linked to its worker.
pub(crate) async fn attempt_scope<F: std::future::Future>(
    link: Arc<AttemptLink>,
    fut: F,
) -> F::Output {
    ATTEMPT.scope(link, fut).await
}

/// Runs one attempt of step `S` in its step context, bounded by the step's
/// timeout (a timeout is a retryable error) on the clock of the runtime
/// driving the instance, else on tokio's.
pub(crate) async fn run_attempt<S, F>(ctx: AttemptContext, step: F) -> Result<S::Output, StepError>
where
    S: Step,
    F: Future<Output = Result<S::Output, StepError>> + Send,
{
    let Some(limit) = S::OPTIONS.timeout else {
        return scope(ctx, step).await;
    };
    let timed_out = || {
        Err(StepError::retryable(format!(
            "attempt timed out after {}",
            crate::machine::format_duration(limit)
        )))
    };
    match crate::clock::of_runtime() {
        Some(clock) => {
            let deadline = clock.sleep_until(
                clock
                    .now_ms()
                    .saturating_add(crate::clock::duration_ms(limit)),
            );
            tokio::select! {
                result = scope(ctx, step) => result,
                () = deadline => timed_out(),
            }
        }
        None => match tokio::time::timeout(limit, scope(ctx, step)).await {
            Ok(result) => result,
            Err(_) => timed_out(),
        },
    }
}
