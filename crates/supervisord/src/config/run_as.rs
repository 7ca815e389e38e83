//! The job keys that shape the process's credentials and resources: `user`, `umask` and
//! `[job.X.limits]`. Parsing is pure; resolving a user reads the passwd and group
//! databases, once, when the job file is loaded.

use crate::cgroup::{Controller, Limits as CgroupLimits, Max};
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use toml::Spanned;

/// Who a job runs as, resolved from `user` when the file was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups (the user's groups, as `initgroups` would set them).
    pub groups: Vec<u32>,
    /// `USER`, `LOGNAME`, `HOME`, `SHELL` from the passwd entry (empty without one).
    pub env: Vec<(String, String)>,
}

/// One rlimit a job sets (soft = hard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `RLIMIT_NOFILE`.
    Nofile,
    /// `RLIMIT_NPROC`.
    Nproc,
    /// `RLIMIT_CORE`.
    Core,
    /// `RLIMIT_STACK`.
    Stack,
    /// `RLIMIT_MEMLOCK`.
    Memlock,
}

/// An rlimit's value; `None` is "unlimited".
pub type Rlim = Option<u64>;

/// A user as written: a name or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Id {
    Name(String),
    Num(u32),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Name(n) => write!(f, "{n:?}"),
            Id::Num(n) => write!(f, "{n}"),
        }
    }
}

fn id(s: &str) -> Result<Id, String> {
    if s.is_empty() {
        return Err("an empty name".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Id::Num)
            .map_err(|_| format!("{s} is out of range"));
    }
    Ok(Id::Name(s.to_owned()))
}

/// Split `"name"`, `"name:group"` or `"uid:gid"`.
fn split_user(s: &str) -> Result<(Id, Option<Id>), String> {
    match s.split_once(':') {
        Some((u, g)) => Ok((id(u)?, Some(id(g)?))),
        None => Ok((id(s)?, None)),
    }
}

/// `umask = "027"` (octal digits) or a number such as `0o027`.
pub fn parse_umask(v: &toml::Value) -> Result<u32, String> {
    let n = match v {
        toml::Value::String(s)
            if !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) =>
        {
            u32::from_str_radix(s, 8).map_err(|_| format!("umask {s:?} is out of range"))?
        }
        toml::Value::Integer(i) => {
            u32::try_from(*i).map_err(|_| format!("umask {i} is negative"))?
        }
        other => {
            return Err(format!(
                "umask must be octal digits such as \"027\", not {other}"
            ))
        }
    };
    if n > 0o777 {
        return Err(format!("umask {n:o} is more than 777"));
    }
    Ok(n)
}

/// An rlimit value as written: a number, a size string, or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RawRlim(pub Rlim);

