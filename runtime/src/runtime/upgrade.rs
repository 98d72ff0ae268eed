//! What an operator sees and does around a deploy: which versions of each
//! workflow have instances in the store ([`Runtime::versions`]), and what
//! becomes of each unfinished instance under the versions and migrations
//! registered here ([`Runtime::upgrade`], with a dry run).

use std::collections::BTreeMap;

use serde::Serialize;

use super::state::{Runtime, codec, decode_record};
use super::versions::{self, Plan};
use crate::error::{Error, StoreError};
use crate::machine::Upgrade;
use crate::record::{self, InstanceRecord, Phase};
use crate::store::Expect;

/// Records read per page of a scan.
const PAGE: usize = 256;

/// How often a change is written again when the record changed under it.
const RETRIES: usize = 3;

/// What [`Runtime::versions`] found: per workflow, every version with
/// instances in the store or registered here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VersionReport {
    /// One entry per workflow name, sorted.
    pub workflows: Vec<WorkflowVersions>,
    /// Records that could not be decoded, with why (they are left as they are).
    pub undecodable: Vec<(String, String)>,
}

/// The versions of one workflow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkflowVersions {
    /// The workflow's name.
    pub workflow: String,
    /// Each machine (fingerprint) with instances or registered, oldest
    /// version first.
    pub versions: Vec<VersionSummary>,
}

/// One machine of a workflow: a fingerprint, with its instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VersionSummary {
    /// The machine's fingerprint (16 hex digits in JSON).
    #[serde(serialize_with = "hex")]
    pub fingerprint: u64,
    /// Its version (from the registered code, the stored description, or
    /// the instances' records).
    pub version: u32,
    /// Whether this runtime has its code registered.
    pub registered: bool,
    /// Whether it is the newest version registered here (what `start` by
    /// name and child workflows use).
    pub newest: bool,
    /// Its policy towards older versions, where known.
    pub upgrade: Option<Upgrade>,
    /// Whether a description of the machine is in the store.
    pub described: bool,
    /// Instances by phase.
    pub counts: BTreeMap<Phase, usize>,
    /// The oldest unfinished instance: its id and creation time (ms since
    /// the Unix epoch).
    pub oldest_unfinished: Option<(String, u64)>,
    /// Unfinished instances that move to another version or are migrated
    /// at their next claim (or by [`Runtime::upgrade`]).
    pub moving: usize,
    /// Unfinished instances no registered version can run here, with why.
    pub stranded: Vec<(String, String)>,
}

fn hex<S: serde::Serializer>(fingerprint: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&record::format_fingerprint(*fingerprint))
}

impl VersionSummary {
    /// Unfinished instances (running, waiting or compensating).
    pub fn unfinished(&self) -> usize {
        self.counts
            .iter()
            .filter(|(phase, _)| !phase.is_terminal())
            .map(|(_, count)| count)
            .sum()
    }

    /// Whether no instance still needs this version's code: none is
    /// unfinished, or every unfinished one moves away from it. Its code can
    /// then be deleted (once the moving ones have moved).
    pub fn drained(&self) -> bool {
        self.unfinished() == self.moving
    }
}

/// What [`Runtime::upgrade`] did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UpgradeReport {
    /// Every unfinished instance, in id order.
    pub instances: Vec<InstanceUpgrade>,
    /// Records that could not be decoded, with why.
    pub undecodable: Vec<(String, String)>,
}

/// What becomes of one unfinished instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InstanceUpgrade {
    /// The instance id.
    pub id: String,
    /// Its workflow.
    pub workflow: String,
    /// The version it runs on now.
    pub version: u32,
    /// Its fingerprint now (16 hex digits in JSON).
    #[serde(serialize_with = "hex")]
    pub fingerprint: u64,
    /// Its state now.
    pub state: String,
    /// What happens to it.
    pub action: UpgradeAction,
    /// Whether the change was written (never in a dry run, nor for an
    /// instance that stays or is leased).
    pub applied: bool,
}

/// What happens to an instance at a deploy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum UpgradeAction {
    /// It stays on its version (pinned, or a move is not safe: `why`).
    Stays {
        /// Why it does not move, when a newer version would take
        /// instances by itself but cannot take this one.
        why: Option<String>,
    },
    /// It moves to `to` as it is (the machines proved it safe).
    Moves {
        /// The version it moves to.
        to: u32,
        /// `automatic upgrade`, `compatible change of its stored types`, ...
        kind: String,
        /// What changed compatibly.
        notes: Vec<String>,
    },
    /// A migration moves it.
    Migrates {
        /// The migration's name.
        migration: String,
        /// The version it moves to.
        to: u32,
        /// The state it continues at.
        state: String,
    },
    /// A migration is registered for its version but leaves it where it is.
    NotMigrated {
        /// The migration's name.
        migration: String,
        /// Why (the migration declined, panicked, or the new version
        /// cannot undo its compensation stack).
        reason: String,
        /// Whether it finishes on its version here (else it is stranded).
        stays: bool,
    },
    /// No registered version can run it here.
    Stranded {
        /// Why.
        reason: String,
    },
    /// A runtime holds its lease now: what happens is decided at its next
    /// claim (run the upgrade again once it waits or ends).
    Leased {
        /// The lease's owner.
        owner: String,
    },
}

