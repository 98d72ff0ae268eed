//! The nightly report: a workflow a schedule starts every night. It reads
//! the night it reports on from its instance id (`{schedule}/{tick}`), so a
//! backfilled night reports on that night, not on the day it runs.
//! GatherFigures (readonly) → SendReport (the pivot: a sent mail stays sent).

use sagaflow::prelude::*;
use sagaflow::schedule::{format_time, scheduled_tick};
use serde::{Deserialize, Serialize};

/// Who gets the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportRequest {
    /// The mail addresses it goes to.
    pub recipients: Vec<String>,
}

/// One night's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The night's tick, RFC 3339 (`unscheduled` for an instance no
    /// schedule started).
    pub night: String,
    /// Orders that night.
    pub orders: u64,
    /// Their total, in cents.
    pub revenue_cents: u64,
}

/// What was sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The night reported on.
    pub night: String,
    /// Who got it.
    pub sent_to: Vec<String>,
    /// The report's one line.
    pub summary: String,
}

/// Reads the night's figures (here made up from the night's date, the same
/// on every attempt).
#[step(readonly)]
pub async fn gather_figures(request: &ReportRequest) -> Result<Figures, StepError> {
    let id = sagaflow::context()
        .map(|context| context.workflow_id)
        .unwrap_or_default();
    let Some((_, tick)) = scheduled_tick(&id) else {
        return Ok(Figures {
            night: "unscheduled".to_owned(),
            orders: 0,
            revenue_cents: 0,
        });
    };
    let day = tick / 86_400_000;
    let orders = 40 + day % 17 + request.recipients.len() as u64;
    Ok(Figures {
        night: format_time(tick, 1000),
        orders,
        revenue_cents: orders * 2_350,
    })
}

/// Mails the report: the pivot, since a sent mail cannot be taken back.
#[step(pivot)]
pub async fn send_report(request: &ReportRequest, figures: &Figures) -> Result<String, StepError> {
    let summary = format!(
        "night of {}: {} orders, {}.{:02} EUR",
        figures.night,
        figures.orders,
        figures.revenue_cents / 100,
        figures.revenue_cents % 100
    );
    println!("  mail to {}: {summary}", request.recipients.join(", "));
    Ok(summary)
}

/// The nightly report.
#[workflow]
pub async fn nightly_report(request: ReportRequest) -> Result<Report, WorkflowError> {
    let figures = gather_figures(&request).await?;
    let summary = send_report(&request, &figures).await?;
    Ok(Report {
        night: figures.night,
        sent_to: request.recipients,
        summary,
    })
}
