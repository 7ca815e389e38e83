//! The table as people and clients see it: the protocol's `Job`, and batch mode's lines.

use super::Entry;
use crate::config::JobSpec;
use crate::lifecycle::Transition;
use protocol::{describe_exit, signal_name, Job, JobState};
use std::time::{Duration, SystemTime};

/// A job's status as the protocol's `Job`.
pub(super) fn job_status(e: &Entry) -> Job {
    job_status_at(e, SystemTime::now())
}

/// A job's status as the protocol's `Job`, its uptime counted up to `now`.
pub(super) fn job_status_at(e: &Entry, now: SystemTime) -> Job {
    let l = &e.life;
    let alive = l.state().is_alive();
    Job {
        name: e.spec.name.clone(),
        group: e.spec.group.clone(),
        state: l.state(),
        alive,
        pid: l.pid(),
        exitcode: l.exitcode(),
        signal: l.exitcode().and_then(signal_name),
        success: l.success(),
        daemon: e.spec.daemon,
        restarts: l.restarts(),
        started_at: l.started_at().map(rfc3339),
        ended_at: l.ended_at().map(rfc3339),
        uptime_ms: l
            .started_at()
            .filter(|_| alive)
            .and_then(|t| now.duration_since(t).ok())
            .map(millis),
        spawn_error: l.spawn_error().map(str::to_owned),
        cause: l.cause(),
        reason: match &e.checks.status {
            Some(s) if alive => Some(s.clone()),
            _ => l.reason().map(str::to_owned),
        },
        output_error: e.output_error.clone(),
        cpu_ms: None,
        memory_bytes: None,
        health: e.health(),
        health_output: e.checks.track.as_ref().and_then(|t| t.output.clone()),
        health_failures: e
            .checks
            .track
            .as_ref()
            .map(|t| t.failures)
            .filter(|_| e.spec.health.is_some()),
        next_run_at: e.next_run_at.map(rfc3339),
    }
}

/// `{"jobs":[...]}` of these entries (and `"history_error"` when given), written straight
/// into one buffer: the same text as serde writes for the `JobList` of
/// `entries.map(job_status)`, without building a `Job` (and its dozen strings) per job or
/// going through serde. This is the `status` answer, the request clients poll. Each job's
/// text is kept from one answer to the next while the job does not change ([`Encoded`]),
/// so an answer is mostly copies; only `uptime_ms` is written anew, counted up to one
/// `now` for the whole answer.
pub(super) fn job_list<'a>(
    entries: impl ExactSizeIterator<Item = &'a Entry>,
    history_error: Option<&str>,
) -> String {
    let now = SystemTime::now();
    let mut out = spare::take(16 + entries.len() * 480);
    out.push_str("{\"jobs\":[");
    for (i, e) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        e.encoded.text(e).write(&mut out, now);
    }
    out.push(']');
    if let Some(why) = history_error {
        out.push_str(",\"history_error\":");
        json::string(&mut out, why);
    }
    out.push('}');
    out
}

/// A job's status text, kept while the job does not change. Written at the first `status`
/// after a change; dropped by the table on every change (`table.rs` hands out no
/// `&mut Entry` without dropping it). Costs the text's bytes (~400 a job) while kept.
#[derive(Default)]
pub(super) struct Encoded(std::cell::OnceCell<Box<Text>>);

impl Encoded {
    /// The text of `e`, which this belongs to.
    fn text(&self, e: &Entry) -> &Text {
        self.0.get_or_init(|| Box::new(Text::of(e)))
    }

    /// The job is changing.
    pub(super) fn clear(&mut self) {
        self.0.take();
    }

    /// Whether a text is kept (for tests).
    #[cfg(test)]
    pub(super) fn is_kept(&self) -> bool {
        self.0.get().is_some()
    }
}

/// One job's JSON object, all but the value of `uptime_ms` when the job has one.
struct Text {
    json: Box<str>,
    /// Where the value of `uptime_ms` goes, and when the live process started; `None`:
    /// no process is alive, `"uptime_ms":null` is in `json`.
    uptime: Option<(usize, SystemTime)>,
}

impl Text {
    fn of(e: &Entry) -> Text {
        let mut out = String::with_capacity(480);
        write_head(&mut out, e);
        let alive = e.life.state().is_alive();
        let uptime = match e.life.started_at().filter(|_| alive) {
            Some(t) => Some((out.len(), t)),
            None => {
                out.push_str("null");
                None
            }
        };
        write_tail(&mut out, e);
        Text {
            json: out.into_boxed_str(),
            uptime,
        }
    }

