//! `sagaflow::send_signal`: a workflow signals another instance. Time is
//! tokio's paused clock.

use sagaflow::Phase;
use sagaflow::prelude::*;

#[workflow]
async fn await_approval(request: u32) -> Result<u32, WorkflowError> {
    let approved_by: u32 = sagaflow::signal("approval").await;
    Ok(request * 1000 + approved_by)
}

#[step]
async fn hold_funds(request: u32) -> Result<u32, StepError> {
    Ok(request)
}

#[compensate(hold_funds)]
async fn release_funds(_request: u32, _held: u32) -> Result<(), StepError> {
    Ok(())
}

#[workflow]
async fn approve(target: String) -> Result<u32, WorkflowError> {
    let held = hold_funds(7).await?;
    let approver: serde_json::Value = serde_json::json!(42);
    sagaflow::send_signal(&target, "approval", &approver).await?;
    Ok(held)
}

async fn runtime() -> Runtime {
    Runtime::builder()
        .store(MemoryStore::new())
        .register(await_approval)
        .register(approve)
        .build()
        .await
        .expect("builds")
}

#[tokio::test(start_paused = true)]
async fn a_workflow_signals_another_instance() {
    let rt = runtime().await;
    let waiting = rt.start(await_approval, "req-1", 5).await.expect("starts");
    let approver = rt
        .start(approve, "approver-1", "req-1".to_owned())
        .await
        .expect("starts");
    assert!(matches!(
        approver.outcome().await.expect("ends"),
        Outcome::Completed(7)
    ));
    assert!(matches!(
        waiting.outcome().await.expect("ends"),
        Outcome::Completed(5042)
    ));
    // The send is a readonly step of its own in the sender's machine.
    let mermaid = approve.state_machine().to_mermaid();
    assert!(mermaid.contains("SendSignal2"), "{mermaid}");
    assert!(mermaid.contains("send_signal / readonly"), "{mermaid}");
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_no_instance_rolls_the_sender_back() {
    let rt = runtime().await;
    let approver = rt
        .start(approve, "approver-2", "nobody".to_owned())
        .await
        .expect("starts");
    let Outcome::Compensated(failure) = approver.outcome().await.expect("ends") else {
        panic!("a send to no instance fails for good")
    };
    assert_eq!(failure.step.as_deref(), Some("send_signal"));
    assert!(
        failure.message.contains("nobody"),
        "the failure names the target: {failure}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_an_ended_instance_rolls_the_sender_back() {
    let rt = runtime().await;
    let done = rt.start(await_approval, "req-3", 1).await.expect("starts");
    rt.signal("req-3", "approval", 9).await.expect("signals");
    assert!(matches!(done.outcome().await, Ok(Outcome::Completed(1009))));
    let approver = rt
        .start(approve, "approver-3", "req-3".to_owned())
        .await
        .expect("starts");
    let Outcome::Compensated(failure) = approver.outcome().await.expect("ends") else {
        panic!("a send to an ended instance fails for good")
    };
    assert!(failure.message.contains("has ended"), "{failure}");
    let status = rt
        .status("approver-3")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.phase, Phase::Compensated);
}

#[tokio::test]
async fn outside_a_runtime_it_fails_at_once() {
    let error = sagaflow::send_signal("x", "go", &serde_json::json!(1))
        .await
        .expect_err("no runtime drives this call");
    assert!(
        error
            .to_string()
            .contains("only from a workflow driven by a runtime"),
        "{error}"
    );
}
