//! [`ScheduleSpec`]: when a schedule ticks, a cron expression in a time
//! zone or a fixed interval, and the jitter added to each tick.
//!
//! Ticks are instants in milliseconds since the Unix epoch, the same for
//! every process: a cron expression is evaluated in its zone with croner
//! (daylight saving time as Vixie cron does it: a fixed time that falls in
//! the spring-forward gap runs right after it, once; in the repeated hour
//! of the fall back it runs once, at the first pass), an interval is
//! aligned to the epoch plus its offset, like Temporal's interval specs.

use std::str::FromStr as _;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::error::ScheduleError;
use crate::clock::duration_ms;

/// When a schedule fires: a cron expression (in a time zone, UTC unless
/// [`in_zone`](Self::in_zone) says otherwise) or an interval, plus an
/// optional jitter.
///
/// ```
/// use std::time::Duration;
/// use sagaflow::ScheduleSpec;
///
/// // 02:00 every night, Paris time (01:00 UTC in winter, 00:00 in summer).
/// let nightly = ScheduleSpec::cron("0 2 * * *").in_zone("Europe/Paris");
/// // Every 15 minutes, at :05, :20, :35, :50, each start up to 30 s late.
/// let quarterly = ScheduleSpec::every(Duration::from_secs(15 * 60))
///     .offset(Duration::from_secs(5 * 60))
///     .jitter(Duration::from_secs(30));
/// # nightly.check().unwrap();
/// # quarterly.check().unwrap();
/// ```
///
/// A spec is checked when a schedule is created ([`check`](Self::check)
/// does it earlier): an expression that does not parse or matches no time
/// is [`ScheduleError::InvalidCron`], a zone the time zone database does
/// not know [`ScheduleError::UnknownZone`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    calendar: Calendar,
    /// Each tick fires up to this much later than its time (ms); 0: none.
    #[serde(default)]
    jitter_ms: u64,
}

/// The ticks of a spec, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Calendar {
    /// A cron expression (5 fields, or 6 with seconds first), in a zone.
    Cron {
        expression: String,
        zone: String,
        /// An offset asked for a cron spec: refused by `check`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset_ms: Option<u64>,
    },
    /// Every `every_ms`, at `offset_ms` past each multiple since the epoch.
    Every {
        every_ms: u64,
        #[serde(default)]
        offset_ms: u64,
        /// A zone asked for an interval: refused by `check`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
    },
}

impl ScheduleSpec {
    /// Ticks at the times a cron expression matches: five fields (minute,
    /// hour, day of month, month, day of week) or six with seconds first;
    /// `L`, `W`, `#`, names (`MON`, `JAN`) and aliases (`@daily`) as croner
    /// reads them. In UTC unless [`in_zone`](Self::in_zone) names a zone.
    pub fn cron(expression: impl Into<String>) -> ScheduleSpec {
        ScheduleSpec {
            calendar: Calendar::Cron {
                expression: expression.into(),
                zone: "UTC".to_owned(),
                offset_ms: None,
            },
            jitter_ms: 0,
        }
    }

    /// Ticks every `interval`, aligned to the Unix epoch (every hour means
    /// on the hour, UTC); [`offset`](Self::offset) shifts them. Intervals
    /// shorter than a second are allowed (down to 1 ms).
    pub fn every(interval: Duration) -> ScheduleSpec {
        ScheduleSpec {
            calendar: Calendar::Every {
                every_ms: duration_ms(interval),
                offset_ms: 0,
                zone: None,
            },
            jitter_ms: 0,
        }
    }

    /// The time zone a cron expression is read in: an IANA name
    /// (`Europe/Paris`), `UTC` by default. Only for cron specs: an
    /// interval has no zone, and [`check`](Self::check) refuses one.
    pub fn in_zone(mut self, zone: impl Into<String>) -> ScheduleSpec {
        match &mut self.calendar {
            Calendar::Cron { zone: at, .. } => *at = zone.into(),
            Calendar::Every { zone: at, .. } => *at = Some(zone.into()),
        }
        self
    }

    /// Shifts an interval's ticks: `every(1h).offset(5min)` ticks at five
    /// past each hour. Must be shorter than the interval; on a cron spec,
    /// [`check`](Self::check) refuses it.
    pub fn offset(mut self, offset: Duration) -> ScheduleSpec {
        let offset = duration_ms(offset);
        match &mut self.calendar {
            Calendar::Every { offset_ms, .. } => *offset_ms = offset,
            Calendar::Cron { offset_ms, .. } => *offset_ms = Some(offset),
        }
        self
    }

    /// Fires each tick up to `jitter` later than its time, by an amount
    /// derived from the schedule's name and the tick (the same in every
    /// process, and again after a restart), to spread many schedules that
    /// share a time. The started instance's id still names the tick itself.
    pub fn jitter(mut self, jitter: Duration) -> ScheduleSpec {
        self.jitter_ms = duration_ms(jitter);
        self
    }

