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
async fn parent(id: u64) -> Result<u32, WorkflowError> {
    // `child_flow` takes a `u32`.
    let found = sagaflow::child(child_flow, id).await?;
    Ok(found)
}

fn main() {}
