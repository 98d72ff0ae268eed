use sagaflow::prelude::*;

#[step]
async fn reserve(id: &u32) -> Result<u32, StepError> {
    Ok(*id)
}

#[compensate(reserve)]
async fn release(id: &u32, reservation: u32) -> Result<(), StepError> {
    let _ = (id, reservation);
    Ok(())
}

#[workflow]
async fn order(id: u32) -> Result<(), WorkflowError> {
    let blocking = tokio::task::spawn_blocking(move || id + 1);
    let local = tokio::task::spawn_local(async {});
    let thread = std::thread::Builder::new();
    let handle = tokio::runtime::Handle::current();
    let task = handle.spawn(async {});
    let child = std::process::Command::new("sh");
    let socket = std::net::TcpStream::connect("127.0.0.1:80");
    let _ = (blocking, local, thread, task, child, socket);
    reserve(&id).await?;
    Ok(())
}

fn main() {}
