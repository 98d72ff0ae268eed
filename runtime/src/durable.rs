//! What a workflow body may call besides steps: durable timers
//! ([`sleep`], [`sleep_until`]), signals ([`signal`], [`signal_timeout`]),
//! child workflows ([`child`]),
//! a status for queries ([`set_status`]), and deterministic stand-ins for
//! the clock and random numbers ([`now`], [`uuid`], [`random`]).
//!
//! # In a workflow body
//!
//! `#[workflow]` recognises `sagaflow::sleep(..).await`,
//! `sagaflow::sleep_until(..).await`, `sagaflow::signal(..).await` and
//! `sagaflow::signal_timeout(..).await` (written with the `sagaflow::`
//! path) as **suspension points**, like step calls: each one is a state of
//! the machine (`Sleep2`, `Signal3`, ...). Entering one commits the state
//! with the wake-up time (the record's `next_run_at`, phase `Waiting`, a
//! due hint) or the signal it waits for (`awaiting_signal`), and releases
//! the instance's lease: a sleeping or waiting instance holds no task and
//! no worker, and survives restarts. Whichever runtime's poller finds it
//! due (the time passed, the signal arrived) runs the code after it.
//!
//! ```
//! # use std::time::Duration;
//! # use sagaflow::prelude::*;
//! # #[derive(serde::Serialize, serde::Deserialize)]
//! # pub struct Request { id: String }
//! # #[derive(serde::Serialize, serde::Deserialize)]
//! # pub struct Decision { approved: bool }
//! # #[step(readonly)]
//! # async fn notify_approver(request: &Request) -> Result<(), StepError> { let _ = &request.id; Ok(()) }
//! #[workflow]
//! async fn approve(request: Request) -> Result<Decision, WorkflowError> {
//!     notify_approver(&request).await?;
//!     sagaflow::set_status("waiting for approval");
//!     let answer: Option<bool> =
//!         sagaflow::signal_timeout("approval", Duration::from_secs(3600)).await;
//!     match answer {
//!         Some(true) => Ok(Decision { approved: true }),
//!         _ => Err(WorkflowError::new("not approved in time")),
//!     }
//! }
//! ```
//!
//! [`now`], [`uuid`], [`random`] and [`set_status`] are plain calls. In the
//! code between suspension points (which may run again after a crash)
//! their values are fixed: `now()` is the time the instance's last
//! transition was committed, and `uuid()` / `random()` derive from the
//! instance id, the state whose code runs, the number of committed
//! transitions and the call's position, so a re-run sees the same values.
//!
//! Reading the clock, random numbers or the environment any other way
//! (`SystemTime::now()`, `rand`, `Uuid::new_v4()`, the order of a
//! `HashMap`) is safe too: a step's arguments are computed before its
//! state is committed and stored with it, so every attempt of a step, in
//! every process, gets the same values, and a branch taken on such a value
//! is committed before the step it chose runs. `now()`, `uuid()` and
//! `random()` add that the code between steps sees the same value each
//! time it runs, which makes a run easy to reason about and to test.
//!
//! # Elsewhere
//!
//! Outside a workflow body (in a step, in tests, in `main`) `sleep` and
//! `sleep_until` are tokio sleeps, `now()` reads the system clock,
//! `uuid()` and `random()` return fresh (not cryptographic) values,
//! `set_status` does nothing, `signal` never completes and
//! `signal_timeout` returns `None` after its timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, StepError};
use crate::segment::with_segment;
use crate::workflow::Workflow;

