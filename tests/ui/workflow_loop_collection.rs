use sagaflow::prelude::*;

#[step(readonly)]
async fn ping(n: u32) -> Result<(), StepError> {
    let _ = n;
    Ok(())
}

#[step(readonly)]
async fn ready() -> Result<bool, StepError> {
    Ok(true)
}

#[workflow]
async fn pings(count: u32) -> Result<(), WorkflowError> {
    for n in vec![1, 2, 3] {
        ping(n).await?;
    }
    for n in 0..=count {
        ping(n).await?;
    }
    while ready().await? {
        ping(count).await?;
    }
    Ok(())
}

fn main() {}
