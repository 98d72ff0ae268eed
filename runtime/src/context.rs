//! What a step can learn about the attempt it runs in.

use std::fmt;

tokio::task_local! {
    static CONTEXT: StepContext;
}

/// The context of one step attempt, readable inside a step with
/// [`context()`](crate::context()).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepContext {
    /// The workflow instance's id, as given to `Runtime::start`.
    pub workflow_id: String,
    /// The state (suspension point) the step runs in, e.g. `ChargePayment1`.
    pub state: String,
    /// The step's name.
    pub step: &'static str,
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub attempt: u32,
}

impl StepContext {
    /// A key that is the same for every attempt of this step in this instance:
    /// `{workflow id}/{state}`. Pass it to external systems so a re-run after a
    /// crash is recognised as a duplicate.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.workflow_id, self.state)
    }
}

impl fmt::Display for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} attempt {}", self.idempotency_key(), self.attempt)
    }
}

/// The context of the step attempt running on this task, or `None` outside
/// a step (for example when a step function is called directly in a test).
pub fn context() -> Option<StepContext> {
    CONTEXT.try_with(Clone::clone).ok()
}

/// Runs `fut` with `ctx` as its step context.
pub(crate) async fn scope<F: std::future::Future>(ctx: StepContext, fut: F) -> F::Output {
    CONTEXT.scope(ctx, fut).await
}
