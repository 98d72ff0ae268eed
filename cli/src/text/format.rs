//! The pieces every page of text is made of: styles, aligned tables,
//! times as dates and ages, phases and events in words.

use std::time::{Duration, UNIX_EPOCH};

use sagaflow::record::{EventKind, Phase};

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

pub(super) fn event_code(kind: EventKind) -> &'static str {
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
