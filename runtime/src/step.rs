//! Steps and compensations: the traits `#[step]` and `#[compensate]` implement.

use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::error::StepError;
use crate::record::{CompensationEntry, RawJson};

/// A future returned by a compensation: `Send`, owning everything it needs.
pub type CompensationFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StepError>> + Send + 'static>>;

/// The role a step plays in a saga, chosen with `#[step]`, `#[step(pivot)]`,
/// `#[step(retriable)]` or `#[step(readonly)]`.
///
/// The classic saga structure is checked at compile time: compensable steps
/// first, at most one pivot on any path, and only retriable or readonly steps
/// after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Undone by its `#[compensate]` when the saga rolls back (the default).
    Compensable,
    /// The point of no return: once it succeeds the saga only moves forward.
    Pivot,
    /// Runs after the pivot and is retried until it succeeds.
    Retriable,
    /// Has no side effects: allowed anywhere, never compensated.
    Readonly,
}

impl StepKind {
    /// Whether a step of this kind may run after the saga's pivot.
    pub const fn allowed_after_pivot(self) -> bool {
        matches!(self, StepKind::Retriable | StepKind::Readonly)
    }

    /// Whether this is [`StepKind::Pivot`] (usable in `const` context).
    pub const fn is_pivot(self) -> bool {
        matches!(self, StepKind::Pivot)
    }

    /// The lowercase name used in diagrams and records.
    pub const fn as_str(self) -> &'static str {
        match self {
            StepKind::Compensable => "compensable",
            StepKind::Pivot => "pivot",
            StepKind::Retriable => "retriable",
            StepKind::Readonly => "readonly",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A complete retry policy, with Temporal's fields.
///
/// The delay before attempt `n + 1` is `initial_interval * backoff^(n - 1)`,
/// capped at `max_interval`. `max_attempts` counts every attempt, the first
/// included; `None` means "until it succeeds".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `None` retries without bound.
    pub max_attempts: Option<u32>,
    /// Delay before the first retry.
    pub initial_interval: Duration,
    /// Factor applied to the delay after every failed attempt (at least 1.0).
    pub backoff: f64,
    /// Upper bound of the delay between two attempts.
    pub max_interval: Duration,
}

impl RetryPolicy {
    /// Attempts a retriable step or a compensation gets before the instance
    /// is left `Failed` for an operator.
    pub const RETRY_UNTIL_SUCCESS_CAP: u32 = 100;

    /// The default policy for a kind of step: three attempts for compensable,
    /// pivot and readonly steps; retriable steps retry until they succeed, up
    /// to [`RetryPolicy::RETRY_UNTIL_SUCCESS_CAP`] attempts.
    pub const fn default_for(kind: StepKind) -> RetryPolicy {
        let max_attempts = match kind {
            StepKind::Retriable => RetryPolicy::RETRY_UNTIL_SUCCESS_CAP,
            _ => 3,
        };
        RetryPolicy {
            max_attempts: Some(max_attempts),
            initial_interval: Duration::from_secs(1),
            backoff: 2.0,
            max_interval: Duration::from_secs(100),
        }
    }

    /// The policy compensations run with: until they succeed, up to the cap.
    pub const fn compensation() -> RetryPolicy {
        RetryPolicy::default_for(StepKind::Retriable)
    }

    /// Whether another attempt may follow attempt number `attempt` (1-based).
    pub fn allows_another(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempt < max)
    }

    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(1_000) as i32;
        let factor = self.backoff.max(1.0).powi(exponent);
        let secs = self.initial_interval.as_secs_f64() * factor;
        let capped = secs.min(self.max_interval.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max_interval)
    }
}

/// Options written in `#[step(retry(..), timeout = "..")]`; unset fields take
/// the defaults of the step's kind ([`RetryPolicy::default_for`]).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct StepOptions {
    /// `retry(max_attempts = N)`.
    pub max_attempts: Option<u32>,
    /// `retry(initial = "1s")`.
    pub initial_interval: Option<Duration>,
    /// `retry(backoff = 2.0)`.
    pub backoff: Option<f64>,
    /// `retry(max_interval = "100s")`.
    pub max_interval: Option<Duration>,
    /// `timeout = "30s"`: start-to-close timeout of one attempt.
    pub timeout: Option<Duration>,
}

