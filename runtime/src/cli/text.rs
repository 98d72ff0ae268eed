//! What the tool prints for a person: aligned columns, colours on a
//! terminal only, times as dates and ages.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::admin::{InstanceDetail, InstanceList, InstanceSummary, TimelineEntry};
use crate::machine::Upgrade;
use crate::record::{EventKind, Phase};
use crate::runtime::{UpgradeAction, UpgradeReport, VersionReport};

/// ANSI styling, or none.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Style {
    pub color: bool,
}

impl Style {
    pub fn paint(self, code: &str, text: &str) -> String {
        if self.color && !code.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
}

/// The colour of a phase: red for Failed, green for Completed, …
pub(crate) fn phase_code(phase: Phase) -> &'static str {
    match phase {
        Phase::Running => "36",
        Phase::Waiting => "33",
        Phase::Compensating => "35",
        Phase::Completed => "32",
        Phase::Compensated => "33",
        Phase::Failed => "1;31",
    }
}

/// `2025-01-31T12:00:00Z`.
pub(crate) fn format_time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `12:00:05.123` (UTC): a time within a timeline.
pub(crate) fn time_of_day(ms: u64) -> String {
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        (day_ms / 60_000) % 60,
        (day_ms / 1_000) % 60,
        day_ms % 1_000
    )
}

/// `3s ago`, `5m ago`, `in 2s`.
pub(crate) fn age(ms: u64, now: u64) -> String {
    if ms > now {
        format!("in {}", short_span(ms - now))
    } else {
        format!("{} ago", short_span(now - ms))
    }
}

/// `850ms`, `12s`, `5m`, `3h`, `4d`: a coarse span for ages.
fn short_span(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}s", ms / 1_000),
        60_000..3_600_000 => format!("{}m", ms / 60_000),
        3_600_000..86_400_000 => format!("{}h", ms / 3_600_000),
        _ => format!("{}d", ms / 86_400_000),
    }
}

/// `12ms`, `1.52s`, `3m04s`: a step's duration.
pub(crate) fn format_duration_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.2}s", ms as f64 / 1_000.0),
        _ => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1_000),
    }
}

/// What a timeline entry's kind reads as: its stored name, in words.
pub(crate) fn event_label(kind: EventKind) -> String {
    match kind {
        EventKind::StepStarted => "started".to_owned(),
        EventKind::StepSucceeded => "succeeded".to_owned(),
        EventKind::StepRetried => "retried".to_owned(),
        EventKind::StepFailed => "failed".to_owned(),
        EventKind::Compensating => "rolling back".to_owned(),
        EventKind::Failed => "FAILED".to_owned(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|name| name.as_str().map(|name| name.replace('_', " ")))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

fn event_code(kind: EventKind) -> &'static str {
    match kind {
        EventKind::StepSucceeded | EventKind::Compensated | EventKind::Completed => "32",
        EventKind::StepRetried | EventKind::CompensationRetried | EventKind::CancelRequested => {
            "33"
        }
        EventKind::StepFailed | EventKind::CompensationFailed | EventKind::Failed => "31",
        EventKind::Compensating | EventKind::RolledBack => "35",
        _ => "",
    }
}

/// A table cell: its text and colour.
pub(crate) struct Cell {
    text: String,
    code: &'static str,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            code: "",
        }
    }
    pub fn painted(text: impl Into<String>, code: &'static str) -> Cell {
        Cell {
            text: text.into(),
            code,
        }
    }
}

