//! Changing a workflow while instances are in flight, in one process: the
//! versions of a workflow side by side, automatic upgrades where the
//! machines prove them safe, typed migrations, stored types whose shape
//! changed, and what `Runtime::versions` and `Runtime::upgrade` report.
//!
//! Each test plays a deploy on one `MemoryStore`: a runtime with the old
//! code starts instances and leaves them waiting for a signal, then shuts
//! down; a runtime with the new code opens the same store. (The same with
//! real processes, `kill -9` and PostgreSQL is in `deploys.rs`.)

use std::sync::Mutex;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::record::{self, InstanceRecord};
use sagaflow::{Error, EventKind, Phase, Store, UpgradeAction};
use serde::{Deserialize, Serialize};

/// What the steps did, `{id} {step}`, across the tests of this file.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(entry: String) {
    LOG.lock().unwrap().push(entry);
}

fn entries(id: &str) -> Vec<String> {
    LOG.lock()
        .unwrap()
        .iter()
        .filter_map(|entry| entry.strip_prefix(&format!("{id} ")).map(str::to_owned))
        .collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub reservation: String,
    pub payment: String,
    /// Which version finished the order.
    pub version: u32,
}

#[step]
async fn reserve(order: &Order) -> Result<String, StepError> {
    log(format!("{} reserve", order.id));
    Ok(format!("res-{}", order.id))
}

#[compensate(reserve)]
async fn release(order: &Order, _reservation: String) -> Result<(), StepError> {
    log(format!("{} release", order.id));
    Ok(())
}

#[step]
async fn charge(order: &Order) -> Result<String, StepError> {
    log(format!("{} charge", order.id));
    Ok(format!("pay-{}", order.id))
}

#[compensate(charge)]
async fn refund(order: &Order, _payment: String) -> Result<(), StepError> {
    log(format!("{} refund", order.id));
    Ok(())
}

#[step(retriable)]
async fn notify(order: &Order) -> Result<(), StepError> {
    log(format!("{} notify", order.id));
    Ok(())
}

#[step(readonly)]
async fn check_fraud(order: &Order) -> Result<bool, StepError> {
    log(format!("{} check_fraud", order.id));
    Ok(true)
}

/// v1: reserve, wait for the approval, charge.
mod v1 {
    use super::*;

    #[workflow(name = "place_order", version = 1)]
    pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        let payment = charge(&order).await?;
        Ok(Receipt {
            reservation,
            payment,
            version: 1,
        })
    }
}

/// v2 adds a notification after the charge; instances stay on their version.
mod v2 {
    use super::*;

    #[workflow(name = "place_order", version = 2)]
    pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        let payment = charge(&order).await?;
        notify(&order).await?;
        Ok(Receipt {
            reservation,
            payment,
            version: 2,
        })
    }
}

/// v2 again, taking older instances over where the machines allow.
mod v2_auto {
    use super::*;

    #[workflow(name = "place_order", version = 2, upgrade = "auto")]
    pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        let payment = charge(&order).await?;
        notify(&order).await?;
        Ok(Receipt {
            reservation,
            payment,
            version: 2,
        })
    }
}

/// v3 checks for fraud before the approval: an instance already waiting
/// for it never ran the check, so it may not move by itself.
mod v3_auto {
    use super::*;

    #[workflow(name = "place_order", version = 3, upgrade = "auto")]
    pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve(&order).await?;
        let clean = check_fraud(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved || !clean {
            return Err(WorkflowError::new("not approved"));
        }
        let payment = charge(&order).await?;
        Ok(Receipt {
            reservation,
            payment,
            version: 3,
        })
    }
}

/// v4 keeps the approval's reviewer: its state at the approval stores one
/// more variable, so instances of v1 reach it only through a migration.
pub mod v4 {
    use super::*;

    #[workflow(name = "place_order", version = 4)]
    pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve(&order).await?;
        let reviewer: String = format!("desk-{}", order.id.len());
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new(format!("{reviewer} said no")));
        }
        let payment = charge(&order).await?;
        Ok(Receipt {
            reservation,
            payment: format!("{payment} via {reviewer}"),
            version: 4,
        })
    }
}

