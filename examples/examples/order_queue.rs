//! An order queue: orders go through a queue that runs at most three at
//! once and one per customer at a time, so a customer's orders never race
//! each other (for their credit, their stock); an express order jumps the
//! line. On the embedded store, in a fresh temporary directory.
//!
//! ```text
//! cargo run --example order_queue
//! ```
//!
//! Every process that shares the store defines the queue the same way;
//! the limits hold across all of them (see `docs/queues.md`).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

/// One order of one customer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    id: String,
    customer: String,
    cents: u64,
}

#[step]
async fn reserve_stock(order: &Order) -> Result<String, StepError> {
    work(order, "reserve stock").await;
    Ok(format!("hold-{}", order.id))
}

#[compensate(reserve_stock)]
async fn release_stock(order: &Order, hold: String) -> Result<(), StepError> {
    println!("  {}: released {hold}", order.id);
    Ok(())
}

#[step(pivot)]
async fn charge_card(order: &Order) -> Result<String, StepError> {
    work(order, &format!("charge {} cents", order.cents)).await;
    Ok(format!("pay-{}", order.id))
}

#[step(retriable)]
async fn ship(order: &Order) -> Result<String, StepError> {
    work(order, "ship").await;
    Ok(format!("trk-{}", order.id))
}

#[workflow]
async fn fulfil_order(order: Order) -> Result<String, WorkflowError> {
    let _hold = reserve_stock(&order).await?;
    let _payment = charge_card(&order).await?;
    let tracking = ship(&order).await?;
    Ok(tracking)
}

/// When the example began, and the steps running now, per customer.
static BEGAN: LazyLock<Instant> = LazyLock::new(Instant::now);
static RUNNING: LazyLock<Mutex<Running>> = LazyLock::new(Default::default);

/// The steps running now, and the most seen at once.
#[derive(Default)]
struct Running {
    by_customer: HashMap<String, usize>,
    total: usize,
    most_per_customer: usize,
    most: usize,
}

/// A step's work: 100 ms, counted while it runs.
async fn work(order: &Order, what: &str) {
    {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        let count = running
            .by_customer
            .entry(order.customer.clone())
            .or_default();
        *count += 1;
        let count = *count;
        running.total += 1;
        running.most_per_customer = running.most_per_customer.max(count);
        running.most = running.most.max(running.total);
    }
    println!(
        "{:>5} ms  {:<4} {:<12} {what}",
        BEGAN.elapsed().as_millis(),
        order.customer,
        order.id
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    running.total -= 1;
    if let Some(count) = running.by_customer.get_mut(&order.customer) {
        *count -= 1;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("sagaflow-order-queue-{}", std::process::id()));
    let rt = Runtime::builder()
        .store(EmbeddedStore::open(&path)?)
        .register(fulfil_order)
        .queue(
            Queue::new("orders")
                .concurrency(3) // three orders at once, across every process
                .partition_concurrency(1), // one per customer
        )
        .build()
        .await?;
    LazyLock::force(&BEGAN);

    let orders = [("ann", 3), ("bob", 2), ("cid", 1), ("dee", 1)];
    println!(
        "enqueueing 8 orders, three at once, one per customer (store: {})\n",
        path.display()
    );
    let mut handles = Vec::new();
    for (customer, count) in orders {
        for n in 1..=count {
            let order = Order {
                id: format!("{customer}-{n}"),
                customer: customer.to_owned(),
                cents: 1_000 * n,
            };
            // Normal orders at priority 1: an express order (priority 0,
            // the default) starts before them once a slot is free.
            let to = Enqueue::new("orders").partition(customer).priority(1);
            handles.push(
                rt.enqueue(to, fulfil_order, order.id.clone(), order)
                    .await?,
            );
        }
    }
    let express = Order {
        id: "dee-express".into(),
        customer: "dee".into(),
        cents: 9_900,
    };
    let to = Enqueue::new("orders").partition("dee");
    handles.push(
        rt.enqueue(to, fulfil_order, express.id.clone(), express)
            .await?,
    );
    println!(
        "enqueued {} orders (store: {})\n",
        handles.len(),
        path.display()
    );

    for handle in &handles {
        match handle.outcome().await? {
            Outcome::Completed(tracking) => println!("{:<12} shipped: {tracking}", handle.id()),
            Outcome::Compensated(failure) => println!("{:<12} rolled back: {failure}", handle.id()),
            Outcome::Failed(failure) => {
                println!("{:<12} needs an operator: {failure}", handle.id())
            }
        }
    }
    let (most, most_per_customer) = {
        let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        (running.most, running.most_per_customer)
    };
    println!("\nat most {most} orders ran at once, at most {most_per_customer} per customer");
    rt.shutdown().await;
    std::fs::remove_dir_all(&path)?;
    Ok(())
}
