use sagaflow::prelude::*;

#[step(readonly)]
async fn count(n: u32) -> Result<u32, StepError> {
    Ok(n)
}

#[workflow]
async fn tally(n: u32, flag: bool) -> Result<u32, WorkflowError> {
    // A call runs before the step: the step cannot go first.
    let total = u32::from(flag) + count(n).await?;
    // A macro runs before the step.
    let size = vec![n].len() as u32 + count(n).await?;
    // A call runs before the step in the condition.
    if u32::from(flag) + count(n).await? > 2 {
        return Ok(0);
    }
    Ok(total + size + u32::from(flag))
}

fn main() {}
