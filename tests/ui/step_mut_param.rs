use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
}

#[step]
async fn add_gift_wrap(cart: &mut Cart) -> Result<(), StepError> {
    cart.items.push("gift wrap".to_owned());
    Ok(())
}

fn main() {}
