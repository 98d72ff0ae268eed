//! The coffee shop: three orders on a memory store.
//!
//! ```text
//! cargo run --example coffee_shop
//! ```
//! Ana's phone is off: she still gets her drink. Ben's card is declined:
//! nothing to undo. Cleo's beans turn out oversold: the stock update, the
//! drink and the payment are undone, in that order. Dan cancels right after
//! paying (a `"cancel-order"` signal): his payment is refunded.

use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow_examples::coffee::{CoffeeOrder, CoffeeStatus, coffee_order};

fn order(id: &str, customer: &str, beverage: &str) -> CoffeeOrder {
    CoffeeOrder {
        id: id.into(),
        customer: customer.into(),
        beverage: beverage.into(),
        price_cents: 450,
        card_declined: false,
        phone_off: false,
        beans_oversold: false,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(coffee_order)
        .build()
        .await?;
    let orders = [
        CoffeeOrder {
            phone_off: true,
            ..order("cup-1", "Ana", "flat white")
        },
        CoffeeOrder {
            card_declined: true,
            ..order("cup-2", "Ben", "espresso")
        },
        CoffeeOrder {
            beans_oversold: true,
            ..order("cup-3", "Cleo", "cortado")
        },
    ];
    for order in orders {
        println!("{} orders a {}:", order.customer, order.beverage);
        let id = order.id.clone();
        let handle = rt.start(coffee_order, &id, order).await?;
        report(handle.outcome().await?);
        println!("  status: {:?}", rt.query::<CoffeeStatus>(&id).await?);
    }

    let dan = order("cup-4", "Dan", "mocha");
    println!(
        "{} orders a {}, then changes his mind:",
        dan.customer, dan.beverage
    );
    let handle = rt.start(coffee_order, "cup-4", dan).await?;
    while rt.query::<CoffeeStatus>("cup-4").await? != Some(CoffeeStatus::Paid) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rt.signal("cup-4", "cancel-order", true).await?;
    report(handle.outcome().await?);
    println!("  status: {:?}", rt.query::<CoffeeStatus>("cup-4").await?);

    println!(
        "\nthe state machine:\n{}",
        coffee_order.state_machine().to_mermaid()
    );
    rt.shutdown().await;
    Ok(())
}

fn report(outcome: Outcome<sagaflow_examples::coffee::Served>) {
    {
        match outcome {
            Outcome::Completed(served) => {
                println!(
                    "  => served {} (customer notified: {})",
                    served.beverage.label, served.notified
                )
            }
            Outcome::Compensated(failure) => println!("  => rolled back: {failure}"),
            Outcome::Failed(failure) => println!("  => needs an operator: {failure}"),
        }
    }
}
