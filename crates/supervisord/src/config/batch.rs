//! The keys of batch work: a job's `schedule` (with `timezone`, `overlap`, `catch_up`),
//! and `[group.NAME]` sections (`max_parallel`, which makes a group a work queue).

use super::{name_problem, valid_name, RawJob, Source};
use crate::config::ConfigError;
use crate::schedule::{Overlap, Schedule, ScheduleSpec, Zone};
use indexmap::IndexMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A group's settings: `[group.NAME]`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Group")]
pub(super) struct RawGroup {
    /// At most this many of the group's jobs alive at once (at least 1); the others
    /// wait for a slot, first come first served.
    #[schemars(with = "Option<std::num::NonZeroU32>")]
    max_parallel: Option<Spanned<u32>>,
}

/// A group's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupSpec {
    /// At most this many of its jobs alive at once (`None`: no limit).
    pub max_parallel: Option<u32>,
}

/// The `[group.NAME]` sections, validated.
pub(super) fn groups(
    src: &Source,
    raw: IndexMap<Spanned<String>, RawGroup>,
) -> Result<BTreeMap<String, GroupSpec>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, g) in raw {
        let n = name.get_ref();
        if !valid_name(n) {
            return Err(src.error(Some(name.span()), name_problem("group name", n)));
        }
        if let Some(m) = &g.max_parallel {
            if *m.get_ref() == 0 {
                return Err(src.error(
                    Some(m.span()),
                    format!("[group.{n}] max_parallel = 0: at least 1 (leave it out for no limit)"),
                ));
            }
        }
        out.insert(
            n.clone(),
            GroupSpec {
                max_parallel: g.max_parallel.map(Spanned::into_inner),
            },
        );
    }
    Ok(out)
}

/// `timezone`, `overlap` or `catch_up` in a job's own table without `schedule`: an error
/// at the key. (From `[defaults]` they only apply to the jobs that have a schedule.)
pub(super) fn lone_schedule_keys(src: &Source, job: &str, raw: &RawJob) -> Result<(), ConfigError> {
    if raw.schedule.is_some() {
        return Ok(());
    }
    let lone = [
        ("timezone", raw.timezone.as_ref().map(Spanned::span)),
        ("overlap", raw.overlap.as_ref().map(Spanned::span)),
        ("catch_up", raw.catch_up.as_ref().map(Spanned::span)),
    ];
    match lone.into_iter().find_map(|(k, s)| s.map(|s| (k, s))) {
        Some((key, span)) => {
            Err(src.error(Some(span), format!("job {job:?}: `{key}` needs `schedule`")))
        }
        None => Ok(()),
    }
}

