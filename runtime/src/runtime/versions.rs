//! The registered versions of each workflow, the registered migrations, the
//! stored descriptions of machines this runtime does not run, and the plan
//! for an instance: run it as it is, move it to another version, migrate
//! it, or leave it (and say why).
//!
//! The order of the plan, for an instance of fingerprint `F`:
//! 1. a migration registered from `F`;
//! 2. the newest version, if it is `upgrade = "auto"`, newer than `F`'s,
//!    and the machines prove the instance's state compatible
//!    ([`compat`]) and its stored state decodes with the new type;
//! 3. the registered version with fingerprint `F`, as it is;
//! 4. without one: a registered version of the same version number and
//!    structure whose shapes only add to `F`'s (a field with a default, a
//!    new enum variant), if the stored state decodes; or, for a record
//!    written before fingerprints covered shapes (its fingerprint is a
//!    registered machine's structure hash), that machine;
//! 5. otherwise the instance is stranded here, with the reasons.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use super::erased::{ErasedMigration, ErasedWorkflow};
use crate::FastHashMap;
use crate::error::Error;
use crate::machine::MachineDescription;
use crate::machine::compat::{self, Verdict};
use crate::record::{self, EventKind, HistoryEvent, InstanceRecord, Phase};
use crate::workflow::Suspension;

/// Why an instance moves to another version by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveKind {
    /// The newest version is `upgrade = "auto"` and the state is compatible.
    Auto,
    /// The same version with shapes that only add to the old ones.
    Compatible,
    /// A record written before fingerprints covered shapes, whose
    /// fingerprint is the machine's [`legacy`](crate::StateMachine::legacy) one.
    Legacy,
}

impl MoveKind {
    /// Why, in words: in `upgraded` history notes and upgrade reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MoveKind::Auto => "automatic upgrade",
            MoveKind::Compatible => "compatible change of its stored types",
            MoveKind::Legacy => "recorded by an earlier sagaflow",
        }
    }
}

/// How this runtime runs an instance.
pub(crate) enum Plan {
    /// On the machine of its fingerprint.
    Run,
    /// Moved to `to` first (one write), then run there.
    Move {
        to: Arc<dyn ErasedWorkflow>,
        kind: MoveKind,
        /// The version it moves from.
        from_version: u32,
        /// What changed compatibly.
        notes: Vec<String>,
    },
    /// Migrated by a user's function first; if the migration declines,
    /// run on `fallback` (the old version, when it is registered).
    Migrate {
        migration: Arc<dyn ErasedMigration>,
        to: Arc<dyn ErasedWorkflow>,
        fallback: Option<Arc<dyn ErasedWorkflow>>,
    },
}

/// Every workflow version, migration and known machine of a runtime.
pub(crate) struct Registry {
    /// Versions by name, oldest first.
    by_name: FastHashMap<&'static str, Vec<Arc<dyn ErasedWorkflow>>>,
    /// Migrations by the fingerprint they migrate from.
    migrations: FastHashMap<u64, Arc<dyn ErasedMigration>>,
    /// Descriptions of machines runtimes stored that are not registered here.
    stored: FastHashMap<u64, Arc<MachineDescription>>,
    /// Verdicts of [`compat::state`], by old and new fingerprint and state.
    verdicts: Mutex<FastHashMap<(u64, u64, String), Verdict>>,
}