/// v1 → v4: the waiting ones get a reviewer; orders with `keep` in their
/// id are declined; `panic` panics (a bug in a migration).
#[migrate(from = v1::place_order, to = v4::place_order)]
fn v1_to_v4(old: v1::PlaceOrderState) -> Migration<v4::PlaceOrderState> {
    use v1::PlaceOrderState as Old;
    use v4::PlaceOrderState as New;
    match old {
        Old::Start { order } => Migration::To(New::Start { order }),
        Old::Reserve1 { order } => Migration::To(New::Reserve1 { order }),
        Old::Signal2 { order, .. } if order.id.contains("keep") => {
            Migration::Decline(format!("{} is kept on v1", order.id))
        }
        Old::Signal2 { order, .. } if order.id.contains("panic") => {
            panic!("cannot migrate {}", order.id)
        }
        Old::Signal2 { order, reservation } => Migration::To(New::Signal2 {
            reviewer: "migrated".to_owned(),
            order,
            reservation,
        }),
        Old::Charge3 { order, reservation } => Migration::To(New::Charge3 {
            reviewer: "migrated".to_owned(),
            order,
            reservation,
        }),
    }
}

/// Starts `ids` on v1 and leaves them waiting for the approval; the
/// runtime is shut down, as a deploy stops the old process.
async fn park_on_v1(store: &MemoryStore, ids: &[&str]) {
    let old = Runtime::builder()
        .store(store.clone())
        .register(v1::place_order)
        .build()
        .await
        .unwrap();
    for id in ids {
        old.start(
            v1::place_order,
            *id,
            Order {
                id: (*id).to_owned(),
            },
        )
        .await
        .unwrap();
    }
    for id in ids {
        wait_until(&old, id, |status| {
            status.phase == Phase::Waiting && status.state == "Signal2"
        })
        .await;
    }
    old.shutdown().await;
}

/// Polls `id`'s status (on paused time) until `done` holds.
async fn wait_until(rt: &Runtime, id: &str, done: impl Fn(&sagaflow::Status) -> bool) {
    for _ in 0..1_000 {
        if let Some(status) = rt.status(id).await.unwrap()
            && done(&status)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id}: {:?}", rt.status(id).await.unwrap());
}

async fn approve(rt: &Runtime, id: &str) -> Receipt {
    rt.signal(id, "approval", true).await.unwrap();
    match rt.handle(v2::place_order, id).outcome().await.unwrap() {
        Outcome::Completed(receipt) => receipt,
        other => panic!("{id}: {other:?}"),
    }
}

fn order(id: &str) -> Order {
    Order { id: id.to_owned() }
}