    /// The object, its uptime counted up to `now`.
    fn write(&self, out: &mut String, now: SystemTime) {
        let Some((at, started)) = self.uptime else {
            out.push_str(&self.json);
            return;
        };
        let (head, tail) = self.json.split_at(at);
        out.push_str(head);
        json::opt_uint(out, now.duration_since(started).ok().map(millis));
        out.push_str(tail);
    }
}

/// A job's JSON object up to `"uptime_ms":`.
fn write_head(out: &mut String, e: &Entry) {
    let l = &e.life;
    let state = l.state();
    let alive = state.is_alive();
    out.push_str("{\"name\":");
    json::string(out, &e.spec.name);
    out.push_str(",\"group\":");
    json::string(out, &e.spec.group);
    out.push_str(",\"state\":\"");
    out.push_str(state.as_str());
    out.push_str("\",\"alive\":");
    json::boolean(out, alive);
    out.push_str(",\"pid\":");
    json::opt_uint(out, l.pid().map(u64::from));
    out.push_str(",\"exitcode\":");
    let exitcode = l.exitcode();
    match exitcode {
        Some(c) => json::int(out, i64::from(c)),
        None => out.push_str("null"),
    }
    out.push_str(",\"signal\":");
    match exitcode.filter(|c| *c < 0) {
        Some(c) => match protocol::Signal::from_number(-c) {
            Some(sig) => json::string(out, sig.name()),
            None => {
                out.push_str("\"SIG");
                json::int(out, -i64::from(c));
                out.push('"');
            }
        },
        None => out.push_str("null"),
    }
    out.push_str(",\"success\":");
    match l.success() {
        Some(b) => json::boolean(out, b),
        None => out.push_str("null"),
    }
    out.push_str(",\"daemon\":");
    json::boolean(out, e.spec.daemon);
    out.push_str(",\"restarts\":");
    json::uint(out, u64::from(l.restarts()));
    out.push_str(",\"started_at\":");
    json::opt_time(out, l.started_at());
    out.push_str(",\"ended_at\":");
    json::opt_time(out, l.ended_at());
    out.push_str(",\"uptime_ms\":");
}

