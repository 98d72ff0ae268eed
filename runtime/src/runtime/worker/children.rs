//! A parent's side of a child workflow: starting the child once the parent
//! durably waits for it, learning how it ended, and compensating it.

use std::borrow::Cow;

use super::super::erased::ErasedWorkflow;
use super::super::state::ChildStart;
use super::transition::end_failed;
use super::{Flow, Worker};
use crate::clock::duration_ms;
use crate::error::{Error, StepError, StoreError};
use crate::record::{self, EventKind, Failure, HistoryEvent, InstanceRecord, Phase, RawJson};
use crate::store::Expect;
use crate::workflow::CompensationEntry;

impl Worker {
    /// How long a parent waits for a child before it reads the child's
    /// record again, in case the child's wake-up was lost to a crash.
    pub(super) fn child_recheck_ms(&self) -> u64 {
        duration_ms(self.runtime.inner.recovery_interval)
    }

    /// Starts child `child` (once). A failure here is logged: the parent's
    /// re-check starts it later.
    pub(super) async fn begin_child(&self, child: &str, workflow: &str, input: serde_json::Value) {
        match self
            .runtime
            .start_child(&self.id, child, workflow, input)
            .await
        {
            Ok(ChildStart::Started) => {}
            // Started before (an id reused): if it has ended, go on now.
            Ok(ChildStart::Exists(existing)) => {
                if existing.phase.is_terminal()
                    && let Err(error) = self.runtime.wake_parent(&self.id, child).await
                {
                    tracing::warn!(child, %error, "cannot wake the parent; its re-check will");
                }
            }
            Err(error) => {
                tracing::error!(child, %error, "cannot start the child workflow yet; the parent retries at its re-check");
            }
        }
    }

