//! What a client of the runtime calls: starting instances (typed, by name,
//! with a signal), a [`Handle`] on one, its [`Status`], the [`ListPage`]s
//! of all, the runtime's id, and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::backlog;
use super::current::{Current, Hints, Started};
use super::handle::Handle;
use super::state::{Runtime, codec, decode_record, new_record};
use super::status::{ListPage, Status};
use crate::error::{Error, StoreError};
use crate::record::{self, InstanceRecord, RawJson};
use crate::store::Expect;
use crate::workflow::Workflow;

impl Runtime {
    /// Starts instance `id` of `workflow` with `input`, and returns a handle
    /// to wait for its outcome.
    ///
    /// On a runtime with a free worker, the record is created already
    /// claimed by this runtime (one write) and the instance runs at once.
    /// On a client-only runtime (`workers(0)`), or when every worker is
    /// busy, the record is created unclaimed with a due hint, and the first
    /// worker runtime with capacity (this one or another process's) claims it.
    ///
    /// Idempotent per id: if instance `id` exists, this attaches to it and
    /// runs nothing again (`input` is ignored); this runtime runs it only if
    /// it has a free worker and wins the claim on an instance whose lease is
    /// free. If it exists and runs another workflow, [`Error::IdInUse`]. An
    /// input whose JSON exceeds the builder's `max_input_bytes` is
    /// [`Error::InputTooLarge`], and nothing is written.
    pub async fn start<W: Workflow>(
        &self,
        workflow: W,
        id: impl Into<String>,
        input: W::Input,
    ) -> Result<Handle<W::Output>, Error> {
        // Boxed: the caller's future (often a task of its own) then holds
        // a pointer, not the kilobytes of a record being written.
        Box::pin(self.start_with(workflow, id.into(), input, None)).await
    }

