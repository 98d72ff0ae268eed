//! The `sagaflow` tool shipped inside a binary with workflows registered,
//! as a user would: the examples' order, coffee and batch sagas. On top of
//! the tool's commands, `sagaflow-demo seed --store embedded:DIR` fills a
//! store by running the examples' sagas (some complete, some roll back,
//! one waits for a worker), so there is something to look at.

use std::process::ExitCode;
use std::time::Duration;

use sagaflow::cli::Registry;
use sagaflow::prelude::*;
use sagaflow_examples::batch::{Batch, Item, reserve_batch};
use sagaflow_examples::coffee::{CoffeeOrder, coffee_order};
use sagaflow_examples::order::{Order, place_order};

fn registry() -> Registry {
    Registry::new()
        .register(place_order)
        .register(coffee_order)
        .register(reserve_batch)
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
    sagaflow::cli::run(registry()).await
}

/// Runs the examples' sagas into the embedded store named by
/// `--store embedded:DIR` (created if missing).
async fn seed(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let url = match args {
        [flag, url] if flag == "--store" => url.clone(),
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
        .build()
        .await?;
    let order = |id: &str, fail_shipment: bool| Order {
        id: id.to_owned(),
        sku: "book-1984".to_owned(),
        quantity: 2,
        amount_cents: 2_400,
        fail_shipment,
    };
    let coffee = |id: &str, declined: bool, oversold: bool| CoffeeOrder {
        id: id.to_owned(),
        customer: "Ada".to_owned(),
        beverage: "flat white".to_owned(),
        price_cents: 380,
        card_declined: declined,
        phone_off: false,
        beans_oversold: oversold,
    };
    let item = |sku: &str, out_of_stock: bool| Item {
        sku: sku.to_owned(),
        quantity: 1,
        out_of_stock,
    };
    // One at a time, so creation times (and the newest-first order) are
    // the order written here.
    let mut outcomes = Vec::new();
    macro_rules! run {
        ($workflow:expr, $id:expr, $input:expr) => {{
            let outcome = runtime
                .start($workflow, $id, $input)
                .await?
                .outcome()
                .await?;
            outcomes.push(format!("{}: {}", $id, describe(&outcome)));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }};
    }
    run!(place_order, "order-ok", order("order-ok", false));
    run!(place_order, "order-rejected", order("order-rejected", true));
    run!(coffee_order, "coffee-ok", coffee("coffee-ok", false, false));
    run!(
        coffee_order,
        "coffee-declined",
        coffee("coffee-declined", true, false)
    );
    run!(
        coffee_order,
        "coffee-oversold",
        coffee("coffee-oversold", false, true)
    );
    run!(
        reserve_batch,
        "batch-ok",
        Batch {
            id: "batch-ok".to_owned(),
            items: vec![item("pen", false), item("ink", false), item("pad", false)],
        }
    );
    run!(
        reserve_batch,
        "batch-short",
        Batch {
            id: "batch-short".to_owned(),
            items: vec![
                item("pen", false),
                item("ink", false),
                item("gold-nib", true)
            ],
        }
    );
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

fn describe<T>(outcome: &Outcome<T>) -> String {
    match outcome {
        Outcome::Completed(_) => "completed".to_owned(),
        Outcome::Compensated(failure) => format!("compensated ({failure})"),
        Outcome::Failed(failure) => format!("failed ({failure})"),
    }
}
