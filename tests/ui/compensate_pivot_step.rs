use sagaflow::prelude::*;

// A pivot is the point of no return: it has no compensation.
#[step(pivot)]
async fn create_shipment(order_id: u32) -> Result<u32, StepError> {
    Ok(order_id)
}

#[compensate(create_shipment)]
async fn cancel_shipment(order_id: u32, shipment: u32) -> Result<(), StepError> {
    let _ = (order_id, shipment);
    Ok(())
}

fn main() {}
