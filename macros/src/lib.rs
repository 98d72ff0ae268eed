//! The attribute macros of sagaflow: `#[step]`, `#[compensate]` and
//! `#[workflow]`. Use them through the `sagaflow` crate, which re-exports
//! them; generated code reaches the runtime through `::sagaflow::__private`.
//!
//! Each entry point is a thin wrapper around an `expand` function on
//! `proc_macro2` tokens, so every stage is unit- and snapshot-testable.

mod compensate;
mod migrate;
mod signature;
mod step;
mod workflow;

use proc_macro::TokenStream;

/// Declares a saga step: `#[step]` (compensable), `#[step(pivot)]`,
/// `#[step(retriable)]` or `#[step(readonly)]`, with options
/// `retry(max_attempts = 5, initial = "1s", backoff = 2.0, max_interval = "100s")`
/// and `timeout = "30s"`.
///
/// The function stays callable; a same-named struct implementing
/// `sagaflow::Step` is added beside it.
#[proc_macro_attribute]
pub fn step(args: TokenStream, item: TokenStream) -> TokenStream {
    step::expand(args.into(), item.into()).into()
}

/// Declares the compensation of a compensable step: `#[compensate(step_name)]`.
/// Its parameters are the step's parameters followed by the step's output.
#[proc_macro_attribute]
pub fn compensate(args: TokenStream, item: TokenStream) -> TokenStream {
    compensate::expand(args.into(), item.into()).into()
}

/// Turns an `async fn` calling steps into a persisted state machine.
///
/// Options: `name = ".."` and `version = N` (versions of one workflow),
/// `upgrade = "auto"`, and what the workflow accepts from outside, typed:
/// `signals(approval: Decision, ..)` (each an associated constant
/// `place_order::approval` for `handle.signal(..)`; every signal wait in
/// the body must name one, with its type) and `query = Status` (the type
/// every `sagaflow::set_status` sets and `handle.query()` returns).
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    workflow::expand(args.into(), item.into()).into()
}

/// Declares a typed migration between two versions of a workflow:
/// `#[migrate(from = v1::place_order, to = place_order)]` on a `fn` from the
/// old version's state enum to `Migration<NewState>`.
#[proc_macro_attribute]
pub fn migrate(args: TokenStream, item: TokenStream) -> TokenStream {
    migrate::expand(args.into(), item.into()).into()
}
