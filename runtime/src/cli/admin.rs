//! [`Admin`]: what an operator asks of a store, as a library: list, show,
//! cancel, retry, and how many instances sit in each state of a machine.

use std::any::TypeId;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, StoreError};
use crate::machine::{
    DescriptionError, MACHINES_PREFIX, MachineDescription, StateDescription, StateMachine,
};
use crate::migrate::Migrate;
use crate::record::{
    self, EventKind, Failure, Heartbeat, HistoryEvent, InstanceRecord, Lease, Phase, SignalMessage,
};
use crate::runtime::{
    Runtime, RuntimeBuilder, UpgradeAction, UpgradeReport, VersionReport, VersionSummary,
    WorkflowVersions,
};
use crate::store::{Expect, Store};
use crate::workflow::{CompensationEntry, Workflow};

/// Records read per page of a scan.
const SCAN_PAGE: usize = 256;

/// The workflows an operator's tool knows: their state machines (for
/// diagrams and state counts), their state types (to check that a stored
/// state decodes), every version of each, and the migrations between them
/// (for `versions` and `upgrade`, which decide what becomes of each
/// instance as a runtime with this registry would).
///
/// ```ignore
/// let registry = Registry::new()
///     .register(v1::place_order)
///     .register(place_order)
///     .migrate(v1_to_v2)
///     .register(coffee_order);
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    workflows: Vec<RegisteredWorkflow>,
    migrations: Vec<RegisteredMigration>,
}

/// Registers something on a runtime builder.
type Registration = Arc<dyn Fn(RuntimeBuilder) -> RuntimeBuilder + Send + Sync>;

#[derive(Clone)]
struct RegisteredWorkflow {
    /// The workflow's type: registering it again changes nothing.
    id: TypeId,
    name: &'static str,
    version: u32,
    machine: &'static StateMachine,
    /// The machine as drawn, made once.
    description: Arc<MachineDescription>,
    register: Registration,
}

#[derive(Clone)]
struct RegisteredMigration {
    /// The migration's type: registering it again changes nothing.
    id: TypeId,
    name: &'static str,
    register: Registration,
}

impl Registry {
    /// An empty registry: the tool reads records, knows no machines.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds `workflow`. Versions of one workflow are kept side by side (by
    /// name, version and fingerprint): registering the same workflow again
    /// changes nothing, and two workflows with one name and version (or one
    /// fingerprint) reach the runtime [`Admin::new`] builds, which refuses
    /// them as a worker runtime would, with [`AdminError::Runtime`].
    pub fn register<W: Workflow + Clone>(mut self, workflow: W) -> Registry {
        let machine = workflow.state_machine();
        let id = TypeId::of::<W>();
        if self.workflows.iter().any(|known| known.id == id) {
            return self;
        }
        self.workflows.push(RegisteredWorkflow {
            id,
            name: W::NAME,
            version: machine.version,
            machine,
            description: Arc::new(MachineDescription::from(machine)),
            register: Arc::new(move |builder: RuntimeBuilder| builder.register(workflow.clone())),
        });
        self.workflows
            .sort_by_key(|known| (known.name, known.version, known.machine.fingerprint()));
        self
    }

    /// Adds a migration (`#[migrate]`): `versions` and `upgrade` then say
    /// (and `upgrade` does) what it makes of the instances it applies to.
    /// The same migration twice counts once; two migrations from one
    /// version make [`Admin::new`] fail, as they make a runtime's build fail.
    pub fn migrate<M: Migrate + Clone>(mut self, migration: M) -> Registry {
        let id = TypeId::of::<M>();
        if self.migrations.iter().any(|known| known.id == id) {
            return self;
        }
        self.migrations.push(RegisteredMigration {
            id,
            name: M::NAME,
            register: Arc::new(move |builder: RuntimeBuilder| builder.migrate(migration.clone())),
        });
        self
    }

