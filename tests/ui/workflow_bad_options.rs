use sagaflow::prelude::*;

#[step(readonly)]
async fn look(id: &u32) -> Result<u32, StepError> {
    Ok(*id)
}

#[workflow(version = 0)]
async fn zero(id: u32) -> Result<u32, WorkflowError> {
    let found = look(&id).await?;
    Ok(found)
}

#[workflow(upgrade = "sometimes")]
async fn sometimes(id: u32) -> Result<u32, WorkflowError> {
    let found = look(&id).await?;
    Ok(found)
}

#[workflow(name = "two words")]
async fn spaced(id: u32) -> Result<u32, WorkflowError> {
    let found = look(&id).await?;
    Ok(found)
}

#[workflow(nmae = "typo", version = 2)]
async fn typo(id: u32) -> Result<u32, WorkflowError> {
    let found = look(&id).await?;
    Ok(found)
}

#[workflow(version = 2, version = 3)]
async fn twice(id: u32) -> Result<u32, WorkflowError> {
    let found = look(&id).await?;
    Ok(found)
}

fn main() {}
