//! Schedules: when a job runs by itself. A schedule is a cron pattern (5 fields, or 6 with
//! seconds first) evaluated in an IANA time zone, or an ISO 8601 repeating interval
//! `R[n]/<start>/<duration>` as Chronos takes them; plus a starting deadline (a tick
//! missed by more than that is skipped and recorded) and an `enabled` flag (pause/resume).
//!
//! Owns the arithmetic of ticks. Pure: every function takes the time it needs as an
//! argument; nothing here reads a clock, sleeps or does I/O. Cron patterns are parsed and
//! evaluated by `croner`, time zones, DST and durations by `jiff`: this module must never
//! parse a cron field or do calendar arithmetic itself.

use std::fmt;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Unit, Zoned};
use serde::{Deserialize, Serialize};

use crate::spec::{ConcurrencyPolicy, Invalid};

/// The default starting deadline (Metronome's), in seconds.
pub const DEFAULT_STARTING_DEADLINE_SECONDS: u64 = 900;
/// The longest starting deadline, in seconds (one week).
pub const MAX_STARTING_DEADLINE_SECONDS: u64 = 7 * 86_400;
/// The shortest repeating interval, in milliseconds.
pub const MIN_PERIOD_MS: i64 = 1_000;
/// Missed ticks counted one by one per evaluation; beyond that a skip says "at least".
pub const MAX_MISSED_SCAN: u32 = 1_000;
/// Ticks started by one evaluation of one schedule; the rest wait for the next one.
pub const MAX_STARTS_PER_EVALUATION: usize = 100;
/// Steps an ISO 8601 interval search may take around its estimate.
const MAX_INTERVAL_STEPS: u32 = 10_000;

/// A schedule as the API takes it (Metronome's shape, plus `interval` for Chronos's
/// ISO 8601 repeating intervals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    pub id: String,
    /// A cron pattern; exactly one of `cron` and `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// `R[n]/<start>/<ISO 8601 duration>`, e.g. `R/2026-01-01T00:00:00Z/PT2S`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// IANA time zone the pattern (or an interval start without offset) is read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// A tick not started within this many seconds of its time is skipped.
    #[serde(default = "default_deadline")]
    pub starting_deadline_seconds: u64,
    /// Overrides the job's concurrency policy for this schedule's ticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// `false`: paused.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_deadline() -> u64 {
    DEFAULT_STARTING_DEADLINE_SECONDS
}
fn default_enabled() -> bool {
    true
}

impl ScheduleSpec {
    /// Check the definition; the field in the error is relative to the schedule.
    pub fn validate(&self) -> Result<(), Invalid> {
        Schedule::compile(self).map(|_| ())
    }
}

/// How occurrences are generated.
#[derive(Debug, Clone)]
enum Rule {
    Cron(Box<Cron>),
    Repeating {
        start: Zoned,
        period: Span,
        /// `None`: forever.
        count: Option<u64>,
    },
}

/// A compiled schedule: answers "when is the next tick" and "what is due now".
#[derive(Debug, Clone)]
pub struct Schedule {
    rule: Rule,
    tz: TimeZone,
    deadline_ms: i64,
}

/// Ticks a schedule has been missed by more than its starting deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// How many ticks (at least this many when `more`).
    pub count: u32,
    /// Scan stopped at [`MAX_MISSED_SCAN`]; there were more.
    pub more: bool,
    pub first: Timestamp,
    pub last: Timestamp,
}

/// What one evaluation of a schedule found between its last tick and now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Due {
    /// Ticks to start now, oldest first (each within the starting deadline).
    pub start: Vec<Timestamp>,
    /// Ticks too late to start.
    pub missed: Option<Missed>,
    /// The last tick this evaluation accounted for (started or skipped); the next
    /// evaluation begins after it. `None`: nothing was due.
    pub last_tick: Option<Timestamp>,
}

fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

fn parse_timezone(name: &str) -> Result<TimeZone, Invalid> {
    if name.is_empty() {
        return Err(Invalid::new("timezone", "must not be empty"));
    }
    TimeZone::get(name).map_err(|_| {
        Invalid::new(
            "timezone",
            format!("{name:?} is not an IANA time zone (e.g. UTC, Europe/Berlin)"),
        )
    })
}