impl StepOptions {
    /// No options: every field from the kind's defaults.
    pub const NONE: StepOptions = StepOptions {
        max_attempts: None,
        initial_interval: None,
        backoff: None,
        max_interval: None,
        timeout: None,
    };

    /// The effective retry policy of a step of `kind` with these options.
    pub fn retry_policy(&self, kind: StepKind) -> RetryPolicy {
        let default = RetryPolicy::default_for(kind);
        RetryPolicy {
            max_attempts: self.max_attempts.or(default.max_attempts),
            initial_interval: self.initial_interval.unwrap_or(default.initial_interval),
            backoff: self.backoff.unwrap_or(default.backoff),
            max_interval: self.max_interval.unwrap_or(default.max_interval),
        }
    }
}

/// A step: implemented by `#[step]` on the same-named struct it generates.
///
/// ```
/// # use sagaflow::prelude::*;
/// # use sagaflow::Step;
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct Order { id: String }
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct Shipment { tracking: String }
/// #[step(pivot)]
/// async fn create_shipment(order: &Order) -> Result<Shipment, StepError> {
///     Ok(Shipment { tracking: format!("trk-{}", order.id) })
/// }
/// // generates `struct create_shipment {}` implementing `Step`
/// // with NAME = "create_shipment", KIND = StepKind::Pivot, Output = Shipment.
/// assert_eq!(<create_shipment as Step>::NAME, "create_shipment");
/// assert_eq!(<create_shipment as Step>::KIND, StepKind::Pivot);
/// ```
pub trait Step: Send + Sync + 'static {
    /// The step's name as written (the function's name).
    const NAME: &'static str;
    /// Compensable, pivot, retriable or readonly.
    const KIND: StepKind;
    /// Retry and timeout options from the attribute.
    const OPTIONS: StepOptions;
    /// Stable hash of the step's name, kind, parameter types and output type
    /// as written; folded into the fingerprint of every workflow calling it.
    const FINGERPRINT: u64;
    /// The step's parameters as an owned tuple (`&Order` becomes `Order`,
    /// `&str` becomes `String`, `&[T]` becomes `Vec<T>`).
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// The `T` of the step's `Result<T, StepError>`.
    type Output: Serialize + DeserializeOwned + Send + 'static;
}

/// How a step is undone: every step has it, through what `#[step]` and
/// `#[compensate]` generate.
///
/// `#[compensate(step)]` supplies it for a compensable step;
/// `#[step(pivot | retriable | readonly)]` supplies it with no compensation.
/// Not implemented by hand: the blanket implementation picks the one that
/// matches the step's kind, so a `#[compensate]` on a pivot step is a clear
/// error instead of two conflicting implementations.
#[diagnostic::on_unimplemented(
    message = "step `{Self}` has no compensation",
    label = "`{Self}` is compensable, so the saga must know how to undo it",
    note = "add `#[compensate({Self})] async fn undo_{Self}(<the step's parameters>, output: <its output type>) -> Result<(), StepError>`",
    note = "or, if it needs no undo, declare it `#[step(pivot)]`, `#[step(retriable)]` or `#[step(readonly)]`"
)]
pub trait Compensate: Step {
    /// The compensation function's name, `None` for steps that need none.
    const COMPENSATION: Option<&'static str>;

    /// Runs the compensation on the step's stored arguments and output.
    /// A decoding failure is a permanent [`StepError`].
    fn compensate(args: RawJson, output: RawJson) -> CompensationFuture;
}

// `do_not_recommend`: a step with no compensation is reported as not
// implementing `Compensate` (with its message), not as the hidden trait.
#[diagnostic::do_not_recommend]
impl<S> Compensate for S
where
    S: StepKindOf + CompensationOf<<S as StepKindOf>::Kind>,
{
    const COMPENSATION: Option<&'static str> = <S as CompensationOf<S::Kind>>::COMPENSATION;

    fn compensate(args: RawJson, output: RawJson) -> CompensationFuture {
        <S as CompensationOf<S::Kind>>::compensate(args, output)
    }
}

/// The step's kind as a type (one of [`kind`]'s markers), so the compensation
/// a step gets can depend on it. Implemented by `#[step]`.
#[doc(hidden)]
pub trait StepKindOf: Step {
    /// `kind::Compensable`, `kind::Pivot`, `kind::Retriable` or `kind::Readonly`.
    type Kind;
}

