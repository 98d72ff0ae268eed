//! [`Admin`]: what an operator asks of a store, as a library: list, show,
//! cancel, retry, and how many instances sit in each state of a machine.
//!
//! The files point one way: `types` (what the requests return, and
//! [`AdminError`]) and `registry` (the workflows the tool knows) are leaves;
//! `records` reads stored records; `view` holds [`Admin`] with listing and
//! showing; `machines` (diagrams, state counts) and `repair` (cancel, retry,
//! signal, versions, upgrade) and `schedules` add their methods to it.

mod machines;
mod records;
mod registry;
mod repair;
mod schedules;
mod types;
mod view;

pub(crate) use records::now_ms;
pub use registry::Registry;
pub use types::{
    AdminError, CancelOutcome, InstanceDetail, InstanceList, InstanceSummary, KnownMachine,
    ListQuery, MachineSource, RetryOutcome, StateCounts, StoredVariable, TimelineEntry,
    Undecodable,
};
pub use view::Admin;
