//! [`Registry`]: the workflows, versions and migrations an operator's tool knows.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use sagaflow::machine::{MachineDescription, StateMachine};
use sagaflow::migrate::Migrate;
use sagaflow::runtime::{Runtime, RuntimeBuilder};
use sagaflow::workflow::Workflow;

/// The workflows an operator's tool knows: their state machines (for
/// diagrams and state counts), their state types (to check that a stored
/// state decodes), every version of each, and the migrations between them
/// (for `versions` and `upgrade`, which decide what becomes of each
/// instance as a runtime with this registry would).
///
/// ```
/// # use sagaflow_cli::Registry;
/// # use sagaflow_examples::coffee::coffee_order;
/// use sagaflow_examples::upgrade::{v1, v2, v3, v2_to_v3};
///
/// let registry = Registry::new()
///     .register(v1::place_order)
///     .register(v2::place_order)
///     .register(v3::place_order)
///     .migrate(v2_to_v3)
///     .register(coffee_order);
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    pub(super) workflows: Vec<RegisteredWorkflow>,
    migrations: Vec<RegisteredMigration>,
}

/// Registers something on a runtime builder.
type Registration = Arc<dyn Fn(RuntimeBuilder) -> RuntimeBuilder + Send + Sync>;

#[derive(Clone)]
pub(super) struct RegisteredWorkflow {
    /// The workflow's type: registering it again changes nothing.
    pub(super) id: TypeId,
    pub(super) name: &'static str,
    pub(super) version: u32,
    pub(super) machine: &'static StateMachine,
    /// The machine as drawn, made once.
    pub(super) description: Arc<MachineDescription>,
    pub(super) register: Registration,
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
    /// fingerprint) reach the runtime [`Admin::new`](crate::Admin::new) builds, which refuses
    /// them as a worker runtime would, with [`AdminError::Runtime`](crate::AdminError::Runtime).
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
    /// version make [`Admin::new`](crate::Admin::new) fail, as they make a runtime's build fail.
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
    pub(super) fn get(&self, name: &str) -> Option<&RegisteredWorkflow> {
        self.workflows.iter().rev().find(|known| known.name == name)
    }

    /// The registered version of `name` with this fingerprint.
    pub(super) fn exact(
        &self,
        name: &str,
        fingerprint: Option<u64>,
    ) -> Option<&RegisteredWorkflow> {
        self.workflows
            .iter()
            .find(|known| known.name == name && Some(known.machine.fingerprint()) == fingerprint)
    }

    /// The registered version of `name` with this fingerprint, else the newest.
    pub(super) fn best(&self, name: &str, fingerprint: Option<u64>) -> Option<&RegisteredWorkflow> {
        self.exact(name, fingerprint).or_else(|| self.get(name))
    }

    /// A builder with every workflow and migration of this registry.
    pub(super) fn builder(&self) -> RuntimeBuilder {
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
