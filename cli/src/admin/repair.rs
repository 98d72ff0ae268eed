//! What an [`Admin`](crate::Admin) changes: cancel, retry, signal, and the versions and
//! upgrades around a deploy.

use std::borrow::Cow;

use serde_json::Value;

use sagaflow::error::StoreError;
use sagaflow::record::{self, EventKind, Failure, HistoryEvent, Phase};
use sagaflow::runtime::{
    UpgradeAction, UpgradeReport, VersionReport, VersionSummary, WorkflowVersions,
};
use sagaflow::store::{Expect, Store};

use super::records::{now_ms, rollback_cause, succeeded_then_failed};
use super::types::{AdminError, CancelOutcome, RetryOutcome};
use super::view::Admin;

impl Admin {
    /// Per workflow (or only `workflow`), every version with instances in
    /// the store or registered in this tool (see [`Runtime::versions`](sagaflow::Runtime::versions)):
    /// counts by phase, the oldest unfinished instance, how many move away
    /// at their next claim, the stranded ones with why, and whether it has
    /// drained.
    ///
    /// For a workflow this tool does not register (every workflow, in the
    /// bare `sagaflow` binary) the store is all there is to go by: each
    /// version's number and upgrade policy come from the machine
    /// descriptions runtimes stored, versions described there without
    /// instances are listed too, and every unfinished instance is stranded
    /// as far as this tool knows (a runtime with the code decides).
    pub async fn versions(&self, workflow: Option<&str>) -> Result<VersionReport, AdminError> {
        let mut report = self.runtime.versions().await?;
        let stored = self.stored_descriptions().await?;
        for machine in &stored {
            if self.registry.get(&machine.workflow).is_some() {
                continue;
            }
            let position = report
                .workflows
                .iter()
                .position(|known| known.workflow == machine.workflow);
            let versions = match position {
                Some(position) => &mut report.workflows[position].versions,
                None => {
                    let mut known = WorkflowVersions::default();
                    known.workflow = machine.workflow.clone();
                    report.workflows.push(known);
                    let last = report.workflows.len() - 1;
                    &mut report.workflows[last].versions
                }
            };
            match versions
                .iter_mut()
                .find(|version| version.fingerprint == machine.fingerprint)
            {
                Some(version) => {
                    version.version = machine.version;
                    version.upgrade = Some(machine.upgrade);
                    version.described = true;
                }
                None => {
                    let mut version = VersionSummary::default();
                    version.fingerprint = machine.fingerprint;
                    version.version = machine.version;
                    version.upgrade = Some(machine.upgrade);
                    version.described = true;
                    versions.push(version);
                }
            }
        }
        report.workflows.sort_by(|a, b| a.workflow.cmp(&b.workflow));
        for known in &mut report.workflows {
            known
                .versions
                .sort_by_key(|version| (version.version, version.fingerprint));
            if self.registry.get(&known.workflow).is_none() {
                for version in &mut known.versions {
                    for (_, reason) in &mut version.stranded {
                        *reason = self.not_registered(&known.workflow);
                    }
                }
            }
        }
        if let Some(workflow) = workflow {
            report.workflows.retain(|known| known.workflow == workflow);
        }
        Ok(report)
    }

    /// What becomes of every unfinished instance (of `workflow`, if given)
    /// under this tool's versions and migrations, and, unless `dry_run`,
    /// does it now (see [`Runtime::upgrade`](sagaflow::Runtime::upgrade)): each move or migration is one
    /// compare-and-swap of a record no runtime holds the lease of.
    ///
    /// The bare `sagaflow` binary registers no workflows, so it moves
    /// nothing: it reports every unfinished instance as stranded here.
    pub async fn upgrade(
        &self,
        workflow: Option<&str>,
        dry_run: bool,
    ) -> Result<UpgradeReport, AdminError> {
        let mut report = match workflow {
            None => self.runtime.upgrade(dry_run).await?,
            Some(workflow) => self.runtime.upgrade_only(workflow, dry_run).await?,
        };
        for instance in &mut report.instances {
            if self.registry.get(&instance.workflow).is_none()
                && let UpgradeAction::Stranded { reason } = &mut instance.action
            {
                *reason = self.not_registered(&instance.workflow);
            }
        }
        Ok(report)
    }

    /// Why this tool cannot tell what becomes of an instance of `workflow`,
    /// which it does not register.
    pub(super) fn not_registered(&self, workflow: &str) -> String {
        if self.registry.is_empty() {
            format!(
                "workflow `{workflow}` is not registered in this tool (it registers none): only \
                 a runtime with its code can run it; ship the tool in your binary with \
                 `sagaflow_cli::run(Registry::new().register(..))` to see what that code makes \
                 of it"
            )
        } else {
            format!(
                "workflow `{workflow}` is not registered in this tool (registered: {})",
                self.registry.names().join(", ")
            )
        }
    }

