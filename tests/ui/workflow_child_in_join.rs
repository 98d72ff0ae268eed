use sagaflow::prelude::*;

#[step(readonly)]
async fn lookup(id: u32) -> Result<u32, StepError> {
    Ok(id)
}

#[workflow]
async fn child_flow(id: u32) -> Result<u32, WorkflowError> {
    let found = lookup(id).await?;
    Ok(found)
}

#[workflow]
async fn parent(id: u32) -> Result<u32, WorkflowError> {
    // A child workflow is not a step: it cannot be a branch of a join.
    let (a, b) = sagaflow::join!(lookup(id), sagaflow::child(child_flow, id))?;
    Ok(a + b)
}

fn main() {}