    /// Reads child `child` of the instance: how it ended, or `None` while it
    /// runs (or when it had to be started). On its end, the working record
    /// stops waiting for it and, if it completed with something to undo,
    /// gets its compensation entry (a child past its pivot makes the parent
    /// pass its pivot instead: nothing in it can be undone).
    pub(super) async fn child_ended(
        &mut self,
        workflow: &dyn ErasedWorkflow,
        child: &str,
    ) -> Result<Option<Result<serde_json::Value, StepError>>, Error> {
        let found = match self.runtime.load(child).await {
            Ok(found) => found.map(|(record, _)| record),
            Err(Error::Corrupt { reason, .. }) => {
                tracing::error!(child, reason, "the child's record cannot be decoded");
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let record = match found {
            Some(record) => record,
            // Cancelled before the child was started: it never will be.
            None if self.current.record.cancel_requested => {
                let parent = &mut self.current.record;
                parent.awaiting_child = None;
                return Ok(Some(Err(StepError::permanent(format!(
                    "cancelled before child workflow instance `{child}` started"
                )))));
            }
            // Not started yet (a crash after the parent's write): start it.
            None => {
                let Some((name, input)) = workflow.child_call(&self.current.record.state) else {
                    tracing::error!(child, "the state names no child workflow");
                    return Ok(None);
                };
                match self.runtime.start_child(&self.id, child, name, input).await {
                    Ok(ChildStart::Started) => return Ok(None),
                    Ok(ChildStart::Exists(record)) => *record,
                    Err(error @ Error::IdInUse { .. }) => {
                        return Ok(Some(Err(StepError::permanent(error.to_string()))));
                    }
                    Err(error @ Error::Store(_)) => return Err(error),
                    Err(error) => {
                        tracing::error!(child, %error, "cannot start the child workflow; waiting");
                        return Ok(None);
                    }
                }
            }
        };
        if !record.phase.is_terminal() {
            if self.current.record.cancel_requested && !record.cancel_requested {
                self.runtime.cancel_child(child).await;
            }
            return Ok(None);
        }
        let now = self.now();
        let parent = &mut self.current.record;
        parent.awaiting_child = None;
        parent.push_event(HistoryEvent {
            state: Some(Cow::Owned(parent.state_name.clone())),
            step: Some(Cow::Owned(child.to_owned())),
            error: record.failure.as_ref().map(ToString::to_string),
            ..HistoryEvent::new(now, EventKind::ChildEnded)
        });
        Ok(Some(match record.phase {
            Phase::Completed => {
                if record.pivot_passed {
                    parent.pivot_passed = true;
                } else if !record.compensation_stack.is_empty() {
                    parent.compensation_stack.push(CompensationEntry {
                        step: Cow::Owned(record.workflow.clone()),
                        args: RawJson::null(),
                        output: RawJson::null(),
                        child: Some(child.to_owned()),
                    });
                }
                Ok(record.output.unwrap_or(serde_json::Value::Null))
            }
            phase => Err(StepError::permanent(format!(
                "child workflow `{}` (instance `{child}`) ended {phase}: {}",
                record.workflow,
                record.failure.map_or_else(
                    || "no reason recorded".to_owned(),
                    |failure| failure.to_string()
                )
            ))),
        }))
    }

    /// Waits (on) for child `child`: releases the lease until the child's
    /// end wakes the instance, or until the re-check time.
    pub(super) async fn wait_for_child(&mut self, child: String) -> Result<Flow, Error> {
        let mut next = self.current.record.clone();
        if next.phase != Phase::Compensating {
            next.phase = Phase::Waiting;
        }
        next.awaiting_child = Some(child);
        next.next_run_at = Some(self.now().saturating_add(self.child_recheck_ms()));
        self.commit(next).await
    }

    /// Undoes a completed child workflow (the compensation entry on top of
    /// the stack stands for it): asks the child to run its own compensation
    /// stack, waits for it without a lease, and pops the entry once the
    /// child is `Compensated`. A child whose compensation failed leaves the
    /// parent `Failed` too, for an operator.
    pub(super) async fn compensate_child(
        &mut self,
        entry: &CompensationEntry,
        child: &str,
    ) -> Result<Flow, Error> {
        let now = self.now();
        let mut next = self.current.record.clone();
        let Some((record, version)) = self.runtime.load(child).await? else {
            let failure = Failure {
                message: format!(
                    "the record of child workflow instance `{child}` is gone, so it cannot be compensated"
                ),
                step: Some(entry.step.to_string()),
            };
            end_failed(&mut next, failure, self.now());
            return self.commit(next).await;
        };
        match record.phase {
            Phase::Completed => {
                let mut undo = record;
                undo.phase = Phase::Compensating;
                undo.attempt = 1;
                undo.next_run_at = None;
                undo.updated_at = now;
                let failure = Failure::new(format!("its parent `{}` rolls back", self.id));
                undo.push_event(HistoryEvent {
                    error: Some(failure.to_string()),
                    ..HistoryEvent::new(now, EventKind::Compensating)
                });
                undo.failure = Some(failure);
                let bytes = record::encode(&undo).map_err(|error| Error::Codec {
                    what: "the child's record".to_owned(),
                    reason: error.to_string(),
                })?;
                match self
                    .runtime
                    .inner
                    .store()
                    .put(&record::key(child), bytes, Expect::Version(version))
                    .await
                {
                    Ok(_) => self.runtime.hint(now, child).await,
                    // Written meanwhile: read it again at once.
                    Err(StoreError::Conflict) => return Ok(Flow::Continue),
                    Err(error) => return Err(error.into()),
                }
                next.push_event(HistoryEvent {
                    step: Some(Cow::Owned(child.to_owned())),
                    ..HistoryEvent::new(now, EventKind::ChildCompensating)
                });
                self.wait_for_child_in(next, child).await
            }
            Phase::Compensated => {
                next.compensation_stack.pop();
                next.awaiting_child = None;
                next.attempt = 1;
                next.next_run_at = None;
                next.push_event(HistoryEvent {
                    step: Some(Cow::Owned(child.to_owned())),
                    ..HistoryEvent::new(now, EventKind::ChildCompensated)
                });
                if next.compensation_stack.is_empty() {
                    next.phase = Phase::Compensated;
                    next.push_event(HistoryEvent::new(now, EventKind::RolledBack));
                }
                self.commit(next).await
            }
            Phase::Failed => {
                let reason = record.failure.map_or_else(
                    || "no reason recorded".to_owned(),
                    |failure| failure.to_string(),
                );
                let failure = Failure {
                    message: format!(
                        "compensation of child workflow `{}` (instance `{child}`) failed: {reason}",
                        entry.step
                    ),
                    step: Some(entry.step.to_string()),
                };
                end_failed(&mut next, failure, self.now());
                self.commit(next).await
            }
            Phase::Running | Phase::Waiting | Phase::Compensating => {
                self.wait_for_child_in(next, child).await
            }
        }
    }

    /// Commits `next` waiting for child `child` until its end or the re-check.
    pub(super) async fn wait_for_child_in(
        &mut self,
        mut next: InstanceRecord,
        child: &str,
    ) -> Result<Flow, Error> {
        next.awaiting_child = Some(child.to_owned());
        next.next_run_at = Some(self.now().saturating_add(self.child_recheck_ms()));
        self.commit(next).await
    }
}