impl Registry {
    /// Checks and indexes what the builder was given: two registrations of
    /// one name and version, or of one fingerprint, are errors; so is a
    /// migration to an unregistered machine or two from one fingerprint.
    pub(crate) fn new(
        workflows: Vec<Arc<dyn ErasedWorkflow>>,
        migrations: Vec<Arc<dyn ErasedMigration>>,
    ) -> Result<Registry, Error> {
        let mut by_name: FastHashMap<&'static str, Vec<Arc<dyn ErasedWorkflow>>> =
            FastHashMap::default();
        let mut fingerprints: FastHashMap<u64, (&'static str, u32)> = FastHashMap::default();
        for workflow in workflows {
            let (name, version, fingerprint) =
                (workflow.name(), workflow.version(), workflow.fingerprint());
            let versions = by_name.entry(name).or_default();
            if versions.iter().any(|known| known.version() == version) {
                return Err(Error::DuplicateWorkflow {
                    name: name.to_owned(),
                    version,
                });
            }
            if let Some((other, other_version)) = fingerprints.insert(fingerprint, (name, version))
            {
                return Err(Error::DuplicateFingerprint {
                    fingerprint,
                    first: format!("{other} v{other_version}"),
                    second: format!("{name} v{version}"),
                });
            }
            versions.push(workflow);
            versions.sort_by_key(|known| known.version());
        }
        let mut by_from: FastHashMap<u64, Arc<dyn ErasedMigration>> = FastHashMap::default();
        for migration in migrations {
            let (from, to) = (migration.from(), migration.to());
            let target = fingerprints.get(&to.fingerprint());
            if target.is_none() {
                return Err(Error::MigrationTarget {
                    migration: migration.name().to_owned(),
                    workflow: to.workflow.to_owned(),
                    version: to.version,
                });
            }
            if from.workflow != to.workflow || from.fingerprint() == to.fingerprint() {
                return Err(Error::MigrationTarget {
                    migration: migration.name().to_owned(),
                    workflow: to.workflow.to_owned(),
                    version: to.version,
                });
            }
            if let Some(other) = by_from.insert(from.fingerprint(), Arc::clone(&migration)) {
                return Err(Error::DuplicateMigration {
                    first: other.name().to_owned(),
                    second: migration.name().to_owned(),
                    workflow: from.workflow.to_owned(),
                    version: from.version,
                });
            }
        }
        Ok(Registry {
            by_name,
            migrations: by_from,
            stored: FastHashMap::default(),
            verdicts: Mutex::new(FastHashMap::default()),
        })
    }

    /// Keeps the descriptions of machines runtimes stored that are not
    /// registered here (and of the machines migrations come from), so
    /// instances of versions whose code is gone can still be moved.
    pub(crate) fn remember(&mut self, descriptions: Vec<MachineDescription>) {
        for description in descriptions {
            if self.by_name.contains_key(description.workflow.as_str())
                && self.registered(description.fingerprint).is_none()
            {
                self.stored
                    .insert(description.fingerprint, Arc::new(description));
            }
        }
        for migration in self.migrations.values() {
            let from = migration.from();
            self.stored
                .entry(from.fingerprint())
                .or_insert_with(|| Arc::new(from.describe()));
        }
    }

    /// Every registered version, by name then version.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<dyn ErasedWorkflow>> {
        let mut names: Vec<&&'static str> = self.by_name.keys().collect();
        names.sort_unstable();
        names.into_iter().flat_map(|name| &self.by_name[*name])
    }

    /// The registered names, sorted.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.by_name.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// The versions registered under `name`, oldest first.
    pub(crate) fn versions(&self, name: &str) -> &[Arc<dyn ErasedWorkflow>] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// The newest version registered under `name`: what `start` by name and
    /// child workflows use.
    pub(crate) fn newest(&self, name: &str) -> Option<&Arc<dyn ErasedWorkflow>> {
        self.versions(name).last()
    }

    /// The registered machine with this fingerprint.
    pub(crate) fn registered(&self, fingerprint: u64) -> Option<&Arc<dyn ErasedWorkflow>> {
        self.by_name
            .values()
            .flatten()
            .find(|workflow| workflow.fingerprint() == fingerprint)
    }

