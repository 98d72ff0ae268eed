use sagaflow::prelude::*;

#[step(readonly)]
async fn notify(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow]
async fn approve(id: u32, channel: String) -> Result<(), WorkflowError> {
    let approved: bool = sagaflow::signal(&channel).await;
    if approved {
        notify(id).await?;
    }
    Ok(())
}

fn main() {}
