//! The `sagaflow` tool shipped inside a binary with workflows registered,
//! as a user would: the examples' order, coffee, batch and approval sagas.
//! On top of the tool's commands, `sagaflow-demo seed --store embedded:DIR`
//! fills a store by running the examples' sagas (some complete, some roll
//! back, one waits for a signal, one for a worker), so there is something
//! to look at.

use std::process::ExitCode;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow_cli::Registry;
use sagaflow_examples::approval::{ApprovalRequest, approval};
use sagaflow_examples::batch::{Batch, Item, reserve_batch};
use sagaflow_examples::coffee::{CoffeeOrder, coffee_order};
use sagaflow_examples::order::{Order, place_order};

fn registry() -> Registry {
    Registry::new()
        .register(place_order)
        .register(coffee_order)
        .register(reserve_batch)
        .register(approval)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("seed") {
        return match seed(&args[2..]).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    sagaflow_cli::run(registry()).await
}

fn order(id: &str, fail_shipment: bool) -> Order {
    Order {
        id: id.to_owned(),
        sku: "book-1984".to_owned(),
        quantity: 2,
        amount_cents: 2_400,
        fail_shipment,
    }
}

fn coffee(id: &str, card_declined: bool, beans_oversold: bool) -> CoffeeOrder {
    CoffeeOrder {
        id: id.to_owned(),
        customer: "Ada".to_owned(),
        beverage: "flat white".to_owned(),
        price_cents: 380,
        card_declined,
        phone_off: false,
        beans_oversold,
    }
}

fn batch(id: &str, out_of_stock: &[bool]) -> Batch {
    Batch {
        id: id.to_owned(),
        items: ["pen", "ink", "gold-nib"]
            .iter()
            .zip(out_of_stock)
            .map(|(sku, out_of_stock)| Item {
                sku: (*sku).to_owned(),
                quantity: 1,
                out_of_stock: *out_of_stock,
            })
            .collect(),
    }
}

fn describe<T>(outcome: &Outcome<T>) -> String {
    match outcome {
        Outcome::Completed(_) => "completed".to_owned(),
        Outcome::Compensated(failure) => format!("compensated ({failure})"),
        Outcome::Failed(failure) => format!("failed ({failure})"),
    }
}

/// Runs the examples' sagas into the embedded store named by
/// `--store embedded:DIR` (created if missing), one instance after the
/// other so their creation times are in the order written here.
async fn seed(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let url = match args {
        [flag, url] if flag == "--store" || flag == "-s" => url.clone(),
        _ => std::env::var("SAGAFLOW_STORE")
            .map_err(|_| "usage: sagaflow-demo seed --store embedded:DIR")?,
    };
    let dir = url
        .strip_prefix("embedded:")
        .ok_or("seed fills an embedded store: --store embedded:DIR")?;
    let store = EmbeddedStore::open(dir)?;
    let runtime = Runtime::builder()
        .store(store.clone())
        .register(place_order)
        .register(coffee_order)
        .register(reserve_batch)
        .register(approval)
        .build()
        .await?;
    // Creation times a few ms apart, so newest-first is this order.
    let gap = || tokio::time::sleep(Duration::from_millis(5));
    let mut orders = Vec::new();
    for (id, fail) in [("order-ok", false), ("order-rejected", true)] {
        orders.push((id, runtime.start(place_order, id, order(id, fail)).await?));
        gap().await;
    }
    let mut coffees = Vec::new();
    for (id, declined, oversold) in [
        ("coffee-ok", false, false),
        ("coffee-declined", true, false),
        ("coffee-oversold", false, true),
    ] {
        let input = coffee(id, declined, oversold);
        coffees.push((id, runtime.start(coffee_order, id, input).await?));
        gap().await;
    }
    let mut batches = Vec::new();
    for (id, out_of_stock) in [
        ("batch-ok", [false; 3]),
        ("batch-short", [false, false, true]),
    ] {
        let input = batch(id, &out_of_stock);
        batches.push((id, runtime.start(reserve_batch, id, input).await?));
        gap().await;
    }
    // Waits a day for its approver's signal.
    let request = ApprovalRequest {
        id: "approval-1".to_owned(),
        item: "standing desk".to_owned(),
        amount_cents: 64_900,
        wait_ms: 86_400_000,
    };
    runtime.start(approval, "approval-1", request).await?;
    gap().await;

    let mut outcomes = Vec::new();
    for (id, handle) in orders {
        outcomes.push(format!("{id}: {}", describe(&handle.outcome().await?)));
    }
    for (id, handle) in coffees {
        outcomes.push(format!("{id}: {}", describe(&handle.outcome().await?)));
    }
    for (id, handle) in batches {
        outcomes.push(format!("{id}: {}", describe(&handle.outcome().await?)));
    }
    loop {
        let status = runtime.status("approval-1").await?;
        if status.is_some_and(|status| status.phase == sagaflow::Phase::Waiting) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    outcomes.push("approval-1: waits for the signal `approval`".to_owned());
    runtime.shutdown().await;
    drop(runtime);

    // Started by a client only: it waits, at Start, for a worker runtime.
    let client = Runtime::builder()
        .store(store)
        .register(place_order)
        .workers(0)
        .build()
        .await?;
    client
        .start(place_order, "order-pending", order("order-pending", false))
        .await?;
    outcomes.push("order-pending: waits for a worker".to_owned());
    for line in outcomes {
        println!("{line}");
    }
    Ok(())
}
