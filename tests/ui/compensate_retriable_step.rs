use sagaflow::prelude::*;

// A retriable step is retried until it succeeds: it has no compensation.
#[step(retriable)]
async fn send_receipt(order_id: u32) -> Result<(), StepError> {
    let _ = order_id;
    Ok(())
}

#[compensate(send_receipt)]
async fn unsend_receipt(order_id: u32, sent: ()) -> Result<(), StepError> {
    let _ = (order_id, sent);
    Ok(())
}

fn main() {}
