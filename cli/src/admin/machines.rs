//! The state machines an [`Admin`] draws, and how many instances sit in
//! each of their states.

use std::sync::Arc;

use sagaflow::machine::{DescriptionError, MACHINES_PREFIX, MachineDescription};
use sagaflow::record::{self, Phase};
use sagaflow::store::Store;

use super::records::SCAN_PAGE;
use super::types::{AdminError, KnownMachine, MachineSource, StateCounts, Undecodable};
use super::view::Admin;

impl Admin {
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
    pub(super) async fn stored_machines(
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
    pub(super) fn resolve(
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
    pub(super) async fn stored_descriptions(&self) -> Result<Vec<MachineDescription>, AdminError> {
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
    pub(crate) async fn count_states(
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
}
