//! The README and the guide's chapters as doctests, so `cargo test --doc`
//! compiles (and, unless marked `no_run`, runs) every example in them.
//! Only built by rustdoc's doctest pass (`#[cfg(doctest)]` in `lib.rs`).
//!
//! `docs/cli.md` is left out while the operator tool moves to its own crate;
//! `docs/testing.md` is a doctest of `sagaflow-testkit`, whose API it shows.

#[doc = include_str!("../../README.md")]
pub struct Readme;

#[doc = include_str!("../../docs/README.md")]
pub struct Guide;

#[doc = include_str!("../../docs/generated-machines.md")]
pub struct GeneratedMachines;

#[doc = include_str!("../../docs/compile-errors.md")]
pub struct CompileErrors;

#[doc = include_str!("../../docs/timers-signals.md")]
pub struct TimersSignals;

#[doc = include_str!("../../docs/join.md")]
pub struct Join;

#[doc = include_str!("../../docs/child-workflows.md")]
pub struct ChildWorkflows;

#[doc = include_str!("../../docs/how-it-runs.md")]
pub struct HowItRuns;

#[doc = include_str!("../../docs/versions.md")]
pub struct Versions;

#[doc = include_str!("../../docs/many-processes.md")]
pub struct ManyProcesses;

#[doc = include_str!("../../docs/queues.md")]
pub struct Queues;

#[doc = include_str!("../../docs/stores.md")]
pub struct Stores;

#[doc = include_str!("../../docs/schedules.md")]
pub struct Schedules;

#[doc = include_str!("../../docs/benchmarks.md")]
pub struct Benchmarks;
