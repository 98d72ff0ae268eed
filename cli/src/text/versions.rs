//! What `versions` and `upgrade` print, around a deploy.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sagaflow::machine::Upgrade;
use sagaflow::record::Phase;
use sagaflow::record::format_fingerprint;
use sagaflow::runtime::{UpgradeAction, UpgradeReport, VersionReport, VersionSummary};

use super::format::{Cell, Style, age, table};

/// `2 waiting, 1 completed`: a version's instances by phase.
pub(crate) fn phase_counts(counts: &BTreeMap<Phase, usize>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(phase, count)| format!("{count} {}", phase.as_str().to_lowercase()))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Whether this tool runs a version's code: `registered here, newest`, …
pub(crate) fn version_code(version: &VersionSummary) -> &'static str {
    match (version.registered, version.newest, version.described) {
        (true, true, _) => "registered here, newest",
        (true, false, _) => "registered here",
        (false, _, true) => "not registered (described in the store)",
        (false, _, false) => "not registered",
    }
}

/// What `versions` and `upgrade` print when nothing matched.
fn nothing_found(workflow: Option<&str>) -> String {
    match workflow {
        Some(workflow) => format!(
            "no instances of `{workflow}` in the store, and no version of it registered here or \
             described in the store\n"
        ),
        None => "no instances in the store, and no workflows registered here or described in \
                 the store\n"
            .to_owned(),
    }
}

/// `sagaflow versions`: a line per version (fingerprint) of each workflow,
/// then the stranded instances and the records that cannot be decoded.
pub(crate) fn versions(
    style: Style,
    report: &VersionReport,
    workflow: Option<&str>,
    now: u64,
) -> String {
    if report.workflows.is_empty() && report.undecodable.is_empty() {
        return nothing_found(workflow);
    }
    let mut rows = Vec::new();
    for known in &report.workflows {
        for version in &known.versions {
            rows.push(vec![
                Cell::plain(known.workflow.clone()),
                Cell::plain(format!("v{}", version.version)),
                Cell::plain(format_fingerprint(version.fingerprint)),
                Cell::plain(version_code(version)),
                Cell::plain(version.upgrade.map_or("-", Upgrade::as_str)),
                Cell::plain(phase_counts(&version.counts)),
                Cell::plain(version.unfinished().to_string()),
                Cell::plain(version.oldest_unfinished.as_ref().map_or_else(
                    || "-".to_owned(),
                    |(id, at)| format!("{id} ({})", age(*at, now)),
                )),
                Cell::plain(version.moving.to_string()),
                if version.stranded.is_empty() {
                    Cell::plain("0")
                } else {
                    Cell::painted(version.stranded.len().to_string(), "31")
                },
                if version.drained() {
                    Cell::painted("yes", "32")
                } else {
                    Cell::plain("no")
                },
            ]);
        }
    }
    let mut out = table(
        style,
        &[
            "WORKFLOW",
            "VERSION",
            "FINGERPRINT",
            "CODE",
            "UPGRADE",
            "INSTANCES",
            "UNFINISHED",
            "OLDEST UNFINISHED",
            "MOVING",
            "STRANDED",
            "DRAINED",
        ],
        &rows,
    );
    let moving: usize = report
        .workflows
        .iter()
        .flat_map(|known| &known.versions)
        .map(|version| version.moving)
        .sum();
    if moving > 0 {
        let _ = writeln!(
            out,
            "{}",
            style.dim(&format!(
                "{moving} instance{} move{} to another version at {} next claim; \
                 `sagaflow upgrade` moves {} now",
                if moving == 1 { "" } else { "s" },
                if moving == 1 { "s" } else { "" },
                if moving == 1 { "its" } else { "their" },
                if moving == 1 { "it" } else { "them" },
            ))
        );
    }
    let groups = stranded_groups(report);
    let stranded: usize = groups.iter().map(|group| group.ids.len()).sum();
    if stranded > 0 {
        let _ = writeln!(
            out,
            "\n{}",
            style.red(&format!(
                "{stranded} stranded instance{} (no version registered here can run {}):",
                if stranded == 1 { "" } else { "s" },
                if stranded == 1 { "it" } else { "them" },
            ))
        );
        for group in &groups {
            let mut ids = group
                .ids
                .iter()
                .take(STRANDED_SHOWN)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if group.ids.len() > STRANDED_SHOWN {
                let _ = write!(ids, " and {} more", group.ids.len() - STRANDED_SHOWN);
            }
            let _ = writeln!(
                out,
                "  {ids} ({} v{}): {}",
                group.workflow, group.version, group.reason
            );
        }
    }
    undecodable(style, &report.undecodable, &mut out);
    out
}

/// Instance ids named per line of stranded instances before `and N more`.
const STRANDED_SHOWN: usize = 5;

