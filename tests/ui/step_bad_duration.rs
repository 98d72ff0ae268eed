use sagaflow::prelude::*;

#[step(retry(initial = "1s", max_interval = "2 fortnights"), timeout = "30")]
async fn charge_payment(order_id: u32) -> Result<u64, StepError> {
    Ok(u64::from(order_id))
}

fn main() {}
