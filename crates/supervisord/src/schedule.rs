//! When a scheduled job runs next: `every DURATION`, or a 5-field cron expression read in
//! a time zone. Pure: a function of (schedule, instant), tested on fixed instants.
//!
//! `croner` parses the expression and finds matching wall-clock times; `jiff` owns the
//! time zones (the system's tz database, with a bundled copy as fallback) and says, for
//! each matching wall-clock time, whether it exists once, never (a daylight-saving gap:
//! the time is skipped) or twice (a fold: it runs once, at its first occurrence). croner
//! alone would move a gap's time to just after the gap, which is not what we promise.

use croner::parser::{CronParser, Seconds, Year};
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;
use std::fmt;
use std::time::{Duration, SystemTime};

/// How far ahead a cron expression is searched before it is declared unable to match
/// (`0 0 30 2 *`): enough wall-clock matches to cross any run of gaps.
const MAX_CANDIDATES: usize = 1000;

/// When a job runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    kind: Kind,
    zone: Zone,
}

#[derive(Debug, Clone)]
enum Kind {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

/// A time zone, as named in the job file (or the system's local zone).
#[derive(Debug, Clone)]
pub struct Zone {
    name: Option<String>,
    tz: TimeZone,
}

impl Zone {
    /// The system's local time zone (`TZ`, else `/etc/localtime`; UTC if neither).
    pub fn local() -> Zone {
        Zone {
            name: None,
            tz: TimeZone::try_system().unwrap_or(TimeZone::UTC),
        }
    }

    /// An IANA time zone (`Europe/Berlin`, `UTC`).
    pub fn named(name: &str) -> Result<Zone, String> {
        TimeZone::get(name)
            .map(|tz| Zone {
                name: Some(name.to_owned()),
                tz,
            })
            .map_err(|_| {
                format!(
                    "unknown time zone {name:?}: use an IANA name such as \"Europe/Berlin\" or \"UTC\""
                )
            })
    }

    /// The name as written, or `local`.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("local")
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.text == other.text && self.zone == other.zone
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Every(_) => f.write_str(&self.text),
            Kind::Cron(_) => write!(f, "{} ({})", self.text, self.zone.name()),
        }
    }
}

impl Schedule {
    /// `"every 15m"`, or a 5-field cron expression (`"0 3 * * *"`, `"*/5 * * * MON-FRI"`,
    /// and the `@daily` kind of alias), read in `zone`.
    pub fn parse(text: &str, zone: Zone) -> Result<Schedule, String> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix("every") {
            let every = crate::config::parse_duration(rest)
                .map_err(|e| format!("schedule {text:?}: {e}"))?;
            if every < Duration::from_secs(1) {
                return Err(format!(
                    "schedule {text:?}: the interval must be at least 1s"
                ));
            }
            if every > crate::config::MAX_DURATION {
                return Err(format!(
                    "schedule {text:?}: the interval must be at most 30 days"
                ));
            }
            return Ok(Schedule {
                text: t.to_owned(),
                kind: Kind::Every(every),
                zone,
            });
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(t).map_err(|e| {
            format!(
                "schedule {text:?} is not a 5-field cron expression (minute hour day-of-month month day-of-week) nor \"every DURATION\": {e}"
            )
        })?;
        let schedule = Schedule {
            text: t.to_owned(),
            kind: Kind::Cron(Box::new(cron)),
            zone,
        };
        if schedule.next(SystemTime::now()).is_none() {
            return Err(format!("schedule {text:?} never matches a date"));
        }
        Ok(schedule)
    }

    /// Whether it is a fixed interval (`every`), which ignores time zones.
    pub fn is_interval(&self) -> bool {
        matches!(self.kind, Kind::Every(_))
    }

