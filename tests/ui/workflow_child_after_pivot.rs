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

#[step(pivot)]
async fn commit(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow]
async fn parent(id: u32) -> Result<u32, WorkflowError> {
    commit(id).await?;
    let found = sagaflow::child(child_flow, id).await?;
    Ok(found)
}

fn main() {}