/// Waits for `duration`: a durable timer in a workflow body.
///
/// In a workflow body, `sagaflow::sleep(d).await` is its own state: the
/// instance is committed `Waiting` until `d` after it entered the sleep,
/// holds no lease or task meanwhile, and wakes in any runtime on the store,
/// even after a restart. Elsewhere it is `tokio::time::sleep`.
///
/// ```
/// # use std::time::Duration;
/// # use sagaflow::prelude::*;
/// # #[workflow]
/// # async fn example(n: u64) -> Result<(), WorkflowError> {
/// sagaflow::sleep(Duration::from_secs(24 * 3600)).await;
/// # let _ = n;
/// # Ok(())
/// # }
/// ```
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Waits until wall-clock time `time`: a durable timer in a workflow body
/// (see [`sleep`]); at once if `time` has passed. Elsewhere, a tokio sleep
/// for the time left.
///
/// ```
/// # use std::time::Duration;
/// # use sagaflow::prelude::*;
/// # #[workflow]
/// # async fn example(n: u64) -> Result<(), WorkflowError> {
/// let due = sagaflow::now() + Duration::from_secs(3600);
/// sagaflow::sleep_until(due).await;
/// # let _ = n;
/// # Ok(())
/// # }
/// ```
pub async fn sleep_until(time: SystemTime) {
    let left = time
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    tokio::time::sleep(left).await;
}

/// Waits for the next signal named `name` sent to this instance with
/// [`Runtime::signal`](crate::Runtime::signal), and returns its value.
///
/// Write the name as a string literal and the value's type on the `let`
/// (or as `signal::<T>`): `let approved: bool = sagaflow::signal("approval").await;`.
/// In a workflow that declares its signals
/// (`#[workflow(signals(approval: Decision))]`, see [`crate::declared`]),
/// the name must be a declared one and the type its declared type, which
/// may then be left out.
/// Signals sent before the workflow waits are kept, per name, in the order
/// they were recorded; each is consumed by exactly one wait, in the same
/// write as the transition that consumes it. A value that does not decode
/// as `T` fails the workflow (which compensates).
///
/// Outside a workflow body there is no inbox: the future never completes.
pub async fn signal<T: DeserializeOwned>(name: &str) -> T {
    let _ = name;
    std::future::pending().await
}

/// Like [`signal`], but gives up after `timeout`: `Some(value)` if the
/// signal arrived first, `None` once `timeout` has passed since the wait
/// began (the approval-or-timeout pattern).
///
/// ```
/// # use std::time::Duration;
/// # use sagaflow::prelude::*;
/// # #[workflow]
/// # async fn example(n: u64) -> Result<(), WorkflowError> {
/// let approved: Option<bool> =
///     sagaflow::signal_timeout("approval", Duration::from_secs(3600)).await;
/// # let _ = (n, approved);
/// # Ok(())
/// # }
/// ```
///
/// Outside a workflow body: `None` after `timeout`.
pub async fn signal_timeout<T: DeserializeOwned>(name: &str, timeout: Duration) -> Option<T> {
    let _ = name;
    tokio::time::sleep(timeout).await;
    None
}

/// Runs another `#[workflow]` as a child of this one and waits for its end:
/// `Ok(output)` when the child completed, `Err` when it was compensated or
/// failed (the error names the child's id and its failure).
///
/// ```
/// # use sagaflow::prelude::*;
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// # pub struct Order { id: String }
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct Receipt { payment: u64, shipment: String }
/// # #[step(retriable)]
/// # async fn charge_payment(order: &Order) -> Result<u64, StepError> { Ok(order.id.len() as u64) }
/// # #[workflow]
/// # async fn ship_order(order: Order) -> Result<String, WorkflowError> { Ok(order.id) }
/// #[workflow]
/// async fn fulfil_order(order: Order) -> Result<Receipt, WorkflowError> {
///     let payment = charge_payment(&order).await?;
///     let shipment = sagaflow::child(ship_order, order.clone()).await?;
///     Ok(Receipt { payment, shipment })
/// }
/// ```
///
/// In a workflow body (written with the `sagaflow::` path) it is a
/// suspension point, a state of its own (`ShipOrder2`): the child is an
/// instance with its own record and id, `{parent id}/{state}` (plus
/// `/{n}`, the parent's committed transitions, inside a loop), started
/// once however often the parent's code runs again. The parent holds no
/// lease or task while it waits; the child's end wakes it. The child must
/// be registered on the runtime too ([`RuntimeBuilder::build`] checks).
///
/// A completed child with compensable steps goes on the parent's
/// compensation stack: if the parent rolls back, the child runs its own
/// compensations (in reverse order) before the parent undoes the steps it
/// completed before the child. A child that passed its pivot cannot be
/// undone: the parent passes its point of no return with it.
///
/// Outside a workflow body there is no parent to wait: it returns an error
/// at once (start a workflow there with [`Runtime::start`]).
///
/// [`RuntimeBuilder::build`]: crate::RuntimeBuilder::build
/// [`Runtime::start`]: crate::Runtime::start
pub async fn child<W: Workflow>(workflow: W, input: W::Input) -> Result<W::Output, StepError> {
    drop((workflow, input));
    Err(StepError::permanent(format!(
        "`sagaflow::child` runs child workflow `{}` only in a `#[workflow]` body; elsewhere, start it with `Runtime::start`",
        W::NAME
    )))
}

