use sagaflow::prelude::*;

/// Not `Serialize`: a handle to something live.
#[derive(Clone)]
struct Connection {
    id: u32,
}

#[step(readonly)]
async fn count(n: u32) -> Result<u32, StepError> {
    Ok(n)
}

#[workflow]
async fn pooled(n: u32) -> Result<u32, WorkflowError> {
    let connection: Connection = Connection { id: n };
    let counted = count(n).await?;
    Ok(counted + connection.id)
}

fn main() {}
