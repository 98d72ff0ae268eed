//! The body of the web view's `/schedules` page: every schedule with its
//! spec, state, next fire times, what runs or waits, counts and recent
//! actions. Rendering only; the route and the page around it are `web`'s.

use std::fmt::Write as _;

use sagaflow::schedule::format_time;
use sagaflow::{ScheduleDescription, ScheduleError};

use crate::svg::escape;
use crate::text;

/// How many recent actions each schedule shows.
const RECENT_SHOWN: usize = 8;

/// The page's body for `schedules`, at `now`; `encode` percent-encodes a
/// query value (an instance id, a workflow name) for the links.
pub(crate) fn body(
    schedules: &[Result<ScheduleDescription, ScheduleError>],
    now: u64,
    encode: impl Fn(&str) -> String,
) -> String {
    let mut body = String::from("<h1>Schedules</h1>");
    if schedules.is_empty() {
        body.push_str(
            "<p class=\"notice\" id=\"no-schedules\">No schedules in this store: a program \
             creates them with <code>rt.schedules().create(..)</code>.</p>",
        );
        return body;
    }
    body.push_str(
        "<table id=\"schedules\"><thead><tr><th>name</th><th>workflow</th><th>spec</th>\
         <th>state</th><th>next fire times</th><th>last tick</th><th>running</th>\
         <th>started</th><th>skipped</th><th>missed</th><th>failed</th></tr></thead><tbody>",
    );
    let mut broken = Vec::new();
    for described in schedules {
        let described = match described {
            Ok(described) => described,
            Err(error) => {
                broken.push(error.to_string());
                continue;
            }
        };
        let schedule = &described.schedule;
        let next: String = if described.next_fire_times.is_empty() {
            "<span class=\"muted\">none</span>".to_owned()
        } else {
            described
                .next_fire_times
                .iter()
                .take(3)
                .map(|at| {
                    format!(
                        "<div><time>{}</time> <span class=\"muted\">{}</span></div>",
                        escape(&format_time(*at, 1000)),
                        escape(&text::age(*at, now))
                    )
                })
                .collect()
        };
        let running: String = schedule
            .running
            .iter()
            .map(|id| {
                format!(
                    "<div><a href=\"/instance?id={}\">{}</a></div>",
                    encode(id),
                    escape(id)
                )
            })
            .collect();
        let waiting = schedule.buffered.as_ref().map_or_else(String::new, |fire| {
            format!("<div class=\"muted\">waiting: {}</div>", escape(&fire.id))
        });
        let state_class = if schedule.paused {
            "phase phase-Waiting"
        } else {
            "phase phase-Completed"
        };
        let _ = write!(
            body,
            "<tr class=\"schedule\" id=\"schedule-{name}\"><td>{name}</td><td><a href=\"/workflow?name={workflow_link}\">{workflow}</a></td>\
             <td>{spec}</td><td><span class=\"{state_class}\">{state}</span></td><td class=\"next\">{next}</td>\
             <td>{last}</td><td>{running}{waiting}</td><td class=\"num\">{started}</td>\
             <td class=\"num\">{skipped}</td><td class=\"num\">{missed}</td><td class=\"num\">{failed}</td></tr>",
            name = escape(&schedule.name),
            workflow_link = encode(&schedule.workflow),
            workflow = escape(&text::schedule_workflow(schedule)),
            spec = escape(&schedule.spec.describe()),
            state = escape(&text::schedule_state(schedule)),
            last = schedule.last_tick.map_or_else(
                || "-".to_owned(),
                |tick| escape(&schedule.format_tick(tick))
            ),
            started = schedule.counts.started,
            skipped = schedule.counts.skipped,
            missed = schedule.counts.missed,
            failed = schedule.counts.failed,
        );
    }
    body.push_str("</tbody></table>");
    for described in schedules.iter().flatten() {
        let schedule = &described.schedule;
        if schedule.recent.is_empty() {
            continue;
        }
        let _ = write!(
            body,
            "<h2>{} <span class=\"muted\">recent actions</span></h2><table class=\"timeline\"><tbody>",
            escape(&schedule.name)
        );
        for action in schedule.recent.iter().rev().take(RECENT_SHOWN) {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(&format_time(action.at, 1)),
                escape(&text::action_text(schedule, action))
            );
        }
        body.push_str("</tbody></table>");
    }
    for error in broken {
        let _ = write!(body, "<p class=\"error\">{}</p>", escape(&error));
    }
    body
}
