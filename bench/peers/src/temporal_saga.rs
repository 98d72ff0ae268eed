//! The order saga on Temporal (`temporalio-sdk` 1.1): a workflow of four
//! activities, run by a worker of this process against a Temporal server
//! (`temporal server start-dev`), started and awaited through the client,
//! with the SDK's default worker settings.
//!
//! Per workflow, the server persists the workflow's event history: start,
//! then for each workflow task (scheduled, started, completed) and each
//! activity (scheduled, started, completed) its events, and the completion;
//! the worker long-polls the server for workflow and activity tasks and
//! reports each one back. Compensation is ordinary workflow code on the
//! error path; it never runs here, so it costs nothing, as in the other
//! two systems.

use std::time::{Duration, Instant};

use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowGetResultOptions,
    WorkflowStartOptions,
};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{
    ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult,
};
use tokio::task::JoinSet;

use crate::Order;

/// The namespace the dev server creates.
const NAMESPACE: &str = "default";
/// The task queue of the bench's worker.
const TASK_QUEUE: &str = "sagaflow-peers";
/// How long connecting to the server may take before it is skipped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An activity's options: sagaflow's default policy for compensable and
/// pivot steps (three attempts, 1 s doubling to at most 100 s; Temporal's
/// default retries without bound), or up to 100 for a retriable one.
fn activity(max_attempts: u32) -> ActivityOptions {
    let policy = RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(100))
        .maximum_attempts(max_attempts)
        .build();
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(policy)
        .build()
}

/// The saga's workflow.
#[workflow]
#[derive(Default)]
pub struct PlaceOrder;

#[workflow_methods]
impl PlaceOrder {
    /// reserve → charge (each undone on a later failure) → ship (the pivot)
    /// → confirm (retried).
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, order: Order) -> WorkflowResult<u32> {
        let reserved = ctx
            .execute_activity(OrderActivities::reserve, order, activity(3))
            .await?;
        let charged = match ctx
            .execute_activity(OrderActivities::charge, order, activity(3))
            .await
        {
            Ok(charged) => charged,
            Err(error) => {
                ctx.execute_activity(OrderActivities::release, order, activity(100))
                    .await?;
                return Err(error.into());
            }
        };
        let shipped = match ctx
            .execute_activity(OrderActivities::ship, order, activity(3))
            .await
        {
            Ok(shipped) => shipped,
            Err(error) => {
                ctx.execute_activity(OrderActivities::refund, order, activity(100))
                    .await?;
                ctx.execute_activity(OrderActivities::release, order, activity(100))
                    .await?;
                return Err(error.into());
            }
        };
        ctx.execute_activity(OrderActivities::confirm, order, activity(100))
            .await?;
        Ok(reserved + charged + shipped)
    }
}

/// The saga's steps and compensations, with trivial bodies.
pub struct OrderActivities;

#[activities]
impl OrderActivities {
    /// Reserves the order's stock.
    #[activity]
    pub async fn reserve(_ctx: ActivityContext, order: Order) -> Result<u32, ActivityError> {
        Ok(order.id)
    }

    /// Undoes `reserve`.
    #[activity]
    pub async fn release(_ctx: ActivityContext, _order: Order) -> Result<(), ActivityError> {
        Ok(())
    }

    /// Charges the order.
    #[activity]
    pub async fn charge(_ctx: ActivityContext, order: Order) -> Result<u32, ActivityError> {
        Ok(order.id)
    }

    /// Undoes `charge`.
    #[activity]
    pub async fn refund(_ctx: ActivityContext, _order: Order) -> Result<(), ActivityError> {
        Ok(())
    }

    /// Ships the order: the point of no return.
    #[activity]
    pub async fn ship(_ctx: ActivityContext, order: Order) -> Result<u32, ActivityError> {
        Ok(order.id)
    }

    /// Confirms the order to the customer.
    #[activity]
    pub async fn confirm(_ctx: ActivityContext, _order: Order) -> Result<(), ActivityError> {
        Ok(())
    }
}

/// Temporal, with its server reachable.
pub struct Bench {
    runtime: Runtime,
    client: Client,
    /// Distinguishes this process's workflow ids from an earlier run's on
    /// the same server (whose history is not emptied between runs).
    run_tag: String,
}

