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

#[step(pivot)]
async fn ship(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow]
async fn order(ids: Vec<u32>) -> Result<usize, WorkflowError> {
    let count = ids.iter().filter(|id| **id > 3).count();
    reserve(&ids[0]).await?;
    Ok(count)
}

fn main() {}
