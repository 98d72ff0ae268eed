use sagaflow::prelude::*;

#[step(readonly)]
async fn count(n: u32) -> Result<u32, StepError> {
    Ok(n)
}

#[workflow]
async fn stamped(n: u32) -> Result<u32, WorkflowError> {
    let counted = count(n).await?;
    Ok(counted)
}

// `stamped` is the other workflow's unit struct: a `let` cannot shadow it.
#[workflow]
async fn restamped(n: u32) -> Result<u32, WorkflowError> {
    let stamped = count(n).await?;
    Ok(stamped)
}

fn main() {}
