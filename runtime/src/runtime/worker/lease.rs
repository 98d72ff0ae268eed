//! Holding the lease while an attempt runs: renewing it on time, and
//! writing a join's branch checkpoints as they come.

use std::borrow::Cow;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use super::{
    Current, Flow, JoinCheckpoints, Panic, Position, Worker, catch_panic, heartbeat_of,
    merge_cancel, next_checkpoint,
};
use crate::context::AttemptLink;
use crate::error::{Error, StoreError};
use crate::join::{self, Checkpoint};
use crate::record::{self, EventKind, HistoryEvent, Phase};
use crate::store::Expect;
use crate::workflow::StepOutcome;

impl Worker {
    /// Runs `attempt` (a step or compensation attempt) in this task while
    /// renewing the lease every third of its TTL, with the attempt's latest
    /// heartbeat. A panic in the attempt is its `Err`. `None` when the lease
    /// turned out to be lost: the attempt is dropped, as its result would
    /// have been discarded anyway.
    /// A join's branches send their checkpoints on `checkpoints`: each is
    /// written as it arrives, and a checkpoint that cannot be written stops
    /// the attempt like a lost lease.
    pub(super) async fn while_leased<T>(
        &mut self,
        attempt_future: impl Future<Output = T>,
        link: &AttemptLink,
        state: &str,
        attempt: u32,
        mut checkpoints: Option<&mut JoinCheckpoints>,
    ) -> Option<Result<T, Panic>> {
        let mut task = pin!(catch_panic(attempt_future));
        // Most attempts end on their first poll: they need no renewal
        // timer (whose registration would cost more than the step).
        if let Poll::Ready(joined) =
            std::future::poll_fn(|cx| Poll::Ready(task.as_mut().poll(cx))).await
        {
            return Some(joined);
        }
        loop {
            let renew = self.runtime.inner.clock.sleep_until(self.renew_at);
            tokio::select! {
                joined = &mut task => return Some(joined),
                checkpoint = next_checkpoint(checkpoints.as_deref_mut()) => {
                    let Some(join) = checkpoints.as_deref() else { continue };
                    let (state_name, started) = (join.state_name.clone(), join.started);
                    match self.checkpoint(checkpoint, &state_name, started).await {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Stop) => {
                            link.mark_lost();
                            return None;
                        }
                        Err(error) => {
                            // Unwritten, the branch's end would be lost: stop as
                            // after a crash; the lease lapses and the unfinished
                            // branches run again from the stored record.
                            tracing::warn!(%error, "cannot write a join checkpoint; stopping");
                            link.mark_lost();
                            return None;
                        }
                    }
                }
                () = renew => match self.renew(link, state, attempt).await {
                    Ok(true) => {}
                    Ok(false) => {
                        link.mark_lost();
                        return None;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot renew the lease; retrying");
                        let retry = (self.runtime.lease_ttl_ms() / 10).max(1);
                        self.renew_at = self.now().saturating_add(retry);
                    }
                },
            }
        }
    }

    /// Extends the lease (and records the latest heartbeat) with one
    /// compare-and-swap. `false` if the lease is no longer this worker's.
    pub(super) async fn renew(
        &mut self,
        link: &AttemptLink,
        state: &str,
        attempt: u32,
    ) -> Result<bool, Error> {
        loop {
            let now = self.now();
            let mut next = self.current.record.clone();
            next.lease.expires_at = Some(now.saturating_add(self.runtime.lease_ttl_ms()));
            next.updated_at = now;
            if let Some(heartbeat) = heartbeat_of(link, state, attempt, now) {
                next.heartbeat = Some(heartbeat);
            }
            let Ok(bytes) = record::encode(&next) else {
                return Ok(true);
            };
            match self
                .runtime
                .inner
                .store()
                .put(&self.key, bytes, Expect::Version(self.current.version))
                .await
            {
                Ok(version) => {
                    self.current = Current::new(next, version);
                    self.renew_at = now.saturating_add(self.runtime.lease_ttl_ms() / 3);
                    return Ok(true);
                }
                Err(StoreError::Conflict) => {
                    let Some((fresh, version)) = self.read().await? else {
                        return Ok(false);
                    };
                    if !self.holds(&fresh) || Position::of(&fresh) != self.current.persisted {
                        self.fenced(&fresh);
                        return Ok(false);
                    }
                    merge_cancel(&mut self.current.record, &fresh);
                    self.current.record.merge_signals(&fresh);
                    self.current.version = version;
                    // A forward step learns of a cancel; a compensation runs
                    // because of one.
                    if self.current.record.cancel_requested
                        && self.current.record.phase == Phase::Running
                    {
                        link.mark_cancelled();
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Writes one join branch's end: the join's state with the branch's slot
    /// filled, its history events, its compensation entry, with one
    /// compare-and-swap; then tells the branch it may return.
    pub(super) async fn checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        state_name: &str,
        started: u64,
    ) -> Result<Flow, Error> {
        let now = self.now();
        let mut next = self.current.record.clone();
        if let Err(reason) = join::set_slot(
            &mut next.state,
            state_name,
            checkpoint.branch,
            &checkpoint.slot,
        ) {
            tracing::error!(reason, "instance left untouched");
            return Ok(Flow::Stop);
        }
        let (step, error) = match &checkpoint.outcome {
            StepOutcome::Succeeded { step, .. } => (*step, None),
            StepOutcome::Retry { step, error, .. } | StepOutcome::Failed { step, error } => {
                (*step, Some(error.to_string()))
            }
        };
        let event = |at, kind| HistoryEvent {
            state: Some(Cow::Owned(state_name.to_owned())),
            step: Some(Cow::Borrowed(step)),
            attempt: Some(checkpoint.attempt),
            ..HistoryEvent::new(at, kind)
        };
        next.push_event(event(started, EventKind::StepStarted));
        match &checkpoint.outcome {
            StepOutcome::Succeeded { compensation, .. } => {
                next.push_event(event(now, EventKind::StepSucceeded));
                if let Some(entry) = compensation {
                    next.compensation_stack.push(entry.clone());
                }
            }
            StepOutcome::Retry { .. } => next.push_event(HistoryEvent {
                error: error.clone(),
                ..event(now, EventKind::StepRetried)
            }),
            StepOutcome::Failed { .. } => next.push_event(HistoryEvent {
                error: error.clone(),
                ..event(now, EventKind::StepFailed)
            }),
        }
        if error.is_some() {
            next.last_error = error;
        }
        let flow = self.commit(next).await?;
        if matches!(flow, Flow::Continue) {
            let _ = checkpoint.persisted.send(());
        }
        Ok(flow)
    }
}
