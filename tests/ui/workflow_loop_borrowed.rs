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

#[workflow]
async fn order(ids: Vec<u32>) -> Result<(), WorkflowError> {
    let mut total: u32 = 0;
    for id in &ids {
        total += id;
    }
    for id in &ids {
        reserve(id).await?;
    }
    for id in ids.iter() {
        reserve(id).await?;
    }
    Ok(())
}

fn main() {}
