//! What `list`, `show` and a timeline print.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::admin::{InstanceDetail, InstanceList, InstanceSummary, TimelineEntry};
use sagaflow::record::Phase;

use super::format::{
    Cell, Style, age, event_code, event_label, format_duration_ms, format_time, phase_code, table,
    truncate,
};

/// The note of a list line: why it failed, when it runs next.
pub(crate) fn note(instance: &InstanceSummary, now: u64) -> String {
    if let Some(failure) = &instance.failure {
        return failure.to_string();
    }
    let mut parts = Vec::new();
    if instance.cancel_requested {
        parts.push("cancel requested".to_owned());
    }
    match (
        &instance.awaiting_signal,
        instance.next_run_at.filter(|at| *at > now),
    ) {
        (Some(signal), Some(at)) => {
            parts.push(format!(
                "waits for signal `{signal}`, times out {}",
                age(at, now)
            ));
        }
        (Some(signal), None) => parts.push(format!("waits for signal `{signal}`")),
        (None, _) if instance.awaiting_child.is_some() => {
            let child = instance.awaiting_child.as_deref().unwrap_or_default();
            parts.push(format!("waits for child `{child}`"));
        }
        (None, Some(at)) => parts.push(format!("next run {}", age(at, now))),
        (None, None) => {}
    }
    if let Some(error) = &instance.last_error
        && !instance.phase.is_terminal()
    {
        parts.push(format!("last error: {error}"));
    }
    parts.join("; ")
}

/// Whether `instances` hold more than one version of a workflow: then
/// listings show each instance's version.
pub(crate) fn several_versions(instances: &[InstanceSummary]) -> bool {
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    instances.iter().any(|instance| {
        *seen
            .entry(instance.workflow.as_str())
            .or_insert(instance.version)
            != instance.version
    })
}

/// `sagaflow list`: a version column when the page holds several versions
/// of one workflow.
pub(crate) fn list(style: Style, list: &InstanceList, now: u64) -> String {
    let mut out = String::new();
    if list.instances.is_empty() {
        out.push_str("no instances match\n");
    } else {
        let versions = several_versions(&list.instances);
        let rows: Vec<Vec<Cell>> = list
            .instances
            .iter()
            .map(|instance| {
                let mut row = vec![
                    Cell::plain(instance.id.clone()),
                    Cell::plain(instance.workflow.clone()),
                ];
                if versions {
                    row.push(Cell::plain(format!("v{}", instance.version)));
                }
                row.extend([
                    Cell::painted(instance.phase.as_str(), phase_code(instance.phase)),
                    Cell::plain(instance.state.clone()),
                    Cell::plain(instance.step.clone().unwrap_or_else(|| "-".to_owned())),
                    Cell::plain(instance.attempt.to_string()),
                    Cell::plain(age(instance.created_at, now)),
                    Cell::plain(age(instance.updated_at, now)),
                    Cell::painted(
                        truncate(&note(instance, now), 70),
                        if instance.phase == Phase::Failed {
                            "31"
                        } else {
                            ""
                        },
                    ),
                ]);
                row
            })
            .collect();
        let mut headers = vec!["ID", "WORKFLOW"];
        if versions {
            headers.push("VERSION");
        }
        headers.extend([
            "PHASE", "STATE", "STEP", "ATTEMPT", "CREATED", "UPDATED", "NOTE",
        ]);
        out.push_str(&table(style, &headers, &rows));
    }
    let _ = writeln!(
        out,
        "{}",
        style.dim(&format!(
            "{} of {} matching instance{} shown, newest first ({} record{} read)",
            list.instances.len(),
            list.matched,
            if list.matched == 1 { "" } else { "s" },
            list.scanned,
            if list.scanned == 1 { "" } else { "s" },
        ))
    );
    if let Some(next) = &list.next {
        let _ = writeln!(out, "next page: --after {next}");
    }
    if !list.undecodable.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            style.red(&format!(
                "{} record{} cannot be decoded (left as they are):",
                list.undecodable.len(),
                if list.undecodable.len() == 1 { "" } else { "s" }
            ))
        );
        for bad in &list.undecodable {
            let _ = writeln!(out, "  {}: {}", bad.key, bad.reason);
        }
    }
    out
}

