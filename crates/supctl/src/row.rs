//! What the status table reads of a job: a [`Row`], decoded straight from the answer's
//! text with its strings borrowed from it.
//!
//! `supctl status` of thousands of jobs spent most of its time decoding every field of
//! every [`Job`] into owned strings it then dropped unread. A `Row` has only the fields
//! the table and the one-line renderings print; the others (`started_at`, `ended_at`,
//! `signal`, `success`, `output_error`, usage, and any field a newer daemon adds) are
//! skipped by the decoder without being copied or checked, and a string without an
//! escape in it is a slice of the answer, not a copy.

use protocol::{Cause, Health, Job, JobState};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;

/// One job as the status table sees it. The fields have the names and meanings of
/// [`Job`]'s; a field the daemon left out is `None` as it is for `Job`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Row<'a> {
    /// The job's name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its group.
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    /// Its state.
    pub state: JobState,
    /// Whether a process exists.
    pub alive: bool,
    /// The live (or stopping) process's pid.
    pub pid: Option<u32>,
    /// The last run's exit code (`-N`: signal N).
    pub exitcode: Option<i32>,
    /// A background helper.
    pub daemon: bool,
    /// How many times it was restarted.
    pub restarts: u32,
    /// How long the live process has been up.
    pub uptime_ms: Option<u64>,
    /// Why the last spawn failed.
    #[serde(borrow, default, deserialize_with = "text")]
    pub spawn_error: Option<Cow<'a, str>>,
    /// Why the last run ended, or why the job is not running.
    pub cause: Option<Cause>,
    /// The same in words.
    #[serde(borrow, default, deserialize_with = "text")]
    pub reason: Option<Cow<'a, str>>,
    /// What its health check says.
    pub health: Option<Health>,
    /// The last health check's result.
    #[serde(borrow, default, deserialize_with = "text")]
    pub health_output: Option<Cow<'a, str>>,
    /// Failed health checks in a row.
    pub health_failures: Option<u32>,
    /// When a scheduled job runs next (RFC 3339).
    #[serde(borrow, default, deserialize_with = "text")]
    pub next_run_at: Option<Cow<'a, str>>,
}

/// An optional string, borrowed from the answer when it has no escapes. (serde borrows
/// a `Cow<str>` field only when it is not inside an `Option`.)
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'de>>::deserialize(d)?.map(|t| t.0))
}

impl<'a> From<&'a Job> for Row<'a> {
    fn from(j: &'a Job) -> Self {
        let text = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
        Row {
            name: Cow::Borrowed(&j.name),
            group: Cow::Borrowed(&j.group),
            state: j.state,
            alive: j.alive,
            pid: j.pid,
            exitcode: j.exitcode,
            daemon: j.daemon,
            restarts: j.restarts,
            uptime_ms: j.uptime_ms,
            spawn_error: text(&j.spawn_error),
            cause: j.cause,
            reason: text(&j.reason),
            health: j.health,
            health_output: text(&j.health_output),
            health_failures: j.health_failures,
            next_run_at: text(&j.next_run_at),
        }
    }
}

/// The `status` result as the table reads it (see [`protocol::JobList`]).
#[derive(Debug, Deserialize)]
pub struct Rows<'a> {
    /// The jobs, in table order.
    #[serde(borrow)]
    pub jobs: Vec<Row<'a>>,
    /// Why the run history is not being written; absent while it works or is off.
    #[serde(borrow, default, deserialize_with = "text")]
    pub history_error: Option<Cow<'a, str>>,
}

