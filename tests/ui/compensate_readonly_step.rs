use sagaflow::prelude::*;

// A readonly step changes nothing: there is nothing to compensate.
#[step(readonly)]
async fn lookup_price(item: u32) -> Result<u32, StepError> {
    Ok(item * 100)
}

#[compensate(lookup_price)]
async fn forget_price(item: u32, price: u32) -> Result<(), StepError> {
    let _ = (item, price);
    Ok(())
}

fn main() {}