/// Parse `R[n]/<start>/<duration>`. A start without an offset is read in `tz`.
fn parse_interval(text: &str, tz: &TimeZone) -> Result<Rule, Invalid> {
    let bad = |m: String| Invalid::new("interval", m);
    let parts: Vec<&str> = text.split('/').collect();
    let [repeat, start, period] = parts.as_slice() else {
        return Err(bad(format!(
            "{text:?} is not R[n]/<start>/<duration> (e.g. R/2026-01-01T00:00:00Z/PT1H)"
        )));
    };
    let count = match repeat.strip_prefix('R') {
        Some("") => None,
        Some(n) => Some(
            n.parse::<u64>()
                .map_err(|_| bad(format!("repetitions {repeat:?} are not R or R<number>")))?,
        ),
        None => return Err(bad(format!("{repeat:?} does not start with R"))),
    };
    let start = match start.parse::<Timestamp>() {
        Ok(ts) => ts.to_zoned(tz.clone()),
        Err(_) => start
            .parse::<jiff::civil::DateTime>()
            .ok()
            .and_then(|dt| dt.to_zoned(tz.clone()).ok())
            .ok_or_else(|| bad(format!("start {start:?} is not an ISO 8601 date and time")))?,
    };
    if !period.starts_with('P') {
        return Err(bad(format!(
            "duration {period:?} is not an ISO 8601 duration (e.g. PT2S, P1D)"
        )));
    }
    let period: Span = period
        .parse()
        .map_err(|e| bad(format!("duration {period:?}: {e}")))?;
    let length_ms = period
        .total((Unit::Millisecond, &start))
        .map_err(|e| bad(format!("duration: {e}")))?;
    if !period.is_positive() || length_ms < MIN_PERIOD_MS as f64 {
        return Err(bad(format!(
            "the duration must be at least {} s",
            MIN_PERIOD_MS / 1000
        )));
    }
    Ok(Rule::Repeating {
        start,
        period,
        count,
    })
}

impl Schedule {
    /// Compile a schedule, or say which field is wrong.
    pub fn compile(spec: &ScheduleSpec) -> Result<Schedule, Invalid> {
        crate::spec::check_job_id("id", &spec.id)?;
        let tz = parse_timezone(&spec.timezone)?;
        if spec.starting_deadline_seconds == 0
            || spec.starting_deadline_seconds > MAX_STARTING_DEADLINE_SECONDS
        {
            return Err(Invalid::new(
                "startingDeadlineSeconds",
                format!("must be between 1 and {MAX_STARTING_DEADLINE_SECONDS}"),
            ));
        }
        let rule = match (&spec.cron, &spec.interval) {
            (Some(_), Some(_)) => {
                return Err(Invalid::new(
                    "cron",
                    "give either cron or interval, not both",
                ));
            }
            (None, None) => return Err(Invalid::new("cron", "give cron or interval")),
            (Some(pattern), None) => {
                let fields = pattern.split_whitespace().count();
                if !pattern.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
                    return Err(Invalid::new(
                        "cron",
                        format!(
                            "{pattern:?} has {fields} fields; a cron pattern has 5, or 6 with seconds first"
                        ),
                    ));
                }
                let cron = cron_parser()
                    .parse(pattern)
                    .map_err(|e| Invalid::new("cron", format!("{pattern:?}: {e}")))?;
                Rule::Cron(Box::new(cron))
            }
            (None, Some(text)) => parse_interval(text, &tz)?,
        };
        let schedule = Schedule {
            rule,
            tz,
            deadline_ms: (spec.starting_deadline_seconds as i64).saturating_mul(1000),
        };
        if let Rule::Cron(_) = &schedule.rule {
            // A pattern that never matches (31 February) would never tick: refuse it.
            let reference = Timestamp::from_second(978_307_200).unwrap_or(Timestamp::UNIX_EPOCH);
            if schedule.next_after(reference).is_none() {
                return Err(Invalid::new(
                    "cron",
                    "the pattern never matches a real date",
                ));
            }
        }
        Ok(schedule)
    }

    /// The starting deadline in milliseconds.
    pub fn deadline_ms(&self) -> i64 {
        self.deadline_ms
    }

    /// The first tick strictly after `after`; `None` when there is none (a finished
    /// `R<n>` interval).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.rule {
            Rule::Cron(cron) => cron
                .find_next_occurrence(&after.to_zoned(self.tz.clone()), false)
                .ok()
                .map(|z| z.timestamp()),
            Rule::Repeating {
                start,
                period,
                count,
            } => next_repeating(start, *period, *count, after),
        }
    }

    /// What is due in `(last, now]`: ticks within the starting deadline to start (at most
    /// [`MAX_STARTS_PER_EVALUATION`]), and those missed by more than it.
    pub fn due(&self, last: Timestamp, now: Timestamp) -> Due {
        let mut due = Due::default();
        let mut next = self.next_after(last);
        let late = |t: Timestamp| now.as_millisecond() - t.as_millisecond() > self.deadline_ms;
        while let Some(t) = next {
            if t > now || !late(t) {
                break;
            }
            let m = due.missed.get_or_insert(Missed {
                count: 0,
                more: false,
                first: t,
                last: t,
            });
            if m.count >= MAX_MISSED_SCAN {
                // Too many to count one by one: jump to the first tick still startable.
                m.more = true;
                let horizon = now.as_millisecond() - self.deadline_ms;
                let jump = Timestamp::from_millisecond(horizon - 1).unwrap_or(t);
                next = self.next_after(jump.max(t));
                due.last_tick = Some(jump.max(t));
                continue;
            }
            m.count += 1;
            m.last = t;
            due.last_tick = Some(t);
            next = self.next_after(t);
        }
        while let Some(t) = next {
            if t > now || due.start.len() >= MAX_STARTS_PER_EVALUATION {
                break;
            }
            due.start.push(t);
            due.last_tick = Some(t);
            next = self.next_after(t);
        }
        due
    }
}

