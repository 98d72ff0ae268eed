//! [`Admin`]: opening a store, listing instances and showing one.

use std::fmt;
use std::sync::Arc;

use sagaflow::machine::{MachineDescription, StateDescription};
use sagaflow::record::{self, InstanceRecord};
use sagaflow::runtime::Runtime;
use sagaflow::store::Store;

use super::records::{SCAN_PAGE, decode, now_ms, timeline, variables};
use super::registry::Registry;
use super::types::{
    AdminError, InstanceDetail, InstanceList, InstanceSummary, ListQuery, Undecodable,
};

/// The operator's view of a store: the library behind the `sagaflow` tool.
///
/// Works on any [`Store`] with no workflow registered (it reads records as
/// JSON); with a [`Registry`] it also knows the machines, for diagrams,
/// state counts, step names and variable types. Cheap to clone.
///
/// ```
/// # use std::sync::Arc;
/// # use sagaflow::{MemoryStore, record::Phase};
/// # use sagaflow_cli::{Admin, AdminError, ListQuery, Registry};
/// # use sagaflow_examples::order::place_order;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), AdminError> {
/// # let store = Arc::new(MemoryStore::new());
/// let admin = Admin::new(store, Registry::new().register(place_order)).await?;
/// let failed = ListQuery { phases: vec![Phase::Failed], ..Default::default() };
/// for instance in admin.list(&failed, |_| {}).await?.instances {
///     println!("{} stopped at {}", instance.id, instance.state);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Admin {
    pub(super) store: Arc<dyn Store>,
    pub(super) registry: Arc<Registry>,
    /// A client-only runtime (no workers) on the store with the registry's
    /// workflows and migrations: for `cancel`, `signal`, what blocks an
    /// instance, `versions` and `upgrade`.
    pub(super) runtime: Runtime,
}

impl Admin {
    /// An admin on `store`, knowing the workflows of `registry`.
    ///
    /// Its client-only runtime (no workers) registers the registry's
    /// workflows and migrations, so `versions` and `upgrade` decide as a
    /// runtime with the same code would; building it writes their machine
    /// descriptions to the store if they are not there yet, as any runtime
    /// does. A registry the runtime refuses (one version twice, a migration
    /// to an unregistered version) is [`AdminError::Runtime`].
    pub async fn new(store: Arc<dyn Store>, registry: Registry) -> Result<Admin, AdminError> {
        let runtime = registry
            .builder()
            .store(Arc::clone(&store))
            .workers(0)
            .build()
            .await?;
        Ok(Admin {
            store,
            registry: Arc::new(registry),
            runtime,
        })
    }

    /// An admin on the store at `url` (see [`open_store`](crate::open_store)).
    pub async fn open(url: &str, registry: Registry) -> Result<Admin, AdminError> {
        Admin::new(crate::open_store(url).await?, registry).await
    }

