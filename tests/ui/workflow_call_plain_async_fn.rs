use sagaflow::prelude::*;

#[step]
async fn reserve(id: &u32) -> Result<u32, StepError> {
    Ok(*id)
}

#[compensate(reserve)]
async fn release(id: &u32, reservation: u32) -> Result<(), StepError> {
    let _ = (id, reservation);
    Ok(())
}

// `#[step]` is missing: a plain `async fn` cannot run inside a workflow.
async fn notify(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow]
async fn order(id: u32) -> Result<(), WorkflowError> {
    reserve(&id).await?;
    notify(id + u32::from(true)).await?;
    Ok(())
}

fn main() {}
