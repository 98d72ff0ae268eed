use sagaflow::prelude::*;

#[step(readonly)]
async fn ready(n: u32) -> Result<bool, StepError> {
    Ok(n > 1)
}

#[workflow]
async fn chained(first: Option<u32>) -> Result<u32, WorkflowError> {
    let mut total = 0;
    // The step would run before the chain's `let` binds `n`.
    if let Some(n) = first
        && ready(n).await?
    {
        total += n;
    }
    let mut next = first;
    while let Some(n) = next
        && ready(n).await?
    {
        next = n.checked_sub(1);
    }
    Ok(total)
}

fn main() {}
