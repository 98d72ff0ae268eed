use sagaflow::prelude::*;

#[workflow]
async fn approve(id: u32) -> Result<bool, WorkflowError> {
    sagaflow::set_status("waiting");
    let approved: bool = sagaflow::signal("approval").await;
    Ok(approved && id > 0)
}

async fn read(rt: Runtime) -> Result<(), sagaflow::Error> {
    let status = rt.handle(approve, "request-1").query().await?;
    let _ = status;
    Ok(())
}

fn main() {
    let _ = read;
}
