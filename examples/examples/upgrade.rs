//! Shipping a changed workflow while orders wait in it: four deploys on one
//! embedded store, each a runtime built with the versions that build has.
//!
//! ```text
//! cargo run -p sagaflow-examples --example upgrade
//! ```
//!
//! 1. v1 alone: two orders start and wait for their approval.
//! 2. v1 + v2 (`upgrade = "auto"`): both orders move to v2 by themselves
//!    (`Runtime::upgrade` moves them now; without it they would move when
//!    next claimed); a new order starts on v2.
//! 3. v2 + v3 (a fraud check before the approval): the v2 orders cannot
//!    move (they never ran the check) and stay on v2 beside new v3 orders:
//!    keep v2's code and let it drain.
//! 4. v3 + the migration `v2_to_v3`, v2's code deleted: the last v2 order is
//!    migrated by the typed function, and v2 has drained.

use sagaflow::prelude::*;
use sagaflow::{UpgradeAction, VersionReport};
use sagaflow_examples::upgrade::{Order, Receipt, effects_of, v1, v2, v2_to_v3, v3};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("sagaflow-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let order = |id: &str| Order {
        id: id.to_owned(),
        amount_cents: 4_200,
    };

    println!("== deploy 1: v1");
    let rt = build(&dir, |builder| builder.register(v1::place_order)).await?;
    rt.start(v1::place_order, "order-1", order("order-1"))
        .await?;
    rt.start(v1::place_order, "order-2", order("order-2"))
        .await?;
    wait_for_approval(&rt, &["order-1", "order-2"]).await?;
    print_versions(&rt.versions().await?);
    rt.shutdown().await;
    drop(rt);

    println!("\n== deploy 2: v1 + v2 (upgrade = \"auto\")");
    let rt = build(&dir, |builder| {
        builder.register(v1::place_order).register(v2::place_order)
    })
    .await?;
    print_plan(&rt, true).await?;
    print_plan(&rt, false).await?;
    println!("v1 has drained, its code can go:");
    print_versions(&rt.versions().await?);
    approve(&rt, "order-1").await?;
    rt.start(v2::place_order, "order-3", order("order-3"))
        .await?;
    wait_for_approval(&rt, &["order-3"]).await?;
    rt.shutdown().await;
    drop(rt);

    println!("\n== deploy 3: v2 + v3 (a fraud check before the approval)");
    let rt = build(&dir, |builder| {
        builder.register(v2::place_order).register(v3::place_order)
    })
    .await?;
    print_plan(&rt, true).await?;
    rt.start(v3::place_order, "order-4", order("order-4"))
        .await?;
    wait_for_approval(&rt, &["order-4"]).await?;
    approve(&rt, "order-2").await?;
    println!("v2 still has order-3 waiting, so its code stays:");
    print_versions(&rt.versions().await?);
    rt.shutdown().await;
    drop(rt);

    println!("\n== deploy 4: v3 + the migration v2_to_v3 (v2's code deleted)");
    let rt = build(&dir, |builder| {
        builder.register(v3::place_order).migrate(v2_to_v3)
    })
    .await?;
    print_plan(&rt, true).await?;
    print_plan(&rt, false).await?;
    approve(&rt, "order-3").await?;
    approve(&rt, "order-4").await?;
    print_versions(&rt.versions().await?);
    rt.shutdown().await;
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn build(
    dir: &std::path::Path,
    register: impl FnOnce(sagaflow::RuntimeBuilder) -> sagaflow::RuntimeBuilder,
) -> Result<Runtime, sagaflow::Error> {
    register(Runtime::builder().store(EmbeddedStore::open(dir)?))
        .build()
        .await
}

/// Waits (polling the store) until every order in `ids` waits for its approval.
async fn wait_for_approval(rt: &Runtime, ids: &[&str]) -> Result<(), sagaflow::Error> {
    for id in ids {
        loop {
            let status = rt
                .status(id)
                .await?
                .ok_or(sagaflow::Error::NotFound((*id).to_owned()))?;
            if status.awaiting_signal.is_some() {
                println!("{id} waits for its approval on v{}", status.version);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

async fn approve(rt: &Runtime, id: &str) -> Result<(), sagaflow::Error> {
    rt.signal(id, "approval", true).await?;
    match rt.handle(v3::place_order, id).outcome().await? {
        Outcome::Completed(Receipt {
            version,
            fraud_score,
            ..
        }) => println!(
            "{id} approved: finished on v{version} (fraud score {fraud_score:?}); its steps: {}",
            effects_of(id).join(", ")
        ),
        other => println!("{id} approved: {other:?}"),
    }
    Ok(())
}

/// Per instance, what `sagaflow upgrade --dry-run` (or, without it,
/// `upgrade`) says of it.
async fn print_plan(rt: &Runtime, dry_run: bool) -> Result<(), sagaflow::Error> {
    println!(
        "{}:",
        if dry_run {
            "upgrade --dry-run"
        } else {
            "upgrade"
        }
    );
    for instance in rt.upgrade(dry_run).await?.instances {
        let from = instance.version;
        let action = match &instance.action {
            UpgradeAction::Stays { why: None } => format!("stays on v{from}"),
            UpgradeAction::Stays { why: Some(why) } => format!("stays on v{from}: {why}"),
            UpgradeAction::Moves { to, kind, .. } => format!("moves to v{to} ({kind})"),
            UpgradeAction::Migrates {
                migration,
                to,
                state,
            } => format!("migrates to v{to} by {migration} at {state}"),
            UpgradeAction::NotMigrated { reason, .. } => format!("not migrated: {reason}"),
            UpgradeAction::Stranded { reason } => format!("stranded: {reason}"),
            UpgradeAction::Leased { owner } => {
                format!("leased by {owner}: decided at its next claim")
            }
            other => format!("{other:?}"),
        };
        let done = if instance.applied { ": done" } else { "" };
        println!(
            "  {} (v{} at {}): {action}{done}",
            instance.id, instance.version, instance.state
        );
    }
    Ok(())
}

/// A line per version: what `sagaflow versions` tabulates.
fn print_versions(report: &VersionReport) {
    for workflow in &report.workflows {
        for version in &workflow.versions {
            println!(
                "  {} v{} {:016x}: {} unfinished, {} moving away{}{}",
                workflow.workflow,
                version.version,
                version.fingerprint,
                version.unfinished(),
                version.moving,
                if version.registered {
                    ""
                } else {
                    ", not registered here"
                },
                if version.drained() { ", drained" } else { "" }
            );
        }
    }
}
