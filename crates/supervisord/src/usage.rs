//! What processes use, read from `/proc`: each job's CPU time and resident memory summed
//! over its process group (`status` with `usage: true`, `metrics`), and supervisord's own
//! numbers (`metrics`).
//!
//! Everything here reads files, one per process: it blocks, so it runs in
//! `spawn_blocking`, never on the runtime, and only when a client asks. One walk of
//! `/proc` serves every job at once (1000 jobs cost one walk, not 1000).
//!
//! A job's CPU time is the `utime + stime` of each live process in its group plus the
//! `cutime + cstime` of the children they have already waited for, so short-lived helpers
//! a shell script runs are counted too. What is not counted: processes that left the
//! group (`setsid`), and orphans reaped by supervisord. Memory is the sum of each live
//! process's RSS, so pages shared between them count once per process.

use crate::cgroup::RunCgroup;
use protocol::Job;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The numbers of one `/proc/PID/stat` this module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The process group.
    pub pgrp: u32,
    /// User + system time, in clock ticks.
    pub ticks: u64,
    /// User + system time of children it waited for, in clock ticks.
    pub child_ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
    /// When it started, in clock ticks after boot.
    pub start_ticks: u64,
}

/// Read the fields of a `/proc/PID/stat` line. The command name is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    // After ")": state(3) ppid(4) pgrp(5) ... utime(14) stime(15) cutime(16) cstime(17)
    // ... starttime(22) vsize(23) rss(24); index 0 here is field 3.
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let num = |field: usize| -> Option<u64> { f.get(field - 3)?.parse().ok() };
    let signed = |field: usize| -> Option<u64> {
        let v: i64 = f.get(field - 3)?.parse().ok()?;
        Some(u64::try_from(v).unwrap_or(0))
    };
    Some(ProcStat {
        pgrp: u32::try_from(num(5)?).ok()?,
        ticks: num(14)? + num(15)?,
        child_ticks: signed(16)? + signed(17)?,
        rss_pages: signed(24)?,
        start_ticks: num(22)?,
    })
}

/// The kernel's units: clock ticks a second and the page size.
#[derive(Debug, Clone, Copy)]
pub struct Units {
    /// `sysconf(_SC_CLK_TCK)`.
    pub ticks_per_sec: u64,
    /// `sysconf(_SC_PAGESIZE)`.
    pub page_size: u64,
}

impl Units {
    /// Asked of the OS (100 and 4096, the Linux values, if it will not say).
    pub fn get() -> Units {
        use nix::unistd::{sysconf, SysconfVar};
        let ask = |var, fallback: u64| {
            sysconf(var)
                .ok()
                .flatten()
                .and_then(|v| u64::try_from(v).ok())
                .filter(|&v| v > 0)
                .unwrap_or(fallback)
        };
        Units {
            ticks_per_sec: ask(SysconfVar::CLK_TCK, 100),
            page_size: ask(SysconfVar::PAGE_SIZE, 4096),
        }
    }

    fn millis(self, ticks: u64) -> u64 {
        ticks.saturating_mul(1000) / self.ticks_per_sec
    }
}

/// One job's usage, summed over its process group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time in milliseconds.
    pub cpu_ms: u64,
    /// Resident memory in bytes.
    pub memory_bytes: u64,
}

/// Sum `stats` by process group, for the groups in `wanted` only.
pub fn by_group(
    stats: impl IntoIterator<Item = ProcStat>,
    wanted: &HashSet<u32>,
    units: Units,
) -> HashMap<u32, Usage> {
    let mut out: HashMap<u32, (u64, u64)> = HashMap::new();
    for s in stats {
        if wanted.contains(&s.pgrp) {
            let sum = out.entry(s.pgrp).or_default();
            sum.0 += s.ticks + s.child_ticks;
            sum.1 += s.rss_pages;
        }
    }
    out.into_iter()
        .map(|(pgrp, (ticks, pages))| {
            let usage = Usage {
                cpu_ms: units.millis(ticks),
                memory_bytes: pages.saturating_mul(units.page_size),
            };
            (pgrp, usage)
        })
        .collect()
}

/// Every process's stat, read from `/proc` (processes that end meanwhile are skipped).
fn all_stats() -> impl Iterator<Item = ProcStat> {
    let dir = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    dir.filter_map(|entry| {
        let name = entry.file_name();
        let pid = name.to_str()?;
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&line)
    })
}

