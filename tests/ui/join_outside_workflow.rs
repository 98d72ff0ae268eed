use sagaflow::prelude::*;

#[step(readonly)]
async fn lookup(id: &u32) -> Result<u32, StepError> {
    Ok(*id)
}

async fn not_a_workflow(id: u32) -> Result<(u32, u32), StepError> {
    sagaflow::join!(lookup(&id), lookup(&id))
}

fn main() {}
