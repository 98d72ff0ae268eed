use sagaflow::prelude::*;

#[step(readonly)]
async fn notify(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

#[workflow]
async fn approve(id: u32) -> Result<(), WorkflowError> {
    match id {
        0 if sagaflow::signal::<bool>("approval").await => notify(id).await?,
        _ => notify(id + 1).await?,
    }
    Ok(())
}

fn main() {}
