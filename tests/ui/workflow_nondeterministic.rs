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
async fn order(id: u32) -> Result<(), WorkflowError> {
    let started = std::time::SystemTime::now();
    let tick = std::time::Instant::now();
    let roll: u32 = rand::random();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let text = std::fs::read_to_string("x.txt");
    println!("{:?}", tokio::spawn(async {}));
    println!("allowed: {id}");
    reserve(&id).await?;
    Ok(())
}

fn main() {}