    /// The names of the migrations registered, in the order given.
    pub fn migrations(&self) -> Vec<&'static str> {
        self.migrations.iter().map(|known| known.name).collect()
    }

    /// The names of the registered workflows, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.workflows.iter().map(|known| known.name).collect();
        names.dedup();
        names
    }

    /// Whether no workflow is registered.
    pub fn is_empty(&self) -> bool {
        self.workflows.is_empty()
    }

    /// The state machine of the newest version of workflow `name`, if registered.
    pub fn machine(&self, name: &str) -> Option<&'static StateMachine> {
        self.get(name).map(|known| known.machine)
    }

    /// Every registered version of workflow `name`, oldest first.
    pub fn versions(&self, name: &str) -> Vec<&'static StateMachine> {
        self.workflows
            .iter()
            .filter(|known| known.name == name)
            .map(|known| known.machine)
            .collect()
    }

    /// The newest registered version of `name`.
    fn get(&self, name: &str) -> Option<&RegisteredWorkflow> {
        self.workflows.iter().rev().find(|known| known.name == name)
    }

    /// The registered version of `name` with this fingerprint.
    fn exact(&self, name: &str, fingerprint: Option<u64>) -> Option<&RegisteredWorkflow> {
        self.workflows
            .iter()
            .find(|known| known.name == name && Some(known.machine.fingerprint()) == fingerprint)
    }

    /// The registered version of `name` with this fingerprint, else the newest.
    fn best(&self, name: &str, fingerprint: Option<u64>) -> Option<&RegisteredWorkflow> {
        self.exact(name, fingerprint).or_else(|| self.get(name))
    }

    /// A builder with every workflow and migration of this registry.
    fn builder(&self) -> RuntimeBuilder {
        let registrations = self
            .workflows
            .iter()
            .map(|known| &known.register)
            .chain(self.migrations.iter().map(|known| &known.register));
        registrations.fold(Runtime::builder(), |builder, register| register(builder))
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// What went wrong in an operator's request; every message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The store URL names no store this build can open.
    #[error("cannot open store `{url}`: {reason}")]
    StoreUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it, and what would work.
        reason: String,
    },
    /// No store was given.
    #[error(
        "no store given: pass `--store URL` or set SAGAFLOW_STORE \
         (embedded:PATH, postgres://…, redis://…, etcd://host:port)"
    )]
    NoStore,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The runtime refused the operation.
    #[error(transparent)]
    Runtime(Error),
    /// No instance has this id.
    #[error("no instance with id `{0}` (see `sagaflow list`)")]
    NotFound(String),
    /// The record under `key` is not a readable instance record.
    #[error(
        "the record at key `{key}` cannot be decoded: {reason}; it is left as it is in the store"
    )]
    Corrupt {
        /// The store key.
        key: String,
        /// Why it cannot be decoded.
        reason: String,
    },
    /// The tool knows no workflows at all (the bare `sagaflow` binary) and
    /// the store holds no description of this one.
    #[error(
        "this tool knows no workflows and the store holds no description of `{0}`, so it cannot \
         draw it: a runtime that registers `{0}` stores one when it is built; or ship the tool in \
         your binary with `sagaflow::cli::run(Registry::new().register(your_workflow))`"
    )]
    NoWorkflows(String),
    /// The tool knows other workflows, not this one, and the store holds no
    /// description of it.
    #[error(
        "workflow `{name}` is not registered in this tool (registered: {known}), and the store \
         holds no description of it"
    )]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// No machine of the workflow with this fingerprint is registered in
    /// this tool or described in the store.
    #[error(
        "no version of `{workflow}` with fingerprint {fingerprint} is registered in this tool or \
         described in the store (see `sagaflow versions --workflow {workflow}`)"
    )]
    UnknownVersion {
        /// The workflow's name.
        workflow: String,
        /// The fingerprint asked for, 16 hex digits.
        fingerprint: String,
    },
    /// `retry` of an instance that has not failed.
    #[error("instance `{id}` is {phase}, not Failed: only a Failed instance can be retried")]
    NotFailed {
        /// The instance id.
        id: String,
        /// Its phase.
        phase: Phase,
    },
    /// `retry` of a Failed instance that a retry cannot help.
    #[error("instance `{id}` cannot be retried: {reason}")]
    CannotRetry {
        /// The instance id.
        id: String,
        /// Why not.
        reason: String,
    },
    /// A value could not be encoded or decoded (a JSON argument, a record).
    #[error("{0}")]
    Invalid(String),
}