fn json_inline(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn json_pretty(value: &serde_json::Value, indent: &str) -> String {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
    pretty.replace('\n', &format!("\n{indent}"))
}

/// `sagaflow show ID`.
pub(crate) fn show(style: Style, detail: &InstanceDetail, now: u64) -> String {
    let summary = &detail.summary;
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "{}  {value}", style.bold(&format!("{name:<13}")));
    };
    field("instance", summary.id.clone());
    let fingerprint = match detail.fingerprint_matches {
        Some(true) => format!("fingerprint {}, matches this build", detail.fingerprint),
        Some(false) => format!(
            "fingerprint {}, NOT the registered machine's",
            detail.fingerprint
        ),
        None => format!("fingerprint {}", detail.fingerprint),
    };
    field(
        "workflow",
        format!("{} v{} ({fingerprint})", summary.workflow, summary.version),
    );
    field(
        "phase",
        style.paint(phase_code(summary.phase), summary.phase.as_str()),
    );
    let step = match (&summary.step, &detail.step_kind) {
        (Some(step), Some(kind)) => format!(" (step {step}, {kind})"),
        (Some(wait), None) => format!(" ({wait})"),
        _ => String::new(),
    };
    field("state", format!("{}{step}", summary.state));
    field("attempt", summary.attempt.to_string());
    if let Some(parent) = &summary.parent {
        field("parent", parent.clone());
    }
    if !summary.children.is_empty() {
        field("children", summary.children.join(", "));
    }
    match (
        &summary.awaiting_signal,
        &summary.awaiting_child,
        summary.next_run_at,
    ) {
        (Some(signal), _, Some(at)) => field(
            "waits for",
            format!(
                "signal `{signal}` until {} ({})",
                format_time(at),
                age(at, now)
            ),
        ),
        (Some(signal), _, None) => field("waits for", format!("signal `{signal}`, no timeout")),
        (None, Some(child), at) => {
            field("waits for", format!("child workflow `{child}`"));
            if let Some(at) = at {
                field(
                    "re-check",
                    format!("{} ({})", format_time(at), age(at, now)),
                );
            }
        }
        (None, None, Some(at)) => field(
            "next run",
            format!("{} ({})", format_time(at), age(at, now)),
        ),
        (None, None, None) => {}
    }
    if let Some(status) = &detail.status {
        field("status", json_inline(status));
    }
    field(
        "pivot passed",
        if summary.pivot_passed { "yes" } else { "no" }.to_owned(),
    );
    if summary.cancel_requested {
        field("cancel", "requested".to_owned());
    }
    field(
        "created",
        format!(
            "{} ({})",
            format_time(summary.created_at),
            age(summary.created_at, now)
        ),
    );
    field(
        "updated",
        format!(
            "{} ({})",
            format_time(summary.updated_at),
            age(summary.updated_at, now)
        ),
    );
    let lease = match (&detail.lease.owner, detail.lease.expires_at) {
        (Some(owner), Some(expires)) if detail.lease_live => format!(
            "held by {owner} until {} (epoch {})",
            format_time(expires),
            detail.lease.epoch
        ),
        (Some(owner), _) => format!("free (last held by {owner}, epoch {})", detail.lease.epoch),
        (None, _) => "free (never claimed)".to_owned(),
    };
    field("lease", lease);
    if let Some(failure) = &summary.failure {
        field("failure", style.red(&failure.to_string()));
    }
    if let Some(error) = &summary.last_error {
        field("last error", error.clone());
    }
    if let Some(blocked) = &detail.blocked {
        field("blocked", style.red(blocked));
    }
    if let Some(heartbeat) = &detail.heartbeat {
        field(
            "heartbeat",
            format!(
                "{} attempt {} at {}: {}",
                heartbeat.state,
                heartbeat.attempt,
                format_time(heartbeat.at),
                json_inline(&heartbeat.details)
            ),
        );
    }

    let _ = writeln!(
        out,
        "\n{}",
        style.bold(&format!("variables stored in {}", summary.state))
    );
    if detail.variables.is_empty() {
        out.push_str("  (none)\n");
    }
    for variable in &detail.variables {
        let ty = variable
            .ty
            .as_deref()
            .map_or_else(String::new, |ty| format!(": {ty}"));
        let _ = writeln!(
            out,
            "  {}{ty} = {}",
            variable.name,
            json_pretty(&variable.value, "  ")
        );
    }
    if !detail.inbox.is_empty() {
        let _ = writeln!(out, "\n{}", style.bold("signals not consumed yet"));
        for (name, messages) in &detail.inbox {
            for message in messages {
                let _ = writeln!(
                    out,
                    "  {name} #{} at {}: {}",
                    message.seq,
                    format_time(message.at),
                    json_inline(&message.value)
                );
            }
        }
    }
    if let Some(output) = &detail.output {
        let _ = writeln!(out, "\n{}", style.bold("output"));
        let _ = writeln!(out, "  {}", json_pretty(output, "  "));
    }

    let _ = writeln!(
        out,
        "\n{}",
        style.bold("compensation stack (undone from the bottom up)")
    );
    if detail.compensation_stack.is_empty() {
        out.push_str("  (empty)\n");
    }
    for (index, entry) in detail.compensation_stack.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}. {}  args {}  output {}",
            index + 1,
            entry.step,
            truncate(entry.args.get(), 80),
            truncate(entry.output.get(), 80)
        );
    }

    let _ = writeln!(out, "\n{}", style.bold("timeline"));
    out.push_str(&timeline(style, &detail.timeline, summary.created_at));
    out
}

/// The timeline table of `show`.
pub(crate) fn timeline(style: Style, entries: &[TimelineEntry], start: u64) -> String {
    let rows: Vec<Vec<Cell>> = entries
        .iter()
        .map(|entry| {
            vec![
                Cell::plain(format_time(entry.at)),
                Cell::plain(format!(
                    "+{}",
                    format_duration_ms(entry.at.saturating_sub(start))
                )),
                Cell::painted(event_label(entry.kind), event_code(entry.kind)),
                Cell::plain(entry.step.clone().unwrap_or_default()),
                Cell::plain(entry.state.clone().unwrap_or_default()),
                Cell::plain(entry.attempt.map(|a| a.to_string()).unwrap_or_default()),
                Cell::plain(
                    entry
                        .duration_ms
                        .map(format_duration_ms)
                        .unwrap_or_default(),
                ),
                Cell::plain(
                    entry
                        .error
                        .clone()
                        .or_else(|| entry.note.clone())
                        .unwrap_or_default(),
                ),
            ]
        })
        .collect();
    let mut out = table(
        style,
        &[
            "TIME",
            "ELAPSED",
            "EVENT",
            "STEP",
            "STATE",
            "ATTEMPT",
            "TOOK",
            "ERROR/NOTE",
        ],
        &rows,
    );
    out = out
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect::<String>();
    out
}
