//! sagaflow: durable, compile-time-checked sagas, as a library.
//!
//! `#[workflow]` rewrites an `async fn` into a persisted state machine; every
//! `#[step]` it calls and the `#[compensate]` paired with it are checked by
//! the compiler; a small tokio runtime runs the machines on any key-value
//! store. A workflow may declare the signals and the status it accepts
//! ([`declared`]), which the client API and its body are then checked
//! against. See the README for a tour.

#![warn(missing_docs)]

// The crate's own steps (`send_signal`) expand to `::sagaflow::` paths, as
// a user's do.
extern crate self as sagaflow;

pub mod clock;
pub mod context;
pub mod declared;
#[cfg(doctest)]
mod doctests;
pub mod durable;
pub mod error;
pub mod join;
pub mod machine;
pub mod migrate;
pub mod queue;
pub mod record;
pub mod runtime;
pub mod schedule;
mod segment;
pub mod step;
pub mod store;
pub mod workflow;

pub use clock::{Clock, SystemClock};
pub use context::{StepContext, cancel_requested, context, heartbeat};
pub use declared::{DeclaresQuery, Signal, SignalOf, Untyped};
pub use durable::{
    child, now, random, send_signal, set_status, signal, signal_timeout, sleep, sleep_until, uuid,
};
pub use error::{Error, StepError, StoreError, WorkflowError};
pub use machine::{MachineDescription, StateMachine, Upgrade};
pub use migrate::{Migrate, Migration};
pub use queue::{Enqueue, Queue, QueueHandle, RateLimit};
pub use runtime::*;
pub use sagaflow_macros::{compensate, migrate, step, workflow};
pub use schedule::{
    CatchUp, Overlap, ScheduleDescription, ScheduleError, ScheduleOptions, ScheduleSpec, Schedules,
};
pub use step::{Compensate, RetryPolicy, Step, StepKind, StepOptions};
pub use store::Store;
#[cfg(feature = "embedded")]
pub use store::embedded::EmbeddedStore;
#[cfg(feature = "etcd")]
pub use store::etcd::EtcdStore;
pub use store::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use store::postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use store::redis::RedisStore;
pub use workflow::Workflow;

/// Runs steps concurrently inside a `#[workflow]` body: the parallel step.
///
/// ```
/// # use sagaflow::prelude::*;
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct Trip { to: String }
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct Booking { flight: String, hotel: String }
/// # #[step(readonly)]
/// # async fn book_flight(trip: &Trip) -> Result<String, StepError> { Ok(trip.to.clone()) }
/// # #[step(readonly)]
/// # async fn book_hotel(trip: &Trip) -> Result<String, StepError> { Ok(trip.to.clone()) }
/// #[workflow]
/// async fn book_trip(trip: Trip) -> Result<Booking, WorkflowError> {
///     let (flight, hotel) = sagaflow::join!(book_flight(&trip), book_hotel(&trip))?;
///     Ok(Booking { flight, hotel })
/// }
/// ```
///
/// Each branch is a step call written without `.await` (two or more of
/// them). The join evaluates to `Result<(A, B, ..), StepError>` holding the
/// steps' outputs in the order written, and is one suspension point of the
/// workflow: one state, `Join{n}`, storing the live variables and one slot
/// per branch.
///
/// - Every unfinished branch runs concurrently, with its own timeout, retry
///   policy and idempotency key `{workflow id}/Join{n}/{branch index}`
///   (plus `/{iteration}` inside a loop).
/// - Each branch's end is persisted as it happens (its slot, its
///   compensation entry, its history events), so after a crash only the
///   unfinished branches run again.
/// - A branch that fails with a retryable error is retried through the
///   record, like any step, after the in-flight branches finished.
/// - If a branch fails for good, the join's value is the `Err` of the
///   first failure in branch order, once every running branch finished (a
///   running step is never abandoned); with `?` the workflow then
///   compensates every completed step, the join's branches included, in
///   reverse completion order.
/// - Branches must be compensable or readonly before the saga's pivot,
///   retriable or readonly after it; a pivot cannot be a branch.
///
/// Outside a `#[workflow]` body this macro is a compile error: the
/// workflow macro is what turns it into a state.
#[macro_export]
macro_rules! join {
    ($($branches:tt)*) => {
        ::std::compile_error!(
            "`sagaflow::join!` only works inside a `#[workflow]` body, which turns it into a state; write `let (a, b) = sagaflow::join!(step_a(..), step_b(..))?;` in a workflow, or call the steps one after another"
        )
    };
}