/// The `status` answer to request `id` in `line`, read the quick way when `line` is
/// laid out exactly as supervisord writes it: the envelope's keys, then each job's 23
/// keys in their order, no spaces, no string with an escape in it, integers only where
/// the table reads one. Anything else — another request's answer, an error, a
/// notification, a newer daemon's extra field, a name with a quote in it, any doubt —
/// is `None`, and the caller decodes the line with serde as before; so wherever this
/// answers, serde's decode of the same line gives the same rows (the tests hold it to
/// that). It is several times faster than serde's decode, which matches each of the
/// 23 keys of every job by name and checks every value's syntax in general.
pub fn quick(line: &str, id: u64) -> Option<Rows<'_>> {
    let mut s = Scan { text: line, at: 0 };
    s.lit("{\"jsonrpc\":\"2.0\",\"id\":")?;
    if s.uint()? != id {
        return None;
    }
    s.lit(",\"result\":{\"jobs\":[")?;
    let mut jobs = Vec::with_capacity(line.len() / 400);
    if !s.eat("]") {
        loop {
            jobs.push(s.row()?);
            if s.eat("]") {
                break;
            }
            s.lit(",")?;
        }
    }
    let history_error = if s.eat(",\"history_error\":") {
        Some(Cow::Borrowed(s.string()?))
    } else {
        None
    };
    s.lit("}}")?;
    // What serde allows after a document: JSON's white space.
    let rest = &s.text.as_bytes()[s.at..];
    if !rest
        .iter()
        .all(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
    {
        return None;
    }
    Some(Rows {
        jobs,
        history_error,
    })
}

