//! A nightly report on a schedule: 02:00 every night, Paris time, on the
//! embedded store.
//!
//! ```text
//! cargo run --example nightly_report
//! ```
//!
//! The runtime's clock starts at 01:59:58 in Paris on 29 March 2025 (the
//! night before the clocks go forward), so the 02:00 tick fires two seconds
//! in. Before it, the example backfills the three nights before and
//! triggers one report by hand; it waits for the five reports, prints what
//! the schedule did, and ends.

use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::schedule::{format_time, parse_time};
use sagaflow::{ScheduleOptions, ScheduleSpec, SystemClock};
use sagaflow_examples::report::{ReportRequest, nightly_report};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("sagaflow-nightly-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // 01:59:58 in Paris (+01:00 until 02:00 tomorrow night).
    let start = parse_time("2025-03-29T00:59:58Z")?;
    let rt = Runtime::builder()
        .store(EmbeddedStore::open(&dir)?)
        .register(nightly_report)
        .clock(SystemClock::starting_at(start))
        .build()
        .await?;
    let schedules = rt.schedules();
    let created = schedules
        .create(
            "nightly-report",
            ScheduleSpec::cron("0 2 * * *").in_zone("Europe/Paris"),
            nightly_report,
            ReportRequest {
                recipients: vec!["ops@example.com".into()],
            },
            ScheduleOptions::new(),
        )
        .await?;
    println!(
        "schedule nightly-report: {}",
        created.schedule.spec.describe()
    );
    println!("next fire times (UTC; on 30 March 02:00 does not exist in Paris, so 03:00):");
    for at in &created.next_fire_times {
        println!("  {}", format_time(*at, 1000));
    }

    // The three nights before it existed.
    let three_days = 3 * 86_400_000;
    let nights = schedules
        .backfill("nightly-report", start - three_days, start)
        .await?;
    println!("backfilling {nights} nights:");
    let mut ids: Vec<String> = created
        .schedule
        .spec
        .next_ticks(start - three_days, nights)?
        .into_iter()
        .map(|tick| created.schedule.instance_id(tick))
        .collect();
    wait_for(&rt, &ids).await?;

    println!("a report by hand, now:");
    ids.push(schedules.trigger("nightly-report").await?);
    wait_for(&rt, &ids[3..]).await?;

    println!("waiting for 02:00 in Paris:");
    let tonight = created.next_fire_times[0];
    ids.push(created.schedule.instance_id(tonight));
    wait_for(&rt, &ids[4..]).await?;

    let described = schedules.describe("nightly-report").await?;
    let counts = described.schedule.counts;
    println!(
        "the schedule started {} reports ({} skipped); next at {}",
        counts.started,
        counts.skipped,
        described
            .next_fire_times
            .first()
            .map_or_else(|| "-".to_owned(), |at| format_time(*at, 1000))
    );
    rt.shutdown().await;
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Waits until each instance of `ids` exists and has ended, and prints its report.
async fn wait_for(rt: &Runtime, ids: &[String]) -> Result<(), sagaflow::Error> {
    for id in ids {
        while rt.status(id).await?.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match rt.handle(nightly_report, id.clone()).outcome().await? {
            Outcome::Completed(report) => println!("  {id}: sent to {}", report.sent_to.join(", ")),
            Outcome::Compensated(failure) | Outcome::Failed(failure) => {
                println!("  {id}: not sent: {failure}")
            }
        }
    }
    Ok(())
}