/// The hash maps of the hot path (instance ids, store keys): foldhash,
/// seeded per process, where std's SipHash costs several times as much.
pub(crate) type FastHashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Everything a workflow author needs: `use sagaflow::prelude::*;`.
pub mod prelude {
    pub use crate::error::{StepError, WorkflowError};
    pub use crate::migrate::{Migrate, Migration};
    pub use crate::queue::{Enqueue, Queue};
    pub use crate::runtime::{Outcome, Runtime};
    pub use crate::step::{RetryPolicy, StepKind};
    #[cfg(feature = "embedded")]
    pub use crate::store::embedded::EmbeddedStore;
    #[cfg(feature = "etcd")]
    pub use crate::store::etcd::EtcdStore;
    pub use crate::store::memory::MemoryStore;
    #[cfg(feature = "postgres")]
    pub use crate::store::postgres::PostgresStore;
    #[cfg(feature = "redis")]
    pub use crate::store::redis::RedisStore;
    pub use crate::workflow::Workflow;
    pub use sagaflow_macros::{compensate, migrate, step, workflow};
}

/// What the macros' generated code uses. Not a public API: no stability.
#[doc(hidden)]
pub mod __private {
    pub use crate::declared::{DeclaresQuery, Signal};
    pub use crate::error::{StepError, WorkflowError};
    pub use crate::join::{JoinEnd, JoinRun, JoinSlots};
    pub use crate::machine::{
        Edge, EdgeLabel, StateInfo, StateMachine, StepInfo, Target, Traced, Upgrade, Variable,
        fingerprint_combine, shape_of,
    };
    pub use crate::migrate::{Migrate, Migration};
    pub use crate::record::RawJson;
    pub use crate::step::{
        Compensate, CompensationFuture, CompensationOf, Step, StepKind, StepKindOf, StepOptions,
        compensation_allowed, kind,
    };
    pub use crate::workflow::{
        Attempt, Driver, Suspension, Timer, Transition, Workflow, complete, decode, segment,
    };
    pub use serde;
    pub use serde_json;
    pub use std::boxed::Box;
    pub use std::option::Option::{self, None, Some};
    pub use std::result::Result::{self, Err, Ok};
    pub use std::time::Duration;
    pub use tokio::join as join_branches;

    /// The payload of an `Option` a workflow body matches `Some(x)` on: how
    /// a state names the type of `x` from the type of the value matched.
    pub trait OptionParts {
        /// `T` of `Option<T>`.
        type Some;
    }

    impl<T> OptionParts for Option<T> {
        type Some = T;
    }

    /// The payloads of a `Result` a workflow body matches `Ok(x)` or
    /// `Err(e)` on.
    pub trait ResultParts {
        /// `T` of `Result<T, E>`.
        type Ok;
        /// `E` of `Result<T, E>`.
        type Err;
    }

    impl<T, E> ResultParts for Result<T, E> {
        type Ok = T;
        type Err = E;
    }

    /// Element `I` of a tuple a workflow body destructures (`let (a, b) = ..`),
    /// for tuples of up to eight elements.
    pub trait TupleElement<const I: usize> {
        /// The element's type.
        type Type;
    }

    macro_rules! tuple_element {
        ($index:literal => $element:ident in ($($all:ident),+)) => {
            impl<$($all),+> TupleElement<$index> for ($($all,)+) {
                type Type = $element;
            }
        };
    }