/// Stranded instances of one version that are stranded for one reason.
pub(crate) struct StrandedGroup<'a> {
    pub workflow: &'a str,
    pub version: u32,
    pub reason: &'a str,
    pub ids: Vec<&'a str>,
}

/// The stranded instances of `report`, grouped by version and reason (the
/// bare tool strands every instance of a workflow for the same reason), in
/// the report's order.
pub(crate) fn stranded_groups(report: &VersionReport) -> Vec<StrandedGroup<'_>> {
    let mut groups: Vec<StrandedGroup<'_>> = Vec::new();
    for known in &report.workflows {
        for version in &known.versions {
            for (id, reason) in &version.stranded {
                match groups.iter_mut().find(|group| {
                    group.workflow == known.workflow
                        && group.version == version.version
                        && group.reason == reason
                }) {
                    Some(group) => group.ids.push(id),
                    None => groups.push(StrandedGroup {
                        workflow: &known.workflow,
                        version: version.version,
                        reason,
                        ids: vec![id],
                    }),
                }
            }
        }
    }
    groups
}

/// The records a report could not decode, by key.
fn undecodable(style: Style, records: &[(String, String)], out: &mut String) {
    if records.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{}",
        style.red(&format!(
            "{} record{} cannot be decoded (left as they are):",
            records.len(),
            if records.len() == 1 { "" } else { "s" }
        ))
    );
    for (id, reason) in records {
        let _ = writeln!(out, "  {}: {reason}", sagaflow::record::key(id));
    }
}

/// The records a report could not decode, as `list --json` names them.
fn undecodable_json(records: &[(String, String)]) -> serde_json::Value {
    records
        .iter()
        .map(|(id, reason)| serde_json::json!({ "key": sagaflow::record::key(id), "reason": reason }))
        .collect()
}

/// The JSON of `sagaflow versions --json` (its shape is documented on the
/// command).
pub(crate) fn versions_json(report: &VersionReport) -> serde_json::Value {
    let workflows: Vec<serde_json::Value> = report
        .workflows
        .iter()
        .map(|known| {
            let versions: Vec<serde_json::Value> = known
                .versions
                .iter()
                .map(|version| {
                    let stranded: Vec<serde_json::Value> = version
                        .stranded
                        .iter()
                        .map(|(id, reason)| serde_json::json!({ "id": id, "reason": reason }))
                        .collect();
                    serde_json::json!({
                        "version": version.version,
                        "fingerprint": format_fingerprint(version.fingerprint),
                        "registered": version.registered,
                        "newest": version.newest,
                        "described": version.described,
                        "upgrade": version.upgrade.map(Upgrade::as_str),
                        "counts": version.counts,
                        "unfinished": version.unfinished(),
                        "oldest_unfinished": version.oldest_unfinished.as_ref().map(|(id, at)| {
                            serde_json::json!({ "id": id, "created_at": at })
                        }),
                        "moving": version.moving,
                        "stranded": stranded,
                        "drained": version.drained(),
                    })
                })
                .collect();
            serde_json::json!({ "workflow": known.workflow, "versions": versions })
        })
        .collect();
    serde_json::json!({
        "workflows": workflows,
        "undecodable": undecodable_json(&report.undecodable),
    })
}

/// What happens to one instance (on version `from`) at an upgrade, in words.
pub(crate) fn upgrade_action(action: &UpgradeAction, from: u32) -> String {
    match action {
        UpgradeAction::Stays { why: None } => format!("stays on v{from}"),
        UpgradeAction::Stays { why: Some(why) } => format!("stays on v{from}: {why}"),
        UpgradeAction::Moves { to, kind, notes } if notes.is_empty() => {
            format!("moves to v{to} ({kind})")
        }
        UpgradeAction::Moves { to, kind, notes } => {
            format!("moves to v{to} ({kind}: {})", notes.join("; "))
        }
        UpgradeAction::Migrates {
            migration,
            to,
            state,
        } => format!("migrates to v{to} by {migration} at {state}"),
        UpgradeAction::NotMigrated {
            migration,
            reason,
            stays,
        } => {
            let outcome = if *stays {
                format!("stays on v{from}")
            } else {
                "stranded".to_owned()
            };
            // The runtime's reasons for a declined or panicked migration name it.
            if reason.contains(&format!("`{migration}`")) {
                format!("not migrated: {reason} ({outcome})")
            } else {
                format!("not migrated by {migration}: {reason} ({outcome})")
            }
        }
        UpgradeAction::Stranded { reason } => format!("stranded: {reason}"),
        UpgradeAction::Leased { owner } => {
            format!("leased by {owner}: decided at its next claim")
        }
        // An action a newer runtime reports: its debug form says what it is.
        other => format!("{other:?}"),
    }
}