    /// Cancels instance `id` (see [`Runtime::cancel`](sagaflow::Runtime::cancel)): an instance before its
    /// pivot stops before its next step and compensates. Past the pivot it is
    /// [`Error::PastPivot`](sagaflow::Error::PastPivot) and nothing is recorded.
    pub async fn cancel(&self, id: &str) -> Result<CancelOutcome, AdminError> {
        let (instance, _) = self.load(id).await?;
        if instance.phase.is_terminal() || instance.phase == Phase::Compensating {
            return Ok(CancelOutcome::NothingToDo {
                phase: instance.phase,
            });
        }
        if instance.cancel_requested {
            return Ok(CancelOutcome::AlreadyRequested);
        }
        self.runtime.cancel(id).await?;
        Ok(CancelOutcome::Requested)
    }

    /// Re-runs a `Failed` instance once an operator has fixed the cause.
    ///
    /// One compare-and-swap of the record, on the version read:
    /// - failed **after its pivot** (a retriable step that ran out of
    ///   attempts, a panic): the instance goes back to `Running` at the state
    ///   it stopped at, attempt 1, failure cleared, so that state's step runs
    ///   again. Refused when that step had succeeded and the workflow's own
    ///   code returned the error: running the step again would repeat its
    ///   effect, and the same code would decide the same way;
    /// - failed **while compensating** (a compensation failed for good): the
    ///   instance goes back to `Compensating`, attempt 1, with the failure
    ///   that started the rollback, so the remaining compensations run again,
    ///   the failed one first.
    ///
    /// A history event (`step_retried` or `compensation_retried`, the error
    /// saying an operator asked) records the retry. A due hint is written
    /// after the record, so a worker runtime with the workflow registered
    /// picks the instance up at its next poll (the recovery scan finds it
    /// even if the hint is lost). Concurrent writers are detected by the
    /// compare-and-swap; the retry then reads again.
    pub async fn retry(&self, id: &str) -> Result<RetryOutcome, AdminError> {
        loop {
            let (mut instance, version) = self.load(id).await?;
            if instance.phase != Phase::Failed {
                return Err(AdminError::NotFailed {
                    id: id.to_owned(),
                    phase: instance.phase,
                });
            }
            let now = now_ms();
            let was = instance
                .failure
                .as_ref()
                .map_or_else(|| "an unknown failure".to_owned(), Failure::to_string);
            let why = format!("retry requested by an operator after: {was}");
            let outcome = if instance.pivot_passed {
                let step = self.step_of(&instance.workflow, &instance.state_name);
                if let Some(step) = succeeded_then_failed(&instance) {
                    return Err(AdminError::CannotRetry {
                        id: id.to_owned(),
                        reason: format!(
                            "step `{step}` succeeded and the workflow's own code then returned \
                             the error ({was}); a retry would run `{step}` again and the same code \
                             would most likely fail the same way"
                        ),
                    });
                }
                let step = step.or_else(|| instance.failure.as_ref().and_then(|f| f.step.clone()));
                instance.phase = Phase::Running;
                instance.failure = None;
                instance.push_event(HistoryEvent {
                    state: Some(Cow::Owned(instance.state_name.clone())),
                    step: step.clone().map(Cow::Owned),
                    error: Some(why),
                    ..HistoryEvent::new(now, EventKind::StepRetried)
                });
                RetryOutcome::Resumed {
                    state: instance.state_name.clone(),
                    step,
                }
            } else {
                let Some(top) = instance.compensation_stack.last() else {
                    return Err(AdminError::CannotRetry {
                        id: id.to_owned(),
                        reason: "it failed before its pivot with nothing left to compensate"
                            .to_owned(),
                    });
                };
                let step = top.step.clone();
                let remaining = instance.compensation_stack.len();
                instance.phase = Phase::Compensating;
                if let Some(cause) = rollback_cause(&instance) {
                    instance.failure = Some(cause);
                }
                instance.push_event(HistoryEvent {
                    step: Some(step.clone()),
                    error: Some(why),
                    ..HistoryEvent::new(now, EventKind::CompensationRetried)
                });
                RetryOutcome::Compensating {
                    step: step.into_owned(),
                    remaining,
                }
            };
            instance.attempt = 1;
            instance.next_run_at = None;
            instance.heartbeat = None;
            instance.updated_at = now;
            let bytes = record::encode(&instance).map_err(|error| {
                AdminError::Invalid(format!("cannot encode the record: {error}"))
            })?;
            match self
                .store
                .put(&record::key(id), bytes, Expect::Version(version))
                .await
            {
                Ok(_) => {}
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
            // A hint only: if it is lost, the recovery scan finds the instance.
            if let Err(error) = self
                .store
                .put(
                    &record::due_key(now, id),
                    id.as_bytes().to_vec(),
                    Expect::Any,
                )
                .await
            {
                tracing::warn!(id, %error, "cannot write a due hint; the recovery scan will find the instance");
            }
            return Ok(outcome);
        }
    }

    /// Sends signal `name` with `payload` to instance `id` (see
    /// [`Runtime::signal`](sagaflow::Runtime::signal)): recorded in the instance's inbox with one
    /// compare-and-swap, consumed by the workflow's next wait for `name`.
    /// An instance that has ended takes no signal ([`Error::InstanceEnded`](sagaflow::Error::InstanceEnded)).
    pub async fn signal(&self, id: &str, name: &str, payload: Value) -> Result<(), AdminError> {
        self.runtime.signal(id, name, payload).await?;
        Ok(())
    }
}
