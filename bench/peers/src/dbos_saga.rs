//! The order saga on DBOS Transact for Rust (`dbos` 0.5): a workflow
//! function whose four `dbos::step`s are checkpointed in DBOS's system
//! database, here the database `dbos_peers` on the same PostgreSQL server
//! as sagaflow's table, with DBOS's default settings.
//!
//! Per workflow, DBOS inserts a `workflow_status` row at the start (input
//! included) and updates it with the output at the end; per step it reads
//! `operation_outputs` for a recorded result (none in a first run) and
//! inserts the step's output there. Compensation is ordinary code on the
//! error path (DBOS has no saga construct); it never runs here, so it
//! costs nothing, as in the other two systems.

use std::time::{Duration, Instant};

use dbos::{Config, DBOS, StartOptions, StepOptions, WorkflowRef};
use tokio::task::JoinSet;

use crate::Order;

/// DBOS's system database on the shared server (DBOS creates it if missing).
const DATABASE: &str = "dbos_peers";
/// DBOS's name for this application, stamped on its rows.
const APP_NAME: &str = "sagaflow_peers";
/// The tables a round leaves rows in; `CASCADE` takes the step outputs too.
const EMPTY_TABLES: &str = "DO $$ BEGIN \
     IF to_regclass('dbos.workflow_status') IS NOT NULL THEN \
         TRUNCATE dbos.workflow_status CASCADE; \
     END IF; END $$";

/// sagaflow's default retry policy for compensable and pivot steps: three
/// attempts, 1 s doubling to at most 100 s (DBOS's default is one attempt).
fn bounded() -> StepOptions {
    StepOptions {
        max_attempts: 3,
        interval: Duration::from_secs(1),
        backoff_rate: 2.0,
        max_interval: Duration::from_secs(100),
        ..StepOptions::default()
    }
}

/// sagaflow's policy for a retriable step: up to 100 attempts.
fn retriable() -> StepOptions {
    StepOptions {
        max_attempts: 100,
        ..bounded()
    }
}

/// The step bodies: trivial, as in the other two systems.
async fn trivial(id: u32) -> dbos::Result<u32> {
    Ok(id)
}

/// The saga: reserve → charge (each undone on a later failure) → ship (the
/// pivot) → confirm (retried).
async fn place_order(order: Order) -> dbos::Result<u32> {
    let id = order.id;
    let reserved = dbos::step_with("reserve", bounded(), move || trivial(id)).await?;
    let charged = match dbos::step_with("charge", bounded(), move || trivial(id)).await {
        Ok(charged) => charged,
        Err(error) => {
            dbos::step_with("release", retriable(), move || trivial(id)).await?;
            return Err(error);
        }
    };
    let shipped = match dbos::step_with("ship", bounded(), move || trivial(id)).await {
        Ok(shipped) => shipped,
        Err(error) => {
            dbos::step_with("refund", retriable(), move || trivial(id)).await?;
            dbos::step_with("release", retriable(), move || trivial(id)).await?;
            return Err(error);
        }
    };
    dbos::step_with("confirm", retriable(), move || trivial(id)).await?;
    Ok(reserved + charged + shipped)
}

/// DBOS, with its system database reachable.
pub struct Bench {
    url: String,
    /// A plain connection to the system database, for emptying it.
    admin: tokio_postgres::Client,
}

impl Bench {
    /// Launches DBOS once on `dbos_peers` at the server of `postgres_url`
    /// (creating and migrating the database), then keeps a connection to it.
    pub async fn set_up(postgres_url: &str) -> Result<Bench, String> {
        let url = with_database(postgres_url, DATABASE)?;
        let dbos = new_instance(&url);
        dbos.launch()
            .await
            .map_err(|e| format!("DBOS cannot launch on {url}: {e}"))?;
        dbos.shutdown().await;
        let admin = connect(&url).await?;
        Ok(Bench { url, admin })
    }

    /// Empties the workflow tables, launches a DBOS instance, runs one
    /// untimed workflow, then `count` at once; the wall time of those.
    pub async fn round(&mut self, count: usize, round: usize) -> Result<Duration, String> {
        self.admin
            .batch_execute(EMPTY_TABLES)
            .await
            .map_err(|e| format!("cannot empty DBOS's tables: {e}"))?;
        let dbos = new_instance(&self.url);
        let workflow = dbos
            .register_workflow("place_order", place_order)
            .map_err(|e| format!("cannot register the workflow: {e}"))?;
        dbos.launch()
            .await
            .map_err(|e| format!("DBOS cannot launch: {e}"))?;
        let result = async {
            run_one(&workflow, format!("warm-up-{round}"), Order { id: 0 }).await?;
            let driver = tokio::spawn(run_all(workflow.clone(), count, round));
            driver
                .await
                .map_err(|e| format!("the driver panicked: {e}"))?
        }
        .await;
        drop(workflow);
        dbos.shutdown().await;
        result
    }
}

/// A DBOS instance on `url` with the default configuration, but for the
/// application version it requires.
fn new_instance(url: &str) -> DBOS {
    DBOS::new(Config {
        app_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        ..Config::new(APP_NAME, url)
    })
}

/// Starts `count` orders at once, each awaited to its result in a
/// `JoinSet`; the wall time from the first start to the last result.
async fn run_all(
    workflow: WorkflowRef<Order, u32>,
    count: usize,
    round: usize,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut set = JoinSet::new();
    for id in 0..count {
        let workflow = workflow.clone();
        set.spawn(async move {
            let order = Order { id: id as u32 };
            run_one(&workflow, format!("order-{round}-{id:06}"), order).await
        });
    }
    while let Some(done) = set.join_next().await {
        done.map_err(|e| format!("a workflow's task panicked: {e}"))??;
    }
    Ok(started.elapsed())
}

/// Starts one order under the workflow id `id` and waits for its result.
async fn run_one(
    workflow: &WorkflowRef<Order, u32>,
    id: String,
    order: Order,
) -> Result<(), String> {
    let options = StartOptions {
        workflow_id: Some(&id),
        ..StartOptions::default()
    };
    let handle = workflow
        .start_with(order, options)
        .await
        .map_err(|e| format!("start {id}: {e}"))?;
    handle
        .result()
        .await
        .map(drop)
        .map_err(|e| format!("the result of {id}: {e}"))
}

/// `url` naming the database `database` instead of its own.
pub fn with_database(url: &str, database: &str) -> Result<String, String> {
    let bad = || format!("cannot find the database name in {url:?} (want postgres://host/db)");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let (authority, path) = rest.split_once('/').ok_or_else(bad)?;
    let query = path.split_once('?').map(|(_, query)| query);
    Ok(match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    })
}

/// A plain connection to `url`, its driver on a task of its own.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("the connection to PostgreSQL ended: {e}");
        }
    });
    Ok(client)
}
