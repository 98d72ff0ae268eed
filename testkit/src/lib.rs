//! Testing your own sagaflow workflows: what Temporal's
//! `TestWorkflowEnvironment` gives a Temporal user, on sagaflow's public API.
//!
//! - [`TestEnv`]: a [`Runtime`](sagaflow::Runtime) on a
//!   [`MemoryStore`](sagaflow::MemoryStore) with your workflows registered,
//!   and [`TestEnv::run`] to start an instance and wait for its outcome
//!   within a time limit.
//! - Time: under `#[tokio::test(start_paused = true)]` the runtime's default
//!   clock is paused with tokio's, so retries with backoff, durable timers,
//!   signal timeouts and lease expiry pass at once and in a deterministic
//!   order (see below). [`ManualClock`] is the other way: time moves only
//!   when the test says.
//! - [`Journal`]: a log of side effects that steps and compensations append
//!   to, kept per instance, to assert what ran and in which order.
//! - [`assert_compensation_order`]: which compensations an instance ran, in
//!   which order, read from its history.
//! - [`FaultyStore`]: a store that fails the way real backends do (errors,
//!   lost answers, spurious conflicts, latency), seeded so a failing run
//!   replays.
//!
//! # Paused time
//!
//! Add tokio's `test-util` feature to your dev-dependencies and write
//! `#[tokio::test(start_paused = true)]`:
//!
//! ```toml
//! [dev-dependencies]
//! sagaflow-testkit = "0.1"
//! tokio = { version = "1", features = ["macros", "rt", "test-util"] }
//! ```
//!
//! The runtime's clock, [`SystemClock`](sagaflow::SystemClock), follows
//! tokio's: while time is paused, tokio moves it forward to the next timer
//! whenever every task is idle. A retry due in 30 s, a `sagaflow::sleep` of
//! a day or a `signal_timeout` of a week is reached at once, with no real
//! waiting, and the test sees the same order of events every run. Nothing
//! else is needed: no clock of your own, no shortened retry policies.
//!
//! What paused time does not cover: a step that does real I/O (a socket, a
//! file, a child process) lets tokio's clock jump ahead while it waits, so
//! its `timeout = ".."` may fire early. Keep such steps out of paused tests,
//! or use a [`ManualClock`] on real time.
//!
//! # Example
//!
//! A saga whose shipment fails after the payment: the payment is refunded,
//! then the inventory released, and the charge's retries (1 s, then 2 s of
//! backoff) take no real time.
//!
//! ```
//! use std::sync::LazyLock;
//!
//! use sagaflow::prelude::*;
//! use sagaflow_testkit::{Journal, TestEnv, assert_compensation_order};
//!
//! /// What the steps did, per instance.
//! static EFFECTS: LazyLock<Journal> = LazyLock::new(Journal::new);
//!
//! #[step]
//! async fn reserve_inventory(sku: &str) -> Result<u32, StepError> {
//!     EFFECTS.record(format!("reserve {sku}"));
//!     Ok(7)
//! }
//!
//! #[compensate(reserve_inventory)]
//! async fn release_inventory(sku: &str, hold: u32) -> Result<(), StepError> {
//!     EFFECTS.record(format!("release {sku} hold {hold}"));
//!     Ok(())
//! }
//!
//! #[step(retry(max_attempts = 3, initial = "1s", backoff = 2.0))]
//! async fn charge_payment(sku: &str) -> Result<String, StepError> {
//!     let attempt = sagaflow::context().map_or(1, |ctx| ctx.attempt);
//!     if attempt < 3 {
//!         return Err(StepError::retryable("the card network is busy"));
//!     }
//!     EFFECTS.record(format!("charge {sku}"));
//!     Ok("ch-1".to_owned())
//! }
//!
//! #[compensate(charge_payment)]
//! async fn refund_payment(sku: &str, charge: String) -> Result<(), StepError> {
//!     EFFECTS.record(format!("refund {charge}"));
//!     Ok(())
//! }
//!
//! #[step(pivot)]
//! async fn ship(sku: &str) -> Result<(), StepError> {
//!     Err(StepError::permanent(format!("no carrier takes {sku}")))
//! }
//!
//! #[workflow]
//! async fn place_order(sku: String) -> Result<(), WorkflowError> {
//!     reserve_inventory(&sku).await?;
//!     charge_payment(&sku).await?;
//!     ship(&sku).await?;
//!     Ok(())
//! }
//!
//! # /*
//! #[tokio::test(start_paused = true)]
//! # */
//! async fn a_failed_shipment_refunds_then_releases() {
//!     let env = TestEnv::builder().register(place_order).build().await;
//!     let started = tokio::time::Instant::now();
//!
//!     let outcome = env.run(place_order, "order-1", "mug".to_owned()).await;
//!
//!     assert!(matches!(outcome, Outcome::Compensated(_)), "{outcome:?}");
//!     assert_compensation_order(&env, place_order, "order-1", &["refund_payment", "release_inventory"])
//!         .await;
//!     assert_eq!(
//!         EFFECTS.effects_of("order-1"),
//!         ["reserve mug", "charge mug", "refund ch-1", "release mug hold 7"]
//!     );
//!     // The 3 s of backoff passed on tokio's paused clock.
//!     assert!(started.elapsed() >= std::time::Duration::from_secs(3));
//! }
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() { a_failed_shipment_refunds_then_releases().await }
//! ```
//!
//! (In a doc example `#[tokio::test]` functions do not run; this one runs
//! under `#[tokio::main(flavor = "current_thread", start_paused = true)]`,
//! which is what `#[tokio::test(start_paused = true)]` expands to.)

#![warn(missing_docs)]

mod clock;
mod compensation;
mod env;
mod faults;
mod journal;

pub use clock::ManualClock;
pub use compensation::assert_compensation_order;
pub use env::{TestEnv, TestEnvBuilder};
pub use faults::{Faults, FaultyStore, Injected};
pub use journal::{Journal, JournalEntry};

/// The guide's chapter on testing, compiled and run as a doctest here,
/// where its examples' crate is.
#[cfg(doctest)]
#[doc = include_str!("../../docs/testing.md")]
struct TestingGuide;