fn nth(start: &Zoned, period: Span, k: i64) -> Option<Timestamp> {
    let step = period.checked_mul(k).ok()?;
    start.checked_add(step).ok().map(|z| z.timestamp())
}

fn next_repeating(
    start: &Zoned,
    period: Span,
    count: Option<u64>,
    after: Timestamp,
) -> Option<Timestamp> {
    let limit = count.map(|c| c as i64);
    if limit == Some(0) {
        return None;
    }
    let start_ts = start.timestamp();
    let in_range = |k: i64| limit.is_none_or(|n| k < n);
    if after < start_ts {
        return Some(start_ts);
    }
    // Estimate k from the average length of 100 periods, then walk to the exact one.
    let hundred = period.checked_mul(100).ok()?;
    let avg_ms = hundred.total((Unit::Millisecond, start)).ok()? / 100.0;
    let elapsed = (after.as_millisecond() - start_ts.as_millisecond()) as f64;
    let mut k = ((elapsed / avg_ms).floor() as i64).max(0);
    let mut steps = 0;
    while k > 0 && nth(start, period, k)? > after && steps < MAX_INTERVAL_STEPS {
        k -= 1;
        steps += 1;
    }
    while nth(start, period, k)? <= after && steps < MAX_INTERVAL_STEPS {
        k += 1;
        steps += 1;
    }
    if steps >= MAX_INTERVAL_STEPS || !in_range(k) {
        return None;
    }
    nth(start, period, k)
}

impl fmt::Display for ScheduleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.cron, &self.interval) {
            (Some(c), _) => write!(f, "cron {c:?} in {}", self.timezone),
            (_, Some(i)) => write!(f, "interval {i}"),
            _ => f.write_str("(none)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(cron: &str, tz: &str) -> ScheduleSpec {
        ScheduleSpec {
            id: "s".into(),
            cron: Some(cron.into()),
            interval: None,
            timezone: tz.into(),
            starting_deadline_seconds: 60,
            concurrency_policy: None,
            enabled: true,
        }
    }

