use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Decision {
    approved: bool,
}

#[step(readonly)]
async fn notify(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow(signals(approval: Decision, cancel: ()))]
async fn approve(id: u32) -> Result<(), WorkflowError> {
    let decision: Decision = sagaflow::signal("aproval").await;
    if decision.approved {
        notify(id).await?;
    }
    Ok(())
}

fn main() {}
