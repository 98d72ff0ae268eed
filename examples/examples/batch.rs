//! A batch reservation on a memory store: a `for` loop with a compensable
//! step per item.
//!
//! ```text
//! cargo run -p sagaflow-examples --example batch
//! ```
//! The first batch reserves its three items and is confirmed. In the second,
//! the third of four items is out of stock: the two items reserved before it
//! are released, the second first.

use sagaflow::prelude::*;
use sagaflow_examples::batch::{Batch, Item, reserve_batch};

fn item(sku: &str, quantity: u32) -> Item {
    Item {
        sku: sku.into(),
        quantity,
        out_of_stock: false,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(reserve_batch)
        .build()
        .await?;
    let batches = [
        Batch {
            id: "batch-1".into(),
            items: vec![item("beans", 3), item("filters", 10), item("mugs", 2)],
        },
        Batch {
            id: "batch-2".into(),
            items: vec![
                item("beans", 1),
                item("grinder", 1),
                Item {
                    out_of_stock: true,
                    ..item("kettle", 1)
                },
                item("mugs", 4),
            ],
        },
    ];
    for batch in batches {
        println!("{} ({} items):", batch.id, batch.items.len());
        let handle = rt.start(reserve_batch, &batch.id.clone(), batch).await?;
        match handle.outcome().await? {
            Outcome::Completed(receipt) => {
                let holds: Vec<&str> = receipt.holds.iter().map(|hold| hold.id.as_str()).collect();
                println!("  => confirmed: {}", holds.join(", "));
            }
            Outcome::Compensated(failure) => println!("  => rolled back: {failure}"),
            Outcome::Failed(failure) => println!("  => needs an operator: {failure}"),
        }
    }
    println!(
        "\nthe state machine:\n{}",
        reserve_batch.state_machine().to_mermaid()
    );
    rt.shutdown().await;
    Ok(())
}
