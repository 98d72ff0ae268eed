use sagaflow::prelude::*;

#[step(readonly)]
async fn notify(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow]
async fn remind(id: u32) -> Result<(), WorkflowError> {
    sagaflow::sleep(std::time::Duration::from_secs(60)).await?;
    notify(id).await?;
    Ok(())
}

fn main() {}
