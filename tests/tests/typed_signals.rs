//! Typed signals and queries: a workflow that declares what it accepts
//! (`#[workflow(signals(..), query = ..)]`) is signalled and queried
//! through its handle with the declared types, and keeps the string API.
//! The compile errors of a wrong name or type are the trybuild cases
//! `tests/ui/typed_*.rs`.

use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::{Phase, Signal};
use serde::{Deserialize, Serialize};

/// The approver's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    approved: bool,
    by: String,
}

/// Where a request is: the declared query type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    AwaitingDecision,
    AwaitingNote,
    Done,
}

#[step]
async fn hold_budget(id: String) -> Result<String, StepError> {
    Ok(format!("budget-{id}"))
}

#[compensate(hold_budget)]
async fn release_budget(id: String, hold: String) -> Result<(), StepError> {
    let _ = (id, hold);
    Ok(())
}

/// Waits for a decision, then for a note for up to an hour. The decision's
/// type comes from the declaration alone (no annotation), and it is stored
/// across the second wait; the note's wait writes its type.
#[workflow(signals(approval: Decision, note: String), query = Stage)]
async fn approve(id: String) -> Result<String, WorkflowError> {
    let hold = hold_budget(id.clone()).await?;
    sagaflow::set_status(Stage::AwaitingDecision);
    let decision = sagaflow::signal("approval").await;
    let stage = Stage::AwaitingNote;
    sagaflow::set_status(&stage);
    let note: Option<String> = sagaflow::signal_timeout("note", Duration::from_secs(3600)).await;
    sagaflow::set_status(Stage::Done);
    if !decision.approved {
        return Err(WorkflowError::new(format!("rejected by {}", decision.by)));
    }
    Ok(format!(
        "{hold} approved by {}{}",
        decision.by,
        note.map(|note| format!(": {note}")).unwrap_or_default()
    ))
}

/// The same machine with no declarations, under the same name: untyped,
/// as every workflow was before declarations.
mod undeclared {
    use super::*;

    #[workflow(name = "approve")]
    pub async fn approve(id: String) -> Result<String, WorkflowError> {
        let hold = hold_budget(id.clone()).await?;
        sagaflow::set_status(Stage::AwaitingDecision);
        let decision: Decision = sagaflow::signal("approval").await;
        let stage = Stage::AwaitingNote;
        sagaflow::set_status(&stage);
        let note: Option<String> =
            sagaflow::signal_timeout("note", Duration::from_secs(3600)).await;
        sagaflow::set_status(Stage::Done);
        if !decision.approved {
            return Err(WorkflowError::new(format!("rejected by {}", decision.by)));
        }
        Ok(format!(
            "{hold} approved by {}{}",
            decision.by,
            note.map(|note| format!(": {note}")).unwrap_or_default()
        ))
    }
}

async fn runtime() -> Runtime {
    Runtime::builder()
        .store(MemoryStore::new())
        .register(approve)
        .poll_interval(Duration::from_secs(60))
        .build()
        .await
        .expect("the runtime builds")
}

/// Waits (on paused time) until instance `id` is in `phase` at `state`.
async fn wait_for(rt: &Runtime, id: &str, state: &str) {
    for _ in 0..100 {
        if let Some(status) = rt.status(id).await.unwrap()
            && status.phase == Phase::Waiting
            && status.state == state
        {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("instance `{id}` never waited in `{state}`");
}

#[test]
fn each_declared_signal_is_a_constant_of_the_workflow() {
    let approval: Signal<approve, Decision> = approve::approval;
    assert_eq!(approval.name(), "approval");
    assert_eq!(approve::note.name(), "note");
}

#[tokio::test(start_paused = true)]
async fn typed_signals_are_delivered_and_the_typed_query_follows() {
    let rt = runtime().await;
    rt.start(approve, "typed-1", "typed-1".to_owned())
        .await
        .unwrap();
    // A typed handle: the start's handle is untyped, as existing code names it.
    let handle = rt.handle(approve, "typed-1");
    wait_for(&rt, "typed-1", "Signal2").await;
    // No turbofish: the handle knows the workflow's query type.
    assert_eq!(handle.query().await.unwrap(), Some(Stage::AwaitingDecision));
    let decision = Decision {
        approved: true,
        by: "Maya".to_owned(),
    };
    handle
        .signal(approve::approval, decision.clone())
        .await
        .unwrap();
    wait_for(&rt, "typed-1", "SignalTimeout3").await;
    assert_eq!(handle.query().await.unwrap(), Some(Stage::AwaitingNote));
    // A handle made elsewhere, by workflow and id, is as typed.
    rt.handle(approve, "typed-1")
        .signal(approve::note, "ship by Friday".to_owned())
        .await
        .unwrap();
    assert_eq!(
        handle.outcome().await.unwrap(),
        Outcome::Completed("budget-typed-1 approved by Maya: ship by Friday".to_owned())
    );
    assert_eq!(handle.query().await.unwrap(), Some(Stage::Done));
    // The signal's value went into the record as the JSON of its type.
    let status = rt.status("typed-1").await.unwrap().unwrap();
    assert_eq!(status.phase, Phase::Completed);
}

#[tokio::test(start_paused = true)]
async fn the_string_api_still_reaches_a_workflow_with_declared_signals() {
    let rt = runtime().await;
    let handle = rt
        .start(approve, "typed-2", "typed-2".to_owned())
        .await
        .unwrap();
    wait_for(&rt, "typed-2", "Signal2").await;
    // As the CLI and dynamic callers send it: by name, as JSON.
    rt.signal(
        "typed-2",
        "approval",
        serde_json::json!({ "approved": false, "by": "Ola" }),
    )
    .await
    .unwrap();
    // The note's wait times out after its hour.
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("a rejection compensates")
    };
    assert_eq!(failure.to_string(), "rejected by Ola");
    assert_eq!(
        rt.query::<Stage>("typed-2").await.unwrap(),
        Some(Stage::Done)
    );
}

#[test]
fn declaring_signals_and_a_query_keeps_the_fingerprint() {
    // In-flight instances of the undeclared version resume on the declared
    // one: a declaration types the client and the body, not the machine.
    let declared = approve.state_machine();
    let untyped = undeclared::approve.state_machine();
    assert_eq!(declared.fingerprint(), untyped.fingerprint());
    assert_eq!(declared.to_mermaid(), untyped.to_mermaid());
}