    /// The workflows this admin knows.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The store's short name (`embedded`, `postgres`, …).
    pub fn store_name(&self) -> &'static str {
        self.store.name()
    }

    /// The instances matching `query`, newest first, and every record that
    /// cannot be decoded. Reads every record (the store keeps them in id
    /// order); `progress` is called with the number read so far after each
    /// page, for long listings.
    pub async fn list(
        &self,
        query: &ListQuery,
        mut progress: impl FnMut(usize),
    ) -> Result<InstanceList, AdminError> {
        let mut list = InstanceList::default();
        let mut matched = Vec::new();
        let stored = self.stored_descriptions().await?;
        self.scan(&mut progress, |scanned| {
            list.scanned += 1;
            match scanned {
                Ok(instance) => {
                    if query.matches(&instance) {
                        let machine =
                            self.resolve(&stored, &instance.workflow, instance.fingerprint_value());
                        matched.push(self.summary(&instance, machine.as_ref().map(|m| &*m.0)));
                    }
                }
                Err(undecodable) => list.undecodable.push(undecodable),
            }
        })
        .await?;
        matched.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        list.matched = matched.len();
        let start = match &query.after {
            Some(after) => match matched.iter().position(|instance| &instance.id == after) {
                Some(position) => position + 1,
                // The cursor's instance is gone (deleted, or filtered out):
                // continue at the first instance created before it would be.
                None => matched.len(),
            },
            None => 0,
        };
        let mut page: Vec<InstanceSummary> = matched.into_iter().skip(start).collect();
        if query.limit > 0 && page.len() > query.limit {
            page.truncate(query.limit);
            list.next = page.last().map(|instance| instance.id.clone());
        }
        list.instances = page;
        Ok(list)
    }

    /// Everything about instance `id`.
    pub async fn show(&self, id: &str) -> Result<InstanceDetail, AdminError> {
        let (instance, _) = self.load(id).await?;
        let stored = if self
            .registry
            .exact(&instance.workflow, instance.fingerprint_value())
            .is_some()
        {
            Vec::new()
        } else {
            self.stored_descriptions().await?
        };
        Ok(self.detail(instance, &stored))
    }

    /// Reads and decodes the record of `id`.
    pub(super) async fn load(&self, id: &str) -> Result<(InstanceRecord, u64), AdminError> {
        let key = record::key(id);
        let stored = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| AdminError::NotFound(id.to_owned()))?;
        let instance = decode(&key, &stored.value).map_err(|undecodable| AdminError::Corrupt {
            key: undecodable.key,
            reason: undecodable.reason,
        })?;
        Ok((instance, stored.version))
    }

    /// Calls `each` with every instance record, decoded or not.
    pub(super) async fn scan(
        &self,
        progress: &mut impl FnMut(usize),
        mut each: impl FnMut(Result<InstanceRecord, Undecodable>),
    ) -> Result<(), AdminError> {
        let mut after: Option<String> = None;
        let mut read = 0;
        loop {
            let page = self
                .store
                .scan(record::KEY_PREFIX, after.as_deref(), SCAN_PAGE)
                .await?;
            for (key, stored) in page.entries {
                read += 1;
                each(decode(&key, &stored.value));
            }
            progress(read);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// The step a state of a registered workflow runs, or what it waits for.
    pub(super) fn step_of(&self, workflow: &str, state: &str) -> Option<String> {
        self.registry
            .get(workflow)?
            .description
            .state(state)?
            .step_or_wait()
    }

    pub(super) fn summary(
        &self,
        instance: &InstanceRecord,
        machine: Option<&MachineDescription>,
    ) -> InstanceSummary {
        InstanceSummary {
            id: instance.id.clone(),
            workflow: instance.workflow.clone(),
            version: instance.version,
            phase: instance.phase,
            state: instance.state_name.clone(),
            step: machine
                .and_then(|machine| machine.state(&instance.state_name))
                .and_then(StateDescription::step_or_wait),
            attempt: instance.attempt,
            next_run_at: instance.next_run_at,
            last_error: instance.last_error.clone(),
            failure: instance.failure.clone(),
            pivot_passed: instance.pivot_passed,
            cancel_requested: instance.cancel_requested,
            awaiting_signal: instance.awaiting_signal.clone(),
            parent: instance.parent.clone(),
            awaiting_child: instance.awaiting_child.clone(),
            children: instance
                .compensation_stack
                .iter()
                .filter_map(|entry| entry.child.clone())
                .collect(),
            created_at: instance.created_at,
            updated_at: instance.updated_at,
        }
    }

    pub(super) fn detail(
        &self,
        instance: InstanceRecord,
        stored: &[MachineDescription],
    ) -> InstanceDetail {
        let resolved = self.resolve(stored, &instance.workflow, instance.fingerprint_value());
        let machine = resolved.as_ref().map(|(machine, _)| Arc::clone(machine));
        let summary = self.summary(&instance, machine.as_deref());
        let registered = self
            .registry
            .best(&instance.workflow, instance.fingerprint_value());
        let info = machine
            .as_deref()
            .and_then(|machine| machine.state(&instance.state_name));
        let fingerprint_matches = registered.map(|_| {
            self.registry
                .exact(&instance.workflow, instance.fingerprint_value())
                .is_some()
        });
        // The bare tool knows no code: it cannot say what blocks an instance.
        let blocked = if self.registry.is_empty() || instance.phase.is_terminal() {
            None
        } else if self.registry.get(&instance.workflow).is_none() {
            Some(self.not_registered(&instance.workflow))
        } else {
            self.runtime.blocked(&instance)
        };
        // A stored state is valid JSON (the record decoded): never `null` here.
        let state = instance.state.to_value().unwrap_or_default();
        let variables = variables(&state, &instance.state_name, info);
        let step_kind = info
            .and_then(|info| info.step.as_ref())
            .map(|step| step.kind.to_string());
        let now = now_ms();
        InstanceDetail {
            summary,
            machine_source: resolved.map(|(_, source)| source),
            machine,
            step_kind,
            fingerprint: instance.fingerprint.clone(),
            fingerprint_matches,
            blocked,
            variables,
            output: instance.output,
            compensation_stack: instance.compensation_stack,
            lease_live: instance.lease.is_live(now),
            lease: instance.lease,
            heartbeat: instance.heartbeat,
            status: instance.status,
            inbox: instance
                .inbox
                .into_iter()
                .filter(|(_, queue)| !queue.is_empty())
                .map(|(name, queue)| (name, queue.into()))
                .collect(),
            timeline: timeline(instance.history.iter()),
            history: instance.history.into(),
        }
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("store", &self.store.name())
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}