impl From<Error> for AdminError {
    fn from(error: Error) -> AdminError {
        match error {
            Error::Store(error) => AdminError::Store(error),
            Error::NotFound(id) => AdminError::NotFound(id),
            Error::Corrupt { id, reason } => AdminError::Corrupt {
                key: record::key(&id),
                reason,
            },
            error => AdminError::Runtime(error),
        }
    }
}

/// Which instances [`Admin::list`] returns. Instances come newest first
/// (by creation time, then id).
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only instances of this workflow.
    pub workflow: Option<String>,
    /// Only instances in one of these phases (all when empty).
    pub phases: Vec<Phase>,
    /// Only instances created at or before this time (ms since the epoch).
    pub created_before: Option<u64>,
    /// Only instances created at or after this time (ms since the epoch).
    pub created_after: Option<u64>,
    /// Continue after this instance id (the `next` of the previous page).
    pub after: Option<String>,
    /// At most this many instances; 0: no limit.
    pub limit: usize,
}

impl ListQuery {
    fn matches(&self, instance: &InstanceRecord) -> bool {
        self.workflow
            .as_deref()
            .is_none_or(|workflow| instance.workflow == workflow)
            && (self.phases.is_empty() || self.phases.contains(&instance.phase))
            && self
                .created_before
                .is_none_or(|before| instance.created_at <= before)
            && self
                .created_after
                .is_none_or(|after| instance.created_at >= after)
    }
}

/// One line of [`Admin::list`]: where an instance is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InstanceSummary {
    /// The instance id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The version of the workflow it runs on.
    pub version: u32,
    /// Where the instance is in its life.
    pub phase: Phase,
    /// The current state (resume point), e.g. `ChargePayment1`.
    pub state: String,
    /// The step that state runs, when the workflow is registered.
    pub step: Option<String>,
    /// The attempt number of the next step or compensation attempt.
    pub attempt: u32,
    /// When the next attempt is due (ms since the Unix epoch), if it waits.
    pub next_run_at: Option<u64>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// Why the instance is rolling back or ended without completing.
    pub failure: Option<Failure>,
    /// Whether the pivot step has succeeded.
    pub pivot_passed: bool,
    /// Whether `cancel` was called.
    pub cancel_requested: bool,
    /// The signal the instance waits for, if it waits for one (until
    /// `next_run_at`, when the wait has a timeout).
    pub awaiting_signal: Option<String>,
    /// The instance that started this one as its child workflow, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The child workflow instance this one waits for (to end, or, while
    /// compensating, to finish its compensation), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_child: Option<String>,
    /// The completed child workflow instances on the compensation stack.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// When the instance was created (ms since the Unix epoch).
    pub created_at: u64,
    /// When its record was last written (ms since the Unix epoch).
    pub updated_at: u64,
}

/// A record [`Admin::list`] could not decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Undecodable {
    /// The store key.
    pub key: String,
    /// Why it cannot be decoded.
    pub reason: String,
}

/// What [`Admin::list`] found.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct InstanceList {
    /// The matching instances of this page, newest first.
    pub instances: Vec<InstanceSummary>,
    /// Every record that cannot be decoded (whatever the filters), so one
    /// bad record hides nothing.
    pub undecodable: Vec<Undecodable>,
    /// Pass as [`ListQuery::after`] for the next page; `None` on the last.
    pub next: Option<String>,
    /// How many instances match the filters in all (every page).
    pub matched: usize,
    /// How many records were read.
    pub scanned: usize,
}

/// A variable stored in an instance's current state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredVariable {
    /// The variable's name.
    pub name: String,
    /// Its type as written in the workflow, when the workflow is registered.
    pub ty: Option<String>,
    /// Its value, as stored.
    pub value: Value,
}

