//! What a workflow declares it accepts from outside, for the typed client
//! API: its signals and the type of its status.
//!
//! ```
//! # use sagaflow::prelude::*;
//! # #[derive(serde::Serialize, serde::Deserialize)]
//! # pub struct Request { id: String }
//! #[derive(serde::Serialize, serde::Deserialize)]
//! pub struct Decision { approved: bool, by: String }
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! pub enum Stage { Waiting, Approved, Declined }
//!
//! #[workflow(signals(approval: Decision), query = Stage)]
//! async fn approve(request: Request) -> Result<bool, WorkflowError> {
//!     sagaflow::set_status(Stage::Waiting);
//!     let decision = sagaflow::signal("approval").await;   // a `Decision`
//!     sagaflow::set_status(if decision.approved { Stage::Approved } else { Stage::Declined });
//!     # let _ = (&request.id, &decision.by);
//!     Ok(decision.approved)
//! }
//!
//! # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
//! let handle = rt.handle(approve, "req-7");
//! handle.signal(approve::approval, Decision { approved: true, by: "Maya".into() }).await?;
//! let stage: Option<Stage> = handle.query().await?;
//! # let _ = stage;
//! # Ok(())
//! # }
//! ```
//!
//! `signals(name: Type, ..)` gives the workflow's unit struct one
//! associated constant per signal, a [`Signal`] (`approve::approval`), which
//! [`Handle::signal`](crate::Handle::signal) takes with a value of the
//! declared type: a misspelled signal, one of another workflow or a value
//! of another type is a compile error at the call. In the body, every
//! `sagaflow::signal("name")` and `signal_timeout` must wait for a declared
//! name, with the declared type (written or left out: the declaration
//! types the wait). `query = Type` implements [`DeclaresQuery`]: every
//! `sagaflow::set_status(..)` in the body must set that type, and
//! [`Handle::query`](crate::Handle::query) returns it.
//!
//! A workflow that declares no signals keeps the untyped string API, which
//! every workflow also keeps for the CLI and dynamic callers:
//! [`Runtime::signal`](crate::Runtime::signal) and
//! [`Runtime::query`](crate::Runtime::query).

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::workflow::Workflow;

/// A signal workflow `W` declares, carrying a `T`: what
/// `#[workflow(signals(approval: Decision))]` generates as the associated
/// constant `place_order::approval`, for
/// [`Handle::signal`](crate::Handle::signal).
pub struct Signal<W, T> {
    name: &'static str,
    // `fn() -> ..`: a signal holds neither, so it is `Send + Sync + Copy` for any.
    types: PhantomData<fn() -> (W, T)>,
}

impl<W, T> Signal<W, T> {
    /// The signal named `name` (what `#[workflow]` writes).
    #[doc(hidden)]
    pub const fn new(name: &'static str) -> Signal<W, T> {
        Signal {
            name,
            types: PhantomData,
        }
    }

    /// The signal's name, as the string API and the instance's record know
    /// it: `"approval"` for `place_order::approval`.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<W, T> Clone for Signal<W, T> {
    fn clone(&self) -> Signal<W, T> {
        *self
    }
}

impl<W, T> Copy for Signal<W, T> {}

impl<W, T> fmt::Debug for Signal<W, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Signal").field(&self.name).finish()
    }
}

/// A signal workflow `W` accepts, with the type of its value: what
/// [`Handle::signal`](crate::Handle::signal) takes. Implemented by
/// [`Signal<W, T>`] for `W`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a signal of workflow `{W}`",
    label = "not declared by `{W}`",
    note = "a workflow's signals are the ones its `#[workflow(signals(name: Type, ..))]` declares, each an associated constant of the workflow: `{W}::name`; send one of those, or declare this one on `{W}`"
)]
pub trait SignalOf<W> {
    /// The type of the signal's value.
    type Value: Serialize;

    /// The signal's name.
    fn name(&self) -> &'static str;
}

impl<W, T: Serialize> SignalOf<W> for Signal<W, T> {
    type Value = T;

    fn name(&self) -> &'static str {
        self.name
    }
}

/// A workflow that declares the type of its status,
/// `#[workflow(query = OrderStatus)]`: every `sagaflow::set_status(..)` in
/// its body sets a `Query`, and [`Handle::query`](crate::Handle::query)
/// returns one.
#[diagnostic::on_unimplemented(
    message = "workflow `{Self}` declares no query type",
    label = "`{Self}` has no `query = ..` in its `#[workflow(..)]`",
    note = "declare the type its body gives `sagaflow::set_status`: `#[workflow(query = Status)]`; or read the status untyped, by id: `rt.query::<T>(id)`"
)]
pub trait DeclaresQuery: Workflow {
    /// The type of the status the workflow sets with
    /// [`sagaflow::set_status`](crate::set_status).
    type Query: Serialize + DeserializeOwned + Send + 'static;
}

/// The workflow of a [`Handle`](crate::Handle) made by name
/// ([`Runtime::start_by_name`](crate::Runtime::start_by_name)): nothing is
/// known of its signals or status at compile time, so it is signalled and
/// queried by name ([`Runtime::signal`](crate::Runtime::signal),
/// [`Runtime::query`](crate::Runtime::query)).
#[derive(Clone, Copy, Debug)]
pub enum Untyped {}
