use sagaflow::prelude::*;

#[step(readonly)]
async fn count() -> Result<u32, StepError> {
    Ok(3)
}

#[workflow]
async fn first_big() -> Result<u32, WorkflowError> {
    let big = loop {
        let n = count().await?;
        if n > 2 {
            break n;
        }
    };
    Ok(big)
}

#[workflow]
async fn first_big_again() -> Result<u32, WorkflowError> {
    loop {
        let n = count().await?;
        if n > 2 {
            break n;
        }
    }
    Ok(0)
}

fn main() {}
