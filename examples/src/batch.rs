//! A batch reservation: one `reserve_item` step per item, in a `for` loop,
//! each with its compensation; then `confirm_batch`, the pivot. An item out
//! of stock fails its step, and the items reserved before it are released in
//! reverse order.
//!
//! The loop's state holds the batch's items, the position of the next one,
//! and the holds so far: never a history of the iterations, so resuming the
//! 1,000th item costs what resuming the first does.

use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

use crate::timeline::record;

/// A batch of items to reserve together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The batch's id, also the workflow instance's id.
    pub id: String,
    /// The items, reserved in this order.
    pub items: Vec<Item>,
}

/// One line of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// What is reserved.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Failure injection: the warehouse has none left.
    pub out_of_stock: bool,
}

/// Stock held for one item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// The warehouse's hold id.
    pub id: String,
}

/// What a confirmed batch returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchReceipt {
    /// The batch's id.
    pub batch_id: String,
    /// One hold per item, in order.
    pub holds: Vec<Hold>,
}

/// Holds stock for one item of the batch.
#[step]
pub async fn reserve_item(batch_id: &str, item: &Item) -> Result<Hold, StepError> {
    if item.out_of_stock {
        record(format!("{batch_id}: {} is out of stock", item.sku));
        return Err(StepError::permanent(format!(
            "{} is out of stock",
            item.sku
        )));
    }
    record(format!(
        "{batch_id}: reserve {} x {}",
        item.quantity, item.sku
    ));
    Ok(Hold {
        id: format!("hold-{batch_id}-{}", item.sku),
    })
}

/// Gives one item's stock back.
#[compensate(reserve_item)]
pub async fn release_item(batch_id: &str, item: &Item, hold: Hold) -> Result<(), StepError> {
    record(format!("{batch_id}: release {} ({})", item.sku, hold.id));
    Ok(())
}

/// Confirms the whole batch with the warehouse: the point of no return.
#[step(pivot)]
pub async fn confirm_batch(batch_id: &str, holds: &[Hold]) -> Result<(), StepError> {
    record(format!("{batch_id}: confirm {} holds", holds.len()));
    Ok(())
}

/// The batch saga: reserve every item, then confirm.
#[workflow]
pub async fn reserve_batch(batch: Batch) -> Result<BatchReceipt, WorkflowError> {
    let items: Vec<Item> = batch.items.clone();
    let mut holds: Vec<Hold> = Vec::new();
    for item in items {
        let hold = reserve_item(&batch.id, &item).await?;
        holds.push(hold);
    }
    confirm_batch(&batch.id, &holds).await?;
    Ok(BatchReceipt {
        batch_id: batch.id,
        holds,
    })
}
