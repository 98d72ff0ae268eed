use sagaflow::prelude::*;

#[step]
async fn charge_payment(amount: &u64) -> Result<u64, StepError> {
    Ok(*amount)
}

#[compensate(charge_payment)]
async fn refund_payment(amount: &u64, charged: u64) -> Result<(), StepError> {
    let _ = (amount, charged);
    Ok(())
}

#[compensate(charge_payment)]
async fn refund_again(amount: &u64, charged: u64) -> Result<(), StepError> {
    let _ = (amount, charged);
    Ok(())
}

fn main() {}