    /// The jitter, in ms.
    pub fn jitter_ms(&self) -> u64 {
        self.jitter_ms
    }

    /// Checks the spec: the expression parses and matches some time, the
    /// zone exists, the interval is not zero and its offset shorter.
    pub fn check(&self) -> Result<(), ScheduleError> {
        self.ticks().map(drop)
    }

    /// Human words for the spec: ``cron `0 2 * * *` in Europe/Paris``,
    /// `every 15m (offset 5m)`, with `, jitter 30s` when it has one.
    pub fn describe(&self) -> String {
        let mut text = match &self.calendar {
            Calendar::Cron {
                expression, zone, ..
            } => format!("cron `{expression}` in {zone}"),
            Calendar::Every {
                every_ms,
                offset_ms,
                ..
            } => {
                let mut text = format!("every {}", human_ms(*every_ms));
                if *offset_ms > 0 {
                    text.push_str(&format!(" (offset {})", human_ms(*offset_ms)));
                }
                text
            }
        };
        if self.jitter_ms > 0 {
            text.push_str(&format!(", jitter {}", human_ms(self.jitter_ms)));
        }
        text
    }

    /// The first `count` ticks strictly after `after_ms` (ms since the
    /// epoch), without jitter; fewer if the expression has no more.
    pub fn next_ticks(&self, after_ms: u64, count: usize) -> Result<Vec<u64>, ScheduleError> {
        let ticks = self.ticks()?;
        let mut times = Vec::with_capacity(count);
        let mut at = after_ms;
        while times.len() < count {
            let Some(next) = ticks.next_after(at) else {
                break;
            };
            times.push(next);
            at = next;
        }
        Ok(times)
    }

    /// The compiled spec.
    pub(crate) fn ticks(&self) -> Result<Ticks, ScheduleError> {
        match &self.calendar {
            Calendar::Cron {
                expression,
                zone,
                offset_ms,
            } => {
                if offset_ms.is_some() {
                    return Err(ScheduleError::InvalidSpec(format!(
                        "an offset shifts an interval's ticks; cron `{expression}` has none \
                         (write the minute or second in the expression instead)"
                    )));
                }
                let zone_found =
                    TimeZone::get(zone).map_err(|error| ScheduleError::UnknownZone {
                        zone: zone.clone(),
                        reason: error.to_string(),
                    })?;
                let cron = croner::Cron::from_str(expression).map_err(|error| {
                    ScheduleError::InvalidCron {
                        expression: expression.clone(),
                        reason: error.to_string(),
                    }
                })?;
                let ticks = Ticks::Cron {
                    cron: Box::new(cron),
                    zone: zone_found,
                };
                // A pattern such as `0 0 30 2 *` parses and never matches.
                if ticks.next_after(0).is_none() {
                    return Err(ScheduleError::InvalidCron {
                        expression: expression.clone(),
                        reason: "it matches no time".to_owned(),
                    });
                }
                Ok(ticks)
            }
            Calendar::Every {
                every_ms,
                offset_ms,
                zone,
            } => {
                if let Some(zone) = zone {
                    return Err(ScheduleError::InvalidSpec(format!(
                        "an interval ticks the same in every zone; `in_zone({zone:?})` is only \
                         for cron expressions"
                    )));
                }
                if *every_ms == 0 {
                    return Err(ScheduleError::InvalidSpec(
                        "the interval must be at least 1 ms".to_owned(),
                    ));
                }
                if offset_ms >= every_ms {
                    return Err(ScheduleError::InvalidSpec(format!(
                        "the offset ({}) must be shorter than the interval ({})",
                        human_ms(*offset_ms),
                        human_ms(*every_ms)
                    )));
                }
                Ok(Ticks::Every {
                    every: *every_ms,
                    offset: *offset_ms,
                })
            }
        }
    }

    /// How precisely the instance ids of this spec's ticks name them: whole
    /// seconds, unless an interval or offset needs milliseconds.
    pub(crate) fn id_precision_ms(&self) -> u64 {
        match &self.calendar {
            Calendar::Every {
                every_ms,
                offset_ms,
                ..
            } if every_ms % 1000 != 0 || offset_ms % 1000 != 0 => 1,
            _ => 1000,
        }
    }
}

/// A spec, compiled: what the scheduler asks for the next tick.
pub(crate) enum Ticks {
    Cron {
        cron: Box<croner::Cron>,
        zone: TimeZone,
    },
    Every {
        every: u64,
        offset: u64,
    },
}

