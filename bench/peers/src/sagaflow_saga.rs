//! The order saga on sagaflow: `#[step]`s with their `#[compensate]`s, a
//! pivot and a retriable step, on a `PostgresStore` with the runtime's
//! default settings.
//!
//! Per workflow, sagaflow writes one row of its table (`sagaflow_peers`):
//! the instance record (current state, bounded history, compensation stack)
//! is inserted by `start` and rewritten by a compare-and-swap after each of
//! the four steps. Concurrent transitions share a transaction (group commit).

use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow::store::postgres::PostgresStore;
use tokio::task::JoinSet;

use crate::Order;

/// sagaflow's table on the shared server, emptied before each round.
const TABLE: &str = "sagaflow_peers";

#[step]
async fn reserve(order: &Order) -> Result<u32, StepError> {
    Ok(order.id)
}

#[compensate(reserve)]
async fn release(_order: &Order, _reserved: u32) -> Result<(), StepError> {
    Ok(())
}

#[step]
async fn charge(order: &Order) -> Result<u32, StepError> {
    Ok(order.id)
}

#[compensate(charge)]
async fn refund(_order: &Order, _charged: u32) -> Result<(), StepError> {
    Ok(())
}

#[step(pivot)]
async fn ship(order: &Order) -> Result<u32, StepError> {
    Ok(order.id)
}

#[step(retriable)]
async fn confirm(_order: &Order) -> Result<(), StepError> {
    Ok(())
}

#[workflow]
async fn place_order(order: Order) -> Result<u32, WorkflowError> {
    let reserved = reserve(&order).await?;
    let charged = charge(&order).await?;
    let shipped = ship(&order).await?;
    confirm(&order).await?;
    Ok(reserved + charged + shipped)
}

/// sagaflow, connected to its server.
pub struct Bench {
    url: String,
    /// A plain connection for emptying the table.
    admin: tokio_postgres::Client,
}

impl Bench {
    /// Connects to PostgreSQL at `url` and creates the table if missing.
    pub async fn set_up(url: &str) -> Result<Bench, String> {
        PostgresStore::with_table(url, TABLE)
            .await
            .map_err(|e| format!("cannot open the PostgreSQL store at {url}: {e}"))?;
        let admin = crate::dbos_saga::connect(url).await?;
        Ok(Bench {
            url: url.to_owned(),
            admin,
        })
    }

    /// Empties the table, builds a runtime, runs one untimed workflow, then
    /// `count` at once; the wall time of those.
    pub async fn round(&mut self, count: usize, round: usize) -> Result<Duration, String> {
        self.admin
            .batch_execute(&format!("TRUNCATE \"{TABLE}\""))
            .await
            .map_err(|e| format!("cannot empty {TABLE}: {e}"))?;
        let store = PostgresStore::with_table(&self.url, TABLE)
            .await
            .map_err(|e| format!("cannot open the store: {e}"))?;
        let rt = Runtime::builder()
            .store(store)
            .register(place_order)
            .build()
            .await
            .map_err(|e| format!("the runtime does not build: {e}"))?;
        run_one(&rt, format!("warm-up-{round}"), Order { id: 0 }).await?;
        // Driven from a task on the runtime, as a server's handlers start
        // workflows (the same for every system here).
        let driver = tokio::spawn(run_all(rt.clone(), count, round));
        let wall = driver
            .await
            .map_err(|e| format!("the driver panicked: {e}"))?;
        rt.shutdown().await;
        wall
    }
}

/// Starts `count` orders at once, each awaited to its outcome in a
/// `JoinSet`; the wall time from the first start to the last outcome.
async fn run_all(rt: Runtime, count: usize, round: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let mut set = JoinSet::new();
    for id in 0..count {
        let rt = rt.clone();
        set.spawn(async move {
            let order = Order { id: id as u32 };
            run_one(&rt, format!("order-{round}-{id:06}"), order).await
        });
    }
    while let Some(done) = set.join_next().await {
        done.map_err(|e| format!("a workflow's task panicked: {e}"))??;
    }
    Ok(started.elapsed())
}

/// Starts one order and waits for it to complete.
async fn run_one(rt: &Runtime, id: String, order: Order) -> Result<(), String> {
    let handle = rt
        .start(place_order, id.clone(), order)
        .await
        .map_err(|e| format!("start {id}: {e}"))?;
    match handle.outcome().await {
        Ok(Outcome::Completed(_)) => Ok(()),
        Ok(other) => Err(format!("{id} did not complete: {other:?}")),
        Err(e) => Err(format!("the outcome of {id}: {e}")),
    }
}