/// Fill `cpu_ms` and `memory_bytes` of every job that has a live process group (its pid
/// leads the group). Others keep `null`. `cgroups`: the cgroup of each job's run, where
/// runs have one. Blocking: call it in `spawn_blocking`.
///
/// A run in a cgroup of its own is measured from the cgroup: `cpu.stat`'s `usage_usec`
/// (every process the run ever had, `setsid` ones included; the kernel keeps it even
/// without the cpu controller; less what the job's earlier runs in the same cgroup used),
/// and `memory.current` where the memory controller is on, else the resident memory of
/// each process in `cgroup.procs`. The others: one walk of `/proc`, by process group.
pub fn fill(jobs: &mut [Job], cgroups: &[(String, RunCgroup)]) {
    let units = Units::get();
    let cgroups: HashMap<&str, &RunCgroup> =
        cgroups.iter().map(|(n, cg)| (n.as_str(), cg)).collect();
    for job in jobs.iter_mut().filter(|j| j.alive) {
        let Some(cg) = cgroups.get(job.name.as_str()) else {
            continue;
        };
        let Some(cpu_ms) = cg.cpu_ms() else { continue };
        job.cpu_ms = Some(cpu_ms);
        job.memory_bytes = Some(cg.memory_bytes().unwrap_or_else(|| {
            let pages: u64 = cg
                .pids()
                .iter()
                .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
                .filter_map(|l| parse_stat(&l))
                .map(|s| s.rss_pages)
                .sum();
            pages.saturating_mul(units.page_size)
        }));
    }
    let wanted: HashSet<u32> = jobs
        .iter()
        .filter(|j| j.alive && j.cpu_ms.is_none())
        .filter_map(|j| j.pid)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let usage = by_group(all_stats(), &wanted, units);
    for job in jobs.iter_mut().filter(|j| j.alive && j.cpu_ms.is_none()) {
        if let Some(u) = job.pid.and_then(|p| usage.get(&p)) {
            job.cpu_ms = Some(u.cpu_ms);
            job.memory_bytes = Some(u.memory_bytes);
        }
    }
}

/// supervisord's own numbers, the `process_*` metrics every Prometheus client exports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OwnProcess {
    /// User + system CPU time of its threads (not of the jobs it reaped: their time is
    /// the kernel's `cutime`, left out).
    pub cpu_seconds: f64,
    /// Resident memory in bytes.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on file descriptors.
    pub max_fds: Option<u64>,
    /// When it started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Read supervisord's own numbers. Blocking: call it in `spawn_blocking`. `None` when
/// `/proc` cannot be read.
pub fn own_process() -> Option<OwnProcess> {
    let units = Units::get();
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft);
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| boot_time(&s))
        .unwrap_or(0);
    let ticks_per_sec = units.ticks_per_sec as f64;
    Some(OwnProcess {
        cpu_seconds: stat.ticks as f64 / ticks_per_sec,
        resident_bytes: stat.rss_pages.saturating_mul(units.page_size),
        open_fds,
        max_fds,
        start_time_seconds: boot as f64 + stat.start_ticks as f64 / ticks_per_sec,
    })
}

/// `btime` of `/proc/stat`: when the machine booted, in seconds since the Unix epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Seconds since the Unix epoch, now.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 \
        150 50 7 3 20 0 1 0 98765 12345678 321 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let s = parse_stat(LINE).expect("parses");
        assert_eq!(
            s,
            ProcStat {
                pgrp: 4240,
                ticks: 200,
                child_ticks: 10,
                rss_pages: 321,
                start_ticks: 98765,
            }
        );
        assert_eq!(parse_stat("12 (x) S 1"), None, "a cut line is not read");
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn usage_is_summed_per_wanted_group_in_the_kernels_units() {
        let units = Units {
            ticks_per_sec: 100,
            page_size: 4096,
        };
        let stat = |pgrp, ticks, child_ticks, rss_pages| ProcStat {
            pgrp,
            ticks,
            child_ticks,
            rss_pages,
            start_ticks: 0,
        };
        let wanted: HashSet<u32> = [10, 20].into_iter().collect();
        let got = by_group(
            [
                stat(10, 100, 0, 10),
                stat(10, 50, 25, 5),
                stat(30, 999, 0, 999),
                stat(20, 1, 0, 1),
            ],
            &wanted,
            units,
        );
        assert_eq!(
            got.get(&10),
            Some(&Usage {
                cpu_ms: 1750,
                memory_bytes: 15 * 4096
            })
        );
        assert_eq!(got.get(&20).map(|u| u.cpu_ms), Some(10));
        assert!(
            !got.contains_key(&30),
            "groups nobody asked about are left out"
        );
    }

    #[test]
    fn own_process_reads_this_process() {
        let me = own_process().expect("/proc is there");
        assert!(me.resident_bytes > 0);
        assert!(me.open_fds > 0);
        let now = now_seconds();
        assert!(
            me.start_time_seconds > now - 24.0 * 3600.0 && me.start_time_seconds <= now + 1.0,
            "started at {} (now {now})",
            me.start_time_seconds
        );
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }
}
