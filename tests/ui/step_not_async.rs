use sagaflow::prelude::*;

#[step]
fn reserve_inventory(order_id: u32) -> Result<u32, StepError> {
    Ok(order_id)
}

fn main() {
    // The function is kept as written, so this call reports nothing more.
    let _ = reserve_inventory(1);
}
