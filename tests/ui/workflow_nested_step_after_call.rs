use sagaflow::prelude::*;

#[step(readonly)]
async fn count(n: u32) -> Result<u32, StepError> {
    Ok(n)
}

#[step(readonly)]
async fn ready(n: u32) -> Result<bool, StepError> {
    Ok(n > 1)
}

#[workflow]
async fn tally(n: u32, flag: bool) -> Result<u32, WorkflowError> {
    // A call runs before the step: the step cannot go first.
    let total = u32::from(flag) + count(n).await?;
    // The step may not run at all.
    let both = flag && ready(n).await?;
    Ok(total + u32::from(both))
}

fn main() {}
