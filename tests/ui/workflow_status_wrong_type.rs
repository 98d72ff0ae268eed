use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub enum Stage {
    Notified,
}

#[step(readonly)]
async fn notify(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow(query = Stage)]
async fn approve(id: u32) -> Result<(), WorkflowError> {
    notify(id).await?;
    sagaflow::set_status("notified");
    Ok(())
}

fn main() {}
