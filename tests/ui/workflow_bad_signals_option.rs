use sagaflow::prelude::*;

#[workflow(signals(approval))]
async fn untyped(id: u32) -> Result<u32, WorkflowError> {
    Ok(id)
}

#[workflow(signals(approval: bool, approval: u32))]
async fn twice(id: u32) -> Result<u32, WorkflowError> {
    Ok(id)
}

#[workflow(signals = "approval", query(Stage))]
async fn shapes(id: u32) -> Result<u32, WorkflowError> {
    Ok(id)
}

fn main() {}
