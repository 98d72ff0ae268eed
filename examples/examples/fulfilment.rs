//! Order fulfilment with a child workflow, on a memory store.
//!
//! ```text
//! cargo run -p sagaflow-examples --example fulfilment            # completes
//! cargo run -p sagaflow-examples --example fulfilment -- --fail  # rolls back into the child
//! ```
//! `fulfil_order` charges the card, runs `ship_order` as a child workflow
//! (instance `{order id}/ShipOrder2`: pack, book a carrier), then issues the
//! invoice. With `--fail` the invoice fails after the child completed: the
//! child's compensations run (cancel the booking, unpack), then the card is
//! refunded: the exact reverse order of completion.

use sagaflow::prelude::*;
use sagaflow_examples::fulfilment::{Order, fulfil_order, ship_order};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fail = std::env::args().any(|arg| arg == "--fail");
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(fulfil_order)
        .register(ship_order)
        .build()
        .await?;
    let order = Order {
        id: "order-7".into(),
        items: vec!["grinder".into(), "beans".into()],
        amount_cents: 12_500,
        carrier_refuses: false,
        invoice_fails: fail,
    };
    println!("{}:", order.id);
    let handle = rt.start(fulfil_order, order.id.clone(), order).await?;
    match handle.outcome().await? {
        Outcome::Completed(receipt) => println!(
            "  => fulfilled: {}, {}, {}",
            receipt.payment.transaction, receipt.shipment.tracking, receipt.invoice
        ),
        Outcome::Compensated(failure) => println!("  => rolled back: {failure}"),
        Outcome::Failed(failure) => println!("  => needs an operator: {failure}"),
    }
    for id in ["order-7", "order-7/ShipOrder2"] {
        if let Some(status) = rt.status(id).await? {
            println!(
                "  {id}: {} (parent: {}, children: [{}])",
                status.phase,
                status.parent.as_deref().unwrap_or("none"),
                status.children.join(", ")
            );
        }
    }
    println!(
        "\nthe parent's state machine:\n{}",
        fulfil_order.state_machine().to_mermaid()
    );
    println!(
        "the child's state machine:\n{}",
        ship_order.state_machine().to_mermaid()
    );
    rt.shutdown().await;
    Ok(())
}
