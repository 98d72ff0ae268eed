use std::time::Duration;

use sagaflow::prelude::*;

#[step]
async fn charge(id: &u32) -> Result<u32, StepError> {
    Ok(*id)
}

#[compensate(charge)]
async fn refund(id: &u32, charged: u32) -> Result<(), StepError> {
    let _ = (id, charged);
    Ok(())
}

#[workflow]
async fn order(id: u32) -> Result<(), WorkflowError> {
    tokio::select! {
        charged = charge(&id) => { let _ = charged?; }
        () = sagaflow::sleep(Duration::from_secs(30)) => {}
    }
    Ok(())
}

fn main() {}