/// The time, deterministically: in a workflow body, the time the instance's
/// last transition was committed (its creation time before the first), so
/// code that runs again after a crash sees the same time. It does not move
/// while code runs: after a step, it is the time the transition into that
/// step committed (read the time in a step for a fresher one). Outside a
/// workflow body, `SystemTime::now()`.
pub fn now() -> SystemTime {
    match with_segment(|segment| segment.now_ms) {
        Some(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        None => SystemTime::now(),
    }
}

/// A UUID (version 4 layout, hyphenated lowercase), deterministic in a
/// workflow body: derived from the instance id, the state whose code runs,
/// the number of committed transitions and how many values the code drew
/// before, so a re-run after a crash gets the same one. Outside a workflow
/// body: a fresh value (unique in practice, not cryptographic).
///
/// ```
/// # use std::time::Duration;
/// # use sagaflow::prelude::*;
/// # #[step(retriable)]
/// # async fn charge(order: &str, payment_id: &str) -> Result<(), StepError> { let _ = (order, payment_id); Ok(()) }
/// # #[workflow]
/// # async fn example(order: String) -> Result<(), WorkflowError> {
/// let payment_id = sagaflow::uuid();
/// charge(&order, &payment_id).await?;
/// # let _ = order;
/// # Ok(())
/// # }
/// ```
pub fn uuid() -> String {
    let high = random();
    let low = random();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A random-looking `u64`, deterministic in a workflow body (derived like
/// [`uuid`]). Outside a workflow body: a fresh value (not cryptographic).
pub fn random() -> u64 {
    match with_segment(|segment| {
        let draw = segment.draws;
        segment.draws += 1;
        segment.seed() ^ splitmix(draw.wrapping_add(1))
    }) {
        Some(value) => splitmix(value),
        None => {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            splitmix(nanos ^ splitmix(n) ^ u64::from(std::process::id()).rotate_left(32))
        }
    }
}

/// Sets the workflow's status, which [`Runtime::query`](crate::Runtime::query)
/// returns: any `Serialize` value, stored as JSON in the instance's record.
/// In a workflow that declares its status type
/// (`#[workflow(query = OrderStatus)]`, see [`crate::declared`]), the
/// value must be an `OrderStatus` (or a reference to one), and
/// [`Handle::query`](crate::Handle::query) returns it.
///
/// Pure and deterministic: the value is written with the transition the
/// code is part of (the next committed write), so it is durable exactly
/// when the state it describes is. The last call wins. Outside a workflow
/// body it does nothing.
///
/// ```
/// # use std::time::Duration;
/// # use sagaflow::prelude::*;
/// # #[derive(serde::Serialize)]
/// # enum OrderStatus { Paid }
/// # #[workflow]
/// # async fn example(n: u64) -> Result<(), WorkflowError> {
/// sagaflow::set_status(OrderStatus::Paid);
/// # let _ = n;
/// # Ok(())
/// # }
/// ```
pub fn set_status<T: Serialize>(status: T) {
    let _ = with_segment(|segment| match serde_json::to_value(&status) {
        Ok(value) => segment.status = Some(value),
        Err(error) => tracing::warn!(%error, "the status does not serialize; not recorded"),
    });
}

/// SplitMix64's finaliser: spreads the bits of `x`.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use super::*;
    use crate::segment::{SegmentContext, in_segment};

    fn context(id: &str, state: &str, transitions: u64, now_ms: u64) -> SegmentContext {
        SegmentContext::for_segment(
            Arc::from(id),
            Cow::Owned(state.to_owned()),
            transitions,
            now_ms,
        )
    }

    fn draw(id: &str, state: &str, n: u64) -> (SystemTime, String, u64, String) {
        let context = context(id, state, n, 1_000);
        let ((now, a, b, c), _) = in_segment(context, || (now(), uuid(), random(), uuid()));
        assert_ne!(a, c, "two draws in one segment differ");
        (now, a, b, c)
    }

    #[test]
    fn values_are_fixed_per_instance_state_and_transition() {
        let first = draw("order-1", "Charge2", 3);
        assert_eq!(
            first,
            draw("order-1", "Charge2", 3),
            "a re-run sees the same"
        );
        assert_eq!(first.0, UNIX_EPOCH + Duration::from_millis(1_000));
        assert_ne!(first.1, draw("order-1", "Charge2", 4).1);
        assert_ne!(first.1, draw("order-1", "Ship3", 3).1);
        assert_ne!(first.1, draw("order-2", "Charge2", 3).1);
    }

    #[test]
    fn uuids_have_the_v4_layout() {
        let (_, id, _, _) = draw("x", "Start", 0);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }

    #[test]
    fn status_is_collected_and_nothing_leaks_outside() {
        let (_, status) = in_segment(context("x", "Start", 0, 0), || {
            set_status("a");
            set_status(serde_json::json!({"stage": "b"}));
        });
        assert_eq!(status, Some(serde_json::json!({"stage": "b"})));
        assert!(with_segment(|_| ()).is_none());
        assert_ne!(uuid(), uuid());
        set_status("ignored");
    }
}

/// Sends signal `name` with `value` to instance `target` from a workflow
/// body, exactly once: Temporal's signal-external.
///
/// ```
/// # use sagaflow::prelude::*;
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct Refund { order: String, amount: u64 }
/// #[workflow]
/// async fn approve_refund(refund: Refund) -> Result<(), WorkflowError> {
///     // .. decide ..
///     let decision: serde_json::Value =
///         serde_json::json!({ "approved": true, "amount": refund.amount });
///     sagaflow::send_signal(&refund.order, "refund_decision", &decision).await?;
///     Ok(())
/// }
/// ```
///
/// It is a step (readonly in the saga's structure: allowed before and
/// after the pivot, with no compensation, since a signal cannot be
/// unsent; to undo its effect, send another signal from a compensation),
/// and its state is one of the machine's (`SendSignal1`). Like any step it
/// may run again after a crash between its send and the sender's commit;
/// the send carries the step's idempotency key (`{sender id}/{state}`,
/// plus the iteration in a loop), and the target's record remembers the
/// keys of the last [`SIGNAL_KEYS_KEPT`](crate::record::SIGNAL_KEYS_KEPT)
/// keyed signals it received, so a repeated send records nothing: the
/// signal is delivered once. The target wakes as for
/// [`Runtime::signal`](crate::Runtime::signal).
///
/// Fails for good (the workflow's `?` rolls it back) when `target` does not
/// exist or has ended (unless this very send reached it before: then it
/// succeeds); a store that fails is retried with the step's policy.
/// Outside a runtime's worker (a step function called directly) it fails
/// at once.
#[crate::step(readonly)]
pub async fn send_signal(
    target: &str,
    name: &str,
    value: &serde_json::Value,
) -> Result<(), StepError> {
    let (Some(signals), Some(context)) = (crate::context::signal_sender(), crate::context()) else {
        return Err(StepError::permanent(
            "`sagaflow::send_signal` sends only from a workflow driven by a runtime",
        ));
    };
    let key = context.idempotency_key();
    match signals
        .send_once(target.to_owned(), name.to_owned(), value.clone(), key)
        .await
    {
        Ok(()) => Ok(()),
        Err(error @ (Error::NotFound(_) | Error::InstanceEnded { .. } | Error::Codec { .. })) => {
            Err(StepError::permanent(error.to_string()))
        }
        Err(error) => Err(StepError::retryable(error.to_string())),
    }
}