fn history(status: &sagaflow::Status, kind: EventKind) -> Vec<String> {
    status
        .history
        .iter()
        .filter(|event| event.kind == kind)
        .map(|event| event.note.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn versions_run_side_by_side_and_old_instances_finish_on_theirs() {
    let store = MemoryStore::new();
    park_on_v1(&store, &["side-1", "side-2"]).await;
    let rt = Runtime::builder()
        .store(store.clone())
        .register(v1::place_order)
        .register(v2::place_order)
        .build()
        .await
        .unwrap();
    // Old instances are runnable (not blocked) and stay on v1.
    let status = rt.status("side-1").await.unwrap().unwrap();
    assert_eq!((status.version, status.blocked), (1, None));
    assert_eq!(approve(&rt, "side-1").await.version, 1);
    assert_eq!(entries("side-1"), ["reserve", "charge"]);
    // A start of the new code runs v2; one of the old code's name runs v1.
    let new = rt
        .start(v2::place_order, "side-3", order("side-3"))
        .await
        .unwrap();
    wait_until(&rt, "side-3", |status| status.phase == Phase::Waiting).await;
    assert_eq!(rt.status("side-3").await.unwrap().unwrap().version, 2);
    rt.signal("side-3", "approval", true).await.unwrap();
    let Outcome::Completed(receipt) = new.outcome().await.unwrap() else {
        panic!()
    };
    assert_eq!(receipt.version, 2);
    assert_eq!(entries("side-3"), ["reserve", "charge", "notify"]);
    let pinned = rt
        .start(v1::place_order, "side-4", order("side-4"))
        .await
        .unwrap();
    wait_until(&rt, "side-4", |status| status.phase == Phase::Waiting).await;
    assert_eq!(rt.status("side-4").await.unwrap().unwrap().version, 1);
    rt.signal("side-4", "approval", true).await.unwrap();
    assert!(matches!(
        pinned.outcome().await.unwrap(),
        Outcome::Completed(Receipt { version: 1, .. })
    ));

    // The operator's view: v1 drains as its last instance finishes.
    let report = rt.versions().await.unwrap();
    let [workflow] = report.workflows.as_slice() else {
        panic!("{report:?}")
    };
    assert_eq!(workflow.workflow, "place_order");
    let [one, two] = workflow.versions.as_slice() else {
        panic!("{workflow:?}")
    };
    assert_eq!(
        (one.version, one.unfinished(), one.drained()),
        (1, 1, false)
    );
    assert_eq!(
        one.oldest_unfinished.as_ref().map(|(id, _)| id.as_str()),
        Some("side-2")
    );
    assert_eq!((two.version, two.newest, two.unfinished()), (2, true, 0));
    assert_eq!(one.counts.get(&Phase::Completed), Some(&2));
    assert!(one.registered && one.described && two.described);
    approve(&rt, "side-2").await;
    let report = rt.versions().await.unwrap();
    assert!(report.workflows[0].versions[0].drained());
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_auto_upgrade_moves_compatible_instances_at_their_next_claim() {
    let store = MemoryStore::new();
    park_on_v1(&store, &["auto-1", "auto-2"]).await;
    let rt = Runtime::builder()
        .store(store.clone())
        .register(v1::place_order)
        .register(v2_auto::place_order)
        .build()
        .await
        .unwrap();
    // Said before it happens.
    let plan = rt.upgrade(true).await.unwrap();
    assert_eq!(plan.instances.len(), 2);
    for instance in &plan.instances {
        assert!(
            matches!(&instance.action, UpgradeAction::Moves { to: 2, kind, .. } if kind == "automatic upgrade"),
            "{instance:?}"
        );
        assert!(!instance.applied);
    }
    let report = rt.versions().await.unwrap();
    let v1 = &report.workflows[0].versions[0];
    assert_eq!((v1.version, v1.moving, v1.drained()), (1, 2, true));
    // The signal wakes the instance; its claim moves it, and v2's code runs.
    let receipt = approve(&rt, "auto-1").await;
    assert_eq!(receipt.version, 2);
    assert_eq!(entries("auto-1"), ["reserve", "charge", "notify"]);
    let status = rt.status("auto-1").await.unwrap().unwrap();
    assert_eq!(status.version, 2);
    let upgraded = history(&status, EventKind::Upgraded);
    assert_eq!(upgraded.len(), 1, "{:?}", status.history);
    assert!(upgraded[0].starts_with("v1 ("), "{upgraded:?}");
    assert!(upgraded[0].contains(") → v2 ("), "{upgraded:?}");
    // `upgrade` moves the other one at once, while it still waits.
    let applied = rt.upgrade(false).await.unwrap();
    assert_eq!(applied.instances.len(), 1);
    assert!(applied.instances[0].applied);
    let status = rt.status("auto-2").await.unwrap().unwrap();
    assert_eq!((status.version, status.phase), (2, Phase::Waiting));
    assert_eq!(approve(&rt, "auto-2").await.version, 2);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_auto_upgrade_leaves_instances_whose_state_differs_on_their_version() {
    let store = MemoryStore::new();
    park_on_v1(&store, &["fraud-1"]).await;
    let rt = Runtime::builder()
        .store(store.clone())
        .register(v1::place_order)
        .register(v3_auto::place_order)
        .build()
        .await
        .unwrap();
    let plan = rt.upgrade(true).await.unwrap();
    let UpgradeAction::Stays { why: Some(why) } = &plan.instances[0].action else {
        panic!("{plan:?}")
    };
    // Its approval is a state further on (the check is a state before it).
    assert_eq!(
        why,
        "it cannot move to v3 by itself: v3 has no state `Signal2`"
    );
    let receipt = approve(&rt, "fraud-1").await;
    assert_eq!(receipt.version, 1);
    assert_eq!(entries("fraud-1"), ["reserve", "charge"]);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn with_the_old_code_deleted_instances_move_from_the_stored_description_or_are_reported() {
    let store = MemoryStore::new();
    park_on_v1(&store, &["gone-1"]).await;
    // Only a pinned v2: nothing can run the v1 instance, and it says why.
    let pinned = Runtime::builder()
        .store(store.clone())
        .register(v2::place_order)
        .build()
        .await
        .unwrap();
    let status = pinned.status("gone-1").await.unwrap().unwrap();
    let blocked = status.blocked.expect("stranded");
    assert!(
        blocked.contains("it runs on v1, and no registered version can run it"),
        "{blocked}"
    );
    let report = pinned.versions().await.unwrap();
    let v1 = &report.workflows[0].versions[0];
    assert_eq!((v1.version, v1.registered, v1.described), (1, false, true));
    assert_eq!(v1.stranded.len(), 1);
    assert_eq!(v1.stranded[0].0, "gone-1");
    // A signal is kept while nothing can run the instance.
    pinned.signal("gone-1", "approval", true).await.unwrap();
    assert!(matches!(
        pinned.handle(v2::place_order, "gone-1").outcome().await,
        Err(Error::FingerprintMismatch { .. })
    ));
    pinned.shutdown().await;
    // An auto v2 takes it over from v1's stored description, with the
    // signal sent while no capable runtime was up.
    let auto = Runtime::builder()
        .store(store.clone())
        .register(v2_auto::place_order)
        .build()
        .await
        .unwrap();
    let Outcome::Completed(receipt) = auto
        .handle(v2_auto::place_order, "gone-1")
        .outcome()
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(receipt.version, 2);
    assert_eq!(entries("gone-1"), ["reserve", "charge", "notify"]);
    auto.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_migration_maps_old_states_to_new_ones_in_one_write() {
    let store = MemoryStore::new();
    park_on_v1(&store, &["mig-1", "mig-keep", "mig-panic"]).await;
    let rt = Runtime::builder()
        .store(store.clone())
        .register(v1::place_order)
        .register(v4::place_order)
        .migrate(v1_to_v4)
        .build()
        .await
        .unwrap();
    let plan = rt.upgrade(true).await.unwrap();
    let action = |id: &str| {
        plan.instances
            .iter()
            .find(|instance| instance.id == id)
            .map(|instance| instance.action.clone())
            .unwrap()
    };
    assert_eq!(
        action("mig-1"),
        UpgradeAction::Migrates {
            migration: "v1_to_v4".to_owned(),
            to: 4,
            state: "Signal2".to_owned()
        }
    );
    assert!(matches!(
        action("mig-keep"),
        UpgradeAction::NotMigrated { reason, stays: true, .. } if reason == "migration `v1_to_v4` declined: mig-keep is kept on v1"
    ));
    assert!(matches!(
        action("mig-panic"),
        UpgradeAction::NotMigrated { reason, stays: true, .. } if reason == "migration `v1_to_v4` panicked: cannot migrate mig-panic"
    ));
    // The migrated one continues on v4 with the variable v4 added.
    let receipt = approve(&rt, "mig-1").await;
    assert_eq!(receipt.version, 4);
    assert_eq!(receipt.payment, "pay-mig-1 via migrated");
    let status = rt.status("mig-1").await.unwrap().unwrap();
    let migrated = history(&status, EventKind::Migrated);
    assert_eq!(migrated.len(), 1);
    assert!(
        migrated[0].contains("by `v1_to_v4`, from state `Signal2`"),
        "{migrated:?}"
    );
    // Declined and panicked ones finish on v1, untouched.
    assert_eq!(approve(&rt, "mig-keep").await.version, 1);
    assert_eq!(approve(&rt, "mig-panic").await.version, 1);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_declined_migration_without_the_old_code_leaves_the_record_untouched_and_reports_it() {
    let store = MemoryStore::new();
    park_on_v1(&store, &["left-keep"]).await;
    let before = store.get(&record::key("left-keep")).await.unwrap().unwrap();
    let rt = Runtime::builder()
        .store(store.clone())
        .register(v4::place_order)
        .migrate(v1_to_v4)
        .build()
        .await
        .unwrap();
    rt.signal("left-keep", "approval", true).await.unwrap();
    let status = rt.status("left-keep").await.unwrap().unwrap();
    assert_eq!(
        status.blocked.as_deref(),
        Some("it is not migrated: migration `v1_to_v4` declined: left-keep is kept on v1")
    );
    let report = rt.upgrade(false).await.unwrap();
    assert!(matches!(
        &report.instances[0].action,
        UpgradeAction::NotMigrated { stays: false, .. }
    ));
    assert!(!report.instances[0].applied);
    // Untouched but for the signal: same fingerprint, state and version.
    let after = store.get(&record::key("left-keep")).await.unwrap().unwrap();
    let (before, after): (InstanceRecord, InstanceRecord) = (
        record::decode(&before.value).unwrap(),
        record::decode(&after.value).unwrap(),
    );
    assert_eq!(
        (&before.fingerprint, &before.state_name, before.version),
        (&after.fingerprint, &after.state_name, after.version)
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn build_refuses_two_registrations_of_one_version_or_one_machine() {
    let twice = Runtime::builder()
        .store(MemoryStore::new())
        .register(v2::place_order)
        .register(v2_auto::place_order)
        .build()
        .await;
    assert!(
        matches!(&twice, Err(Error::DuplicateWorkflow { name, version: 2 }) if name == "place_order"),
        "{twice:?}"
    );
    assert_eq!(
        twice.unwrap_err().to_string(),
        "workflow `place_order` version 2 is registered twice: give the other one another \
         version (`#[workflow(name = \"place_order\", version = N)]`) or register it once"
    );
    let unregistered_target = Runtime::builder()
        .store(MemoryStore::new())
        .register(v1::place_order)
        .migrate(v1_to_v4)
        .build()
        .await;
    assert!(
        matches!(&unregistered_target, Err(Error::MigrationTarget { migration, version: 4, .. }) if migration == "v1_to_v4"),
        "{unregistered_target:?}"
    );
}

#[tokio::test]
async fn versions_have_their_own_fingerprints_and_the_newest_is_marked() {
    let machines = [
        v1::place_order.state_machine(),
        v2::place_order.state_machine(),
        v2_auto::place_order.state_machine(),
        v3_auto::place_order.state_machine(),
        v4::place_order.state_machine(),
    ];
    for machine in machines {
        assert_eq!(machine.workflow, "place_order");
    }
    assert_eq!(machines.map(|machine| machine.version), [1, 2, 2, 3, 4]);
    // Pinned and auto v2 differ only in their policy: the same machine.
    assert_eq!(machines[1].fingerprint(), machines[2].fingerprint());
    let mut fingerprints: Vec<u64> = machines.iter().map(|m| m.fingerprint()).collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), 4);
    // The same machine twice under two versions is refused.
    #[allow(non_camel_case_types)]
    mod again {
        use super::*;
        #[workflow(name = "place_order", version = 5)]
        pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
            let reservation = reserve(&order).await?;
            let approved: bool = sagaflow::signal("approval").await;
            if !approved {
                return Err(WorkflowError::new("not approved"));
            }
            let payment = charge(&order).await?;
            Ok(Receipt {
                reservation,
                payment,
                version: 1,
            })
        }
    }
    assert_eq!(
        again::place_order.state_machine().fingerprint(),
        machines[0].fingerprint()
    );
    let same = Runtime::builder()
        .store(MemoryStore::new())
        .register(v1::place_order)
        .register(again::place_order)
        .build()
        .await;
    assert!(
        matches!(&same, Err(Error::DuplicateFingerprint { first, second, .. }) if first == "place_order v1" && second == "place_order v5"),
        "{same:?}"
    );
}

/// One workflow, `ship`, version 1, built four times over a `Parcel` whose
/// shape differs: as first written, with a defaulted field added, with a
/// required field added, and with a field retyped.
macro_rules! ship_module {
    ($module:ident, $($parcel:tt)*) => {
        mod $module {
            use super::*;

            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
            pub struct Parcel $($parcel)*

            #[step(retriable)]
            pub async fn pack(parcel: &Parcel) -> Result<String, StepError> {
                Ok(format!("label for {:?}", parcel))
            }

            #[workflow(name = "ship", version = 1)]
            pub async fn ship(parcel: Parcel) -> Result<String, WorkflowError> {
                let label = pack(&parcel).await?;
                let go: bool = sagaflow::signal("go").await;
                Ok(format!("{label} {go} {}", parcel.id))
            }
        }
    };
}

ship_module!(ship_first, { pub id: String });
ship_module!(ship_defaulted, { pub id: String, #[serde(default)] pub weight: u32 });
ship_module!(ship_required, { pub id: String, pub weight: u32 });
ship_module!(ship_retyped, { pub id: u64 });

async fn park_parcel(store: &MemoryStore, id: &str) {
    let old = Runtime::builder()
        .store(store.clone())
        .register(ship_first::ship)
        .build()
        .await
        .unwrap();
    old.start(
        ship_first::ship,
        id,
        ship_first::Parcel {
            id: "p-1".to_owned(),
        },
    )
    .await
    .unwrap();
    wait_until(&old, id, |status| status.phase == Phase::Waiting).await;
    old.shutdown().await;
}

#[test]
fn the_fingerprint_covers_the_shape_of_stored_types() {
    let machines = [
        ship_first::ship.state_machine(),
        ship_defaulted::ship.state_machine(),
        ship_required::ship.state_machine(),
        ship_retyped::ship.state_machine(),
    ];
    // The same structure (names, states, variables, edges)...
    assert!(
        machines
            .iter()
            .all(|machine| machine.structure == machines[0].structure)
    );
    // ... but a field added or retyped changes it. (Whether a field has a
    // default is not part of the shape: the runtime decodes an old record
    // with the new type before it moves it, which tells the two apart.)
    let fingerprints: Vec<u64> = machines
        .iter()
        .map(|machine| machine.fingerprint())
        .collect();
    assert_ne!(fingerprints[0], fingerprints[1]);
    assert_eq!(fingerprints[1], fingerprints[2]);
    assert_ne!(fingerprints[0], fingerprints[3]);
    assert_ne!(fingerprints[1], fingerprints[3]);
    // The traced shape is in the description, for tools and diffs.
    let description = ship_defaulted::ship.state_machine().describe();
    let parcel = description.states[0].variables[0].shape.as_ref().unwrap();
    assert_eq!(
        parcel.shape().map(ToString::to_string).as_deref(),
        Some("Parcel { id: str, weight: u32 }")
    );
}

#[tokio::test(start_paused = true)]
async fn a_field_added_with_a_default_keeps_old_instances_running() {
    let store = MemoryStore::new();
    park_parcel(&store, "parcel-default").await;
    let rt = Runtime::builder()
        .store(store.clone())
        .register(ship_defaulted::ship)
        .build()
        .await
        .unwrap();
    let plan = rt.upgrade(true).await.unwrap();
    let UpgradeAction::Moves { to: 1, kind, notes } = &plan.instances[0].action else {
        panic!("{plan:?}")
    };
    assert_eq!(kind, "compatible change of its stored types");
    assert!(
        notes
            .iter()
            .any(|note| note.contains("field `weight` (u32) added to `Parcel`")),
        "{notes:?}"
    );
    rt.signal("parcel-default", "go", true).await.unwrap();
    let outcome = rt
        .handle(ship_defaulted::ship, "parcel-default")
        .outcome()
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Completed("label for Parcel { id: \"p-1\" } true p-1".to_owned())
    );
    let status = rt.status("parcel-default").await.unwrap().unwrap();
    assert_eq!(
        status.fingerprint,
        ship_defaulted::ship.state_machine().fingerprint()
    );
    assert_eq!(history(&status, EventKind::Upgraded).len(), 1);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_field_added_without_a_default_or_retyped_strands_old_instances_with_the_reason() {
    for (id, label) in [
        ("parcel-required", "required"),
        ("parcel-retyped", "retyped"),
    ] {
        let store = MemoryStore::new();
        park_parcel(&store, id).await;
        let builder = Runtime::builder().store(store.clone());
        let rt = match label {
            "required" => builder.register(ship_required::ship),
            _ => builder.register(ship_retyped::ship),
        }
        .build()
        .await
        .unwrap();
        let status = rt.status(id).await.unwrap().unwrap();
        let blocked = status.blocked.expect("stranded");
        let expected = match label {
            "required" => "missing field `weight`",
            _ => "`Parcel.id`: str became u64",
        };
        assert!(blocked.contains(expected), "{label}: {blocked}");
        rt.signal(id, "go", true).await.unwrap();
        // Nothing ran and nothing was misread: the record is as it was.
        let stored = rt.status(id).await.unwrap().unwrap();
        assert_eq!((stored.phase, stored.version), (Phase::Waiting, 1));
        assert_eq!(
            stored.fingerprint,
            ship_first::ship.state_machine().fingerprint()
        );
        rt.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_record_of_an_earlier_sagaflow_runs_on_its_machine() {
    let store = MemoryStore::new();
    park_on_v1(&store, &["legacy-1"]).await;
    // As sagaflow wrote it before fingerprints covered shapes.
    let key = record::key("legacy-1");
    let stored = store.get(&key).await.unwrap().unwrap();
    let mut instance: InstanceRecord = record::decode(&stored.value).unwrap();
    instance.fingerprint = record::format_fingerprint(v1::place_order.state_machine().legacy);
    store
        .put(
            &key,
            record::encode(&instance).unwrap(),
            sagaflow::store::Expect::Version(stored.version),
        )
        .await
        .unwrap();
    let rt = Runtime::builder()
        .store(store.clone())
        .register(v1::place_order)
        .build()
        .await
        .unwrap();
    assert_eq!(approve(&rt, "legacy-1").await.version, 1);
    let status = rt.status("legacy-1").await.unwrap().unwrap();
    assert_eq!(
        status.fingerprint,
        v1::place_order.state_machine().fingerprint()
    );
    assert_eq!(history(&status, EventKind::Upgraded).len(), 1);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_start_by_name_runs_the_newest_version_unless_pinned() {
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(v1::place_order)
        .register(v2::place_order)
        .build()
        .await
        .unwrap();
    let input = serde_json::json!({ "id": "named-1" });
    let newest = rt
        .start_by_name("place_order", None, "named-1", input)
        .await
        .unwrap();
    let pinned = rt
        .start_by_name(
            "place_order",
            Some(1),
            "named-2",
            serde_json::json!({ "id": "named-2" }),
        )
        .await
        .unwrap();
    for id in ["named-1", "named-2"] {
        wait_until(&rt, id, |status| status.phase == Phase::Waiting).await;
        rt.signal(id, "approval", true).await.unwrap();
    }
    let version = |outcome: Outcome<serde_json::Value>| match outcome {
        Outcome::Completed(receipt) => receipt["version"].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(version(newest.outcome().await.unwrap()), 2);
    assert_eq!(version(pinned.outcome().await.unwrap()), 1);
    // Unknown versions and inputs of another shape are refused, and nothing
    // is written.
    let unknown = rt
        .start_by_name(
            "place_order",
            Some(7),
            "named-3",
            serde_json::json!({ "id": "x" }),
        )
        .await;
    assert!(
        matches!(unknown, Err(Error::UnknownWorkflow(_))),
        "{unknown:?}"
    );
    let malformed = rt
        .start_by_name(
            "place_order",
            None,
            "named-4",
            serde_json::json!({ "sku": 1 }),
        )
        .await;
    assert!(
        matches!(malformed, Err(Error::Codec { .. })),
        "{malformed:?}"
    );
    for id in ["named-3", "named-4"] {
        assert!(rt.status(id).await.unwrap().is_none());
    }
    rt.shutdown().await;
}