/// A job's JSON object after the value of `uptime_ms`.
fn write_tail(out: &mut String, e: &Entry) {
    let l = &e.life;
    let alive = l.state().is_alive();
    out.push_str(",\"spawn_error\":");
    json::opt_string(out, l.spawn_error());
    out.push_str(",\"cause\":");
    match l.cause() {
        Some(c) => {
            out.push('"');
            out.push_str(c.as_str());
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"reason\":");
    let reason = match &e.checks.status {
        Some(s) if alive => Some(s.as_str()),
        _ => l.reason(),
    };
    json::opt_string(out, reason);
    out.push_str(",\"output_error\":");
    json::opt_string(out, e.output_error.as_deref());
    out.push_str(",\"cpu_ms\":null,\"memory_bytes\":null,\"health\":");
    match e.health() {
        Some(h) => {
            out.push('"');
            out.push_str(h.as_str());
            out.push('"');
        }
        None => out.push_str("null"),
    }
    let track = e.checks.track.as_ref();
    out.push_str(",\"health_output\":");
    json::opt_string(out, track.and_then(|t| t.output.as_deref()));
    out.push_str(",\"health_failures\":");
    let failures = track
        .map(|t| t.failures)
        .filter(|_| e.spec.health.is_some());
    json::opt_uint(out, failures.map(u64::from));
    out.push_str(",\"next_run_at\":");
    json::opt_time(out, e.next_run_at);
    out.push('}');
}

/// Answer buffers kept for the next answer. Without them each `status` took its buffer
/// (80 KiB for 200 jobs) from the top of the heap, touched fresh pages, and freeing it
/// trimmed the heap again: a `brk` up, page faults and a `brk` down per request, half of
/// the daemon's time on the request. Buffers of an answer with thousands of jobs (MiBs,
/// served by their own `mmap`) are not kept: they would stay resident for good.
pub(super) mod spare {
    use std::sync::Mutex;

    /// Buffers kept: one for each of a couple of answers in flight at once.
    const KEPT: usize = 2;
    /// The largest buffer kept.
    const MAX_BYTES: usize = 512 * 1024;
    /// The smallest worth keeping.
    const MIN_BYTES: usize = 4 * 1024;

    static SPARE: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// An empty buffer with room for at least `bytes`: a kept one if one is that large.
    pub fn take(bytes: usize) -> String {
        let kept = SPARE.lock().ok().and_then(|mut s| {
            let at = s.iter().position(|b| b.capacity() >= bytes)?;
            Some(s.swap_remove(at))
        });
        kept.unwrap_or_else(|| String::with_capacity(bytes))
    }

    /// A buffer that was sent: kept for the next answer if its size is worth it.
    pub fn give(mut buf: String) {
        if !(MIN_BYTES..=MAX_BYTES).contains(&buf.capacity()) {
            return;
        }
        buf.clear();
        if let Ok(mut s) = SPARE.lock() {
            if s.len() < KEPT {
                s.push(buf);
            }
        }
    }
}

/// The pieces of JSON a job's text is made of, each exactly as serde_json writes it.
mod json {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn boolean(out: &mut String, b: bool) {
        out.push_str(if b { "true" } else { "false" });
    }

    pub fn uint(out: &mut String, mut n: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            // n % 10 < 10: the cast cannot truncate.
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // Only ASCII digits were written.
        out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
    }

    pub fn int(out: &mut String, n: i64) {
        if n < 0 {
            out.push('-');
        }
        uint(out, n.unsigned_abs());
    }

    pub fn opt_uint(out: &mut String, n: Option<u64>) {
        match n {
            Some(n) => uint(out, n),
            None => out.push_str("null"),
        }
    }

    /// A JSON string. Names, groups and reasons seldom hold anything to escape: those are
    /// copied as they are; the rest goes through serde_json, so escapes are its own.
    pub fn string(out: &mut String, s: &str) {
        if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            out.push('"');
            out.push_str(s);
            out.push('"');
            return;
        }
        match serde_json::to_string(s) {
            Ok(quoted) => out.push_str(&quoted),
            // Serializing a str cannot fail.
            Err(_) => out.push_str("null"),
        }
    }

    pub fn opt_string(out: &mut String, s: Option<&str>) {
        match s {
            Some(s) => string(out, s),
            None => out.push_str("null"),
        }
    }

    pub fn opt_time(out: &mut String, t: Option<SystemTime>) {
        match t {
            Some(t) => time(out, t),
            None => out.push_str("null"),
        }
    }

    /// `"2026-11-30T10:32:30.488Z"`: RFC 3339 UTC with milliseconds, as
    /// [`rfc3339`](super::rfc3339) writes it (which takes the rare time outside years
    /// 1970–9999).
    pub fn time(out: &mut String, t: SystemTime) {
        /// 10000-01-01T00:00:00Z.
        const YEAR_10000: u64 = 253_402_300_800;
        let since = match t.duration_since(UNIX_EPOCH) {
            Ok(d) if d.as_secs() < YEAR_10000 => d,
            _ => {
                out.push('"');
                out.push_str(&super::rfc3339(t));
                out.push('"');
                return;
            }
        };
        let secs = since.as_secs();
        let (days, rest) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil(days);
        let mut buf = *b"\"0000-00-00T00:00:00.000Z\"";
        let mut put = |at: usize, width: usize, mut n: u64| {
            for i in (at..at + width).rev() {
                // n % 10 < 10: the cast cannot truncate.
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(1, 4, year);
        put(6, 2, month);
        put(9, 2, day);
        put(12, 2, rest / 3600);
        put(15, 2, rest % 3600 / 60);
        put(18, 2, rest % 60);
        put(21, 3, u64::from(since.subsec_millis()));
        // Only ASCII was written.
        out.push_str(std::str::from_utf8(&buf).unwrap_or("null"));
    }

    /// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's
    /// `civil_from_days`, for days ≥ 0).
    fn civil(days: u64) -> (u64, u64, u64) {
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        (year, month, day)
    }
}

/// Batch mode's line for a job that settled: `upload-1: exited, exit 0 (success)`.
pub(super) fn batch_line(spec: &JobSpec, t: &Transition, entry: Option<&Entry>) -> String {
    let what = match (t.to, t.exitcode) {
        (JobState::Fatal, _) if t.cause == Some(protocol::Cause::Dependency) => {
            format!(
                "fatal: {}",
                t.reason.as_deref().unwrap_or("a dependency failed")
            )
        }
        (JobState::Fatal, _) => match entry.and_then(|e| e.life.spawn_error()) {
            Some(err) => format!("fatal: {err}"),
            None => format!(
                "fatal after {} failed starts{}",
                entry.map_or(0, |e| e.life.failures()),
                t.exitcode
                    .map(|c| format!(" ({})", describe_exit(c)))
                    .unwrap_or_default()
            ),
        },
        (state, Some(code)) if spec.daemon => format!("{state}, {}", describe_exit(code)),
        (state, Some(code)) => {
            let verdict = if spec.is_success(code) {
                "success"
            } else {
                "failure"
            };
            format!("{state}, {} ({verdict})", describe_exit(code))
        }
        (state, None) => state.to_string(),
    };
    let daemon = if spec.daemon { " [daemon]" } else { "" };
    format!("{}{daemon}: {what}", spec.name)
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Whole milliseconds, saturating.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::{harness, Call};
    use super::*;
    use protocol::{JobList, Selection};
    use std::time::UNIX_EPOCH;

    /// Jobs in every kind of state a status shows: running (with a health check), exited
    /// with a failure, killed by a signal, never spawned (a path that needs escaping),
    /// a daemon, a scheduled job, and one never started.
    const JOBS: &str = r#"
[defaults]
start_secs = 0
stdout = "null"
stderr = "null"
[job.sleeper]
command = ["sleep", "30"]
group = "g"
[job.sleeper.health]
exec = ["false"]
interval = "1h"
[job.failed]
command = ["sh", "-c", "exit 3"]
restart = "never"
[job.signalled]
command = ["sh", "-c", "kill -KILL $$$$"]
restart = "never"
[job.missing]
command = ["/no/such \"dir\"\t/prog"]
[job.helper]
command = ["sleep", "30"]
daemon = true
[job.nightly]
command = ["true"]
schedule = "0 3 * * *"
[job.idle]
command = ["true"]
autostart = false
"#;

    /// `"uptime_ms":N` set to 0, so two texts taken a moment apart compare.
    fn without_uptimes(text: &str) -> String {
        let key = "\"uptime_ms\":";
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(key) {
            out.push_str(&rest[..at + key.len()]);
            rest = &rest[at + key.len()..];
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                out.push('0');
                rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            }
        }
        out.push_str(rest);
        out
    }

    /// The status answer is the same text serde writes for the `Job`s of the same table:
    /// every field, in the protocol's order, with serde_json's escapes.
    #[tokio::test]
    async fn status_text_is_what_serde_writes_for_the_jobs() {
        let h = harness::start(JOBS);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (jobs, _) = h.handle.subscribe().await.expect("snapshot");
            let state = |n: &str| jobs.iter().find(|j| j.name == n).map(|j| j.state);
            let settled = state("failed") == Some(JobState::Exited)
                && state("signalled") == Some(JobState::Exited)
                && state("missing") == Some(JobState::Fatal)
                && state("sleeper") == Some(JobState::Running)
                && state("helper") == Some(JobState::Running);
            if settled {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "jobs never settled: {jobs:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for sel in [Selection::default(), Selection::group("g")] {
            let fast = h
                .handle
                .call(Call::Status(sel.clone()))
                .await
                .expect("status");
            let (mut jobs, _) = h.handle.subscribe().await.expect("snapshot");
            if sel.group.is_some() {
                jobs.retain(|j| j.group == "g");
            }
            let slow = serde_json::to_string(&JobList::new(jobs)).expect("encode");
            assert_eq!(without_uptimes(fast.get()), without_uptimes(&slow));
            let list: JobList = serde_json::from_str(fast.get()).expect("a job list");
            assert!(!list.jobs.is_empty());
        }
        let (jobs, _) = h.handle.subscribe().await.expect("snapshot");
        let get = |n: &str| jobs.iter().find(|j| j.name == n).expect(n).clone();
        assert_eq!(
            get("signalled").signal.as_deref(),
            Some("SIGKILL"),
            "{:?}",
            get("signalled")
        );
        assert!(get("missing")
            .spawn_error
            .expect("spawn error")
            .contains('"'));
        assert!(get("nightly").next_run_at.is_some());
        assert_eq!(get("sleeper").health, Some(protocol::Health::Unknown));
        assert!(get("sleeper").uptime_ms.is_some());
        h.finish().await;
    }

    /// The answer as serde writes it for the table's `Job`s, and as `status` writes it.
    fn both(sup: &super::super::Supervisor) -> (String, String) {
        let jobs = sup.jobs.values().map(job_status).collect();
        let slow = serde_json::to_string(&JobList::new(jobs)).expect("encode");
        let fast = job_list(sup.jobs.values(), None);
        (without_uptimes(&fast), without_uptimes(&slow))
    }

    /// A job's text is kept from one answer to the next while nothing changes — also across
    /// the loop's work after a turn — and a change through the table (any field: a state
    /// change fed to the lifecycle, an output error, a schedule) drops that job's text
    /// only, so the next answer says what changed.
    #[tokio::test]
    async fn kept_texts_last_until_their_job_changes() {
        let (mut sup, _handle, _writer) = harness::build(JOBS, false);
        let kept = |sup: &super::super::Supervisor| -> Vec<String> {
            sup.jobs
                .values()
                .filter(|e| e.encoded.is_kept())
                .map(|e| e.spec.name.clone())
                .collect()
        };
        assert!(kept(&sup).is_empty());
        let (fast, slow) = both(&sup);
        assert_eq!(fast, slow);
        assert_eq!(kept(&sup).len(), sup.jobs.len());
        sup.after_turn();
        assert_eq!(
            kept(&sup).len(),
            sup.jobs.len(),
            "a turn with no change keeps them"
        );

        let e = sup.jobs.get_mut("failed").expect("failed");
        e.output_error = Some("cannot open its log: \"disk\" full".into());
        assert!(!kept(&sup).contains(&"failed".to_owned()));
        assert_eq!(
            kept(&sup).len(),
            sup.jobs.len() - 1,
            "only the changed job's text goes"
        );
        let (fast, slow) = both(&sup);
        assert!(fast.contains("disk\\\" full"), "{fast}");
        assert_eq!(fast, slow);

        let e = sup.jobs.get_mut("idle").expect("idle");
        e.next_run_at = Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let (fast, slow) = both(&sup);
        assert!(
            fast.contains("\"next_run_at\":\"2027-01-15T08:00:00.000Z\""),
            "{fast}"
        );
        assert_eq!(fast, slow);

        // A state change fed to the lifecycle: `idle` starts (a real `true` process).
        sup.feed("idle", crate::lifecycle::Input::Start);
        let (fast, slow) = both(&sup);
        assert_eq!(fast, slow);
        let started = job_list(sup.jobs.values(), None);
        let list: JobList = serde_json::from_str(&started).expect("a job list");
        let idle = list.jobs.iter().find(|j| j.name == "idle").expect("idle");
        assert!(idle.alive, "{idle:?}");
        assert!(idle.uptime_ms.is_some() && idle.pid.is_some(), "{idle:?}");
    }

    #[test]
    fn the_history_error_rides_after_the_jobs_as_serde_writes_it() {
        let why = "cannot create state_dir \"/s\": Not a directory";
        let list = JobList {
            history_error: Some(why.into()),
            ..JobList::new(vec![])
        };
        assert_eq!(
            job_list(std::iter::empty(), Some(why)),
            serde_json::to_string(&list).expect("encode")
        );
        assert_eq!(job_list(std::iter::empty(), None), r#"{"jobs":[]}"#);
    }

    #[test]
    fn times_are_written_as_humantime_writes_them() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut times = vec![
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_millis(951_782_400_000), // 2000-02-29
            UNIX_EPOCH + Duration::from_millis(4_107_542_399_999), // 2100-02-28T23:59:59.999
            UNIX_EPOCH + Duration::from_secs(253_402_300_799),   // 9999-12-31T23:59:59
        ];
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let nanos = u32::try_from(seed >> 34).expect("30 bits") % 1_000_000_000;
            times.push(UNIX_EPOCH + Duration::new(seed % 253_402_300_800, nanos));
        }
        for t in times {
            let mut out = String::new();
            json::time(&mut out, t);
            assert_eq!(out, format!("\"{}\"", rfc3339(t)), "{t:?}");
        }
    }

    #[test]
    fn strings_and_numbers_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plain",
            "quote \" and backslash \\",
            "tab\tnew line\n\u{1}\u{1f}\u{7f}",
            "ünïcødé ✓ \u{2028}",
            "/",
        ] {
            let mut out = String::new();
            json::string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).expect("encode"));
        }
        for n in [0, 1, 9, 10, 4_294_967_295, u64::MAX] {
            let mut out = String::new();
            json::uint(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        for n in [i64::from(i32::MIN), -15, -1, 0, 3, i64::from(i32::MAX)] {
            let mut out = String::new();
            json::int(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