    /// The time zone its cron expression is read in.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The first run strictly after `after`; `None` if there is none within reach.
    ///
    /// `every D`: `after + D`. A cron expression: the first matching wall-clock minute
    /// after `after`'s wall-clock time that exists in the zone; a time in a gap is
    /// skipped, and a time in a fold counts at its earlier instant only, so it runs once.
    pub fn next(&self, after: SystemTime) -> Option<SystemTime> {
        let cron = match &self.kind {
            Kind::Every(d) => return after.checked_add(*d),
            Kind::Cron(c) => c,
        };
        let after_ts = Timestamp::try_from(after).ok()?;
        let tz = &self.zone.tz;
        let mut civil: DateTime = after_ts.to_zoned(tz.clone()).datetime();
        for _ in 0..MAX_CANDIDATES {
            civil = cron.find_next_occurrence(&civil, false).ok()?;
            let instant = match tz.to_ambiguous_timestamp(civil).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(civil).ok()?,
                AmbiguousOffset::Gap { .. } => continue,
                AmbiguousOffset::Fold { before, .. } => before.to_timestamp(civil).ok()?,
            };
            // In the second pass of a fold, the earlier instant of a repeated time has
            // already gone by: that time has run.
            if instant > after_ts {
                return Some(SystemTime::from(instant));
            }
        }
        None
    }

    /// The next run after `from`, counted from the run that was due at `due`: a timer
    /// that fired on time keeps the cadence (`due + every`), one that fired late (a busy
    /// or suspended machine) skips the runs it missed instead of running them in a burst.
    pub fn next_from(&self, due: SystemTime, now: SystemTime) -> Option<SystemTime> {
        let next = self.next(due)?;
        if next > now {
            Some(next)
        } else {
            self.next(now)
        }
    }

    /// `catch_up`: whether a run fell due between the last run's start and `now` (the
    /// daemon was down at that time).
    pub fn missed(&self, last_started: SystemTime, now: SystemTime) -> bool {
        self.next(last_started).is_some_and(|t| t <= now)
    }
}

/// What happens when a scheduled time comes while the previous run is still alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Nothing: that time is skipped.
    #[default]
    Skip,
    /// One more run starts once the current one ends (at most one waits).
    Queue,
    /// The current run is stopped and a new one started.
    Replace,
}

impl Overlap {
    /// The job-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Replace => "replace",
        }
    }

    /// From the job-file spelling.
    pub fn parse(s: &str) -> Result<Overlap, String> {
        match s {
            "skip" => Ok(Overlap::Skip),
            "queue" => Ok(Overlap::Queue),
            "replace" => Ok(Overlap::Replace),
            _ => Err(format!(
                "overlap = {s:?}: expected \"skip\", \"queue\" or \"replace\""
            )),
        }
    }
}

/// What a scheduled time does to a job, given where the job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Start a run now.
    Start,
    /// Nothing (`skip`, or a run is already about to start).
    Skip,
    /// Start one run once the current one ends (`queue`).
    Queue,
    /// Stop the current run and start again (`replace`).
    Replace,
}

/// The decision when a scheduled time comes: `busy` is a run alive (or a retry or
/// restart pending), `pending` a start already on its way (waiting for a slot or its
/// dependencies).
pub fn on_due(overlap: Overlap, busy: bool, pending: bool) -> Due {
    match (busy, pending, overlap) {
        (_, true, _) => Due::Skip,
        (false, false, _) => Due::Start,
        (true, false, Overlap::Skip) => Due::Skip,
        (true, false, Overlap::Queue) => Due::Queue,
        (true, false, Overlap::Replace) => Due::Replace,
    }
}

