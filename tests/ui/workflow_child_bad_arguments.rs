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

fn pick() -> child_flow {
    child_flow
}

#[workflow]
async fn parent(id: u32) -> Result<u32, WorkflowError> {
    let a = sagaflow::child(child_flow).await?;
    let b = sagaflow::child(pick(), id).await?;
    Ok(a + b)
}

fn main() {}