impl Runtime {
    /// Per workflow, every version with instances in the store or
    /// registered here: instance counts by phase, the oldest unfinished
    /// instance, how many move away at their next claim, and the stranded
    /// ones (no registered version can run them) with why. A version whose
    /// [`drained`](VersionSummary::drained) is true needs its code no more.
    ///
    /// Reads every record: an operator's command, not a hot path.
    pub async fn versions(&self) -> Result<VersionReport, Error> {
        let registry = &self.inner.registry;
        let mut summaries: BTreeMap<(String, u64), VersionSummary> = BTreeMap::new();
        for workflow in registry.all() {
            let machine = workflow.machine();
            summaries.insert(
                (machine.workflow.to_owned(), machine.fingerprint()),
                VersionSummary {
                    fingerprint: machine.fingerprint(),
                    version: machine.version,
                    registered: true,
                    newest: registry
                        .newest(machine.workflow)
                        .is_some_and(|newest| newest.fingerprint() == machine.fingerprint()),
                    upgrade: Some(machine.upgrade),
                    ..VersionSummary::default()
                },
            );
        }
        let mut undecodable = Vec::new();
        self.each_record(&mut undecodable, |instance| {
            let fingerprint = instance.fingerprint_value().unwrap_or_default();
            let summary = summaries
                .entry((instance.workflow.clone(), fingerprint))
                .or_insert_with(|| {
                    let description = registry.description(fingerprint);
                    VersionSummary {
                        fingerprint,
                        version: description
                            .as_ref()
                            .map_or(instance.version, |description| description.version),
                        upgrade: description.as_ref().map(|description| description.upgrade),
                        ..VersionSummary::default()
                    }
                });
            *summary.counts.entry(instance.phase).or_default() += 1;
            if instance.phase.is_terminal() {
                return;
            }
            let older = summary
                .oldest_unfinished
                .as_ref()
                .is_none_or(|(_, at)| instance.created_at < *at);
            if older {
                summary.oldest_unfinished = Some((instance.id.clone(), instance.created_at));
            }
            match self.action(instance) {
                UpgradeAction::Moves { .. } | UpgradeAction::Migrates { .. } => summary.moving += 1,
                UpgradeAction::Stranded { reason }
                | UpgradeAction::NotMigrated {
                    reason,
                    stays: false,
                    ..
                } => summary.stranded.push((instance.id.clone(), reason)),
                _ => {}
            }
        })
        .await?;
        let described = self.described().await?;
        let mut report = VersionReport {
            workflows: Vec::new(),
            undecodable,
        };
        for ((workflow, fingerprint), mut summary) in summaries {
            summary.described = described.contains(&(workflow.clone(), fingerprint));
            match report.workflows.last_mut() {
                Some(last) if last.workflow == workflow => last.versions.push(summary),
                _ => report.workflows.push(WorkflowVersions {
                    workflow,
                    versions: vec![summary],
                }),
            }
        }
        for workflow in &mut report.workflows {
            workflow
                .versions
                .sort_by_key(|summary| (summary.version, summary.fingerprint));
        }
        Ok(report)
    }

    /// What becomes of every unfinished instance under the versions and
    /// migrations registered here, and, unless `dry_run`, does it now: each
    /// move or migration is one compare-and-swap of an instance no runtime
    /// holds the lease of (an instance being run is decided at its next
    /// claim, as every instance is anyway). Instances that stay, are
    /// stranded, or that a migration declines are left as they are.
    pub async fn upgrade(&self, dry_run: bool) -> Result<UpgradeReport, Error> {
        self.upgrade_where(dry_run, |_| true).await
    }

    /// [`upgrade`](Self::upgrade) of the instances of `workflow` only.
    pub async fn upgrade_only(
        &self,
        workflow: &str,
        dry_run: bool,
    ) -> Result<UpgradeReport, Error> {
        self.upgrade_where(dry_run, |instance| instance.workflow == workflow)
            .await
    }

    async fn upgrade_where(
        &self,
        dry_run: bool,
        chosen: impl Fn(&InstanceRecord) -> bool,
    ) -> Result<UpgradeReport, Error> {
        let mut ids = Vec::new();
        let mut undecodable = Vec::new();
        self.each_record(&mut undecodable, |instance| {
            if !instance.phase.is_terminal() && chosen(instance) {
                ids.push(instance.id.clone());
            }
        })
        .await?;
        let mut instances = Vec::new();
        for id in ids {
            if let Some(upgrade) = self.upgrade_one(&id, dry_run).await? {
                instances.push(upgrade);
            }
        }
        Ok(UpgradeReport {
            instances,
            undecodable,
        })
    }