    /// The description of the machine with this fingerprint: registered or
    /// stored.
    pub(crate) fn description(&self, fingerprint: u64) -> Option<Cow<'_, MachineDescription>> {
        match self.registered(fingerprint) {
            Some(workflow) => Some(Cow::Borrowed(workflow.machine().description())),
            None => self
                .stored
                .get(&fingerprint)
                .map(|stored| Cow::Borrowed(&**stored)),
        }
    }

    /// Whether `instance` may need more than running as it is: its own
    /// machine is not registered, a migration starts from it, or a newer
    /// version takes instances over by itself. `false` is the common case,
    /// which needs no plan (and no second decode of the state) at a claim.
    pub(crate) fn may_move(&self, instance: &InstanceRecord) -> bool {
        let fingerprint = instance.fingerprint_value().unwrap_or_default();
        let versions = self.versions(&instance.workflow);
        let exact = versions
            .iter()
            .any(|workflow| workflow.fingerprint() == fingerprint);
        let auto = versions.last().is_some_and(|newest| {
            newest.machine().upgrade == crate::machine::Upgrade::Auto
                && newest.fingerprint() != fingerprint
        });
        !exact || auto || self.migrations.contains_key(&fingerprint)
    }

    /// How this runtime runs `instance`, or why it cannot.
    pub(crate) fn plan(&self, instance: &InstanceRecord) -> Result<Plan, Error> {
        let name = instance.workflow.as_str();
        let versions = self.versions(name);
        if versions.is_empty() {
            return Err(Error::UnknownWorkflow(name.to_owned()));
        }
        let fingerprint = instance.fingerprint_value().unwrap_or_default();
        let exact = versions
            .iter()
            .find(|workflow| workflow.fingerprint() == fingerprint);
        if instance.phase.is_terminal() {
            return match exact {
                Some(_) => Ok(Plan::Run),
                None => Err(self.stranded(instance, Vec::new())),
            };
        }
        if let Some(migration) = self.migrations.get(&fingerprint)
            && let Some(to) = self.registered(migration.to().fingerprint())
        {
            return Ok(Plan::Migrate {
                migration: Arc::clone(migration),
                to: Arc::clone(to),
                fallback: exact.cloned(),
            });
        }
        let mut reasons = Vec::new();
        let old = self.description(fingerprint);
        let newest = versions.last().filter(|newest| {
            newest.machine().upgrade == crate::machine::Upgrade::Auto
                && newest.fingerprint() != fingerprint
        });
        if let Some(newest) = newest {
            match &old {
                Some(old) if old.version < newest.version() => {
                    match self.verdict(old, newest, instance) {
                        Ok(notes) => {
                            return Ok(Plan::Move {
                                to: Arc::clone(newest),
                                kind: MoveKind::Auto,
                                from_version: old.version,
                                notes,
                            });
                        }
                        Err(why) => reasons.push(format!(
                            "it cannot move to v{} automatically: {}",
                            newest.version(),
                            why.join("; ")
                        )),
                    }
                }
                Some(_) => {}
                None => reasons.push(format!(
                    "v{} is upgrade = \"auto\", but no description of the machine the instance \
                     runs on is in the store",
                    newest.version()
                )),
            }
        }
        if let Some(workflow) = exact {
            workflow
                .check_state(&instance.state)
                .map_err(|reason| Error::Corrupt {
                    id: instance.id.clone(),
                    reason,
                })?;
            return Ok(Plan::Run);
        }
        for candidate in versions.iter().rev() {
            let machine = candidate.machine();
            let kind = if fingerprint == machine.legacy {
                MoveKind::Legacy
            } else {
                match &old {
                    Some(old) if old.structure == Some(machine.structure) => MoveKind::Compatible,
                    _ => continue,
                }
            };
            let checked = match (&old, kind) {
                (Some(old), MoveKind::Compatible) => self.verdict(old, candidate, instance),
                _ => candidate
                    .check_state(&instance.state)
                    .map(|()| Vec::new())
                    .map_err(|reason| vec![reason]),
            };
            match checked {
                Ok(notes) => {
                    return Ok(Plan::Move {
                        to: Arc::clone(candidate),
                        kind,
                        from_version: old.as_ref().map_or(instance.version, |old| old.version),
                        notes,
                    });
                }
                Err(why) => reasons.push(format!(
                    "v{} has the same structure, but {}",
                    candidate.version(),
                    why.join("; ")
                )),
            }
        }
        Err(self.stranded(instance, reasons))
    }

    /// Whether `instance` of machine `old` may continue on `new`: the notes
    /// of what changed compatibly, or every reason it may not.
    pub(crate) fn verdict(
        &self,
        old: &MachineDescription,
        new: &Arc<dyn ErasedWorkflow>,
        instance: &InstanceRecord,
    ) -> Result<Vec<String>, Vec<String>> {
        let target = new.machine().description();
        let mut notes = Vec::new();
        if instance.phase != Phase::Compensating {
            let key = (
                old.fingerprint,
                target.fingerprint,
                instance.state_name.clone(),
            );
            let verdict = {
                let mut verdicts = self
                    .verdicts
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                verdicts
                    .entry(key)
                    .or_insert_with(|| compat::state(old, target, &instance.state_name))
                    .clone()
            };
            match verdict {
                Verdict::Compatible(found) => notes.extend(found),
                Verdict::Incompatible(reasons) => return Err(reasons),
            }
            new.check_state(&instance.state).map_err(|reason| {
                vec![format!(
                    "its stored state does not decode with v{}'s types: {reason}",
                    new.version()
                )]
            })?;
        }
        let stack = stacked_steps(instance);
        match compat::stack(old, target, stack) {
            Verdict::Compatible(found) => notes.extend(found),
            Verdict::Incompatible(reasons) => return Err(reasons),
        }
        notes.sort();
        notes.dedup();
        Ok(notes)
    }

    fn stranded(&self, instance: &InstanceRecord, mut reasons: Vec<String>) -> Error {
        let fingerprint = instance.fingerprint_value().unwrap_or_default();
        let registered: Vec<String> = self
            .versions(&instance.workflow)
            .iter()
            .map(|workflow| {
                format!(
                    "v{} {}",
                    workflow.version(),
                    record::format_fingerprint(workflow.fingerprint())
                )
            })
            .collect();
        if let Some(old) = self.description(fingerprint)
            && let Some(newest) = self.newest(&instance.workflow)
            && reasons.is_empty()
        {
            let to = newest.machine().description();
            if let Verdict::Incompatible(why) = compat::state(&old, to, &instance.state_name) {
                reasons.push(format!(
                    "v{} differs at state `{}`: {}",
                    newest.version(),
                    instance.state_name,
                    why.join("; ")
                ));
            }
        }
        let version = self
            .description(fingerprint)
            .map_or(instance.version, |old| old.version);
        Error::FingerprintMismatch {
            id: instance.id.clone(),
            workflow: instance.workflow.clone(),
            stored: fingerprint,
            registered: self
                .newest(&instance.workflow)
                .map_or(0, |newest| newest.fingerprint()),
            reason: format!(
                "it runs on v{version}, and no registered version can run it (registered: {}){}",
                registered.join(", "),
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!("; {}", reasons.join("; "))
                }
            ),
        }
    }
}

