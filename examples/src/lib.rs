//! The sagaflow examples' workflows, in a library so the tests can snapshot
//! their state machines. The runnable binaries are in `examples/`.

pub mod approval;
pub mod batch;
pub mod coffee;
pub mod fanout;
pub mod fulfilment;
pub mod order;
pub mod report;
pub mod timeline;
pub mod upgrade;
