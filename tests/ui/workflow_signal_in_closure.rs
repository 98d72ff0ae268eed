use sagaflow::prelude::*;

#[step(readonly)]
async fn notify(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow]
async fn approve(id: u32) -> Result<(), WorkflowError> {
    notify(id).await?;
    let wait = || async { sagaflow::signal::<bool>("approval").await };
    let nap = async { sagaflow::sleep(std::time::Duration::from_secs(1)).await };
    Ok(())
}

fn main() {}
