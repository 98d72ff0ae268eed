//! `sagaflow schedule list|show|pause|unpause|trigger|backfill|delete`:
//! the schedules in the store, read and changed by compare-and-swap of
//! their records. Firing is the worker runtimes' work: a trigger or a
//! backfill written here is started by the scheduler of a runtime that
//! registers the schedule's workflow.

use clap::Subcommand;
use sagaflow::Overlap;

use crate::admin::{Admin, AdminError};
use crate::text::{self, Style};
use crate::{Io, parse_time, print_json, written};

/// What `sagaflow schedule` does.
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// List the schedules: spec, state, next fire time, last tick, counts.
    ///
    /// `--json` prints `[{"schedule": RECORD, "next_fire_times": [ms, ..]}]`
    /// (RECORD as stored under `schedules/NAME`), an undecodable one as
    /// `{"name": NAME, "error": TEXT}`.
    List,
    /// Show one schedule: its spec and policies, the next fire times, what
    /// runs or waits, its counts and recent actions.
    Show {
        /// The schedule's name.
        name: String,
    },
    /// Pause a schedule: its ticks start nothing until `unpause` (and are
    /// not caught up then). Triggers and backfills still run.
    Pause {
        /// The schedule's name.
        name: String,
        /// Why, for whoever looks next.
        #[arg(long, short, default_value = "")]
        note: String,
    },
    /// Unpause a schedule: it ticks again from the next tick after now.
    Unpause {
        /// The schedule's name.
        name: String,
        /// Why, for whoever looks next.
        #[arg(long, short, default_value = "")]
        note: String,
    },
    /// Fire a schedule now, paused or not, under its overlap policy (or
    /// `--overlap`): prints the id of the instance a worker runtime starts.
    Trigger {
        /// The schedule's name.
        name: String,
        /// skip, buffer_one, allow_all or cancel_other instead of the
        /// schedule's policy.
        #[arg(long, value_name = "POLICY")]
        overlap: Option<String>,
    },
    /// Fire every tick of a schedule in [FROM, TO), oldest first, each as
    /// the instance that tick would have started (a tick that already fired
    /// is not started again).
    Backfill {
        /// The schedule's name.
        name: String,
        /// The first time covered: `2025-01-31T00:00:00Z`, or an age (`2d`: two days ago).
        #[arg(long, value_name = "TIME|AGE")]
        from: String,
        /// The end, excluded: a time or an age (`0s`: now).
        #[arg(long, value_name = "TIME|AGE")]
        to: String,
        /// The overlap policy of these starts (default allow_all: past
        /// periods run side by side).
        #[arg(long, value_name = "POLICY", default_value = "allow_all")]
        overlap: String,
    },
    /// Delete a schedule. The instances it started run on.
    Delete {
        /// The schedule's name.
        name: String,
    },
}

/// Runs `command` on the schedules of `admin`'s store.
pub(crate) async fn run(
    command: ScheduleCommand,
    admin: &Admin,
    json: bool,
    style: Style,
    now: u64,
    io: &mut Io<'_>,
) -> Result<(), AdminError> {
    let schedules = admin.schedules();
    match command {
        ScheduleCommand::List => {
            let listed = schedules.list().await?;
            if json {
                let values: Vec<serde_json::Value> = listed
                    .iter()
                    .map(|described| match described {
                        Ok(described) => serde_json::to_value(described).unwrap_or_else(
                            |error| serde_json::json!({ "error": error.to_string() }),
                        ),
                        Err(error) => serde_json::json!({
                            "name": match error {
                                sagaflow::ScheduleError::Corrupt { name, .. } => name.clone(),
                                _ => String::new(),
                            },
                            "error": error.to_string(),
                        }),
                    })
                    .collect();
                return print_json(io, &values);
            }
            written(write!(
                io.out,
                "{}",
                text::schedule_list(style, &listed, now)
            ))
        }
        ScheduleCommand::Show { name } => {
            let described = schedules.describe(&name).await?;
            if json {
                return print_json(io, &described);
            }
            written(write!(
                io.out,
                "{}",
                text::schedule_show(style, &described, now)
            ))
        }
        ScheduleCommand::Pause { name, note } => {
            schedules.pause(&name, note.clone()).await?;
            if json {
                return print_json(
                    io,
                    &serde_json::json!({ "schedule": name, "paused": true, "note": note }),
                );
            }
            written(writeln!(
                io.out,
                "schedule {name} paused: its ticks start nothing until `sagaflow schedule unpause {name}`"
            ))
        }
        ScheduleCommand::Unpause { name, note } => {
            schedules.unpause(&name, note.clone()).await?;
            let next = schedules
                .describe(&name)
                .await?
                .next_fire_times
                .first()
                .copied();
            if json {
                return print_json(
                    io,
                    &serde_json::json!({ "schedule": name, "paused": false, "note": note, "next_fire_time": next }),
                );
            }
            let next = next.map_or_else(
                || "it has no more ticks".to_owned(),
                |at| format!("next fire {}", sagaflow::schedule::format_time(at, 1000)),
            );
            written(writeln!(io.out, "schedule {name} unpaused: {next}"))
        }
        ScheduleCommand::Trigger { name, overlap } => {
            let id = match overlap {
                Some(overlap) => {
                    let overlap: Overlap = overlap.parse()?;
                    schedules.trigger_with(&name, overlap).await?
                }
                None => schedules.trigger(&name).await?,
            };
            if json {
                return print_json(io, &serde_json::json!({ "schedule": name, "instance": id }));
            }
            written(writeln!(
                io.out,
                "trigger of {name} recorded: a worker runtime with its workflow registered starts {id}"
            ))
        }
        ScheduleCommand::Backfill {
            name,
            from,
            to,
            overlap,
        } => {
            let overlap: Overlap = overlap.parse()?;
            let from = parse_time(&from, now)?;
            let to = parse_time(&to, now)?;
            let ticks = schedules.backfill_with(&name, from, to, overlap).await?;
            if json {
                return print_json(
                    io,
                    &serde_json::json!({ "schedule": name, "from": from, "to": to, "ticks": ticks }),
                );
            }
            let range = format!(
                "from {} to {}",
                sagaflow::schedule::format_time(from, 1000),
                sagaflow::schedule::format_time(to, 1000)
            );
            if ticks == 0 {
                return written(writeln!(
                    io.out,
                    "schedule {name} has no tick {range}: nothing to backfill"
                ));
            }
            written(writeln!(
                io.out,
                "backfill of {name} recorded: {ticks} tick{} {range}, started by a worker runtime with its workflow registered",
                if ticks == 1 { "" } else { "s" }
            ))
        }
        ScheduleCommand::Delete { name } => {
            schedules.delete(&name).await?;
            if json {
                return print_json(
                    io,
                    &serde_json::json!({ "schedule": name, "deleted": true }),
                );
            }
            written(writeln!(
                io.out,
                "schedule {name} deleted; the instances it started run on"
            ))
        }
    }
}
