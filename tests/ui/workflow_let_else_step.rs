use sagaflow::prelude::*;

#[step(readonly)]
async fn count() -> Result<u32, StepError> {
    Ok(3)
}

#[workflow]
async fn first_some(n: Option<u32>) -> Result<u32, WorkflowError> {
    let Some(n) = n else {
        count().await?;
        return Ok(0);
    };
    Ok(n)
}

fn main() {}
