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
async fn ship_all(ids: Vec<u32>) -> Result<(), WorkflowError> {
    for id in ids {
        ship(id).await?;
    }
    Ok(())
}

#[step(pivot)]
async fn ship_one(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow]
async fn reserve_and_ship_in_a_loop(count: u32) -> Result<(), WorkflowError> {
    let mut id: u32 = 0;
    loop {
        reserve(&id).await?;
        ship_one(id).await?;
        if id == count {
            break;
        }
        id += 1;
    }
    Ok(())
}

fn main() {}
