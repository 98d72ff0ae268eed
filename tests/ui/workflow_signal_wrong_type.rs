use std::time::Duration;

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

#[workflow(signals(approval: Decision, reminder: u32))]
async fn approve(id: u32) -> Result<(), WorkflowError> {
    let approved: bool = sagaflow::signal("approval").await;
    let reminder: Option<String> =
        sagaflow::signal_timeout("reminder", Duration::from_secs(60)).await;
    if approved && reminder.is_none() {
        notify(id).await?;
    }
    Ok(())
}

fn main() {}