impl Ticks {
    /// The first tick strictly after `after_ms`; `None` when there is none
    /// (a cron expression whose last match has passed, or beyond year 9999).
    pub(crate) fn next_after(&self, after_ms: u64) -> Option<u64> {
        match self {
            Ticks::Every { every, offset } => {
                // Ticks are offset + k * every; the first one above after_ms.
                let k = if after_ms < *offset {
                    0
                } else {
                    (after_ms - offset) / every + 1
                };
                k.checked_mul(*every)?.checked_add(*offset)
            }
            Ticks::Cron { cron, zone } => {
                // From the whole second at or before `after_ms`, exclusive:
                // the next match is then strictly later than `after_ms`.
                let second = i64::try_from(after_ms / 1000).ok()?;
                let start = Timestamp::from_second(second).ok()?.to_zoned(zone.clone());
                let next = cron.find_next_occurrence(&start, false).ok()?;
                u64::try_from(next.timestamp().as_millisecond()).ok()
            }
        }
    }
}

impl Ticks {
    /// The first tick at or after `ms` (a tick at exactly 0 aside).
    pub(crate) fn first_at_or_after(&self, ms: u64) -> Option<u64> {
        self.next_after(ms.saturating_sub(1))
    }

    /// The last tick strictly before `ms`, if any.
    pub(crate) fn last_before(&self, ms: u64) -> Option<u64> {
        match self {
            Ticks::Every { every, offset } => {
                let below = ms.checked_sub(1)?;
                let k = below.checked_sub(*offset)? / every;
                Some(offset + k * every)
            }
            Ticks::Cron { cron, zone } => {
                // From the whole second at or after `ms`, exclusive.
                let second = i64::try_from(ms.div_ceil(1000)).ok()?;
                let start = Timestamp::from_second(second).ok()?.to_zoned(zone.clone());
                let previous = cron.find_previous_occurrence(&start, false).ok()?;
                let previous = u64::try_from(previous.timestamp().as_millisecond()).ok()?;
                (previous < ms).then_some(previous)
            }
        }
    }

    /// How many ticks lie in `first..=last` (both ticks), where that is
    /// cheap to know: always for an interval, never for cron.
    pub(crate) fn count_from_to(&self, first: u64, last: u64) -> Option<u64> {
        match self {
            Ticks::Every { every, .. } => Some(last.saturating_sub(first) / every + 1),
            Ticks::Cron { .. } => None,
        }
    }
}

/// How much later than `tick` it fires: a hash of the schedule's name and
/// the tick (XXH3, a fixed algorithm, so every process and version agrees),
/// below `jitter_ms`.
pub(crate) fn jitter_of(name: &str, tick: u64, jitter_ms: u64) -> u64 {
    if jitter_ms == 0 {
        return 0;
    }
    xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), tick) % jitter_ms
}

/// `1h`, `15m`, `250ms`: a duration in ms, for people.
pub(crate) fn human_ms(ms: u64) -> String {
    humanize(Duration::from_millis(ms))
}

