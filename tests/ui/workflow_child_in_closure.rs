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
async fn parent(id: u32) -> Result<(), WorkflowError> {
    let later = || async { sagaflow::child(child_flow, id).await };
    Ok(())
}

fn main() {}
