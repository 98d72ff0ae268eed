//! Rolling back: the compensations of the steps that succeeded, newest
//! first, each retried by its policy.

use std::borrow::Cow;
use std::sync::Arc;

use super::super::erased::ErasedWorkflow;
use super::transition::end_failed;
use super::{Flow, Worker, heartbeat_of, panic_message, previous_details};
use crate::clock::duration_ms;
use crate::context::{self, AttemptContext, AttemptLink};
use crate::error::{Error, StepError};
use crate::record::{EventKind, Failure, HistoryEvent, Phase};
use crate::step::RetryPolicy;
use tracing::Instrument as _;

impl Worker {
    /// Runs the compensation on top of the stack (one attempt) and writes
    /// the result.
    pub(super) async fn compensate_next(
        &mut self,
        workflow: &dyn ErasedWorkflow,
    ) -> Result<Flow, Error> {
        let Some(entry) = self.current.record.compensation_stack.last().cloned() else {
            let now = self.now();
            let next = &mut self.current.record;
            next.phase = Phase::Compensated;
            next.heartbeat = None;
            next.push_event(HistoryEvent::new(now, EventKind::RolledBack));
            return self.commit_at(now).await;
        };
        if let Some(child) = entry.child.clone() {
            return self.compensate_child(&entry, &child).await;
        }
        let attempt = self.current.record.attempt.max(1);
        let index = self.current.record.compensation_stack.len() - 1;
        let state_name = format!("compensate/{index}/{}", entry.step);
        let link = Arc::new(AttemptLink::new(
            self.id.clone(),
            previous_details(&self.current.record, &state_name),
        ));
        let result =
            match workflow.compensate(&entry.step, entry.args.clone(), entry.output.clone()) {
                None => Err(StepError::permanent(format!(
                    "workflow `{}` has no compensation for step `{}`",
                    workflow.name(),
                    entry.step
                ))),
                Some(compensation) => {
                    // The step's context, with a state of its own, so the
                    // compensation gets a stable idempotency key too.
                    let step = workflow
                        .machine()
                        .states
                        .iter()
                        .flat_map(|state| state.steps())
                        .find(|step| step.name == entry.step)
                        .map(|step| step.name);
                    let ctx = step.map(|step| AttemptContext {
                        workflow_id: Arc::clone(&self.id),
                        state: Cow::Owned(state_name.clone()),
                        step,
                        attempt,
                        iteration: None,
                    });
                    let run = async move {
                        match ctx {
                            Some(ctx) => context::scope(ctx, compensation).await,
                            None => compensation.await,
                        }
                    };
                    let span = tracing::info_span!("compensate", step = %entry.step, attempt);
                    let task = context::attempt_scope(Arc::clone(&link), run).instrument(span);
                    let Some(joined) = self
                        .while_leased(task, &link, &state_name, attempt, None)
                        .await
                    else {
                        return Ok(Flow::Stop);
                    };
                    joined.unwrap_or_else(|error| {
                        Err(StepError::permanent(format!(
                            "the compensation panicked: {}",
                            panic_message(error)
                        )))
                    })
                }
            };
        let now = self.now();
        let next = &mut self.current.record;
        let previous_heartbeat = next.heartbeat.take();
        let event = |kind| HistoryEvent {
            step: Some(entry.step.clone()),
            attempt: Some(attempt),
            ..HistoryEvent::new(now, kind)
        };
        match result {
            Ok(()) => {
                next.compensation_stack.pop();
                next.push_event(event(EventKind::Compensated));
                next.attempt = 1;
                next.next_run_at = None;
                if next.compensation_stack.is_empty() {
                    next.phase = Phase::Compensated;
                    next.push_event(HistoryEvent::new(now, EventKind::RolledBack));
                }
            }
            Err(error) => {
                let policy = RetryPolicy::compensation();
                next.last_error = Some(error.to_string());
                if error.is_retryable() && policy.allows_another(attempt) {
                    next.push_event(HistoryEvent {
                        error: Some(error.to_string()),
                        ..event(EventKind::CompensationRetried)
                    });
                    next.attempt = attempt.saturating_add(1);
                    next.next_run_at =
                        Some(now.saturating_add(duration_ms(policy.delay_after(attempt))));
                    next.heartbeat =
                        heartbeat_of(&link, &state_name, attempt, now).or(previous_heartbeat);
                } else {
                    next.push_event(HistoryEvent {
                        error: Some(error.to_string()),
                        ..event(EventKind::CompensationFailed)
                    });
                    let cause = next.failure.as_ref().map_or_else(String::new, |failure| {
                        format!(" (rolling back because {failure})")
                    });
                    let failure = Failure {
                        message: format!(
                            "compensation of step `{}` failed after {attempt} attempt(s): {error}{cause}",
                            entry.step
                        ),
                        step: Some(entry.step.to_string()),
                    };
                    end_failed(next, failure, now);
                }
            }
        }
        self.commit_at(now).await
    }
}