    async fn upgrade_one(&self, id: &str, dry_run: bool) -> Result<Option<InstanceUpgrade>, Error> {
        for _ in 0..RETRIES {
            let Some((instance, version)) = self.load(id).await? else {
                return Ok(None);
            };
            if instance.phase.is_terminal() {
                return Ok(None);
            }
            let mut report = self.report_of(&instance);
            let changes = matches!(
                report.action,
                UpgradeAction::Moves { .. } | UpgradeAction::Migrates { .. }
            );
            if dry_run || !changes {
                return Ok(Some(report));
            }
            let now = self.inner.clock.now_ms();
            let mut next = instance;
            if let Err(reason) = self.prepare(&mut next, now) {
                report.action = UpgradeAction::Stranded { reason };
                return Ok(Some(report));
            }
            let bytes =
                record::encode(&next).map_err(|error| codec("the instance record", &error))?;
            match self
                .inner
                .store()
                .put(&record::key(id), bytes, Expect::Version(version))
                .await
            {
                Ok(_) => {
                    if next.is_due(now) {
                        self.hint(now, id).await;
                    }
                    report.applied = true;
                    return Ok(Some(report));
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        // Written by others every time: say what is planned for it now; its
        // next claim does it.
        Ok(self
            .load(id)
            .await?
            .filter(|(instance, _)| !instance.phase.is_terminal())
            .map(|(instance, _)| self.report_of(&instance)))
    }

    /// What becomes of unfinished `instance`, not yet applied.
    fn report_of(&self, instance: &InstanceRecord) -> InstanceUpgrade {
        InstanceUpgrade {
            id: instance.id.clone(),
            workflow: instance.workflow.clone(),
            version: instance.version,
            fingerprint: instance.fingerprint_value().unwrap_or_default(),
            state: instance.state_name.clone(),
            action: self.action(instance),
            applied: false,
        }
    }

    /// What this runtime would do with unfinished `instance` now.
    fn action(&self, instance: &InstanceRecord) -> UpgradeAction {
        let now = self.inner.clock.now_ms();
        if instance.lease.is_live(now) {
            return UpgradeAction::Leased {
                owner: instance.lease.owner.clone().unwrap_or_default(),
            };
        }
        match self.plan(instance) {
            Err(error) => UpgradeAction::Stranded {
                reason: error.to_string(),
            },
            Ok(Plan::Run) => UpgradeAction::Stays {
                why: self.why_not_auto(instance),
            },
            Ok(Plan::Move {
                to, kind, notes, ..
            }) => UpgradeAction::Moves {
                to: to.version(),
                kind: kind.as_str().to_owned(),
                notes,
            },
            Ok(Plan::Migrate {
                migration,
                to,
                fallback,
            }) => match versions::trial_migration(instance, &*migration, &*to, now) {
                Ok(state) => UpgradeAction::Migrates {
                    migration: migration.name().to_owned(),
                    to: to.version(),
                    state,
                },
                Err(reason) => UpgradeAction::NotMigrated {
                    migration: migration.name().to_owned(),
                    reason,
                    stays: fallback.is_some(),
                },
            },
        }
    }

    /// For an instance that stays although a newer version is registered:
    /// why it does not move.
    fn why_not_auto(&self, instance: &InstanceRecord) -> Option<String> {
        let registry = &self.inner.registry;
        let newest = registry.newest(&instance.workflow)?;
        let fingerprint = instance.fingerprint_value().unwrap_or_default();
        if newest.fingerprint() == fingerprint {
            return None;
        }
        if newest.machine().upgrade == Upgrade::Pinned {
            return Some(format!(
                "v{} is pinned: instances stay on the version they started on",
                newest.version()
            ));
        }
        let old = registry.description(fingerprint)?;
        registry
            .verdict(&old, newest, instance)
            .err()
            .map(|reasons| {
                format!(
                    "it cannot move to v{} by itself: {}",
                    newest.version(),
                    reasons.join("; ")
                )
            })
    }

    /// Calls `each` with every decodable instance record; the others are
    /// collected with why.
    async fn each_record(
        &self,
        undecodable: &mut Vec<(String, String)>,
        mut each: impl FnMut(&InstanceRecord),
    ) -> Result<(), Error> {
        let mut after: Option<String> = None;
        loop {
            let page = self
                .inner
                .store()
                .scan(record::KEY_PREFIX, after.as_deref(), PAGE)
                .await?;
            for (key, stored) in page.entries {
                let id = key.strip_prefix(record::KEY_PREFIX).unwrap_or(&key);
                match decode_record(id, &stored.value) {
                    Ok(instance) => each(&instance),
                    Err(error) => undecodable.push((id.to_owned(), error.to_string())),
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// The (workflow, fingerprint) of every machine description in the store.
    async fn described(&self) -> Result<Vec<(String, u64)>, Error> {
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .inner
                .store()
                .scan(crate::machine::MACHINES_PREFIX, after.as_deref(), PAGE)
                .await?;
            for (key, _) in page.entries {
                let rest = key
                    .strip_prefix(crate::machine::MACHINES_PREFIX)
                    .unwrap_or(&key);
                if let Some((workflow, fingerprint)) = rest.rsplit_once('/')
                    && let Some(fingerprint) = record::parse_fingerprint(fingerprint)
                {
                    found.push((workflow.to_owned(), fingerprint));
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(found),
            }
        }
    }
}
