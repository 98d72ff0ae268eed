use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sagaflow::prelude::*;

static ORDERS_SEEN: AtomicU64 = AtomicU64::new(0);
static LAST_ORDER: Mutex<u32> = Mutex::new(0);
static mut TOTAL: u32 = 0;

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
    ORDERS_SEEN.fetch_add(1, Ordering::SeqCst);
    *LAST_ORDER.lock().unwrap() = id;
    unsafe {
        TOTAL += id;
    }
    // Reading a constant or comparing with one is fine.
    let limit = u32::MAX;
    if id < limit {
        reserve(&id).await?;
    }
    Ok(())
}

fn main() {}