/// How an action is counted in the summary line and the JSON.
pub(crate) fn action_kind(action: &UpgradeAction) -> &'static str {
    match action {
        UpgradeAction::Stays { .. } => "stays",
        UpgradeAction::Moves { .. } => "moves",
        UpgradeAction::Migrates { .. } => "migrates",
        UpgradeAction::NotMigrated { .. } => "not_migrated",
        UpgradeAction::Stranded { .. } => "stranded",
        UpgradeAction::Leased { .. } => "leased",
        _ => "other",
    }
}

/// The summary's order and words: (kind, in a dry run, once written).
const ACTION_WORDS: [(&str, &str, &str); 6] = [
    ("moves", "to move", "moved"),
    ("migrates", "to migrate", "migrated"),
    ("stays", "staying", "staying"),
    ("not_migrated", "not migrated", "not migrated"),
    ("stranded", "stranded", "stranded"),
    ("leased", "leased", "leased"),
];

/// How many instances of each kind of action, in the summary's order.
pub(crate) fn action_counts(report: &UpgradeReport) -> Vec<(&'static str, usize)> {
    ACTION_WORDS
        .iter()
        .map(|(kind, _, _)| {
            let count = report
                .instances
                .iter()
                .filter(|instance| action_kind(&instance.action) == *kind)
                .count();
            (*kind, count)
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// `sagaflow upgrade [--dry-run]`: one line per unfinished instance, each
/// change applied marked `done`, then how many of each.
pub(crate) fn upgrade(
    style: Style,
    report: &UpgradeReport,
    workflow: Option<&str>,
    dry_run: bool,
) -> String {
    let mut out = String::new();
    for instance in &report.instances {
        let text = upgrade_action(&instance.action, instance.version);
        let text = match &instance.action {
            UpgradeAction::Stranded { .. } | UpgradeAction::NotMigrated { stays: false, .. } => {
                style.red(&text)
            }
            UpgradeAction::Moves { .. } | UpgradeAction::Migrates { .. } if instance.applied => {
                format!("{text}: {}", style.paint("32", "done"))
            }
            _ => text,
        };
        let _ = writeln!(
            out,
            "{} ({} v{} at {}): {text}",
            instance.id, instance.workflow, instance.version, instance.state
        );
    }
    if report.instances.is_empty() {
        out.push_str(&match workflow {
            Some(workflow) => format!("no unfinished instances of `{workflow}`: nothing to move\n"),
            None => "no unfinished instances: nothing to move\n".to_owned(),
        });
    } else {
        let counts = action_counts(report);
        let changes: usize = counts
            .iter()
            .filter(|(kind, _)| matches!(*kind, "moves" | "migrates"))
            .map(|(_, count)| count)
            .sum();
        let parts: Vec<String> = counts
            .iter()
            .map(|(kind, count)| {
                let (_, planned, done) = ACTION_WORDS
                    .iter()
                    .find(|(known, _, _)| known == kind)
                    .copied()
                    .unwrap_or((kind, kind, kind));
                format!("{count} {}", if dry_run { planned } else { done })
            })
            .collect();
        let applied = report
            .instances
            .iter()
            .filter(|instance| instance.applied)
            .count();
        let ending = if changes == 0 {
            "nothing to move".to_owned()
        } else if dry_run {
            "dry run: nothing written".to_owned()
        } else {
            format!(
                "{applied} record{} written",
                if applied == 1 { "" } else { "s" }
            )
        };
        let _ = writeln!(
            out,
            "{} unfinished instance{}: {}; {ending}",
            report.instances.len(),
            if report.instances.len() == 1 { "" } else { "s" },
            parts.join(", ")
        );
    }
    undecodable(style, &report.undecodable, &mut out);
    out
}

/// The JSON of `sagaflow upgrade --json` (its shape is documented on the
/// command).
pub(crate) fn upgrade_json(report: &UpgradeReport, dry_run: bool) -> serde_json::Value {
    let instances: Vec<serde_json::Value> = report
        .instances
        .iter()
        .map(|instance| {
            serde_json::json!({
                "id": instance.id,
                "workflow": instance.workflow,
                "version": instance.version,
                "fingerprint": format_fingerprint(instance.fingerprint),
                "state": instance.state,
                "action": instance.action,
                "text": upgrade_action(&instance.action, instance.version),
                "applied": instance.applied,
            })
        })
        .collect();
    let counts: serde_json::Map<String, serde_json::Value> = action_counts(report)
        .into_iter()
        .map(|(kind, count)| (kind.to_owned(), count.into()))
        .collect();
    serde_json::json!({
        "dry_run": dry_run,
        "instances": instances,
        "counts": counts,
        "written": report.instances.iter().filter(|instance| instance.applied).count(),
        "undecodable": undecodable_json(&report.undecodable),
    })
}