/// A job's schedule and its options.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// When it runs.
    pub schedule: Schedule,
    /// What a time that comes during a run does.
    pub overlap: Overlap,
    /// At daemon start, run once if a time passed while it was down.
    pub catch_up: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Zone {
        Zone::named("Europe/Berlin").expect("the tz database knows Europe/Berlin")
    }

    /// An instant from an RFC 3339 string.
    fn at(s: &str) -> SystemTime {
        SystemTime::from(s.parse::<Timestamp>().expect("a timestamp"))
    }

    fn show(t: Option<SystemTime>) -> String {
        let t = t.expect("a next run");
        Timestamp::try_from(t)
            .expect("in range")
            .to_zoned(TimeZone::get("Europe/Berlin").expect("tz"))
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    fn runs(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        (0..n)
            .map(|_| {
                let next = s.next(t);
                t = next.expect("a next run");
                show(next)
            })
            .collect()
    }

    #[test]
    fn every_minute_runs_at_each_minute_boundary() {
        let s = Schedule::parse("* * * * *", berlin()).expect("valid");
        assert_eq!(
            runs(&s, "2026-01-10T10:00:30+01:00", 3),
            [
                "2026-01-10 10:01 CET",
                "2026-01-10 10:02 CET",
                "2026-01-10 10:03 CET"
            ]
        );
        // Exactly on a boundary: the next one, not the same one.
        assert_eq!(
            show(s.next(at("2026-01-10T10:01:00+01:00"))),
            "2026-01-10 10:02 CET"
        );
    }

    #[test]
    fn every_is_an_interval_from_the_last_due_time() {
        let s = Schedule::parse("every 15m", Zone::local()).expect("valid");
        assert!(s.is_interval());
        let t0 = at("2026-03-29T00:50:00Z");
        assert_eq!(s.next(t0), Some(t0 + Duration::from_secs(900)));
        // On time: the cadence is kept. Late by 40 minutes: the missed runs are skipped.
        let due = t0 + Duration::from_secs(900);
        assert_eq!(
            s.next_from(due, due + Duration::from_millis(3)),
            Some(due + Duration::from_secs(900))
        );
        let late = due + Duration::from_secs(2400);
        assert_eq!(
            s.next_from(due, late),
            Some(late + Duration::from_secs(900))
        );
    }

    #[test]
    fn a_time_in_the_spring_gap_is_skipped() {
        // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        let s = Schedule::parse("30 2 * * *", berlin()).expect("valid");
        assert_eq!(
            runs(&s, "2026-03-28T12:00:00+01:00", 2),
            ["2026-03-30 02:30 CEST", "2026-03-31 02:30 CEST"]
        );
    }

    #[test]
    fn every_minute_through_the_gap_goes_from_0159_to_0300() {
        let s = Schedule::parse("* * * * *", berlin()).expect("valid");
        assert_eq!(
            runs(&s, "2026-03-29T01:58:00+01:00", 2),
            ["2026-03-29 01:59 CET", "2026-03-29 03:00 CEST"]
        );
    }

    #[test]
    fn a_repeated_time_in_the_autumn_fold_runs_once() {
        // Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let s = Schedule::parse("30 2 * * *", berlin()).expect("valid");
        assert_eq!(
            runs(&s, "2026-10-24T12:00:00+02:00", 2),
            ["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]
        );
        // Asked during the second pass of the fold, after the first 02:30 ran.
        assert_eq!(
            show(s.next(at("2026-10-25T02:10:00+01:00"))),
            "2026-10-26 02:30 CET"
        );
        // Every minute: the repeated hour runs once, then the clock carries on at 03:00.
        let m = Schedule::parse("* * * * *", berlin()).expect("valid");
        assert_eq!(
            runs(&m, "2026-10-25T02:58:00+02:00", 2),
            ["2026-10-25 02:59 CEST", "2026-10-25 03:00 CET"]
        );
    }

    #[test]
    fn an_interval_ignores_daylight_saving() {
        let s = Schedule::parse("every 1h", berlin()).expect("valid");
        let t = at("2026-03-29T01:30:00+01:00");
        assert_eq!(show(s.next(t)), "2026-03-29 03:30 CEST");
    }

    #[test]
    fn catch_up_sees_a_time_that_passed_since_the_last_start() {
        let s = Schedule::parse("0 3 * * *", berlin()).expect("valid");
        let last = at("2026-01-10T03:00:00+01:00");
        assert!(!s.missed(last, at("2026-01-11T02:59:00+01:00")));
        assert!(s.missed(last, at("2026-01-11T03:00:00+01:00")));
        assert!(s.missed(last, at("2026-01-15T12:00:00+01:00")));
    }

    #[test]
    fn overlap_decisions() {
        use Overlap::*;
        assert_eq!(on_due(Skip, false, false), Due::Start);
        assert_eq!(on_due(Queue, false, false), Due::Start);
        assert_eq!(on_due(Replace, false, false), Due::Start);
        assert_eq!(on_due(Skip, true, false), Due::Skip);
        assert_eq!(on_due(Queue, true, false), Due::Queue);
        assert_eq!(on_due(Replace, true, false), Due::Replace);
        for o in [Skip, Queue, Replace] {
            assert_eq!(
                on_due(o, false, true),
                Due::Skip,
                "{o:?}: a start is pending"
            );
            assert_eq!(on_due(o, true, true), Due::Skip);
        }
        assert_eq!(Overlap::parse("queue"), Ok(Queue));
        assert!(Overlap::parse("Queue").is_err());
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_the_reason() {
        for bad in [
            "",
            "* * * *",
            "0 0 * * * *",
            "61 * * * *",
            "every",
            "every -1s",
            "every 0s",
            "0 0 30 2 *",
        ] {
            assert!(Schedule::parse(bad, berlin()).is_err(), "{bad:?} accepted");
        }
        let e = Zone::named("Mars/Olympus").expect_err("unknown");
        assert!(e.contains("unknown time zone \"Mars/Olympus\""), "{e}");
        assert!(Schedule::parse("@daily", berlin()).is_ok());
        assert!(Schedule::parse("*/5 8-18 * * MON-FRI", berlin()).is_ok());
    }
}
