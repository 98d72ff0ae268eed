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

#[step]
async fn charge(id: &u32) -> Result<u64, StepError> {
    Ok(u64::from(*id))
}

#[workflow]
async fn order(id: u32) -> Result<u64, WorkflowError> {
    let started = std::fs::read_to_string("started.txt");
    let paid = charge(&id).await?;
    let extra = async { 1 }.await;
    Ok(paid + extra)
}

fn main() {}
