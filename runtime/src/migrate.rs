//! Typed migrations between versions of a workflow: `#[migrate]`.
//!
//! ```
//! # use sagaflow::prelude::*;
//! # #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! # pub struct Order { id: String }
//! # #[step(readonly)]
//! # pub async fn reserve(order: &Order) -> Result<u32, StepError> { Ok(order.id.len() as u32) }
//! # #[step(readonly)]
//! # pub async fn charge(order: &Order) -> Result<u32, StepError> { Ok(order.id.len() as u32) }
//! # mod v1 {
//! #     use super::*;
//! #     #[workflow(name = "place_order", version = 1)]
//! #     pub async fn place_order(order: Order) -> Result<u32, WorkflowError> {
//! #         let reservation = reserve(&order).await?;
//! #         let approved: bool = sagaflow::signal("approval").await;
//! #         if !approved { return Err(WorkflowError::new("not approved")); }
//! #         let payment = charge(&order).await?;
//! #         Ok(reservation + payment)
//! #     }
//! # }
//! # #[workflow(name = "place_order", version = 2)]
//! # pub async fn place_order(order: Order) -> Result<u32, WorkflowError> {
//! #     let reservation = reserve(&order).await?;
//! #     let approved: bool = sagaflow::signal("approval").await;
//! #     if !approved { return Err(WorkflowError::new("not approved")); }
//! #     let payment = charge(&order).await?;
//! #     // New in v2: a receipt is sent.
//! #     let sent = charge(&order).await?;
//! #     Ok(reservation + payment + sent)
//! # }
//! #[migrate(from = v1::place_order, to = place_order)]
//! fn approval_moves_to_v2(old: v1::PlaceOrderState) -> Migration<PlaceOrderState> {
//!     match old {
//!         v1::PlaceOrderState::Start { order } => Migration::To(PlaceOrderState::Start { order }),
//!         v1::PlaceOrderState::Reserve1 { order } => {
//!             Migration::To(PlaceOrderState::Reserve1 { order })
//!         }
//!         v1::PlaceOrderState::Signal2 { order, reservation } => {
//!             Migration::To(PlaceOrderState::Signal2 { order, reservation })
//!         }
//!         v1::PlaceOrderState::Charge3 { .. } => Migration::Decline("already charging".into()),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sagaflow::Error> {
//! # let store = MemoryStore::new();
//! let rt = Runtime::builder()
//!     .store(store)
//!     .register(v1::place_order)
//!     .register(place_order)
//!     .migrate(approval_moves_to_v2)
//!     .build()
//!     .await?;
//! # rt.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The function takes the generated state enum of the old version and
//! returns one of the new version's, so leaving a state of the old version
//! unmapped is a compile error (`match` is exhaustive), as is naming a
//! variable the new state does not store.
//!
//! A state keeps its wait: mapped to a state of the same name that waits
//! for the same thing (a signal, a timer, a child), the instance keeps its
//! wake-up time, awaited signal or child; mapped to another state, it
//! enters that state anew (a step runs at once, a timer starts from the
//! migration's time). A timer state's variant carries the timer itself as
//! `__timer`: move it across as it is. A migration may not move an instance
//! waiting for a child workflow to another state, nor into a child's state.
//!
//! The runtime applies a migration to an instance of the old version's
//! fingerprint when it next claims it (or when an operator runs
//! [`Runtime::upgrade`](crate::Runtime::upgrade)): in the same
//! compare-and-swap it writes the new state, the new fingerprint and
//! version, and a `migrated` history event. A crash before that write
//! leaves the instance untouched; after it, migrated. A migration that
//! declines, panics, or maps an instance whose compensation stack the new
//! version cannot undo leaves the record as it is: the instance finishes on
//! the old version if it is registered, and is reported otherwise.

use serde::{Deserialize, Serialize};

use crate::machine::StateMachine;
use crate::workflow::Workflow;

/// What a migration makes of one instance's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Migration<S> {
    /// Continue on the new version at this state.
    To(S),
    /// Leave the instance on its version, untouched, for this reason.
    Decline(String),
}

/// A migration from one version of a workflow to another: implemented by
/// `#[migrate(from = old, to = new)]` on the unit struct it makes of the
/// function, and registered with
/// [`RuntimeBuilder::migrate`](crate::RuntimeBuilder::migrate).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a migration",
    label = "not a `#[migrate]` function",
    note = "a migration is a `fn` with `#[migrate(from = v1::my_workflow, to = my_workflow)]` taking the old \
            version's state enum and returning `Migration<NewState>`; pass its name"
)]
pub trait Migrate: Send + Sync + 'static {
    /// The version it migrates from.
    type From: Workflow;
    /// The version it migrates to.
    type To: Workflow;
    /// The function's name.
    const NAME: &'static str;

    /// The machine of the version it migrates from.
    fn old_machine(&self) -> &'static StateMachine;

    /// The machine of the version it migrates to.
    fn new_machine(&self) -> &'static StateMachine;

    /// Maps the old version's state to the new version's (the user's
    /// function).
    fn migrate(old: <Self::From as Workflow>::State) -> Migration<<Self::To as Workflow>::State>;
}
