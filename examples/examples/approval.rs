//! Approval with a timeout.
//!
//! ```text
//! cargo run -p sagaflow-examples --example approval
//! ```
//! Two purchase requests wait for a durable `approval` signal: the first
//! is approved from `main` with `handle.signal` (typed: the workflow
//! declares the signal and its `Decision`), the second gets no answer and
//! its budget reservation is released when its timeout passes.

use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow_examples::approval::{ApprovalRequest, ApprovalStatus, Decision, approval};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(approval)
        .poll_interval(Duration::from_millis(100))
        .build()
        .await?;
    let request = |id: &str, item: &str| ApprovalRequest {
        id: id.into(),
        item: item.into(),
        amount_cents: 129_900,
        wait_ms: 1_000,
    };
    rt.start(approval, "req-1", request("req-1", "a laptop"))
        .await?;
    rt.start(approval, "req-2", request("req-2", "a chair"))
        .await?;
    // Typed handles: they send the signal and read the status the workflow declares.
    let (laptop, chair) = (rt.handle(approval, "req-1"), rt.handle(approval, "req-2"));

    // Wait until the first request is waiting for its approver, then approve it.
    while laptop.query().await? != Some(ApprovalStatus::AwaitingApproval) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "req-1 is {:?}; approving it",
        ApprovalStatus::AwaitingApproval
    );
    laptop
        .signal(
            approval::approval,
            Decision {
                approved: true,
                by: "Maya".into(),
            },
        )
        .await?;

    for (id, handle) in [("req-1", laptop), ("req-2", chair)] {
        match handle.outcome().await? {
            Outcome::Completed(purchase) => println!(
                "{id}: purchased as {} (approved by {})",
                purchase.number, purchase.approved_by
            ),
            Outcome::Compensated(failure) => println!("{id}: declined, budget released: {failure}"),
            Outcome::Failed(failure) => println!("{id}: needs an operator: {failure}"),
        }
        println!("{id} status: {:?}", handle.query().await?);
    }
    println!(
        "\nthe state machine:\n{}",
        approval.state_machine().to_mermaid()
    );
    rt.shutdown().await;
    Ok(())
}