fn humanize(duration: Duration) -> String {
    const UNITS: [(u64, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    let mut ms = duration_ms(duration);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    for (unit, name) in UNITS {
        if ms >= unit {
            text.push_str(&format!("{}{name}", ms / unit));
            ms %= unit;
        }
    }
    text
}

/// Parses an RFC 3339 time (`2025-01-31T02:00:00Z`, `2025-01-31T03:00:00+01:00`)
/// to ms since the Unix epoch.
///
/// ```
/// assert_eq!(sagaflow::schedule::parse_time("1970-01-01T00:00:01Z").unwrap(), 1_000);
/// ```
pub fn parse_time(text: &str) -> Result<u64, ScheduleError> {
    let time: Timestamp = text.trim().parse().map_err(|error: jiff::Error| {
        ScheduleError::InvalidTime(format!(
            "`{text}` is not an RFC 3339 time such as `2025-01-31T02:00:00Z`: {error}"
        ))
    })?;
    u64::try_from(time.as_millisecond())
        .map_err(|_| ScheduleError::InvalidTime(format!("`{text}` is before 1970")))
}

/// Formats ms since the epoch as RFC 3339 in UTC: `2025-01-31T02:00:00Z`,
/// with milliseconds when `precision_ms` is below a second
/// (`2025-01-31T02:00:00.250Z`).
pub fn format_time(ms: u64, precision_ms: u64) -> String {
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let time = Timestamp::from_second(seconds)
        .unwrap_or(Timestamp::MAX)
        .to_zoned(TimeZone::UTC);
    let date = time.datetime();
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        date.year(),
        date.month(),
        date.day(),
        date.hour(),
        date.minute(),
        date.second()
    );
    if precision_ms < 1000 {
        text.push_str(&format!(".{:03}", ms % 1000));
    }
    text.push('Z');
    text
}

/// The instance id of schedule `name`'s tick: `{name}/{tick as RFC 3339}`.
pub(crate) fn instance_id(name: &str, tick: u64, precision_ms: u64) -> String {
    format!("{name}/{}", format_time(tick, precision_ms))
}

/// The tick an instance started by a schedule is for, from its id
/// (`nightly/2025-01-31T01:00:00Z` → the ms of that time): what a workflow
/// reads to know which period it covers, with
/// [`context()`](crate::context())`.workflow_id` inside a step. `None` for
/// an id no schedule made.
///
/// ```
/// use sagaflow::schedule::scheduled_tick;
/// assert_eq!(scheduled_tick("nightly/1970-01-01T00:01:00Z"), Some(("nightly", 60_000)));
/// assert_eq!(scheduled_tick("order-42"), None);
/// ```
pub fn scheduled_tick(instance_id: &str) -> Option<(&str, u64)> {
    let (name, time) = instance_id.split_once('/')?;
    let tick: Timestamp = time.parse().ok()?;
    Some((name, u64::try_from(tick.as_millisecond()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn intervals_align_to_the_epoch_and_their_offset() {
        let spec = ScheduleSpec::every(Duration::from_secs(3600)).offset(Duration::from_secs(300));
        let ticks = spec.ticks().unwrap();
        assert_eq!(ticks.next_after(0), Some(300_000));
        assert_eq!(ticks.next_after(300_000), Some(HOUR + 300_000));
        assert_eq!(ticks.next_after(HOUR + 299_999), Some(HOUR + 300_000));
        assert_eq!(spec.describe(), "every 1h (offset 5m)");
        assert_eq!(spec.id_precision_ms(), 1000);
        assert_eq!(
            ScheduleSpec::every(Duration::from_millis(250)).id_precision_ms(),
            1
        );
    }

    #[test]
    fn cron_reads_its_zone_through_daylight_saving_time() {
        let spec = ScheduleSpec::cron("0 2 * * *").in_zone("Europe/Paris");
        // 2025-03-28T12:00:00Z; Paris goes from +01:00 to +02:00 on 03-30 at 02:00.
        let from = parse_time("2025-03-28T12:00:00Z").unwrap();
        let next: Vec<String> = spec
            .next_ticks(from, 4)
            .unwrap()
            .into_iter()
            .map(|ms| format_time(ms, 1000))
            .collect();
        assert_eq!(
            next,
            [
                "2025-03-29T01:00:00Z",
                // 02:00 does not exist that night: it runs right after the gap, 03:00 +02:00.
                "2025-03-30T01:00:00Z",
                "2025-03-31T00:00:00Z",
                "2025-04-01T00:00:00Z",
            ]
        );
    }

    #[test]
    fn bad_specs_are_typed_errors_naming_the_problem() {
        let error = ScheduleSpec::cron("0 25 * * *").check().unwrap_err();
        assert!(
            matches!(&error, ScheduleError::InvalidCron { expression, .. } if expression == "0 25 * * *"),
            "{error:?}"
        );
        let error = ScheduleSpec::cron("0 0 30 2 *").check().unwrap_err();
        assert!(error.to_string().contains("matches no time"), "{error}");
        let error = ScheduleSpec::cron("0 2 * * *")
            .in_zone("Mars/Olympus")
            .check()
            .unwrap_err();
        assert!(
            matches!(&error, ScheduleError::UnknownZone { zone, .. } if zone == "Mars/Olympus"),
            "{error:?}"
        );
        assert!(
            ScheduleSpec::every(Duration::ZERO).check().is_err(),
            "a zero interval"
        );
        assert!(
            ScheduleSpec::every(Duration::from_secs(60))
                .offset(Duration::from_secs(60))
                .check()
                .is_err()
        );
        assert!(
            ScheduleSpec::every(Duration::from_secs(60))
                .in_zone("Europe/Paris")
                .check()
                .is_err()
        );
        assert!(
            ScheduleSpec::cron("* * * * *")
                .offset(Duration::from_secs(1))
                .check()
                .is_err()
        );
    }

    #[test]
    fn jitter_is_bounded_and_the_same_for_a_tick() {
        for tick in 0..1_000u64 {
            let jitter = jitter_of("nightly", tick * 1000, 30_000);
            assert!(jitter < 30_000);
            assert_eq!(jitter, jitter_of("nightly", tick * 1000, 30_000));
        }
        assert_eq!(jitter_of("nightly", 5, 0), 0);
    }

    #[test]
    fn times_and_ids_round_trip() {
        assert_eq!(format_time(1_500, 1000), "1970-01-01T00:00:01Z");
        assert_eq!(format_time(1_500, 1), "1970-01-01T00:00:01.500Z");
        assert_eq!(
            scheduled_tick(&instance_id("fast", 1_500, 1)),
            Some(("fast", 1_500))
        );
        assert!(parse_time("yesterday").is_err());
    }
}