/// One line of an instance's timeline: a step attempt (its start and end
/// events joined), a compensation, or another event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When it began (ms since the Unix epoch).
    pub at: u64,
    /// What happened: for a step attempt, how it ended
    /// (`step_succeeded`, `step_retried`, `step_failed`).
    pub kind: EventKind,
    /// The state the instance was in.
    pub state: Option<String>,
    /// The step (or the step being undone).
    pub step: Option<String>,
    /// The attempt number.
    pub attempt: Option<u32>,
    /// How long the attempt took, when its start is known.
    pub duration_ms: Option<u64>,
    /// The error, for failures.
    pub error: Option<String>,
    /// What else the event records: an upgrade's or a migration's versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Where the machine an operator's tool draws comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineSource {
    /// The workflow is registered in this tool.
    Registered,
    /// The description a runtime wrote to the store when it was built.
    Stored,
}

/// A state machine an operator's tool can draw: [`Admin::machine`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KnownMachine {
    /// The machine.
    pub machine: MachineDescription,
    /// Where it comes from.
    pub source: MachineSource,
    /// When a runtime registering it stored its description (ms since the
    /// Unix epoch), for a stored machine.
    pub registered_at: Option<u64>,
}

/// Everything about one instance: [`Admin::show`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InstanceDetail {
    /// Where it is.
    #[serde(flatten)]
    pub summary: InstanceSummary,
    /// The kind of the current state's step, when the workflow is registered.
    pub step_kind: Option<String>,
    /// The fingerprint of the machine it was started on, 16 hex digits.
    pub fingerprint: String,
    /// Whether the registered machine has that fingerprint (`None`: the
    /// workflow is not registered in this tool).
    pub fingerprint_matches: Option<bool>,
    /// Where the machine used for step names, variable types and the
    /// drawing comes from (`None`: neither registered nor stored).
    pub machine_source: Option<MachineSource>,
    /// The machine of the instance's workflow: the one with its fingerprint
    /// (registered, else stored), else the registered one.
    #[serde(skip)]
    pub machine: Option<Arc<MachineDescription>>,
    /// Why a runtime with this tool's workflows would not advance it.
    pub blocked: Option<String>,
    /// The variables stored in the current state.
    pub variables: Vec<StoredVariable>,
    /// The workflow's output, when Completed.
    pub output: Option<Value>,
    /// Completed compensable steps, oldest first (undone last to first).
    pub compensation_stack: Vec<CompensationEntry>,
    /// Who runs (or last ran) it.
    pub lease: Lease,
    /// Whether a runtime holds its lease now.
    pub lease_live: bool,
    /// The last progress reported by the current step's attempts.
    pub heartbeat: Option<Heartbeat>,
    /// What the workflow last reported with
    /// [`sagaflow::set_status`](crate::set_status()).
    pub status: Option<Value>,
    /// Signals recorded and not consumed yet, by name, oldest first.
    pub inbox: BTreeMap<String, Vec<SignalMessage>>,
    /// The history as a timeline, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// The raw history events, oldest first.
    pub history: Vec<HistoryEvent>,
}

/// What [`Admin::cancel`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum CancelOutcome {
    /// The request is recorded: the instance stops before its next step and
    /// compensates.
    Requested,
    /// It was already requested.
    AlreadyRequested,
    /// The instance already rolls back or has ended: nothing to do.
    NothingToDo {
        /// Its phase.
        phase: Phase,
    },
}

/// What [`Admin::retry`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum RetryOutcome {
    /// The instance is `Running` again at `state`, attempt 1: its step runs
    /// again on the next worker runtime that polls the store.
    Resumed {
        /// The state it resumes at.
        state: String,
        /// The step that runs again, when known.
        step: Option<String>,
    },
    /// The instance is `Compensating` again: its remaining compensations
    /// (`step` first) run on the next worker runtime that polls the store.
    Compensating {
        /// The compensation that failed, run again first.
        step: String,
        /// How many compensations remain.
        remaining: usize,
    },
}

/// How many instances of one workflow sit where: [`Admin::state_counts`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StateCounts {
    /// Unfinished instances (Running, Waiting, Compensating) by state name,
    /// then by phase.
    pub active: BTreeMap<String, BTreeMap<String, usize>>,
    /// Ended instances by phase (Completed, Compensated, Failed).
    pub ended: BTreeMap<String, usize>,
    /// Failed instances by the state they stopped at.
    pub failed_at: BTreeMap<String, usize>,
    /// Instances of the workflow started on another fingerprint (other code).
    pub other_fingerprint: usize,
}

