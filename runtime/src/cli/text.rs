//! What the tool prints for a person: aligned columns, colours on a
//! terminal only, times as dates and ages.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::admin::{InstanceDetail, InstanceList, InstanceSummary, TimelineEntry};
use crate::machine::Upgrade;
use crate::record::format_fingerprint;
use crate::record::{EventKind, Phase};
use crate::runtime::{UpgradeAction, UpgradeReport, VersionReport, VersionSummary};

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
        let _ = writeln!(out, "  {}: {reason}", crate::record::key(id));
    }
}

/// The records a report could not decode, as `list --json` names them.
fn undecodable_json(records: &[(String, String)]) -> serde_json::Value {
    records
        .iter()
        .map(|(id, reason)| serde_json::json!({ "key": crate::record::key(id), "reason": reason }))
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
