//! The order saga on the embedded store.
//!
//! ```text
//! cargo run --example order_saga                    # the order completes
//! cargo run --example order_saga -- --fail-shipment # the carrier fails: refund, then release
//! cargo run --example order_saga -- --store PATH    # keep the store (default: a fresh temp dir)
//! ```

use sagaflow::prelude::*;
use sagaflow_examples::order::{Order, place_order};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fail_shipment = args.iter().any(|arg| arg == "--fail-shipment");
    let (path, temporary) = match args.iter().position(|arg| arg == "--store") {
        Some(index) => (
            args.get(index + 1).ok_or("--store needs a path")?.into(),
            false,
        ),
        None => (
            std::env::temp_dir().join(format!("sagaflow-order-saga-{}", std::process::id())),
            true,
        ),
    };

    let rt = Runtime::builder()
        .store(EmbeddedStore::open(&path)?)
        .register(place_order)
        .build()
        .await?;

    let order = Order {
        id: if fail_shipment {
            "order-43".into()
        } else {
            "order-42".into()
        },
        sku: "espresso-machine".into(),
        quantity: 1,
        amount_cents: 34_900,
        fail_shipment,
    };
    println!("placing {} (store: {})", order.id, path.display());
    let handle = rt.start(place_order, &order.id.clone(), order).await?;
    match handle.outcome().await? {
        Outcome::Completed(receipt) => println!("completed: {receipt:?}"),
        Outcome::Compensated(failure) => println!("rolled back: {failure}"),
        Outcome::Failed(failure) => println!("needs an operator: {failure}"),
    }

    println!(
        "\nthe state machine:\n{}",
        place_order.state_machine().to_mermaid()
    );
    rt.shutdown().await;
    if temporary {
        std::fs::remove_dir_all(&path)?;
    }
    Ok(())
}