impl StateCounts {
    /// Unfinished instances at `state`, all phases together.
    pub fn at(&self, state: &str) -> usize {
        self.active
            .get(state)
            .map_or(0, |phases| phases.values().sum())
    }

    /// Ended instances in `phase`.
    pub fn ended(&self, phase: Phase) -> usize {
        self.ended.get(phase.as_str()).copied().unwrap_or(0)
    }
}

/// The operator's view of a store: the library behind the `sagaflow` tool.
///
/// Works on any [`Store`] with no workflow registered (it reads records as
/// JSON); with a [`Registry`] it also knows the machines, for diagrams,
/// state counts, step names and variable types. Cheap to clone.
///
/// ```ignore
/// let admin = Admin::new(store, Registry::new().register(place_order)).await?;
/// for instance in admin.list(&ListQuery { phases: vec![Phase::Failed], ..Default::default() }, |_| {}).await?.instances {
///     println!("{} stopped at {}", instance.id, instance.state);
/// }
/// ```
#[derive(Clone)]
pub struct Admin {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    /// A client-only runtime (no workers) on the store with the registry's
    /// workflows and migrations: for `cancel`, `signal`, what blocks an
    /// instance, `versions` and `upgrade`.
    runtime: Runtime,
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

    /// An admin on the store at `url` (see [`open_store`](super::open_store)).
    pub async fn open(url: &str, registry: Registry) -> Result<Admin, AdminError> {
        Admin::new(super::open_store(url).await?, registry).await
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

    /// Per workflow (or only `workflow`), every version with instances in
    /// the store or registered in this tool (see [`Runtime::versions`]):
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
                    report.workflows.push(WorkflowVersions {
                        workflow: machine.workflow.clone(),
                        versions: Vec::new(),
                    });
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
                None => versions.push(VersionSummary {
                    fingerprint: machine.fingerprint,
                    version: machine.version,
                    upgrade: Some(machine.upgrade),
                    described: true,
                    ..VersionSummary::default()
                }),
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
    /// does it now (see [`Runtime::upgrade`]): each move or migration is one
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
    fn not_registered(&self, workflow: &str) -> String {
        if self.registry.is_empty() {
            format!(
                "workflow `{workflow}` is not registered in this tool (it registers none): only \
                 a runtime with its code can run it; ship the tool in your binary with \
                 `sagaflow::cli::run(Registry::new().register(..))` to see what that code makes \
                 of it"
            )
        } else {
            format!(
                "workflow `{workflow}` is not registered in this tool (registered: {})",
                self.registry.names().join(", ")
            )
        }
    }

    /// Cancels instance `id` (see [`Runtime::cancel`]): an instance before its
    /// pivot stops before its next step and compensates. Past the pivot it is
    /// [`Error::PastPivot`] and nothing is recorded.
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
    /// [`Runtime::signal`]): recorded in the instance's inbox with one
    /// compare-and-swap, consumed by the workflow's next wait for `name`.
    /// An instance that has ended takes no signal ([`Error::InstanceEnded`]).
    pub async fn signal(&self, id: &str, name: &str, payload: Value) -> Result<(), AdminError> {
        self.runtime.signal(id, name, payload).await?;
        Ok(())
    }

    /// The state machine of `workflow` to draw: the registered one, else
    /// the description a runtime that registered it stored (the most
    /// recently registered one when its code changed). A stored description
    /// that cannot be decoded is [`AdminError::Corrupt`] when no other is
    /// usable.
    pub async fn machine(&self, workflow: &str) -> Result<KnownMachine, AdminError> {
        if let Some(known) = self.registry.get(workflow) {
            return Ok(KnownMachine {
                machine: MachineDescription::clone(&known.description),
                source: MachineSource::Registered,
                registered_at: None,
            });
        }
        let prefix = format!("{MACHINES_PREFIX}{workflow}/");
        let mut newest: Option<KnownMachine> = None;
        let mut corrupt = None;
        for (key, stored) in self.stored_machines(&prefix).await? {
            match stored {
                Ok((machine, registered_at)) => {
                    let newer = newest.as_ref().is_none_or(|best| {
                        (best.registered_at, best.machine.fingerprint)
                            < (Some(registered_at), machine.fingerprint)
                    });
                    if newer {
                        newest = Some(KnownMachine {
                            machine,
                            source: MachineSource::Stored,
                            registered_at: Some(registered_at),
                        });
                    }
                }
                Err(error) => {
                    corrupt.get_or_insert(AdminError::Corrupt {
                        key,
                        reason: error.to_string(),
                    });
                }
            }
        }
        if let Some(known) = newest {
            return Ok(known);
        }
        if let Some(error) = corrupt {
            return Err(error);
        }
        if self.registry.is_empty() {
            return Err(AdminError::NoWorkflows(workflow.to_owned()));
        }
        Err(AdminError::UnknownWorkflow {
            name: workflow.to_owned(),
            known: self.registry.names().join(", "),
        })
    }

    /// The machine of the version of `workflow` with `fingerprint`: the
    /// registered one, else the description a runtime stored.
    pub async fn version_machine(
        &self,
        workflow: &str,
        fingerprint: u64,
    ) -> Result<KnownMachine, AdminError> {
        if let Some(known) = self.registry.exact(workflow, Some(fingerprint)) {
            return Ok(KnownMachine {
                machine: MachineDescription::clone(&known.description),
                source: MachineSource::Registered,
                registered_at: None,
            });
        }
        let key = format!(
            "{MACHINES_PREFIX}{workflow}/{}",
            record::format_fingerprint(fingerprint)
        );
        let Some(stored) = self.store.get(&key).await? else {
            return Err(AdminError::UnknownVersion {
                workflow: workflow.to_owned(),
                fingerprint: record::format_fingerprint(fingerprint),
            });
        };
        let (machine, registered_at) =
            MachineDescription::from_stored(&stored.value).map_err(|error| {
                AdminError::Corrupt {
                    key,
                    reason: error.to_string(),
                }
            })?;
        Ok(KnownMachine {
            machine,
            source: MachineSource::Stored,
            registered_at: Some(registered_at),
        })
    }

    /// Every machine this admin can draw: the registered ones, then the
    /// stored descriptions of other workflows or other fingerprints, by
    /// workflow name, newest first. Stored descriptions that cannot be
    /// decoded are returned as [`Undecodable`].
    pub async fn machines(&self) -> Result<(Vec<KnownMachine>, Vec<Undecodable>), AdminError> {
        let mut known: Vec<KnownMachine> = self
            .registry
            .workflows
            .iter()
            .map(|registered| KnownMachine {
                machine: MachineDescription::clone(&registered.description),
                source: MachineSource::Registered,
                registered_at: None,
            })
            .collect();
        let mut undecodable = Vec::new();
        for (key, stored) in self.stored_machines(MACHINES_PREFIX).await? {
            match stored {
                Ok((machine, registered_at)) => {
                    let registered = self
                        .registry
                        .exact(&machine.workflow, Some(machine.fingerprint))
                        .is_some();
                    if !registered {
                        known.push(KnownMachine {
                            machine,
                            source: MachineSource::Stored,
                            registered_at: Some(registered_at),
                        });
                    }
                }
                Err(error) => undecodable.push(Undecodable {
                    key,
                    reason: error.to_string(),
                }),
            }
        }
        known.sort_by(|a, b| {
            a.machine
                .workflow
                .cmp(&b.machine.workflow)
                .then_with(|| {
                    (a.source != MachineSource::Registered)
                        .cmp(&(b.source != MachineSource::Registered))
                })
                .then_with(|| b.registered_at.cmp(&a.registered_at))
        });
        Ok((known, undecodable))
    }

    /// The stored machine descriptions under `prefix`, decoded or not.
    async fn stored_machines(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Result<(MachineDescription, u64), DescriptionError>)>, AdminError>
    {
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.scan(prefix, after.as_deref(), SCAN_PAGE).await?;
            for (key, stored) in page.entries {
                let decoded = MachineDescription::from_stored(&stored.value);
                found.push((key, decoded));
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// The machine of `workflow` with `fingerprint`: registered, else
    /// stored; else the registered one with another fingerprint.
    fn resolve(
        &self,
        stored: &[MachineDescription],
        workflow: &str,
        fingerprint: Option<u64>,
    ) -> Option<(Arc<MachineDescription>, MachineSource)> {
        if let Some(known) = self.registry.exact(workflow, fingerprint) {
            return Some((Arc::clone(&known.description), MachineSource::Registered));
        }
        let registered = self.registry.get(workflow);
        if let Some(machine) = stored.iter().find(|machine| {
            machine.workflow == workflow && Some(machine.fingerprint) == fingerprint
        }) {
            return Some((Arc::new(machine.clone()), MachineSource::Stored));
        }
        registered.map(|known| (Arc::clone(&known.description), MachineSource::Registered))
    }

    /// The stored descriptions that decode, of workflows this tool does not
    /// know with that fingerprint (those that cannot be decoded are left
    /// out: the instance views still work without them).
    async fn stored_descriptions(&self) -> Result<Vec<MachineDescription>, AdminError> {
        Ok(self
            .stored_machines(MACHINES_PREFIX)
            .await?
            .into_iter()
            .filter_map(|(key, stored)| match stored {
                Ok((machine, _)) => Some(machine),
                Err(error) => {
                    tracing::warn!(key, %error, "a stored machine description cannot be decoded");
                    None
                }
            })
            .collect())
    }

    /// How many instances of the newest version of `workflow` (registered,
    /// else described in the store) sit in each state (reads every record).
    pub async fn state_counts(
        &self,
        workflow: &str,
        progress: impl FnMut(usize),
    ) -> Result<StateCounts, AdminError> {
        let machine = self.machine(workflow).await?.machine;
        self.count_states(&machine, progress).await
    }

    /// How many instances of the version of `workflow` with `fingerprint`
    /// sit in each state (instances of its other versions are
    /// [`other_fingerprint`](StateCounts::other_fingerprint)).
    pub async fn version_state_counts(
        &self,
        workflow: &str,
        fingerprint: u64,
        progress: impl FnMut(usize),
    ) -> Result<StateCounts, AdminError> {
        let machine = self.version_machine(workflow, fingerprint).await?.machine;
        self.count_states(&machine, progress).await
    }

    /// How many instances of `machine`'s workflow sit in each of its states.
    pub(super) async fn count_states(
        &self,
        machine: &MachineDescription,
        mut progress: impl FnMut(usize),
    ) -> Result<StateCounts, AdminError> {
        let workflow = machine.workflow.as_str();
        let mut counts = StateCounts::default();
        self.scan(&mut progress, |scanned| {
            let Ok(instance) = scanned else { return };
            if instance.workflow != workflow {
                return;
            }
            if instance.fingerprint_value() != Some(machine.fingerprint) {
                counts.other_fingerprint += 1;
                return;
            }
            if instance.phase.is_terminal() {
                *counts
                    .ended
                    .entry(instance.phase.as_str().to_owned())
                    .or_default() += 1;
                if instance.phase == Phase::Failed {
                    *counts.failed_at.entry(instance.state_name).or_default() += 1;
                }
            } else {
                *counts
                    .active
                    .entry(instance.state_name)
                    .or_default()
                    .entry(instance.phase.as_str().to_owned())
                    .or_default() += 1;
            }
        })
        .await?;
        Ok(counts)
    }

    /// Reads and decodes the record of `id`.
    async fn load(&self, id: &str) -> Result<(InstanceRecord, u64), AdminError> {
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
    async fn scan(
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
    fn step_of(&self, workflow: &str, state: &str) -> Option<String> {
        self.registry
            .get(workflow)?
            .description
            .state(state)?
            .step_or_wait()
    }

    fn summary(
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

    fn detail(&self, instance: InstanceRecord, stored: &[MachineDescription]) -> InstanceDetail {
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

/// Decodes the stored bytes at `key`.
fn decode(key: &str, bytes: &[u8]) -> Result<InstanceRecord, Undecodable> {
    let undecodable = |reason: String| Undecodable {
        key: key.to_owned(),
        reason,
    };
    let instance = record::decode(bytes).map_err(|error| undecodable(error.to_string()))?;
    if instance.fingerprint_value().is_none() {
        return Err(undecodable(format!(
            "fingerprint `{}` is not 16 hex digits",
            instance.fingerprint
        )));
    }
    Ok(instance)
}

/// The variables of a stored state variant (`{"Variant": {"name": value}}`),
/// in the machine's order when the state is known.
fn variables(
    state: &Value,
    state_name: &str,
    info: Option<&StateDescription>,
) -> Vec<StoredVariable> {
    let fields = match state {
        Value::Object(map) => match map.get(state_name) {
            Some(Value::Object(fields)) => fields.clone(),
            Some(other) => {
                return vec![StoredVariable {
                    name: state_name.to_owned(),
                    ty: None,
                    value: other.clone(),
                }];
            }
            None => map.clone(),
        },
        // A unit variant: nothing stored.
        Value::String(_) | Value::Null => return Vec::new(),
        other => {
            return vec![StoredVariable {
                name: "state".to_owned(),
                ty: None,
                value: other.clone(),
            }];
        }
    };
    let mut variables = Vec::new();
    let mut rest = fields;
    if let Some(info) = info {
        for variable in &info.variables {
            if let Some(value) = rest.remove(&variable.name) {
                variables.push(StoredVariable {
                    name: variable.name.clone(),
                    ty: Some(variable.ty.clone()),
                    value,
                });
            }
        }
    }
    variables.extend(rest.into_iter().map(|(name, value)| StoredVariable {
        name,
        ty: None,
        value,
    }));
    variables
}

/// The history as a timeline: each step attempt's start and end joined into
/// one entry with its duration.
pub(crate) fn timeline<'a>(history: impl Iterator<Item = &'a HistoryEvent>) -> Vec<TimelineEntry> {
    let mut entries: Vec<TimelineEntry> = Vec::new();
    let mut started: Option<(usize, &HistoryEvent)> = None;
    for event in history {
        let entry = TimelineEntry {
            at: event.at,
            kind: event.kind,
            state: event.state.as_deref().map(str::to_owned),
            step: event.step.as_deref().map(str::to_owned),
            attempt: event.attempt,
            duration_ms: None,
            error: event.error.clone(),
            note: event.note.clone(),
        };
        match event.kind {
            EventKind::StepStarted => {
                started = Some((entries.len(), event));
                entries.push(entry);
            }
            EventKind::StepSucceeded | EventKind::StepRetried | EventKind::StepFailed => {
                match started.take() {
                    Some((index, start))
                        if start.state == event.state && start.attempt == event.attempt =>
                    {
                        let joined = &mut entries[index];
                        joined.kind = event.kind;
                        joined.duration_ms = Some(event.at.saturating_sub(start.at));
                        joined.error = event.error.clone();
                    }
                    _ => entries.push(entry),
                }
            }
            _ => {
                started = None;
                entries.push(entry);
            }
        }
    }
    entries
}

/// The step that succeeded in the current state right before the instance
/// failed, if that is how it failed (the workflow's code returned the error).
fn succeeded_then_failed(instance: &InstanceRecord) -> Option<String> {
    let last = instance.history.iter().rev().find(|event| {
        event.state.as_deref() == Some(instance.state_name.as_str())
            && matches!(
                event.kind,
                EventKind::StepSucceeded | EventKind::StepFailed | EventKind::StepRetried
            )
    })?;
    (last.kind == EventKind::StepSucceeded).then(|| {
        last.step
            .as_deref()
            .map_or_else(|| instance.state_name.clone(), str::to_owned)
    })
}

/// The failure that started the rollback, from its `compensating` event
/// (whose error is that failure, displayed).
fn rollback_cause(instance: &InstanceRecord) -> Option<Failure> {
    let shown = instance
        .history
        .iter()
        .rev()
        .find(|event| event.kind == EventKind::Compensating)?
        .error
        .clone()?;
    if let Some(rest) = shown.strip_prefix("step `")
        && let Some((step, message)) = rest.split_once("` failed: ")
    {
        return Some(Failure {
            message: message.to_owned(),
            step: Some(step.to_owned()),
        });
    }
    Some(Failure::new(shown))
}

/// Wall time in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