    tuple_element!(0 => A in (A));
    tuple_element!(0 => A in (A, B));
    tuple_element!(1 => B in (A, B));
    tuple_element!(0 => A in (A, B, C));
    tuple_element!(1 => B in (A, B, C));
    tuple_element!(2 => C in (A, B, C));
    tuple_element!(0 => A in (A, B, C, D));
    tuple_element!(1 => B in (A, B, C, D));
    tuple_element!(2 => C in (A, B, C, D));
    tuple_element!(3 => D in (A, B, C, D));
    tuple_element!(0 => A in (A, B, C, D, E));
    tuple_element!(1 => B in (A, B, C, D, E));
    tuple_element!(2 => C in (A, B, C, D, E));
    tuple_element!(3 => D in (A, B, C, D, E));
    tuple_element!(4 => E in (A, B, C, D, E));
    tuple_element!(0 => A in (A, B, C, D, E, F));
    tuple_element!(1 => B in (A, B, C, D, E, F));
    tuple_element!(2 => C in (A, B, C, D, E, F));
    tuple_element!(3 => D in (A, B, C, D, E, F));
    tuple_element!(4 => E in (A, B, C, D, E, F));
    tuple_element!(5 => F in (A, B, C, D, E, F));
    tuple_element!(0 => A in (A, B, C, D, E, F, G));
    tuple_element!(1 => B in (A, B, C, D, E, F, G));
    tuple_element!(2 => C in (A, B, C, D, E, F, G));
    tuple_element!(3 => D in (A, B, C, D, E, F, G));
    tuple_element!(4 => E in (A, B, C, D, E, F, G));
    tuple_element!(5 => F in (A, B, C, D, E, F, G));
    tuple_element!(6 => G in (A, B, C, D, E, F, G));
    tuple_element!(0 => A in (A, B, C, D, E, F, G, H));
    tuple_element!(1 => B in (A, B, C, D, E, F, G, H));
    tuple_element!(2 => C in (A, B, C, D, E, F, G, H));
    tuple_element!(3 => D in (A, B, C, D, E, F, G, H));
    tuple_element!(4 => E in (A, B, C, D, E, F, G, H));
    tuple_element!(5 => F in (A, B, C, D, E, F, G, H));
    tuple_element!(6 => G in (A, B, C, D, E, F, G, H));
    tuple_element!(7 => H in (A, B, C, D, E, F, G, H));