/// A position in a line being read by [`quick`]; every method is `None` where the text
/// is not what it expects.
struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    /// Whether `lit` comes next (then it is passed). Inlined, so that each literal's
    /// comparison is compiled for its length.
    #[inline(always)]
    fn eat(&mut self, lit: &str) -> bool {
        let found = self.text.as_bytes()[self.at..].starts_with(lit.as_bytes());
        if found {
            self.at += lit.len();
        }
        found
    }

    #[inline(always)]
    fn lit(&mut self, lit: &str) -> Option<()> {
        self.eat(lit).then_some(())
    }

    /// `null` as `None`, otherwise what `value` reads.
    fn opt<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.eat("null") {
            Some(None)
        } else {
            value(self).map(Some)
        }
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.eat("true") {
            Some(true)
        } else if self.eat("false") {
            Some(false)
        } else {
            None
        }
    }

    /// A string without escapes or control characters (which JSON forbids unescaped).
    fn string(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let len = bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if bytes[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Both ends are at an ASCII quote, so at character boundaries.
        self.text.get(start..start + len)
    }

    /// A non-negative integer as JSON writes it (no leading zero, no fraction or
    /// exponent: the literal that follows must then match), within `u64`.
    fn uint(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let digits = bytes[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &bytes[self.at..self.at + digits];
        if digits == 0 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        let mut n: u64 = 0;
        for d in text {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.at += digits;
        Some(n)
    }

    fn uint32(&mut self) -> Option<u32> {
        u32::try_from(self.uint()?).ok()
    }

    /// An `i32`: a `uint`, or `-` and a `uint` that does not start with 0.
    fn int32(&mut self) -> Option<i32> {
        if !self.eat("-") {
            return i32::try_from(self.uint()?).ok();
        }
        if self.text.as_bytes().get(self.at) == Some(&b'0') {
            return None;
        }
        i32::try_from(-i64::try_from(self.uint()?).ok()?).ok()
    }

    /// A field the table does not print: `null`, a boolean, a plain string or a
    /// `uint` (anything else in it is left to serde).
    fn skip(&mut self) -> Option<()> {
        match self.text.as_bytes().get(self.at)? {
            b'"' => self.string().map(drop),
            b'n' => self.lit("null"),
            b't' | b'f' => self.boolean().map(drop),
            _ => self.uint().map(drop),
        }
    }

    /// One of the protocol's words (a state, a cause, a health), by its serde name.
    fn word<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let word = self.string()?;
        T::deserialize(serde::de::value::BorrowedStrDeserializer::<
            serde::de::value::Error,
        >::new(word))
        .ok()
    }

    fn row(&mut self) -> Option<Row<'a>> {
        let text = |s: &mut Self| s.string().map(Cow::Borrowed);
        self.lit("{\"name\":")?;
        let name = text(self)?;
        self.lit(",\"group\":")?;
        let group = text(self)?;
        self.lit(",\"state\":")?;
        let state = self.word()?;
        self.lit(",\"alive\":")?;
        let alive = self.boolean()?;
        self.lit(",\"pid\":")?;
        let pid = self.opt(Self::uint32)?;
        self.lit(",\"exitcode\":")?;
        let exitcode = self.opt(Self::int32)?;
        self.lit(",\"signal\":")?;
        self.skip()?;
        self.lit(",\"success\":")?;
        self.skip()?;
        self.lit(",\"daemon\":")?;
        let daemon = self.boolean()?;
        self.lit(",\"restarts\":")?;
        let restarts = self.uint32()?;
        self.lit(",\"started_at\":")?;
        self.skip()?;
        self.lit(",\"ended_at\":")?;
        self.skip()?;
        self.lit(",\"uptime_ms\":")?;
        let uptime_ms = self.opt(Self::uint)?;
        self.lit(",\"spawn_error\":")?;
        let spawn_error = self.opt(text)?;
        self.lit(",\"cause\":")?;
        let cause = self.opt(Self::word)?;
        self.lit(",\"reason\":")?;
        let reason = self.opt(text)?;
        self.lit(",\"output_error\":")?;
        self.skip()?;
        self.lit(",\"cpu_ms\":")?;
        self.skip()?;
        self.lit(",\"memory_bytes\":")?;
        self.skip()?;
        self.lit(",\"health\":")?;
        let health = self.opt(Self::word)?;
        self.lit(",\"health_output\":")?;
        let health_output = self.opt(text)?;
        self.lit(",\"health_failures\":")?;
        let health_failures = self.opt(Self::uint32)?;
        self.lit(",\"next_run_at\":")?;
        let next_run_at = self.opt(text)?;
        self.lit("}")?;
        Some(Row {
            name,
            group,
            state,
            alive,
            pid,
            exitcode,
            daemon,
            restarts,
            uptime_ms,
            spawn_error,
            cause,
            reason,
            health,
            health_output,
            health_failures,
            next_run_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::JobList;

    /// A job with every field set, and one with every optional field `null`.
    fn sample() -> Vec<Job> {
        let full = Job {
            name: "web \"1\"\tü".into(),
            group: "front\\end".into(),
            state: JobState::Running,
            alive: true,
            pid: Some(4_294_967_295),
            exitcode: Some(-15),
            signal: Some("SIGTERM".into()),
            success: Some(false),
            daemon: true,
            restarts: 7,
            started_at: Some("2026-11-30T15:00:00.123Z".into()),
            ended_at: Some("2026-11-30T14:59:59.001Z".into()),
            uptime_ms: Some(u64::MAX),
            spawn_error: Some("cannot run \"x\":\nno such program".into()),
            cause: Some(Cause::Unhealthy),
            reason: Some("unhealthy: 3 checks failed\u{1}".into()),
            output_error: Some("logs/web.log: permission denied".into()),
            cpu_ms: Some(1250),
            memory_bytes: Some(3 << 20),
            health: Some(Health::Unhealthy),
            health_output: Some("HTTP 500\r\nsecond line".into()),
            health_failures: Some(3),
            next_run_at: Some("2026-12-01T00:00:00.000Z".into()),
        };
        let bare = Job {
            name: "idle".into(),
            group: "idle".into(),
            state: JobState::Stopped,
            alive: false,
            pid: None,
            exitcode: None,
            signal: None,
            success: None,
            daemon: false,
            restarts: 0,
            started_at: None,
            ended_at: None,
            uptime_ms: None,
            spawn_error: None,
            cause: None,
            reason: None,
            output_error: None,
            cpu_ms: None,
            memory_bytes: None,
            health: None,
            health_output: None,
            health_failures: None,
            next_run_at: None,
        };
        vec![full, bare]
    }

    /// Decoding a `status` answer into rows gives what the full decode into `Job`s
    /// gives, field for field, escapes and all.
    #[test]
    fn rows_agree_with_the_full_job_decode() {
        let mut list = JobList::new(sample());
        list.history_error = Some("history.jsonl: read-only \"fs\"".into());
        let text = serde_json::to_string(&list).expect("a JobList encodes");
        let full: JobList = serde_json::from_str(&text).expect("the full decode");
        let rows: Rows<'_> = serde_json::from_str(&text).expect("the row decode");
        let expected: Vec<Row<'_>> = full.jobs.iter().map(Row::from).collect();
        assert_eq!(rows.jobs, expected);
        assert_eq!(rows.history_error.as_deref(), full.history_error.as_deref());
        // A string without escapes is borrowed from the text, not copied.
        assert!(matches!(rows.jobs[1].name, Cow::Borrowed("idle")));
        assert!(matches!(rows.jobs[0].name, Cow::Owned(_)));
        assert!(matches!(rows.jobs[0].next_run_at, Some(Cow::Borrowed(_))));
        assert!(matches!(rows.jobs[0].reason, Some(Cow::Owned(_))));
    }

    /// The line supervisord sends for `list`, answering request `id`.
    fn answer_line(list: &JobList, id: u64) -> String {
        let result = serde_json::to_string(list).expect("a JobList encodes");
        format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}\n")
    }

    /// serde's rows of an answer line, or `None` where serde refuses it.
    fn serde_rows(line: &str, id: u64) -> Option<Result<Rows<'_>, String>> {
        crate::client::answer::<Rows<'_>>(line, id).map(|r| r.map_err(|e| e.to_string()))
    }

    /// Jobs without a string that needs an escape, in every shape the table prints.
    fn plain_jobs() -> Vec<Job> {
        let mut jobs = sample();
        let full = &mut jobs[0];
        full.name = "web-ü-1".into();
        full.group = "front".into();
        full.spawn_error = Some("cannot run x: no such program".into());
        full.reason = Some("unhealthy: 3 checks failed".into());
        full.health_output = Some("HTTP 500".into());
        let mut stopped = jobs[1].clone();
        stopped.name = "stopped".into();
        stopped.exitcode = Some(i32::MIN);
        stopped.cause = Some(Cause::Stopped);
        stopped.reason = Some("stopped by request".into());
        stopped.success = Some(true);
        stopped.signal = Some("SIG2147483648".into());
        let mut waiting = jobs[1].clone();
        waiting.state = JobState::Waiting;
        waiting.exitcode = Some(0);
        waiting.health = Some(Health::Unknown);
        waiting.health_failures = Some(0);
        jobs.extend([stopped, waiting]);
        jobs
    }

    /// The quick reading of supervisord's layout gives serde's rows, and declines
    /// (leaving the line to serde) another request's answer, an escape, an error.
    #[test]
    fn the_quick_reading_is_serdes_reading() {
        let mut list = JobList::new(plain_jobs());
        let line = answer_line(&list, 7);
        let quick_rows = quick(&line, 7).expect("supervisord's own layout is read quickly");
        let serde = serde_rows(&line, 7).expect("an answer").expect("rows");
        assert_eq!(quick_rows.jobs, serde.jobs);
        assert_eq!(quick_rows.jobs.len(), 4);
        assert!(quick(&line, 8).is_none(), "another request's answer");
        list.history_error = Some("history.jsonl: read-only file system".into());
        let line = answer_line(&list, 1);
        let quick_rows = quick(&line, 1).expect("with a history error");
        assert_eq!(
            quick_rows.history_error.as_deref(),
            list.history_error.as_deref()
        );
        assert_eq!(
            quick(&answer_line(&JobList::new(vec![]), 1), 1).map(|r| r.jobs),
            Some(vec![])
        );
        // A string with an escape, an error, a notification: left to serde.
        let escaped = answer_line(&JobList::new(sample()), 1);
        assert!(quick(&escaped, 1).is_none());
        let serde = serde_rows(&escaped, 1).expect("an answer").expect("rows");
        let expected = JobList::new(sample());
        assert_eq!(
            serde.jobs,
            expected.jobs.iter().map(Row::from).collect::<Vec<_>>()
        );
        for other in [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"no such job: x"}}"#,
            r#"{"jsonrpc":"2.0","method":"event","params":{}}"#,
        ] {
            assert!(quick(other, 1).is_none(), "{other}");
        }
    }

    /// Wherever the quick reading answers — on supervisord's line with any one byte
    /// changed, or cut short anywhere — serde reads the same rows from it: a change
    /// the quick reading cannot vouch for is left to serde, which then refuses it or
    /// reads it its own way.
    #[test]
    fn the_quick_reading_never_answers_where_serde_differs() {
        let list = JobList {
            jobs: plain_jobs(),
            success: None,
            history_error: Some("off".into()),
        };
        let line = answer_line(&list, 3);
        let mut answered = 0;
        let mut check = |text: &str| {
            if let Some(q) = quick(text, 3) {
                answered += 1;
                let serde = serde_rows(text, 3)
                    .unwrap_or_else(|| panic!("serde skips what quick read: {text}"))
                    .unwrap_or_else(|e| panic!("serde refuses what quick read ({e}): {text}"));
                assert_eq!(q.jobs, serde.jobs, "{text}");
                assert_eq!(q.history_error, serde.history_error, "{text}");
            }
        };
        for cut in 0..line.len() {
            if let Some(prefix) = line.get(..cut) {
                check(prefix);
            }
        }
        let replacements = [
            " ", "0", "1", "9", "-", "\"", "\\", "x", ".", "e", "}", "]", ",", "\u{1}", "é", "n",
        ];
        for (at, _) in line.char_indices() {
            for r in replacements {
                let mut changed = line.clone();
                let end = at + line[at..].chars().next().map_or(0, char::len_utf8);
                changed.replace_range(at..end, r);
                check(&changed);
                let mut inserted = line.clone();
                inserted.insert_str(at, r);
                check(&inserted);
            }
        }
        // It did answer on many of them (digits changed inside numbers, letters
        // inside names): the check above is not empty.
        assert!(answered > 100, "{answered}");
    }

    /// Fields the table does not print, and fields it does not know (a newer daemon's),
    /// are skipped whatever their shape; a field left out reads as `null`.
    #[test]
    fn unknown_and_unprinted_fields_are_skipped() {
        let text = r#"{"jobs":[{"name":"a","group":"g","state":"exited","alive":false,
            "daemon":false,"restarts":0,"exitcode":3,"cause":"exit","reason":"exit 3",
            "started_at":{"odd":[1,2,{"x":null}]},"future_field":[true,"\u00e9",1.5e3],
            "signal":17,"success":"maybe"}],"success":true,"also_new":{"k":"v"}}"#;
        let rows: Rows<'_> = serde_json::from_str(text).expect("the row decode");
        let [a] = rows.jobs.as_slice() else {
            panic!("one row: {rows:?}");
        };
        assert_eq!((a.name.as_ref(), a.state), ("a", JobState::Exited));
        assert_eq!((a.exitcode, a.cause), (Some(3), Some(Cause::Exit)));
        assert_eq!(a.reason.as_deref(), Some("exit 3"));
        assert_eq!((a.pid, a.uptime_ms, a.health), (None, None, None));
        assert!(rows.history_error.is_none());
    }

    /// What the table needs is still required: a row without a name or a state is an
    /// unreadable answer, as it is for the full decode.
    #[test]
    fn a_row_missing_what_the_table_prints_is_refused() {
        for text in [
            r#"{"jobs":[{"group":"g","state":"running","alive":true,"daemon":false,"restarts":0}]}"#,
            r#"{"jobs":[{"name":"a","group":"g","alive":true,"daemon":false,"restarts":0}]}"#,
            r#"{"jobs":[{"name":"a","group":"g","state":"sleepy","alive":true,"daemon":false,"restarts":0}]}"#,
        ] {
            assert!(serde_json::from_str::<Rows<'_>>(text).is_err(), "{text}");
            assert!(serde_json::from_str::<JobList>(text).is_err(), "{text}");
        }
    }
}
