//! Which compensations an instance ran, and in which order:
//! [`assert_compensation_order`].

use sagaflow::record::{EventKind, HISTORY_LIMIT, HistoryEvent};
use sagaflow::{Phase, Runtime, StateMachine, Status, Workflow};

/// Asserts that instance `id` of `workflow` ran exactly the compensations
/// `expected`, in that order, each named as its `#[compensate]` function.
///
/// It reads the instance's history through [`Runtime::status`]: every
/// `compensated` event is one compensation that finished (a failed one is
/// not listed), named by the state machine of `workflow`. A completed
/// child workflow that the rollback undid is listed as `child:{its id}`;
/// its own compensations are in its history (assert on its id). An
/// instance that never rolled back ran none: `&[]`.
///
/// Pass a [`TestEnv`](crate::TestEnv) as `rt` (it derefs to its runtime).
/// The [crate example](crate#example) shows it on a saga whose shipment
/// fails.
///
/// # Panics
///
/// With expected and actual side by side when they differ; and when the
/// answer cannot be trusted: no such instance, an instance of another
/// workflow, one that has not ended yet (await its outcome first), or a
/// history that no longer reaches back to the rollback's start (it keeps
/// the last [`HISTORY_LIMIT`] events: for sagas that long, record effects
/// in a [`Journal`](crate::Journal) and assert on that).
pub async fn assert_compensation_order<W: Workflow>(
    rt: &Runtime,
    workflow: W,
    id: &str,
    expected: &[&str],
) {
    let status = match rt.status(id).await {
        Ok(Some(status)) => status,
        Ok(None) => panic!("no instance `{id}` in the store"),
        Err(error) => panic!("the record of instance `{id}` cannot be read: {error}"),
    };
    if status.workflow != W::NAME {
        panic!(
            "instance `{id}` runs workflow `{}`, not `{}`",
            status.workflow,
            W::NAME
        );
    }
    if !status.phase.is_terminal() {
        panic!(
            "instance `{id}` is still {} at state `{}`: await its outcome before asserting its compensations",
            status.phase.as_str(),
            status.state
        );
    }
    let actual = compensations(&status, workflow.state_machine());
    if actual != expected {
        let why = status.failure.as_ref().map_or_else(String::new, |failure| {
            format!("\n  rolled back because: {failure}")
        });
        panic!(
            "instance `{id}` ran its compensations in another order\n  expected: {expected:?}\n    actual: {actual:?}\n  (ended {}){why}",
            status.phase.as_str()
        );
    }
}

/// The compensations in `status`'s history, in the order they finished.
fn compensations(status: &Status, machine: &StateMachine) -> Vec<String> {
    if status.phase == Phase::Completed {
        // A workflow that returned `Ok` never rolled back, however long
        // its history.
        return Vec::new();
    }
    let history = &status.history;
    let rolled_back = history
        .iter()
        .any(|event| event.kind == EventKind::Compensating);
    let whole = history
        .first()
        .is_some_and(|event| event.kind == EventKind::Created);
    if !rolled_back && !whole {
        panic!(
            "the history of instance `{}` keeps its last {HISTORY_LIMIT} events and no longer shows its rollback's start: \
             record the compensations' effects in a `Journal` and assert on that instead",
            status.id
        );
    }
    history
        .iter()
        .filter_map(|event| match event.kind {
            EventKind::Compensated => Some(compensation_name(event, machine)),
            EventKind::ChildCompensated => Some(format!("child:{}", step_of(event))),
            _ => None,
        })
        .collect()
}

/// The `#[compensate]` function that undid the step of a `compensated`
/// event (the step's own name if the machine does not know it).
fn compensation_name(event: &HistoryEvent, machine: &StateMachine) -> String {
    let step = step_of(event);
    machine
        .states
        .iter()
        .flat_map(|state| state.steps())
        .find(|info| info.name == step)
        .and_then(|info| info.compensation)
        .unwrap_or(step)
        .to_owned()
}

fn step_of(event: &HistoryEvent) -> &str {
    event.step.as_deref().unwrap_or("?")
}
