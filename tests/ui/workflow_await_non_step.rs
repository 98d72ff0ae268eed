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

#[step(pivot)]
async fn ship(id: u32) -> Result<(), StepError> {
    let _ = id;
    Ok(())
}

async fn helper() -> u32 {
    1
}

#[workflow]
async fn order(id: u32) -> Result<(), WorkflowError> {
    let pending = helper();
    let a = pending.await;
    let b = async { 2 }.await;
    let c = id.checked_add(1).map(|n| n).into_future_like().await;
    reserve(&id).await?;
    Ok(())
}

trait IntoFutureLike {
    fn into_future_like(self) -> std::future::Ready<u32>;
}
impl IntoFutureLike for Option<u32> {
    fn into_future_like(self) -> std::future::Ready<u32> {
        std::future::ready(self.unwrap_or(0))
    }
}

fn main() {}