/// A job's schedule, from its keys (after `[defaults]` filled them in).
pub(super) fn schedule(
    src: &Source,
    job: &str,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    overlap: Option<Spanned<String>>,
    catch_up: Option<Spanned<bool>>,
) -> Result<Option<ScheduleSpec>, ConfigError> {
    let Some(text) = schedule else {
        return Ok(None);
    };
    let zone = match &timezone {
        Some(tz) => Zone::named(tz.get_ref().trim())
            .map_err(|e| src.error(Some(tz.span()), format!("job {job:?}: {e}")))?,
        None => Zone::local(),
    };
    let parsed = Schedule::parse(text.get_ref(), zone)
        .map_err(|e| src.error(Some(text.span()), format!("job {job:?}: {e}")))?;
    let overlap = match &overlap {
        Some(o) => Overlap::parse(o.get_ref())
            .map_err(|e| src.error(Some(o.span()), format!("job {job:?}: {e}")))?,
        None => Overlap::default(),
    };
    Ok(Some(ScheduleSpec {
        schedule: parsed,
        overlap,
        catch_up: catch_up.is_some_and(|c| *c.get_ref()),
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, ConfigError};
    use crate::schedule::Overlap;
    use std::path::Path;

    fn err(text: &str) -> (usize, usize, String) {
        match parse(Path::new("/srv/jobs.toml"), text).expect_err("should be rejected") {
            ConfigError::Invalid {
                line,
                column,
                message,
                ..
            } => (line, column, message),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn schedule_keys_are_read_with_their_defaults() {
        let c = parse(
            Path::new("/srv/jobs.toml"),
            "[defaults]\noverlap = \"queue\"\n[job.a]\ncommand = [\"x\"]\nschedule = \"every 5s\"\nretries = 2\n[job.b]\ncommand = [\"x\"]\nschedule = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\noverlap = \"replace\"\ncatch_up = true\n[job.c]\ncommand = [\"x\"]\n",
        )
        .expect("valid");
        let a = c.jobs[0].schedule.as_ref().expect("a is scheduled");
        assert_eq!((a.overlap, a.catch_up), (Overlap::Queue, false));
        assert_eq!(c.jobs[0].retries, Some(2));
        let b = c.jobs[1].schedule.as_ref().expect("b is scheduled");
        assert_eq!((b.overlap, b.catch_up), (Overlap::Replace, true));
        assert_eq!(b.schedule.zone().name(), "Europe/Berlin");
        assert!(
            c.jobs[2].schedule.is_none(),
            "[defaults] overlap alone schedules nothing"
        );
        assert_eq!(c.jobs[2].retries, None);
    }

    #[test]
    fn bad_schedule_keys_are_errors_at_their_value() {
        let (l, c, m) = err("[job.a]\ncommand = [\"x\"]\nschedule = \"61 * * * *\"\n");
        assert_eq!((l, c), (3, 12), "{m}");
        assert!(
            m.contains("job \"a\": schedule \"61 * * * *\" is not a 5-field cron"),
            "{m}"
        );
        let (l, c, m) = err(
            "[job.a]\ncommand = [\"x\"]\nschedule = \"0 3 * * *\"\ntimezone = \"Europe/Nowhere\"\n",
        );
        assert_eq!((l, c), (4, 12), "{m}");
        assert!(m.contains("unknown time zone \"Europe/Nowhere\""), "{m}");
        let (l, c, m) =
            err("[job.a]\ncommand = [\"x\"]\nschedule = \"every 1s\"\noverlap = \"later\"\n");
        assert_eq!((l, c), (4, 11), "{m}");
        assert!(m.contains("\"skip\", \"queue\" or \"replace\""), "{m}");
        for key in [
            "overlap = \"skip\"",
            "catch_up = true",
            "timezone = \"UTC\"",
        ] {
            let (l, c, m) = err(&format!("[job.a]\ncommand = [\"x\"]\n{key}\n"));
            assert_eq!((l, c), (3, key.find('=').map_or(0, |i| i + 3)), "{m}");
            let k = &key[..key.find(' ').unwrap_or(0)];
            assert_eq!(m, format!("job \"a\": `{k}` needs `schedule`"));
        }
        let (l, _, m) = err("[defaults]\nschedule = \"every 1s\"\n[job.a]\ncommand = [\"x\"]\n");
        assert_eq!(l, 2, "{m}");
    }

    #[test]
    fn max_parallel_must_be_at_least_one() {
        let (l, c, m) = err("[group.downloads]\nmax_parallel = 0\n[job.a]\ncommand = [\"x\"]\n");
        assert_eq!((l, c), (2, 16), "{m}");
        assert!(m.contains("max_parallel = 0: at least 1"), "{m}");
        let (_, _, m) = err("[group.downloads]\nparallel = 2\n");
        assert!(m.contains("parallel"), "{m}");
        let c = parse(
            Path::new("/srv/jobs.toml"),
            "[group.downloads]\nmax_parallel = 2\n[job.a]\ncommand = [\"x\"]\ngroup = \"downloads\"\n",
        )
        .expect("valid");
        assert_eq!(c.groups["downloads"].max_parallel, Some(2));
    }
}