impl Bench {
    /// Connects to the Temporal frontend at `address` (`http://host:port`).
    pub fn set_up(address: &str, tokio: &tokio::runtime::Runtime) -> Result<Bench, String> {
        let _entered = tokio.enter();
        let runtime = Runtime::from_current_tokio(Default::default())
            .map_err(|e| format!("the Temporal SDK's runtime does not start: {e}"))?;
        let url = Url::parse(address).map_err(|e| format!("TEMPORAL_ADDRESS {address:?}: {e}"))?;
        let options = ConnectionOptions::new(url)
            .connect_timeout(CONNECT_TIMEOUT)
            .build();
        let connection = tokio
            .block_on(Connection::connect(options))
            .map_err(|e| format!("no Temporal server at {address}: {e}"))?;
        let client = Client::new(connection, ClientOptions::new(NAMESPACE).build())
            .map_err(|e| format!("the Temporal client does not build: {e}"))?;
        let run_tag = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs())
        );
        Ok(Bench {
            runtime,
            client,
            run_tag,
        })
    }

    /// Starts a worker, runs one untimed workflow, then `count` at once; the
    /// wall time of those. The worker's future is not `Send` (its workflows
    /// run on a `LocalSet`), so it is driven by `block_on` on this thread
    /// while the workflows are started and awaited from a task on `tokio`.
    pub fn round(
        &mut self,
        tokio: &tokio::runtime::Runtime,
        count: usize,
        round: usize,
    ) -> Result<Duration, String> {
        let _entered = tokio.enter();
        let options = WorkerOptions::new(TASK_QUEUE)
            .register_workflow::<PlaceOrder>()
            .map_err(|e| format!("cannot register the workflow: {e}"))?
            .register_activities(OrderActivities)
            .build();
        let mut worker = Worker::new(&self.runtime, self.client.clone(), options)
            .map_err(|e| format!("the worker does not start: {e}"))?;
        let shutdown = worker.shutdown_handle();
        let client = self.client.clone();
        let prefix = format!("{}-{round}", self.run_tag);
        tokio.block_on(async move {
            let mut driver = tokio::spawn(async move {
                run_one(&client, format!("warm-up-{prefix}"), Order { id: 0 }).await?;
                run_all(client, count, &prefix).await
            });
            let deadline = tokio::time::sleep(crate::ROUND_TIMEOUT);
            let run = worker.run();
            tokio::pin!(run, deadline);
            let wall = tokio::select! {
                wall = &mut driver => wall.map_err(|e| format!("the driver panicked: {e}"))?,
                stopped = &mut run => {
                    driver.abort();
                    return Err(format!("the worker stopped during the round: {stopped:?}"));
                }
                () = &mut deadline => {
                    driver.abort();
                    Err(format!("the round took longer than {:?}", crate::ROUND_TIMEOUT))
                }
            };
            shutdown();
            run.await
                .map_err(|e| format!("the worker failed to shut down: {e}"))?;
            wall
        })
    }
}

/// Starts `count` orders at once, each awaited to its result in a
/// `JoinSet`; the wall time from the first start to the last result.
async fn run_all(client: Client, count: usize, prefix: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let mut set = JoinSet::new();
    for id in 0..count {
        let client = client.clone();
        let workflow_id = format!("order-{prefix}-{id:06}");
        set.spawn(async move { run_one(&client, workflow_id, Order { id: id as u32 }).await });
    }
    while let Some(done) = set.join_next().await {
        done.map_err(|e| format!("a workflow's task panicked: {e}"))??;
    }
    Ok(started.elapsed())
}

/// Starts one order under the workflow id `id` and waits for its result.
async fn run_one(client: &Client, id: String, order: Order) -> Result<(), String> {
    let handle = client
        .start_workflow(
            PlaceOrder::run,
            order,
            WorkflowStartOptions::new(TASK_QUEUE, id.clone()).build(),
        )
        .await
        .map_err(|e| format!("start {id}: {e}"))?;
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map(drop)
        .map_err(|e| format!("the result of {id}: {e}"))
}