/// The steps on `instance`'s compensation stack (a child's entry needs
/// nothing of the machine), oldest first.
fn stacked_steps(instance: &InstanceRecord) -> impl Iterator<Item = &str> {
    instance
        .compensation_stack
        .iter()
        .filter(|entry| entry.child.is_none())
        .map(|entry| entry.step.as_ref())
}

/// What `migration` would make of `instance`, tried on a copy: the state
/// it would continue at, or why it is not migrated.
pub(crate) fn trial_migration(
    instance: &InstanceRecord,
    migration: &dyn ErasedMigration,
    to: &dyn ErasedWorkflow,
    now: u64,
) -> Result<String, String> {
    let mut trial = instance.clone();
    apply_migration(&mut trial, migration, to, now).map(|()| trial.state_name)
}

/// Moves `instance` to version `to` in place: the fingerprint, the version
/// and an `upgraded` event. The state is left as stored (its JSON decodes
/// with the new types).
pub(crate) fn apply_move(
    instance: &mut InstanceRecord,
    to: &dyn ErasedWorkflow,
    kind: MoveKind,
    from_version: u32,
    notes: &[String],
    now: u64,
) {
    let from = instance.fingerprint.clone();
    instance.fingerprint = record::format_fingerprint(to.fingerprint());
    instance.version = to.version();
    let mut note = format!(
        "v{from_version} ({from}) → v{} ({}): {}",
        to.version(),
        instance.fingerprint,
        kind.as_str()
    );
    if !notes.is_empty() {
        note.push_str("; ");
        note.push_str(&notes.join("; "));
    }
    instance.push_event(HistoryEvent {
        state: Some(Cow::Owned(instance.state_name.clone())),
        note: Some(note),
        ..HistoryEvent::new(now, EventKind::Upgraded)
    });
    instance.updated_at = now;
}