impl<'de> Deserialize<'de> for RawRlim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawRlim;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or \"unlimited\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawRlim, E> {
                if v.eq_ignore_ascii_case("unlimited") || v.eq_ignore_ascii_case("infinity") {
                    return Ok(RawRlim(None));
                }
                super::parse_size(v)
                    .map(|n| RawRlim(Some(n)))
                    .map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawRlim, E> {
                u64::try_from(v)
                    .map(|n| RawRlim(Some(n)))
                    .map_err(|_| E::custom(format!("a limit cannot be negative ({v})")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawRlim, E> {
                Ok(RawRlim(Some(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A cgroup limit that was asked for: where, its key, the controller it needs.
pub(super) type CgroupLimit = (std::ops::Range<usize>, &'static str, Controller);

/// `limits.cpu` as written: a number of CPUs, or `"unlimited"`; kept as `cpu.max`'s quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RawCpu(pub Max);

impl<'de> Deserialize<'de> for RawCpu {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawCpu;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of CPUs such as 0.5 or 2, or \"unlimited\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawCpu, E> {
                if v.eq_ignore_ascii_case("unlimited") || v.eq_ignore_ascii_case("max") {
                    return Ok(RawCpu(None));
                }
                Err(E::custom(format!(
                    "cpu must be a number of CPUs such as 0.5 or 2, or \"unlimited\", not {v:?}"
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawCpu, E> {
                crate::cgroup::cpu_quota(v)
                    .map(|q| RawCpu(Some(q)))
                    .map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawCpu, E> {
                // Whole CPUs; exact as a float far beyond any machine's count.
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawCpu, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(V)
    }
}

/// A cgroup limit that must be more than 0 (`memory`, `tasks`), or "unlimited".
fn positive(
    v: Option<Spanned<RawRlim>>,
    key: &str,
) -> Result<Option<Spanned<Max>>, (std::ops::Range<usize>, String)> {
    match v {
        Some(s) if s.get_ref().0 == Some(0) => Err((
            s.span(),
            format!("`limits.{key}` must be more than 0 (or \"unlimited\")"),
        )),
        Some(s) => {
            let span = s.span();
            Ok(Some(Spanned::new(span, s.into_inner().0)))
        }
        None => Ok(None),
    }
}

/// What `[job.X.limits]` resolves to.
pub(super) struct Resolved {
    /// rlimits, set in the child.
    pub rlimits: Vec<(Resource, Rlim)>,
    /// cgroup limits, written into each run's cgroup.
    pub cgroup: CgroupLimits,
    /// Where each cgroup limit was asked for, to refuse it where its controller is
    /// missing.
    pub asks: Vec<CgroupLimit>,
}

/// `[job.X.limits]` as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Limits")]
pub(super) struct RawLimits {
    /// Open files: a number or "unlimited".
    #[schemars(with = "Option<serde_json::Value>")]
    nofile: Option<RawRlim>,
    /// Processes of the job's user: a number or "unlimited".
    #[schemars(with = "Option<serde_json::Value>")]
    nproc: Option<RawRlim>,
    /// Core file size: bytes, a size such as "1GiB", or "unlimited".
    #[schemars(with = "Option<serde_json::Value>")]
    core: Option<RawRlim>,
    /// Stack size: bytes, a size, or "unlimited".
    #[schemars(with = "Option<serde_json::Value>")]
    stack: Option<RawRlim>,
    /// Locked memory: bytes, a size, or "unlimited".
    #[schemars(with = "Option<serde_json::Value>")]
    memlock: Option<RawRlim>,
    /// cgroup v2 memory.max: bytes, a size such as "512MiB", or "unlimited". Needs the
    /// memory controller.
    #[schemars(with = "Option<serde_json::Value>")]
    memory: Option<Spanned<RawRlim>>,
    /// cgroup v2 cpu.max, in CPUs (1.5 = 150 ms per 100 ms), or "unlimited". Needs the
    /// cpu controller.
    #[schemars(with = "Option<serde_json::Value>")]
    cpu: Option<Spanned<RawCpu>>,
    /// cgroup v2 pids.max: processes and threads of a run, or "unlimited". Needs the
    /// pids controller.
    #[schemars(with = "Option<serde_json::Value>")]
    tasks: Option<Spanned<RawRlim>>,
}

impl RawLimits {
    /// Key by key, this table's values winning over `defaults`'.
    pub(super) fn over(self, d: RawLimits) -> RawLimits {
        RawLimits {
            nofile: self.nofile.or(d.nofile),
            nproc: self.nproc.or(d.nproc),
            core: self.core.or(d.core),
            stack: self.stack.or(d.stack),
            memlock: self.memlock.or(d.memlock),
            memory: self.memory.or(d.memory),
            cpu: self.cpu.or(d.cpu),
            tasks: self.tasks.or(d.tasks),
        }
    }

    /// The rlimits to set and the cgroup limits to write, or the span of a bad value and
    /// why.
    pub(super) fn resolve(self) -> Result<Resolved, (std::ops::Range<usize>, String)> {
        let memory = positive(self.memory, "memory")?;
        let tasks = positive(self.tasks, "tasks")?;
        let cpu = self.cpu.map(|c| {
            let span = c.span();
            Spanned::new(span, c.into_inner().0)
        });
        let mut asks = Vec::new();
        for (key, controller, v) in [
            ("memory", Controller::Memory, &memory),
            ("cpu", Controller::Cpu, &cpu),
            ("tasks", Controller::Pids, &tasks),
        ] {
            if let Some(v) = v {
                asks.push((v.span(), key, controller));
            }
        }
        let value = |v: Option<Spanned<Max>>| v.map(Spanned::into_inner);
        Ok(Resolved {
            rlimits: [
                (Resource::Nofile, self.nofile),
                (Resource::Nproc, self.nproc),
                (Resource::Core, self.core),
                (Resource::Stack, self.stack),
                (Resource::Memlock, self.memlock),
            ]
            .into_iter()
            .filter_map(|(r, v)| v.map(|v| (r, v.0)))
            .collect(),
            cgroup: CgroupLimits {
                memory: value(memory),
                cpu: value(cpu),
                tasks: value(tasks),
            },
            asks,
        })
    }
}

/// Resolve `user` against the passwd and group databases, and check that this daemon
/// can become that user: it must be root, or that user already.
pub fn resolve_user(text: &str) -> Result<RunAs, String> {
    use nix::unistd::{Gid, Group, Uid, User};
    let (user, group) = split_user(text)?;
    let entry = match &user {
        Id::Name(n) => match User::from_name(n) {
            Ok(Some(u)) => Some(u),
            Ok(None) => return Err(format!("no user {n:?} on this machine")),
            Err(e) => return Err(format!("cannot look up user {n:?}: {e}")),
        },
        Id::Num(n) => User::from_uid(Uid::from_raw(*n)).ok().flatten(),
    };
    let uid = match (&user, &entry) {
        (Id::Num(n), _) => *n,
        (_, Some(u)) => u.uid.as_raw(),
        (Id::Name(n), None) => return Err(format!("no user {n:?} on this machine")),
    };
    let gid = match &group {
        Some(Id::Num(g)) => *g,
        Some(Id::Name(g)) => match Group::from_name(g) {
            Ok(Some(g)) => g.gid.as_raw(),
            Ok(None) => return Err(format!("no group {g:?} on this machine")),
            Err(e) => return Err(format!("cannot look up group {g:?}: {e}")),
        },
        None => match &entry {
            Some(u) => u.gid.as_raw(),
            None => {
                return Err(format!(
                    "uid {uid} has no passwd entry: give its group too (\"{uid}:GID\")"
                ))
            }
        },
    };
    let me = nix::unistd::geteuid();
    if !me.is_root() && (me.as_raw() != uid || nix::unistd::getegid().as_raw() != gid) {
        return Err(format!(
            "`user = {text:?}` needs supervisord to run as root (it runs as uid {me})"
        ));
    }
    let mut groups = vec![gid];
    let mut env = Vec::new();
    if let Some(u) = &entry {
        if let Ok(name) = std::ffi::CString::new(u.name.as_bytes()) {
            if let Ok(all) = nix::unistd::getgrouplist(&name, Gid::from_raw(gid)) {
                groups = all.iter().map(|g| g.as_raw()).collect();
            }
        }
        env.push(("USER".to_owned(), u.name.clone()));
        env.push(("LOGNAME".to_owned(), u.name.clone()));
        env.push(("HOME".to_owned(), path_text(&u.dir)));
        env.push(("SHELL".to_owned(), path_text(&u.shell)));
    }
    groups.dedup();
    Ok(RunAs {
        uid,
        gid,
        groups,
        env,
    })
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_forms_split() {
        assert_eq!(split_user("app"), Ok((Id::Name("app".into()), None)));
        assert_eq!(
            split_user("app:staff"),
            Ok((Id::Name("app".into()), Some(Id::Name("staff".into()))))
        );
        assert_eq!(
            split_user("1001:1002"),
            Ok((Id::Num(1001), Some(Id::Num(1002))))
        );
        assert!(split_user("").is_err());
        assert!(split_user("app:").is_err());
        assert!(split_user("99999999999").is_err());
    }

    #[test]
    fn umask_is_octal() {
        assert_eq!(parse_umask(&toml::Value::String("027".into())), Ok(0o27));
        assert_eq!(parse_umask(&toml::Value::String("0".into())), Ok(0));
        assert_eq!(parse_umask(&toml::Value::Integer(0o22)), Ok(0o22));
        assert!(parse_umask(&toml::Value::String("089".into())).is_err());
        assert!(parse_umask(&toml::Value::String("1777".into())).is_err());
        assert!(parse_umask(&toml::Value::String(String::new())).is_err());
        assert!(parse_umask(&toml::Value::Integer(-1)).is_err());
        assert!(parse_umask(&toml::Value::Boolean(true)).is_err());
    }

    #[test]
    fn root_resolves_with_its_passwd_entry() {
        // Every Linux system has uid 0 named in its passwd file.
        let Ok(root) = resolve_user("0:0") else {
            // Not root: switching to root is refused, which is the other half.
            assert!(
                resolve_user("0:0").is_err_and(|e| e.contains("needs supervisord to run as root"))
            );
            return;
        };
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.env.iter().any(|(k, _)| k == "HOME"));
    }

    #[test]
    fn unknown_user_is_named() {
        let e = resolve_user("no-such-user-here").expect_err("unknown");
        assert!(e.contains("no user \"no-such-user-here\""), "{e}");
    }
}

#[cfg(test)]
mod file_tests {
    use crate::cgroup::{Controller, Offer};
    use crate::config::{parse, ConfigError, Resource};
    use std::path::Path;

    fn parse_str(text: &str) -> Result<crate::config::Config, ConfigError> {
        parse(Path::new("/srv/jobs/supervisord.toml"), text)
    }

    #[test]
    fn limits_resolve_and_merge_with_defaults() {
        let c = parse_str(
            "[defaults.limits]\nnofile = 100\ncore = 5\n[job.a]\ncommand = \"a\"\numask = \"027\"\n[job.a.limits]\ncore = \"unlimited\"\nstack = \"8MiB\"\n",
        )
        .expect("valid");
        let a = &c.jobs[0];
        assert_eq!(a.umask, Some(0o27));
        assert_eq!(
            a.limits,
            vec![
                (Resource::Nofile, Some(100)),
                (Resource::Core, None),
                (Resource::Stack, Some(8 << 20)),
            ]
        );
    }

    #[test]
    fn cgroup_limits_are_parsed_into_the_files_values() {
        let c = parse_str(
            "[defaults.limits]\ntasks = 100\n[job.a]\ncommand = \"a\"\n[job.a.limits]\nmemory = \"512MiB\"\ncpu = 1.5\n[job.b]\ncommand = \"b\"\n[job.b.limits]\nmemory = \"unlimited\"\ncpu = 2\ntasks = \"unlimited\"\n[job.c]\ncommand = \"c\"\n",
        )
        .expect("valid");
        let l = |i: usize| c.jobs[i].cgroup_limits;
        assert_eq!(l(0).memory, Some(Some(512 << 20)));
        assert_eq!(l(0).cpu, Some(Some(150_000)));
        assert_eq!(l(0).tasks, Some(Some(100)), "from [defaults.limits]");
        assert_eq!(l(1).memory, Some(None));
        assert_eq!(l(1).cpu, Some(Some(200_000)));
        assert_eq!(l(1).tasks, Some(None));
        assert_eq!(l(2).tasks, Some(Some(100)));
        assert_eq!(l(2).memory, None);
        assert_eq!(
            c.controllers(),
            [Controller::Memory, Controller::Cpu, Controller::Pids]
        );
        assert_eq!(c.refuse_missing(&Offer::default()), Ok(()), "all available");
    }

    #[test]
    fn cgroup_limits_are_refused_naming_job_and_controller() {
        let c = parse_str("[job.web]\ncommand = \"a\"\n[job.web.limits]\nnofile = 5\ntasks = 5\n")
            .expect("parsed: refused only where the controller is missing");
        let off = Offer::none("process groups only: [supervisor] cgroup = \"off\"");
        let e = c.refuse_missing(&off).expect_err("refused").to_string();
        assert!(
            e.starts_with("/srv/jobs/supervisord.toml:5:9: job \"web\": `limits.tasks` needs the cgroup v2 `pids` controller")
                && e.contains("cgroup = \"off\"")
                && e.ends_with("; remove the key"),
            "{e}"
        );
        // With nothing asked, nothing is refused.
        let plain = parse_str("[job.web]\ncommand = \"a\"\n").expect("valid");
        assert_eq!(plain.refuse_missing(&off), Ok(()));
        assert!(plain.controllers().is_empty());
        // A job added over the socket: the same words, without a position.
        let why = c.jobs[0].refused_limit(&off).expect("refused");
        assert!(
            why.starts_with("job \"web\": `limits.tasks` needs"),
            "{why}"
        );
        assert_eq!(c.jobs[0].refused_limit(&Offer::default()), None);
    }

    #[test]
    fn bad_cgroup_limit_values_are_refused_where_they_are() {
        for (text, words) in [
            ("memory = 0", "`limits.memory` must be more than 0"),
            ("tasks = 0", "`limits.tasks` must be more than 0"),
            ("cpu = 0", "more than 0"),
            ("cpu = 0.001", "less than 0.01 CPU"),
            ("cpu = \"lots\"", "cpu must be a number of CPUs"),
            ("memory = \"much\"", ""),
        ] {
            let e = parse_str(&format!(
                "[job.a]\ncommand = \"a\"\n[job.a.limits]\n{text}\n"
            ))
            .expect_err(text)
            .to_string();
            assert!(e.contains(":4:") && e.contains(words), "{text}: {e}");
        }
    }

    #[test]
    fn bad_limit_and_umask_values_are_refused() {
        for text in [
            "[job.a]\ncommand = \"a\"\n[job.a.limits]\nnofile = -1\n",
            "[job.a]\ncommand = \"a\"\n[job.a.limits]\nnofile = \"lots\"\n",
            "[job.a]\ncommand = \"a\"\n[job.a.limits]\nfiles = 1\n",
            "[job.a]\ncommand = \"a\"\numask = \"999\"\n",
        ] {
            assert!(parse_str(text).is_err(), "{text}");
        }
    }

    #[test]
    fn unknown_user_names_the_job() {
        let e = parse_str("[job.web]\ncommand = \"a\"\nuser = \"no-such-user-here\"\n")
            .expect_err("refused")
            .to_string();
        assert!(e.contains("job \"web\"") && e.contains(":3:"), "{e}");
    }
}