    /// Sends signal `name` to instance `id` of `workflow`, starting the
    /// instance with `input` first if it does not exist: the new record is
    /// written with the signal already in its inbox (one write). If the
    /// instance exists, this is [`signal`](Self::signal) (and `input` is
    /// ignored), and the handle attaches to it.
    ///
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # pub struct Request { amount: u64 }
    /// # #[workflow]
    /// # async fn approval(request: Request) -> Result<bool, WorkflowError> {
    /// #     let approved: bool = sagaflow::signal("approval").await;
    /// #     Ok(approved && request.amount > 0)
    /// # }
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// # let request = Request { amount: 5 };
    /// let handle = rt
    ///     .signal_with_start(approval, "req-7", request, "approval", true)
    ///     .await?;
    /// # let _ = handle;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn signal_with_start<W: Workflow>(
        &self,
        workflow: W,
        id: impl Into<String>,
        input: W::Input,
        name: &str,
        value: impl serde::Serialize,
    ) -> Result<Handle<W::Output>, Error> {
        let value = serde_json::to_value(value)
            .map_err(|error| codec(&format!("signal `{name}`"), &error))?;
        let id = id.into();
        let existed = Arc::new(AtomicBool::new(false));
        let handle = self
            .start_with(
                workflow,
                id.clone(),
                input,
                Some((name, value.clone(), Arc::clone(&existed))),
            )
            .await?;
        if existed.load(Ordering::SeqCst) {
            self.signal(&id, name, value).await?;
        }
        Ok(handle)
    }

    async fn start_with<W: Workflow>(
        &self,
        workflow: W,
        id: String,
        input: W::Input,
        signal: Option<(&str, serde_json::Value, Arc<AtomicBool>)>,
    ) -> Result<Handle<W::Output>, Error> {
        let registered = self.registered(&workflow)?;
        // Measured, not kept: the input is stored inside the first state.
        let mut size = ByteCount(0);
        serde_json::to_writer(&mut size, &input)
            .map_err(|error| codec("the workflow input", &error))?;
        if size.0 > self.inner.max_input_bytes {
            return Err(Error::InputTooLarge {
                size: size.0,
                limit: self.inner.max_input_bytes,
            });
        }
        let state = W::begin(input);
        let state_name = W::state_name(&state);
        let json = RawJson::to_json(&state).map_err(|error| codec("the initial state", &error))?;
        let now = self.inner.clock.now_ms();
        let mut instance = new_record(
            W::NAME,
            workflow.state_machine(),
            &id,
            state_name,
            json,
            now,
        );
        if let Some((name, value, _)) = &signal {
            instance.push_signal(name, value.clone(), now);
        }
        // Claimed in the creating write when a worker is free (no extra
        // write), or when this runtime keeps it in its backlog until one is.
        let permit = self.free_permit();
        let backlogged = permit.is_none() && self.takes_backlog();
        // A claimed record gets a due hint at its lease's expiry, written
        // beside it (nothing reads it before then): the way any runtime
        // finds the instance if this one dies first.
        let lease_hint = if permit.is_some() || backlogged {
            self.claim_lease(&mut instance, now);
            instance
                .lease
                .expires_at
                .map(|expires_at| record::due_key(expires_at, &id))
        } else {
            None
        };
        let bytes =
            record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
        let key = record::key(&id);
        let created = self.inner.store().put(&key, bytes, Expect::Absent);
        let created = match &lease_hint {
            Some(hint) => {
                let hinted = self.write_hint(hint, &id);
                tokio::join!(created, hinted).0
            }
            None => created.await,
        };
        match created {
            Ok(version) => {
                tracing::debug!(workflow = W::NAME, id = %id, "instance started");
                // The driver starts from the state as its type, made here
                // from a registered workflow: nothing to decode or check.
                let started = Started {
                    workflow: registered,
                    typed: Box::new(state),
                };
                let current = Current::new(instance, version);
                match (permit, lease_hint) {
                    (Some(permit), lease) => {
                        let local = self.local(&id);
                        if local.driving.swap(true, Ordering::SeqCst) {
                            // Cannot happen for a record just created; leave
                            // it to its lease's expiry rather than run it twice.
                            self.release_local(&id, local);
                        } else {
                            let hints = Hints {
                                poller: false,
                                lease,
                            };
                            self.spawn_driver(
                                id.clone(),
                                local,
                                current,
                                permit,
                                hints,
                                Some(started),
                            );
                        }
                    }
                    (None, Some(hint)) => {
                        let local = self.local(&id);
                        if local.driving.swap(true, Ordering::SeqCst) {
                            self.release_local(&id, local);
                        } else {
                            self.inner.backlog.push(backlog::Waiting {
                                id: id.clone(),
                                local,
                                current,
                                started,
                                hint,
                            });
                        }
                    }
                    (None, None) => self.hint(now, &id).await,
                }
            }
            Err(StoreError::Conflict) => {
                drop(permit);
                let Some((existing, version)) = self.load(&id).await? else {
                    // Deleted between our write and our read: nothing to attach to.
                    return Err(Error::NotFound(id));
                };
                if existing.workflow != W::NAME {
                    return Err(Error::IdInUse {
                        id,
                        existing: existing.workflow,
                        requested: W::NAME.to_owned(),
                    });
                }
                if let Some((_, _, existed)) = &signal {
                    existed.store(true, Ordering::SeqCst);
                }
                self.attach(&id, existing, version).await?;
            }
            Err(error) => return Err(error.into()),
        }
        Ok(Handle::new(self.clone(), id))
    }

    /// On `start` of an existing instance: runs it here only if a worker is
    /// free and the instance is due and unclaimed.
    async fn attach(&self, id: &str, existing: InstanceRecord, version: u64) -> Result<(), Error> {
        if self.is_driving(id) || !self.ready(&existing, self.inner.clock.now_ms()) {
            return Ok(());
        }
        match self.free_permit() {
            Some(permit) => {
                self.try_claim(id, existing, version, permit).await?;
            }
            // Every worker is busy: the due index or the recovery scan finds it.
            None => self.wake_poller(),
        }
        Ok(())
    }

    /// Starts instance `id` of the workflow registered as `workflow`, by
    /// name, with `input` as JSON: on the newest registered version, or on
    /// `version` when given (a client pinning a start). For callers that do
    /// not have the workflow's types (an HTTP gateway, an operator's tool);
    /// with them, [`start`](Self::start) of a version's own name does the
    /// same, typed.
    ///
    /// The record is created unclaimed with a due hint, for the first worker
    /// runtime with capacity (this one or another). Idempotent per id like
    /// `start`: an existing instance of the same workflow is attached to
    /// (and `input` ignored); of another workflow, [`Error::IdInUse`]. An
    /// unknown name or version is [`Error::UnknownWorkflow`]; an input that
    /// does not decode as the version's input type is [`Error::Codec`], and
    /// nothing is written.
    ///
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// let handle = rt
    ///     .start_by_name("place_order", None, "order-9", serde_json::json!({"id": "order-9"}))
    ///     .await?;
    /// # let _ = handle;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start_by_name(
        &self,
        workflow: &str,
        version: Option<u32>,
        id: impl Into<String>,
        input: serde_json::Value,
    ) -> Result<Handle<serde_json::Value>, Error> {
        let id = id.into();
        let registry = &self.inner.registry;
        let registered = match version {
            None => registry.newest(workflow),
            Some(version) => registry
                .versions(workflow)
                .iter()
                .find(|registered| registered.version() == version),
        };
        let Some(registered) = registered.cloned() else {
            let what = match version {
                Some(version) => format!("{workflow}` version `{version}"),
                None => workflow.to_owned(),
            };
            return Err(Error::UnknownWorkflow(what));
        };
        let size = serde_json::to_vec(&input).map_or(0, |bytes| bytes.len());
        if size > self.inner.max_input_bytes {
            return Err(Error::InputTooLarge {
                size,
                limit: self.inner.max_input_bytes,
            });
        }
        let (state, state_name) = registered.begin(input).map_err(|reason| Error::Codec {
            what: format!("the input of instance `{id}`"),
            reason,
        })?;
        let now = self.inner.clock.now_ms();
        let instance = new_record(
            registered.name(),
            registered.machine(),
            &id,
            state_name,
            state,
            now,
        );
        let bytes =
            record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
        match self
            .inner
            .store()
            .put(&record::key(&id), bytes, Expect::Absent)
            .await
        {
            Ok(_) => self.hint(now, &id).await,
            Err(StoreError::Conflict) => {
                let Some((existing, version)) = self.load(&id).await? else {
                    return Err(Error::NotFound(id));
                };
                if existing.workflow != registered.name() {
                    return Err(Error::IdInUse {
                        id,
                        existing: existing.workflow,
                        requested: registered.name().to_owned(),
                    });
                }
                self.attach(&id, existing, version).await?;
            }
            Err(error) => return Err(error.into()),
        }
        Ok(Handle::new(self.clone(), id))
    }

    /// A handle on existing instance `id` of `workflow`, without starting
    /// anything (for example in another process than the one that started
    /// it): to wait for its outcome, send the signals its workflow declares
    /// and read its declared query ([`Handle::signal`], [`Handle::query`]).
    pub fn handle<W: Workflow>(&self, workflow: W, id: impl Into<String>) -> Handle<W::Output, W> {
        drop(workflow);
        Handle::new(self.clone(), id.into())
    }

    /// What the runtime knows about instance `id`, `None` if there is none.
    ///
    /// A record that cannot be decoded is [`Error::Corrupt`]; it is left as
    /// it is in the store.
    pub async fn status(&self, id: &str) -> Result<Option<Status>, Error> {
        Ok(self
            .load(id)
            .await?
            .map(|(instance, _)| self.status_of(instance)))
    }

    /// Instances in id order, `limit` at a time, starting after id `after`.
    ///
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// let mut after = None;
    /// loop {
    ///     let page = rt.list(after.as_deref(), 100).await?;
    ///     for status in page.instances { println!("{:?}", status?.phase); }
    ///     match page.next { Some(next) => after = Some(next), None => break }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list(&self, after: Option<&str>, limit: usize) -> Result<ListPage, Error> {
        let after = after.map(record::key);
        let page = self
            .inner
            .store()
            .scan(record::KEY_PREFIX, after.as_deref(), limit)
            .await?;
        let instances = page
            .entries
            .into_iter()
            .map(|(key, stored)| {
                let id = key.strip_prefix(record::KEY_PREFIX).unwrap_or(&key);
                decode_record(id, &stored.value).map(|instance| self.status_of(instance))
            })
            .collect();
        let next = page.next.map(|key| {
            key.strip_prefix(record::KEY_PREFIX)
                .map_or(key.clone(), str::to_owned)
        });
        Ok(ListPage { instances, next })
    }

    /// Stops the workers: each finishes the attempt it runs, writes it,
    /// releases its lease (with a due hint, so another runtime can take the
    /// instance over at once) and stops; waiting handles return
    /// [`Error::Shutdown`]. Instances stay in the store, and any worker
    /// runtime on it resumes them.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.drivers.all_stopped().await;
    }

    /// This runtime's id: the owner written in the leases it holds. Unique
    /// among all runtimes, so an operator can tell which process runs what.
    pub fn runtime_id(&self) -> &str {
        &self.inner.owner
    }
}

/// A writer that only counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(bytes.len());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
