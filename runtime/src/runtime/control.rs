//! What reaches a running instance from outside its own worker: signals,
//! queries and cancellation, and the links between a parent and its
//! children.

use std::sync::Arc;

use super::local::Written;
use super::state::{BoxFuture, ChildStart, Inner, Runtime, codec, new_record};
use crate::context::{SendFuture, SignalSender};
use crate::error::{Error, StoreError};
use crate::record::{self, EventKind, HistoryEvent, Phase};
use crate::store::Expect;

impl Runtime {
    /// Sends signal `name` with `value` to instance `id`.
    ///
    /// The value (any `Serialize`, stored as JSON) is appended to the
    /// instance's inbox for `name` with one compare-and-swap of its record,
    /// and wakes the instance if it waits for that signal
    /// (`sagaflow::signal(name).await` or `signal_timeout`), whichever
    /// runtime runs it. Signals sent before the workflow waits are kept, in
    /// the order they were recorded; each is consumed by exactly one wait,
    /// in the same write as the transition that consumes it, so none is
    /// lost or delivered twice. Signals the workflow never waits for stay
    /// in the record.
    ///
    /// Errors: [`Error::NotFound`] for an unknown id;
    /// [`Error::InstanceEnded`] for an instance that has ended (the signal
    /// is not recorded); [`Error::Codec`] if `value` does not serialize.
    ///
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// rt.signal("req-7", "approval", true).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn signal(
        &self,
        id: &str,
        name: &str,
        value: impl serde::Serialize,
    ) -> Result<(), Error> {
        let value = serde_json::to_value(value)
            .map_err(|error| codec(&format!("signal `{name}`"), &error))?;
        self.deliver_signal(id, name, value, None).await
    }

    /// Records signal `name` for instance `id`, once per `key` when one is
    /// given: a send whose key the record remembers (the same sender after
    /// a crash) changes nothing and succeeds, even once the instance ended.
    pub(crate) async fn deliver_signal(
        &self,
        id: &str,
        name: &str,
        value: serde_json::Value,
        key: Option<&str>,
    ) -> Result<(), Error> {
        loop {
            let Some((mut instance, version)) = self.load(id).await? else {
                return Err(Error::NotFound(id.to_owned()));
            };
            if key.is_some_and(|key| instance.has_signal_key(key)) {
                tracing::debug!(id, signal = name, "a repeated send; already recorded");
                return Ok(());
            }
            if instance.phase.is_terminal() {
                return Err(Error::InstanceEnded {
                    id: id.to_owned(),
                    phase: instance.phase,
                    signal: name.to_owned(),
                });
            }
            let now = self.inner.clock.now_ms();
            match key {
                Some(key) => instance.push_keyed_signal(name, value.clone(), now, key),
                None => instance.push_signal(name, value.clone(), now),
            }
            instance.updated_at = now;
            let bytes =
                record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
            match self
                .inner
                .store()
                .put(&record::key(id), bytes, Expect::Version(version))
                .await
            {
                Ok(_) => {
                    // A live holder merges the signal into its next write;
                    // a waiting instance needs a worker to come for it now.
                    if !instance.lease.is_live(now) && instance.is_due(now) {
                        self.hint(now, id).await;
                    }
                    break;
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        tracing::debug!(id, signal = name, "signal recorded");
        let local = self.local(id);
        local.changed.send_modify(Written::bump);
        self.release_local(id, local);
        Ok(())
    }

    /// The latest status instance `id`'s workflow set with
    /// [`sagaflow::set_status`](crate::set_status), decoded as `T`: `None`
    /// if it has set none yet.
    ///
    /// The status is written with the transition the code that set it
    /// belongs to, so it describes a state the instance has durably reached.
    /// Errors: [`Error::NotFound`] for an unknown id; [`Error::Codec`] if
    /// the status does not decode as `T`.
    ///
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # #[derive(serde::Deserialize)]
    /// # struct OrderStatus { stage: String }
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// let status: Option<OrderStatus> = rt.query("order-42").await?;
    /// # let _ = status;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn query<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
    ) -> Result<Option<T>, Error> {
        let Some((instance, _)) = self.load(id).await? else {
            return Err(Error::NotFound(id.to_owned()));
        };
        instance
            .status
            .map(|status| {
                serde_json::from_value(status)
                    .map_err(|error| codec(&format!("the status of instance `{id}`"), &error))
            })
            .transpose()
    }

    /// Cancels instance `id`: a running instance stops before its next step,
    /// runs the compensations of the steps it completed, and ends
    /// [`Outcome::Compensated`](crate::Outcome::Compensated) with a "cancelled" [`Failure`](crate::record::Failure).
    ///
    /// Returns once the request is recorded; the step in flight, if any,
    /// finishes first. An instance waiting for a retry is woken (through a
    /// due hint, so whichever worker runtime claims it rolls it back).
    ///
    /// An instance whose pivot has succeeded cannot be undone: that is
    /// [`Error::PastPivot`], nothing is recorded, and the instance continues
    /// forward to its end. A cancel recorded while the pivot step runs is
    /// overtaken by the pivot's success in the same way. An instance that
    /// has ended or is already rolling back is left as it is (`Ok`).
    pub async fn cancel(&self, id: &str) -> Result<(), Error> {
        loop {
            let Some((mut instance, version)) = self.load(id).await? else {
                return Err(Error::NotFound(id.to_owned()));
            };
            if instance.phase.is_terminal()
                || instance.phase == Phase::Compensating
                || instance.cancel_requested
            {
                break;
            }
            if instance.pivot_passed {
                return Err(Error::PastPivot { id: id.to_owned() });
            }
            let now = self.inner.clock.now_ms();
            instance.cancel_requested = true;
            instance.updated_at = now;
            instance.push_event(HistoryEvent::new(now, EventKind::CancelRequested));
            let bytes =
                record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
            match self
                .inner
                .store()
                .put(&record::key(id), bytes, Expect::Version(version))
                .await
            {
                Ok(_) => {
                    // A live holder sees the request at its next write; an
                    // unclaimed instance needs a worker to come for it now.
                    if !instance.lease.is_live(now) {
                        self.hint(now, id).await;
                    }
                    // A parent waiting for its child cancels the child
                    // first; the child's end wakes the parent, which then
                    // rolls back (its worker repeats this after a crash).
                    if let Some(child) = &instance.awaiting_child {
                        self.cancel_child(child).await;
                    }
                    break;
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        let local = self.local(id);
        local.changed.send_modify(Written::bump);
        self.release_local(id, local);
        Ok(())
    }

    /// Cancels child instance `id` for its cancelled parent. Best effort:
    /// the parent's worker asks again at each re-check while it waits.
    pub(super) fn cancel_child<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match self.cancel(id).await {
                Ok(()) => {}
                Err(Error::PastPivot { .. }) => {
                    tracing::info!(
                        child = id,
                        "the child has passed its pivot; it runs to its end"
                    )
                }
                Err(error) => tracing::warn!(child = id, %error, "cannot cancel the child yet"),
            }
        })
    }

    /// Starts child instance `id` of workflow `workflow` with `input` (JSON)
    /// for instance `parent`, or finds it started: creating it is one
    /// write with [`Expect::Absent`], so a parent that runs its code again
    /// attaches to the child it started before. The child is created
    /// unclaimed, with a due hint, for whichever worker runtime is free.
    pub(super) async fn start_child(
        &self,
        parent: &str,
        id: &str,
        workflow: &str,
        input: serde_json::Value,
    ) -> Result<ChildStart, Error> {
        // A child starts on the newest version registered under its name.
        let Some(registered) = self.inner.registry.newest(workflow) else {
            return Err(Error::UnknownWorkflow(workflow.to_owned()));
        };
        let (state, state_name) = registered.begin(input).map_err(|reason| Error::Codec {
            what: format!("the input of child `{id}`"),
            reason,
        })?;
        let now = self.inner.clock.now_ms();
        let mut instance = new_record(workflow, registered.machine(), id, state_name, state, now);
        instance.parent = Some(parent.to_owned());
        let bytes =
            record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
        match self
            .inner
            .store()
            .put(&record::key(id), bytes, Expect::Absent)
            .await
        {
            Ok(_) => {
                tracing::debug!(workflow, id, parent, "child started");
                self.hint(now, id).await;
                Ok(ChildStart::Started)
            }
            Err(StoreError::Conflict) => match self.load(id).await? {
                Some((existing, _)) if existing.workflow == workflow => {
                    Ok(ChildStart::Exists(Box::new(existing)))
                }
                Some((existing, _)) => Err(Error::IdInUse {
                    id: id.to_owned(),
                    existing: existing.workflow,
                    requested: workflow.to_owned(),
                }),
                None => Err(Error::NotFound(id.to_owned())),
            },
            Err(error) => Err(error.into()),
        }
    }

    /// Wakes instance `parent` if it waits for child `child`, which has
    /// just ended: makes it due now (one compare-and-swap) and writes a due
    /// hint. A wake-up lost to a crash is covered by the parent's re-check
    /// time.
    pub(super) async fn wake_parent(&self, parent: &str, child: &str) -> Result<(), Error> {
        loop {
            let Some((mut instance, version)) = self.load(parent).await? else {
                return Ok(());
            };
            if instance.phase.is_terminal() || instance.awaiting_child.as_deref() != Some(child) {
                return Ok(());
            }
            let now = self.inner.clock.now_ms();
            if instance.next_run_at.is_some_and(|due| due <= now) {
                self.hint(now, parent).await;
                return Ok(());
            }
            instance.next_run_at = Some(now);
            instance.updated_at = now;
            let bytes =
                record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
            match self
                .inner
                .store()
                .put(&record::key(parent), bytes, Expect::Version(version))
                .await
            {
                Ok(_) => {
                    self.hint(now, parent).await;
                    let local = self.local(parent);
                    local.changed.send_modify(Written::bump);
                    self.release_local(parent, local);
                    return Ok(());
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// The runtime as the steps of the instances it drives see it:
/// `sagaflow::send_signal` records through it, once per delivery key.
impl SignalSender for Inner {
    fn send_once(
        self: Arc<Self>,
        target: String,
        name: String,
        value: serde_json::Value,
        key: String,
    ) -> SendFuture {
        let runtime = Runtime { inner: self };
        Box::pin(async move {
            runtime
                .deliver_signal(&target, &name, value, Some(&key))
                .await
        })
    }
}
