use sagaflow::prelude::*;

#[step(readonly)]
async fn lookup(id: u32) -> Result<u32, StepError> {
    Ok(id)
}

#[workflow]
async fn parent(id: u32) -> Result<u32, WorkflowError> {
    // A step is not a workflow: it cannot run as a child.
    let found = sagaflow::child(lookup, id).await?;
    Ok(found)
}

fn main() {}