/// How a step of kind `Kind` is undone: `#[compensate(step)]` implements it
/// with `Kind = kind::Compensable`, `#[step(pivot)]` (and the other kinds with
/// no compensation) with its own kind. The two never conflict, whatever the
/// user writes; [`compensation_allowed`] then says what is wrong.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "step `{Self}` has no compensation",
    label = "`{Self}` is compensable, so the saga must know how to undo it",
    note = "add `#[compensate({Self})] async fn undo_{Self}(<the step's parameters>, output: <its output type>) -> Result<(), StepError>`",
    note = "or, if it needs no undo, declare it `#[step(pivot)]`, `#[step(retriable)]` or `#[step(readonly)]`"
)]
pub trait CompensationOf<Kind>: Step {
    /// The compensation function's name, `None` for steps that need none.
    const COMPENSATION: Option<&'static str>;

    /// Runs the compensation on the step's stored arguments and output.
    fn compensate(args: RawJson, output: RawJson) -> CompensationFuture;
}

/// The step kinds as types, for [`StepKindOf`].
#[doc(hidden)]
pub mod kind {
    /// [`StepKind::Compensable`](super::StepKind::Compensable).
    pub struct Compensable;
    /// [`StepKind::Pivot`](super::StepKind::Pivot).
    pub struct Pivot;
    /// [`StepKind::Retriable`](super::StepKind::Retriable).
    pub struct Retriable;
    /// [`StepKind::Readonly`](super::StepKind::Readonly).
    pub struct Readonly;
}

/// Holds for every step kind but pivot; `S` is the step, for the message.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{S}` is a pivot step: a pivot has no compensation (once it succeeds there is no way back)",
    label = "`{S}` is declared `#[step(pivot)]`",
    note = "remove this `#[compensate]`, or declare `{S}` compensable: `#[step] async fn {S}(..)`"
)]
pub trait NotPivot<S> {}
impl<S> NotPivot<S> for kind::Compensable {}
impl<S> NotPivot<S> for kind::Retriable {}
impl<S> NotPivot<S> for kind::Readonly {}

/// Holds for every step kind but retriable; `S` is the step, for the message.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{S}` is a retriable step: a retriable step has no compensation (it is retried until it succeeds, and only runs after the pivot)",
    label = "`{S}` is declared `#[step(retriable)]`",
    note = "remove this `#[compensate]`, or declare `{S}` compensable: `#[step] async fn {S}(..)`"
)]
pub trait NotRetriable<S> {}
impl<S> NotRetriable<S> for kind::Compensable {}
impl<S> NotRetriable<S> for kind::Pivot {}
impl<S> NotRetriable<S> for kind::Readonly {}

/// Holds for every step kind but readonly; `S` is the step, for the message.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{S}` is a readonly step: a readonly step has no compensation (it changes nothing, so there is nothing to undo)",
    label = "`{S}` is declared `#[step(readonly)]`",
    note = "remove this `#[compensate]`, or declare `{S}` compensable: `#[step] async fn {S}(..)`"
)]
pub trait NotReadonly<S> {}
impl<S> NotReadonly<S> for kind::Compensable {}
impl<S> NotReadonly<S> for kind::Pivot {}
impl<S> NotReadonly<S> for kind::Retriable {}

/// Compile-time check, emitted by `#[compensate(step)]`, that `step` is
/// compensable; otherwise one error naming its kind.
#[doc(hidden)]
pub const fn compensation_allowed<S>()
where
    S: StepKindOf,
    S::Kind: NotPivot<S> + NotRetriable<S> + NotReadonly<S>,
{
}

/// The outcome of the step attempt made by one `resume` call.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// The step succeeded.
    Succeeded {
        /// The step's name.
        step: &'static str,
        /// Its kind.
        kind: StepKind,
        /// For a compensable step, what to push on the compensation stack.
        compensation: Option<CompensationEntry>,
    },
    /// The attempt failed and the policy allows another one after `delay`.
    Retry {
        /// The step's name.
        step: &'static str,
        /// The attempt's error.
        error: StepError,
        /// When to try again.
        delay: Duration,
    },
    /// The step failed for good; the workflow body decides what follows.
    Failed {
        /// The step's name.
        step: &'static str,
        /// The last attempt's error.
        error: StepError,
    },
}