    fn interval(text: &str) -> ScheduleSpec {
        ScheduleSpec {
            cron: None,
            interval: Some(text.into()),
            ..spec("* * * * *", "UTC")
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Every tick in `(from, to]`, by repeated `next_after`.
    fn ticks(s: &Schedule, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = from;
        while let Some(n) = s.next_after(t) {
            if n > to {
                break;
            }
            out.push(n);
            t = n;
        }
        out
    }

    #[test]
    fn five_and_six_field_patterns() {
        let s = Schedule::compile(&spec("*/15 * * * *", "UTC")).unwrap();
        assert_eq!(
            s.next_after(ts("2026-01-01T00:07:30Z")),
            Some(ts("2026-01-01T00:15:00Z"))
        );
        let s = Schedule::compile(&spec("*/2 * * * * *", "UTC")).unwrap();
        assert_eq!(
            s.next_after(ts("2026-01-01T00:00:01.500Z")),
            Some(ts("2026-01-01T00:00:02Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-01-01T00:00:02Z")),
            Some(ts("2026-01-01T00:00:04Z"))
        );
    }

    #[test]
    fn bad_patterns_and_zones_name_the_field() {
        for (s, field) in [
            (spec("* * * *", "UTC"), "cron"),
            (spec("* * * * * * *", "UTC"), "cron"),
            (spec("61 * * * *", "UTC"), "cron"),
            (spec("0 0 31 2 *", "UTC"), "cron"),
            (spec("* * * * *", "Mars/Olympus"), "timezone"),
            (spec("* * * * *", ""), "timezone"),
            (interval("R5/2026-01-01T00:00:00Z"), "interval"),
            (interval("X/2026-01-01T00:00:00Z/PT1S"), "interval"),
            (interval("R/yesterday/PT1S"), "interval"),
            (interval("R/2026-01-01T00:00:00Z/1s"), "interval"),
            (interval("R/2026-01-01T00:00:00Z/PT0.5S"), "interval"),
            (interval("R/2026-01-01T00:00:00Z/PT0S"), "interval"),
            (
                ScheduleSpec {
                    interval: Some("R/2026-01-01T00:00:00Z/PT1S".into()),
                    ..spec("* * * * *", "UTC")
                },
                "cron",
            ),
            (
                ScheduleSpec {
                    starting_deadline_seconds: 0,
                    ..spec("* * * * *", "UTC")
                },
                "startingDeadlineSeconds",
            ),
        ] {
            let e = Schedule::compile(&s).expect_err(&format!("{s:?}"));
            assert_eq!(e.field, field, "{s:?}: {e}");
        }
    }

    #[test]
    fn daily_pattern_follows_the_zone_across_dst() {
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        let s = Schedule::compile(&spec("0 9 * * *", "Europe/Berlin")).unwrap();
        let got = ticks(&s, ts("2026-03-27T12:00:00Z"), ts("2026-03-31T00:00:00Z"));
        assert_eq!(
            got,
            vec![
                ts("2026-03-28T08:00:00Z"),
                ts("2026-03-29T07:00:00Z"),
                ts("2026-03-30T07:00:00Z"),
            ]
        );
    }

    #[test]
    fn dst_gap_fixed_time_runs_once_right_after_the_gap() {
        // New York springs forward at 02:00 on 2026-03-08: 02:30 does not exist.
        let s = Schedule::compile(&spec("30 2 * * *", "America/New_York")).unwrap();
        let got = ticks(&s, ts("2026-03-07T12:00:00Z"), ts("2026-03-09T12:00:00Z"));
        assert_eq!(
            got,
            vec![
                ts("2026-03-08T07:00:00Z"), // 03:00 EDT, the first minute after the gap
                ts("2026-03-09T06:30:00Z"), // 02:30 EDT
            ]
        );
    }

    #[test]
    fn dst_gap_interval_pattern_skips_the_missing_hour() {
        let s = Schedule::compile(&spec("0 * * * *", "America/New_York")).unwrap();
        // Local 00:00 .. 04:00 on the gap day is 05:00Z .. 08:00Z: 00, 01, 03, 04 local.
        let got = ticks(&s, ts("2026-03-08T04:59:00Z"), ts("2026-03-08T08:00:00Z"));
        assert_eq!(
            got,
            vec![
                ts("2026-03-08T05:00:00Z"),
                ts("2026-03-08T06:00:00Z"),
                ts("2026-03-08T07:00:00Z"),
                ts("2026-03-08T08:00:00Z"),
            ]
        );
    }

    #[test]
    fn dst_overlap_fixed_time_runs_once_and_intervals_twice() {
        // New York falls back at 02:00 EDT on 2026-11-01: 01:00-01:59 happens twice.
        let s = Schedule::compile(&spec("30 1 * * *", "America/New_York")).unwrap();
        let got = ticks(&s, ts("2026-11-01T00:00:00Z"), ts("2026-11-02T00:00:00Z"));
        assert_eq!(got, vec![ts("2026-11-01T05:30:00Z")], "01:30 EDT only");
        let s = Schedule::compile(&spec("30 * * * *", "America/New_York")).unwrap();
        let got = ticks(&s, ts("2026-11-01T04:00:00Z"), ts("2026-11-01T07:00:00Z"));
        assert_eq!(
            got,
            vec![
                ts("2026-11-01T04:30:00Z"), // 00:30 EDT
                ts("2026-11-01T05:30:00Z"), // 01:30 EDT
                ts("2026-11-01T06:30:00Z"), // 01:30 EST
            ]
        );
    }

    #[test]
    fn repeating_intervals_count_and_start() {
        let s = Schedule::compile(&interval("R3/2026-01-01T00:00:00Z/PT2S")).unwrap();
        assert_eq!(
            ticks(&s, ts("2025-12-31T00:00:00Z"), ts("2027-01-01T00:00:00Z")),
            vec![
                ts("2026-01-01T00:00:00Z"),
                ts("2026-01-01T00:00:02Z"),
                ts("2026-01-01T00:00:04Z"),
            ]
        );
        let forever = Schedule::compile(&interval("R/2026-01-01T00:00:00Z/PT1H")).unwrap();
        assert_eq!(
            forever.next_after(ts("2030-06-01T10:20:00Z")),
            Some(ts("2030-06-01T11:00:00Z"))
        );
        let none = Schedule::compile(&interval("R0/2026-01-01T00:00:00Z/PT1H")).unwrap();
        assert_eq!(none.next_after(ts("2020-01-01T00:00:00Z")), None);
    }

    #[test]
    fn repeating_days_keep_the_wall_clock_in_their_zone() {
        let mut s = interval("R/2026-03-07T09:00:00/P1D");
        s.timezone = "Europe/Berlin".into();
        let s = Schedule::compile(&s).unwrap();
        assert_eq!(
            ticks(&s, ts("2026-03-28T12:00:00Z"), ts("2026-03-30T12:00:00Z")),
            vec![ts("2026-03-29T07:00:00Z"), ts("2026-03-30T07:00:00Z")]
        );
        let monthly = Schedule::compile(&interval("R/2026-01-31T00:00:00Z/P1M")).unwrap();
        assert_eq!(
            monthly.next_after(ts("2026-02-01T00:00:00Z")),
            Some(ts("2026-02-28T00:00:00Z"))
        );
        assert_eq!(
            monthly.next_after(ts("2036-02-01T00:00:00Z")),
            Some(ts("2036-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn due_splits_startable_from_missed_by_the_deadline() {
        // Every 10 s, deadline 60 s; last tick 00:00:00, now 00:05:00.
        let mut sp = spec("*/10 * * * * *", "UTC");
        sp.starting_deadline_seconds = 60;
        let s = Schedule::compile(&sp).unwrap();
        let due = s.due(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:05:00Z"));
        let missed = due.missed.unwrap();
        assert_eq!(missed.count, 23, "00:10 .. 03:50 are more than 60 s late");
        assert_eq!(missed.first, ts("2026-01-01T00:00:10Z"));
        assert_eq!(missed.last, ts("2026-01-01T00:03:50Z"));
        assert!(!missed.more);
        assert_eq!(due.start.len(), 7, "04:00 .. 05:00 are within 60 s");
        assert_eq!(due.start[0], ts("2026-01-01T00:04:00Z"));
        assert_eq!(due.last_tick, Some(ts("2026-01-01T00:05:00Z")));
        // Nothing is due twice.
        let again = s.due(due.last_tick.unwrap(), ts("2026-01-01T00:05:00Z"));
        assert_eq!(again, Due::default());
    }

    #[test]
    fn a_long_outage_is_counted_without_walking_every_tick() {
        let mut sp = spec("* * * * * *", "UTC");
        sp.starting_deadline_seconds = 5;
        let s = Schedule::compile(&sp).unwrap();
        let due = s.due(ts("2026-01-01T00:00:00Z"), ts("2026-01-08T00:00:00Z"));
        let missed = due.missed.unwrap();
        assert!(missed.more);
        assert_eq!(missed.count, MAX_MISSED_SCAN);
        assert_eq!(due.start.len(), 6, "the last 5 s and now");
        assert_eq!(due.start[0], ts("2026-01-07T23:59:55Z"));
    }

    fn zone() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
            "America/Santiago",
        ])
    }

    fn pattern() -> impl Strategy<Value = String> {
        let minute = prop::sample::select(vec!["*", "*/7", "0", "30", "15,45", "10-20"]);
        let hour = prop::sample::select(vec!["*", "*/3", "1", "2", "0-3", "23"]);
        let dom = prop::sample::select(vec!["*", "1", "15", "L"]);
        let dow = prop::sample::select(vec!["*", "MON-FRI", "0"]);
        (minute, hour, dom, dow).prop_map(|(m, h, d, w)| format!("{m} {h} {d} * {w}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Ticks strictly increase, each matches the pattern in its zone, and evaluating
        /// a window in two pieces finds exactly the ticks of evaluating it whole: no tick
        /// is forgotten or started twice however the clock advances.
        #[test]
        fn cron_ticks_are_ordered_matching_and_additive(
            p in pattern(),
            tz in zone(),
            start_s in 1_767_225_600i64..1_830_297_600, // 2026 .. 2028
            split in 0i64..(6 * 86_400),
        ) {
            let mut sp = spec(&p, tz);
            sp.starting_deadline_seconds = MAX_STARTING_DEADLINE_SECONDS;
            let s = Schedule::compile(&sp).unwrap();
            let a = Timestamp::from_second(start_s).unwrap();
            // Six days: within the longest starting deadline, so nothing is missed.
            let c = Timestamp::from_second(start_s + 6 * 86_400).unwrap();
            let b = Timestamp::from_second(start_s + split).unwrap();
            let whole = ticks(&s, a, c);
            let mut pieces = ticks(&s, a, b);
            pieces.extend(ticks(&s, b, c));
            prop_assert_eq!(&whole, &pieces);
            let zone = TimeZone::get(tz).unwrap();
            let Rule::Cron(cron) = &s.rule else { unreachable!() };
            for w in whole.windows(2) {
                prop_assert!(w[0] < w[1]);
            }
            for t in &whole {
                prop_assert!(cron.is_time_matching(&t.to_zoned(zone.clone())).unwrap());
            }
            // `due` over the same window agrees with the walk (deadline covers it).
            let mut got = Vec::new();
            let mut last = a;
            loop {
                let d = s.due(last, c);
                prop_assert!(d.missed.is_none());
                got.extend(d.start.iter().copied());
                match d.last_tick { Some(t) => last = t, None => break }
            }
            prop_assert_eq!(got, whole);
        }

        /// An ISO 8601 interval's ticks are exactly start + k·period for k < n.
        #[test]
        fn interval_ticks_are_start_plus_multiples(
            n in 1u64..40,
            secs in 1i64..100_000,
            after in -200_000i64..4_000_000,
        ) {
            let text = format!("R{n}/2026-01-01T00:00:00Z/PT{secs}S");
            let s = Schedule::compile(&interval(&text)).unwrap();
            let start = ts("2026-01-01T00:00:00Z").as_second();
            let t = Timestamp::from_second(start + after).unwrap();
            let expected = (0..n as i64)
                .map(|k| start + k * secs)
                .find(|x| *x > start + after)
                .map(|x| Timestamp::from_second(x).unwrap());
            prop_assert_eq!(s.next_after(t), expected);
        }

        /// Missed and started ticks of one evaluation partition the due ticks, and every
        /// started tick is within the deadline.
        #[test]
        fn due_partitions_by_deadline(
            deadline in 1u64..600,
            outage in 0i64..7_200,
        ) {
            let mut sp = spec("*/5 * * * * *", "UTC");
            sp.starting_deadline_seconds = deadline;
            let s = Schedule::compile(&sp).unwrap();
            let last = ts("2026-01-01T00:00:00Z");
            let now = Timestamp::from_second(last.as_second() + outage).unwrap();
            let d = s.due(last, now);
            let all = ticks(&s, last, now);
            let missed = d.missed.map(|m| m.count as usize).unwrap_or(0);
            if d.missed.is_some_and(|m| m.more) {
                // Counted up to the scan limit, then jumped to the first startable tick.
                prop_assert_eq!(missed, MAX_MISSED_SCAN as usize);
                prop_assert!(missed + d.start.len() < all.len());
            } else {
                prop_assert_eq!(
                    missed + d.start.len(),
                    all.len().min(missed + MAX_STARTS_PER_EVALUATION)
                );
            }
            // Whatever was not started is accounted for: the next evaluation starts after
            // the last tick this one took, and that is never past `now`.
            if let Some(t) = d.last_tick {
                prop_assert!(t <= now);
            }
            for t in &d.start {
                prop_assert!(now.as_second() - t.as_second() <= deadline as i64);
            }
        }
    }
}