    /// A step argument computed in the workflow body (a call, a macro, a
    /// method other than a copy), turned into the step's owned parameter
    /// type `T` so it can be stored with the state before the step runs:
    /// the value itself, or a copy of what a reference points to.
    #[diagnostic::on_unimplemented(
        message = "this step argument is `{Self}`, which is not the step's parameter type `{T}`",
        label = "expected `{T}` (or a reference to it)",
        note = "a computed argument is stored with the state before the step runs, as the parameter's owned type; pass a value of that type, or a reference to a `Clone` one"
    )]
    pub trait Hoist<T> {
        /// The stored value.
        fn hoist(self) -> T;
    }

    impl<T> Hoist<T> for T {
        fn hoist(self) -> T {
            self
        }
    }

    impl<T: Clone> Hoist<T> for &T {
        fn hoist(self) -> T {
            self.clone()
        }
    }

    impl Hoist<String> for &str {
        fn hoist(self) -> String {
            self.to_owned()
        }
    }

    impl<T: Clone> Hoist<Vec<T>> for &[T] {
        fn hoist(self) -> Vec<T> {
            self.to_vec()
        }
    }

    impl Hoist<std::path::PathBuf> for &std::path::Path {
        fn hoist(self) -> std::path::PathBuf {
            self.to_path_buf()
        }
    }

    /// The owned type of parameter `I` of a step whose owned argument tuple
    /// is `A` (`<step as Step>::Args`): what a workflow's state stores for
    /// a computed argument of the step.
    pub type StepArg<A, const I: usize> = <A as TupleElement<I>>::Type;

    /// [`Hoist::hoist`] as a function, so the stored type drives the choice.
    pub fn hoist<T, A: Hoist<T>>(argument: A) -> T {
        argument.hoist()
    }

    /// Implemented by `#[step]` with the step's owned parameter tuple and
    /// output, for any `Compensation`, so `#[compensate]` can check its
    /// signature against them; `Compensation` is a type named like the
    /// compensation function, only there to name it in the error.
    #[diagnostic::on_unimplemented(
        message = "compensation `{Compensation}` does not match step `{Self}`: it takes `{Args}` then `{Output}`",
        label = "expected `{Self}`'s parameters, then its output",
        note = "a compensation takes the step's parameters in order, then the step's output by value: \
                with `#[step] async fn {Self}(a: &A, b: B) -> Result<O, StepError>`, write \
                `#[compensate({Self})] async fn {Compensation}(a: &A, b: B, output: O) -> Result<(), StepError>`; \
                rustc's \"but trait `StepSignature<Args, Output, ..>` is implemented for it\" below lists \
                `{Self}`'s parameters (owned) and its output"
    )]
    pub trait StepSignature<Args, Output, Compensation> {}

    /// Compile-time check that compensation `C`'s owned parameters `A` and
    /// output `O` are those of step `S`.
    pub const fn compensation_matches<S: StepSignature<A, O, C>, A, O, C>() {}

    /// Implemented by every type a workflow's state can store: a local or
    /// parameter held across `Across` (a step, or a type named like the
    /// timer, signal or child wait) is stored with the state there.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is held across `{Across}`, and a workflow's state is stored there: it must be `Serialize` and `Deserialize`",
        label = "held across `{Across}`",
        note = "derive them (`#[derive(Serialize, Deserialize)]`); for a live handle (a connection, a client, a file) \
                make it in the step that uses it, or keep only what rebuilds it (an id, an address) across `{Across}`"
    )]
    pub trait Storable<Across> {}

    impl<T: serde::Serialize + serde::de::DeserializeOwned, Across> Storable<Across> for T {}

    /// Compile-time check that `T`, held across `Across`, can be stored.
    pub const fn storable<T: Storable<Across>, Across>() {}

    /// Implemented by the type a signal wait takes (written on the `let` or
    /// as `signal::<T>`) when it is the type `Declared` that the workflow's
    /// `signals(..)` declares for the signal: only that type itself.
    #[diagnostic::on_unimplemented(
        message = "this signal wait takes `{Self}`, but the workflow declares the signal with `{Declared}`",
        label = "declared as `{Declared}` in `#[workflow(signals(..))]`",
        note = "senders of a declared signal are checked against its declared type, so the workflow receives that type; \
                write it on the wait (`let value: {Declared} = sagaflow::signal(\"name\").await;`, \
                or `Option<{Declared}>` with `signal_timeout`), or leave the type out, or change the declaration"
    )]
    pub trait DeclaredSignal<Declared> {}

    impl<T> DeclaredSignal<T> for T {}

    /// Compile-time check that a wait for a declared signal takes the
    /// declared type.
    pub const fn declared_signal<Written: DeclaredSignal<Declared>, Declared>() {}

    /// Implemented by the types a declared signal's value may have: what is
    /// stored in the record until the workflow takes it.
    #[diagnostic::on_unimplemented(
        message = "a signal carries `{Self}`, which must be `Serialize` and `Deserialize`",
        label = "declared here",
        note = "a signal's value waits in the instance's record, as JSON, until the workflow takes it; derive them: `#[derive(Serialize, Deserialize)]`"
    )]
    pub trait SignalValue {}

    impl<T: serde::Serialize + serde::de::DeserializeOwned> SignalValue for T {}

    /// Compile-time check that `T`, the value of a declared signal, can be
    /// stored.
    pub const fn signal_value<T: SignalValue>() {}

    /// Implemented by what `sagaflow::set_status` may be given in a
    /// workflow that declares `query = Q`: a `Q`, or a reference to one.
    #[diagnostic::on_unimplemented(
        message = "the workflow's status is `{Q}` (its `query = ..`), not `{Self}`",
        label = "expected `{Q}`",
        note = "`handle.query()` returns the type `#[workflow(query = {Q})]` declares, so every `sagaflow::set_status(..)` \
                in the body sets a `{Q}` (or a `&{Q}`); set one, or change the declaration"
    )]
    pub trait StatusOf<Q> {}

    impl<Q> StatusOf<Q> for Q {}

    impl<Q> StatusOf<Q> for &Q {}

    /// `sagaflow::set_status` in a workflow that declares `query = Q`: what
    /// `#[workflow]` rewrites the call to, so it sets a `Q`.
    pub fn set_status<Q, V: StatusOf<Q> + serde::Serialize>(status: V) {
        crate::durable::set_status(status);
    }

    /// Implemented by the type a user's migration takes for the state enum
    /// `Old` it is given: only that enum itself.
    #[diagnostic::on_unimplemented(
        message = "a migration's parameter must be the state enum of the version it migrates from: `{Old}`",
        label = "this is `{Self}`",
        note = "write `old: {Old}` (the `<Name>State` enum `#[workflow]` generated for the version named in `from = ..`)"
    )]
    pub trait MigrationParam<Old> {
        /// `old` as this type.
        fn from_old(old: Old) -> Self;
    }

    impl<T> MigrationParam<T> for T {
        fn from_old(old: T) -> T {
            old
        }
    }

    /// `old` as the type `P` the user's migration takes (the diagnostic
    /// lives on [`MigrationParam`]).
    pub fn migration_param<P: MigrationParam<O>, O>(old: O) -> P {
        P::from_old(old)
    }

    /// What the user's migration returned, as the migration's result: only
    /// `Migration` of the new version's state enum (the diagnostic lives on
    /// [`MigrationReturn`]).
    pub fn migration_return<A: MigrationReturn<B>, B>(returned: A) -> B {
        returned.into_return()
    }

    /// Converts what the user's migration returns to the migration's
    /// result: only `Migration` of the new version's state enum converts.
    #[diagnostic::on_unimplemented(
        message = "a migration must return `{T}`",
        label = "this is `{Self}`",
        note = "return `Migration<..>` of the `<Name>State` enum `#[workflow]` generated for the version named in `to = ..`"
    )]
    pub trait MigrationReturn<T> {
        /// The value, as the migration's result.
        fn into_return(self) -> T;
    }

    impl<T> MigrationReturn<T> for T {
        fn into_return(self) -> T {
            self
        }
    }

    /// Compile-time check that a compensable step called in a workflow has a
    /// compensation (the diagnostic lives on [`Compensate`]).
    pub const fn require_compensation<S: Compensate>() {}

    /// The input of child workflow `name`, encoded as the parent reaches
    /// the child: what the parent's state stores. The macro passes
    /// `I = <W as Workflow>::Input` and `name = <W as Workflow>::NAME`, both
    /// spanned on the child's name like every other use of `W`: a name that
    /// is not a workflow is then one error there (the diagnostic lives on
    /// [`Workflow`]), and an input of another type a mismatch on the input.
    pub fn child_input<I: serde::Serialize>(name: &str, input: I) -> ChildInput {
        ChildInput(serde_json::to_value(&input).map_err(|error| {
            format!("the input of child workflow `{name}` does not serialize: {error}")
        }))
    }

    /// A child workflow's input as the parent's state stores it: the JSON the
    /// typed input serializes to, so the stored state reads the same as if it
    /// held the typed value. An input that did not serialize makes the state
    /// fail to serialize with that error, so it is never committed.
    #[derive(Clone, Debug)]
    pub struct ChildInput(Result<serde_json::Value, String>);

    impl serde::Serialize for ChildInput {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match &self.0 {
                Ok(value) => value.serialize(serializer),
                Err(error) => Err(<S::Error as serde::ser::Error>::custom(error)),
            }
        }
    }

    impl<'de> serde::Deserialize<'de> for ChildInput {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            <serde_json::Value as serde::Deserialize>::deserialize(deserializer)
                .map(|value| ChildInput(Ok(value)))
        }
    }

    /// A child's stored input as JSON, for the runtime that starts the
    /// child. An input that did not serialize gives `null`: the state that
    /// holds it does not serialize either, so it is never committed.
    pub fn child_json(input: &ChildInput) -> serde_json::Value {
        input.0.clone().unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::__private::{ChildInput, child_input, child_json};

    #[test]
    fn a_child_input_is_stored_as_the_json_of_the_typed_input() {
        let input = child_input("ship_order", (7_u32, "express"));
        assert_eq!(
            serde_json::to_value(&input).expect("serializes"),
            serde_json::json!([7, "express"])
        );
        assert_eq!(child_json(&input), serde_json::json!([7, "express"]));
        let stored: ChildInput =
            serde_json::from_value(serde_json::json!([7, "express"])).expect("deserializes");
        assert_eq!(child_json(&stored), serde_json::json!([7, "express"]));
    }

    #[test]
    fn an_input_that_does_not_serialize_makes_the_state_fail_to_serialize() {
        // A map with tuple keys has no JSON form.
        let input = child_input("ship_order", BTreeMap::from([((1, 2), 3)]));
        let error = serde_json::to_value(&input).expect_err("the state must not serialize");
        assert!(
            error
                .to_string()
                .contains("the input of child workflow `ship_order` does not serialize"),
            "{error}"
        );
        assert_eq!(child_json(&input), serde_json::Value::Null);
    }
}