/// Rows under a header, each column as wide as its widest cell; colours do
/// not count towards widths. The last column is not padded.
pub(crate) fn table(style: Style, headers: &[&str], rows: &[Vec<Cell>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.text.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<(String, &'static str)>, out: &mut String| {
        let count = cells.len();
        for (i, (text, code)) in cells.into_iter().enumerate() {
            let pad = widths[i].saturating_sub(text.chars().count());
            out.push_str(&style.paint(code, &text));
            if i + 1 < count {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(
        headers.iter().map(|h| ((*h).to_owned(), "1")).collect(),
        &mut out,
    );
    for row in rows {
        line(
            row.iter()
                .map(|cell| (cell.text.clone(), cell.code))
                .collect(),
            &mut out,
        );
    }
    out
}

/// `text` cut to `max` characters, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let text = text.replace('\n', " ");
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

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

/// `sagaflow list`.
pub(crate) fn list(style: Style, list: &InstanceList, now: u64) -> String {
    let mut out = String::new();
    if list.instances.is_empty() {
        out.push_str("no instances match\n");
    } else {
        let rows: Vec<Vec<Cell>> = list
            .instances
            .iter()
            .map(|instance| {
                vec![
                    Cell::plain(instance.id.clone()),
                    Cell::plain(instance.workflow.clone()),
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
                ]
            })
            .collect();
        out.push_str(&table(
            style,
            &[
                "ID", "WORKFLOW", "PHASE", "STATE", "STEP", "ATTEMPT", "CREATED", "UPDATED", "NOTE",
            ],
            &rows,
        ));
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
            "TIME", "ELAPSED", "EVENT", "STEP", "STATE", "ATTEMPT", "TOOK", "ERROR",
        ],
        &rows,
    );
    out = out
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect::<String>();
    out
}

/// `sagaflow versions`: a table of every version, then the stranded
/// instances and the undecodable records.
pub(crate) fn versions(style: Style, report: &VersionReport, now: u64) -> String {
    if report.workflows.is_empty() && report.undecodable.is_empty() {
        return "no instances and no registered workflows\n".to_owned();
    }
    let mut rows = Vec::new();
    for workflow in &report.workflows {
        for version in &workflow.versions {
            let count = |phases: &[Phase]| -> usize {
                phases
                    .iter()
                    .map(|phase| version.counts.get(phase).copied().unwrap_or(0))
                    .sum()
            };
            let code = match (version.registered, version.newest) {
                (true, true) => "here, newest",
                (true, false) => "here",
                (false, _) if version.described => "not here (described)",
                (false, _) => "not here",
            };
            rows.push(vec![
                Cell::plain(workflow.workflow.clone()),
                Cell::plain(format!("v{}", version.version)),
                Cell::plain(crate::record::format_fingerprint(version.fingerprint)),
                Cell::plain(code),
                Cell::plain(version.upgrade.map_or("", Upgrade::as_str)),
                Cell::plain(
                    count(&[Phase::Running, Phase::Waiting, Phase::Compensating]).to_string(),
                ),
                Cell::plain(
                    count(&[Phase::Completed, Phase::Compensated, Phase::Failed]).to_string(),
                ),
                Cell::plain(
                    version
                        .oldest_unfinished
                        .as_ref()
                        .map(|(id, at)| format!("{id} ({} ago)", age(*at, now)))
                        .unwrap_or_default(),
                ),
                Cell::plain(version.moving.to_string()),
                Cell::plain(version.stranded.len().to_string()),
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
            "UNFINISHED",
            "ENDED",
            "OLDEST UNFINISHED",
            "MOVING",
            "STRANDED",
            "DRAINED",
        ],
        &rows,
    );
    for workflow in &report.workflows {
        for version in &workflow.versions {
            for (id, reason) in &version.stranded {
                out.push_str(&format!(
                    "{} {id} ({} v{}): {reason}\n",
                    style.red("stranded"),
                    workflow.workflow,
                    version.version
                ));
            }
        }
    }
    for (key, reason) in &report.undecodable {
        out.push_str(&format!(
            "the record of `{key}` cannot be decoded: {reason}\n"
        ));
    }
    out
}

/// The JSON of `sagaflow versions --json`: the report with each version's
/// `unfinished` and `drained` added.
pub(crate) fn versions_json(report: &VersionReport) -> serde_json::Value {
    let workflows: Vec<serde_json::Value> = report
        .workflows
        .iter()
        .map(|workflow| {
            let versions: Vec<serde_json::Value> = workflow
                .versions
                .iter()
                .map(|version| {
                    let mut value = serde_json::to_value(version).unwrap_or_default();
                    if let Some(object) = value.as_object_mut() {
                        object.insert("unfinished".to_owned(), version.unfinished().into());
                        object.insert("drained".to_owned(), version.drained().into());
                    }
                    value
                })
                .collect();
            serde_json::json!({ "workflow": workflow.workflow, "versions": versions })
        })
        .collect();
    serde_json::json!({ "workflows": workflows, "undecodable": report.undecodable })
}

/// What happens to one instance at an upgrade, in words.
pub(crate) fn upgrade_action(action: &UpgradeAction) -> String {
    match action {
        UpgradeAction::Stays { why: None } => "stays".to_owned(),
        UpgradeAction::Stays { why: Some(why) } => format!("stays: {why}"),
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
        } => format!("migrates to v{to} at {state} by {migration}"),
        UpgradeAction::NotMigrated {
            migration,
            reason,
            stays,
        } => format!(
            "not migrated by {migration}: {reason} ({})",
            if *stays {
                "stays on its version"
            } else {
                "stranded"
            }
        ),
        UpgradeAction::Stranded { reason } => format!("stranded: {reason}"),
        UpgradeAction::Leased { owner } => {
            format!("leased by {owner}: decided at its next claim")
        }
    }
}

/// `sagaflow upgrade [--dry-run]`: one line per unfinished instance, then
/// how many of each.
pub(crate) fn upgrade(style: Style, report: &UpgradeReport, dry_run: bool) -> String {
    let mut out = String::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut applied = 0;
    for instance in &report.instances {
        let kind = match &instance.action {
            UpgradeAction::Stays { .. } => "stay",
            UpgradeAction::Moves { .. } => "move",
            UpgradeAction::Migrates { .. } => "migrate",
            UpgradeAction::NotMigrated { .. } => "not migrated",
            UpgradeAction::Stranded { .. } => "stranded",
            _ => "leased",
        };
        *counts.entry(kind).or_default() += 1;
        applied += usize::from(instance.applied);
        let text = upgrade_action(&instance.action);
        let text = match kind {
            "stranded" => style.red(&text),
            "move" | "migrate" if instance.applied => style.paint("32", &format!("{text} (done)")),
            _ => text,
        };
        out.push_str(&format!(
            "{} ({} v{} at {}): {text}\n",
            instance.id, instance.workflow, instance.version, instance.state
        ));
    }
    for (key, reason) in &report.undecodable {
        out.push_str(&format!(
            "the record of `{key}` cannot be decoded: {reason}\n"
        ));
    }
    if report.instances.is_empty() {
        out.push_str("no unfinished instances\n");
        return out;
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(kind, count)| format!("{count} {kind}"))
        .collect();
    out.push_str(&format!(
        "{}: {}{}\n",
        if dry_run { "would" } else { "done" },
        summary.join(", "),
        if dry_run {
            String::new()
        } else {
            format!("; {applied} written")
        }
    ));
    out
}