/// Migrates `instance` in place with `migration` to `to`: the new state,
/// fingerprint and version, the wait of the new state (kept when the state
/// and what it waits for are the same, entered anew otherwise), and a
/// `migrated` event. `Err` (and the record unchanged) when the migration
/// declines or the new version cannot take the instance.
pub(crate) fn apply_migration(
    instance: &mut InstanceRecord,
    migration: &dyn ErasedMigration,
    to: &dyn ErasedWorkflow,
    now: u64,
) -> Result<(), String> {
    let from = migration.from().description();
    let target = to.machine().description();
    if instance.phase == Phase::Compensating {
        // Rolling back: only the stack matters, and the state stays.
        let stack = stacked_steps(instance);
        if let Verdict::Incompatible(reasons) = compat::stack(from, target, stack) {
            return Err(reasons.join("; "));
        }
        let old_state = instance.state_name.clone();
        finish_migration(instance, migration, to, &old_state, now);
        return Ok(());
    }
    let migrated = migration.migrate(&instance.state)?;
    let stack = stacked_steps(instance);
    if let Verdict::Incompatible(reasons) = compat::stack(from, target, stack) {
        return Err(format!(
            "v{} cannot take the instance: {}",
            to.version(),
            reasons.join("; ")
        ));
    }
    let same_wait = from
        .state(&instance.state_name)
        .zip(target.state(migrated.state_name))
        .is_some_and(|(old, new)| old.name == new.name && old.step_or_wait() == new.step_or_wait());
    if !same_wait {
        if instance.awaiting_child.is_some() {
            return Err(format!(
                "the instance waits for child workflow `{}` at state `{}`; a migration may move \
                 it only to the same state",
                instance.awaiting_child.as_deref().unwrap_or(""),
                instance.state_name
            ));
        }
        match &migrated.wait {
            Some(Suspension::Child { .. }) => {
                return Err(format!(
                    "a migration cannot enter the child workflow's state `{}`; map the instance \
                     to the state before it",
                    migrated.state_name
                ));
            }
            Some(Suspension::Timer(timer)) => {
                instance.phase = Phase::Waiting;
                instance.next_run_at = Some(timer.deadline(now));
                instance.awaiting_signal = None;
            }
            Some(Suspension::Signal { name, timeout }) => {
                instance.awaiting_signal = Some((*name).to_owned());
                instance.next_run_at = timeout.map(|timer| timer.deadline(now));
                instance.phase = if instance.has_signal(name) {
                    Phase::Running
                } else {
                    Phase::Waiting
                };
            }
            None => {
                instance.phase = Phase::Running;
                instance.next_run_at = None;
                instance.awaiting_signal = None;
            }
        }
        instance.attempt = 1;
        instance.heartbeat = None;
    }
    let old_state = std::mem::replace(&mut instance.state_name, migrated.state_name.to_owned());
    instance.state = migrated.state;
    finish_migration(instance, migration, to, &old_state, now);
    Ok(())
}

fn finish_migration(
    instance: &mut InstanceRecord,
    migration: &dyn ErasedMigration,
    to: &dyn ErasedWorkflow,
    old_state: &str,
    now: u64,
) {
    let from = migration.from();
    instance.fingerprint = record::format_fingerprint(to.fingerprint());
    instance.version = to.version();
    let note = format!(
        "v{} ({}) → v{} ({}) by `{}`, from state `{old_state}`",
        from.version,
        record::format_fingerprint(from.fingerprint()),
        to.version(),
        instance.fingerprint,
        migration.name()
    );
    instance.push_event(HistoryEvent {
        state: Some(Cow::Owned(instance.state_name.clone())),
        note: Some(note),
        ..HistoryEvent::new(now, EventKind::Migrated)
    });
    instance.updated_at = now;
}
