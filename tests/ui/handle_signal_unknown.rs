use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Decision {
    approved: bool,
}

#[workflow(signals(approval: Decision))]
async fn approve(id: u32) -> Result<bool, WorkflowError> {
    let decision: Decision = sagaflow::signal("approval").await;
    Ok(decision.approved && id > 0)
}

#[workflow(signals(refund: Decision))]
async fn refund(id: u32) -> Result<bool, WorkflowError> {
    let decision: Decision = sagaflow::signal("refund").await;
    Ok(decision.approved && id > 0)
}

async fn send(rt: Runtime) -> Result<(), sagaflow::Error> {
    let handle = rt.handle(approve, "request-1");
    // A misspelled signal.
    handle.signal(approve::aproval, Decision { approved: true }).await?;
    // Another workflow's signal.
    handle.signal(refund::refund, Decision { approved: true }).await?;
    Ok(())
}

fn main() {
    let _ = send;
}
