//! Running one ready or health check: a TCP connect, an HTTP GET (hyper's client), or a
//! command killed with its whole process group at the timeout. A check that cannot even
//! run (a bad address at run time, no such program) is a failed check whose output says
//! why, never an error of the daemon.
//!
//! The pure rules of health (retries, start_period) are in [`HealthTrack`], which the
//! supervisor feeds with results.

use crate::config::{HealthSpec, Probe};
pub use protocol::Health;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// How much of a check's output is kept.
pub const OUTPUT_LIMIT: usize = 4096;

/// The exec checks running now, by pid: children the runtime waits for, which the
/// supervisor's reaping of adopted orphans must leave alone (reaping one first makes the
/// check's own wait fail with ECHILD).
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// The pids of the exec checks running now.
pub fn running_pids() -> Vec<u32> {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect()
}

/// Keeps a check's pid in [`RUNNING`] until dropped (after its wait).
struct Registered(Option<u32>);

impl Registered {
    fn new(pid: Option<u32>) -> Registered {
        if let Some(p) = pid {
            RUNNING.lock().unwrap_or_else(|e| e.into_inner()).insert(p);
        }
        Registered(pid)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            RUNNING.lock().unwrap_or_else(|e| e.into_inner()).remove(&p);
        }
    }
}

/// What an exec check runs with: the job's cwd, env, user and umask.
#[derive(Debug, Clone)]
pub struct ExecContext {
    /// The job's working folder.
    pub cwd: PathBuf,
    /// The job's variables (over supervisord's environment).
    pub env: BTreeMap<String, String>,
    /// The job's `user` (its passwd variables come before `env`, as for the job).
    pub user: Option<crate::config::RunAs>,
    /// The job's `umask`.
    pub umask: Option<u32>,
}

/// Run one check; `Ok(output)` when it passed, `Err(output)` when it failed.
pub async fn run(probe: &Probe, timeout: Duration, ctx: &ExecContext) -> Result<String, String> {
    match probe {
        Probe::Tcp(addr) => tcp(addr, timeout).await,
        Probe::Http(url) => http(url, timeout).await,
        Probe::Exec(argv) => exec(argv, timeout, ctx).await,
        // Not polled: they are answered by the job's output or its notify socket.
        Probe::Log(_) | Probe::Notify => Err("not a polled check".into()),
    }
}

async fn tcp(addr: &str, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(format!("connected to {addr}")),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: no answer within {}", human(timeout))),
    }
}

async fn http(url: &str, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, get(url)).await {
        Ok(r) => r,
        Err(_) => Err(format!("GET {url}: no answer within {}", human(timeout))),
    }
}

async fn get(url: &str) -> Result<String, String> {
    use http_body_util::Empty;
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("bad URL {url:?}: no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
    // The connection is driven beside the request and dropped with it (at the timeout
    // too): no task outlives the check.
    let authority = uri
        .authority()
        .map_or_else(|| host.to_owned(), |a| a.as_str().to_owned());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let request = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "supervisord-health")
        .body(Empty::<hyper::body::Bytes>::new())
        .map_err(|e| format!("GET {url}: {e}"))?;
    let exchange = async {
        let response = sender.send_request(request).await;
        response.map(|r| r.status())
    };
    tokio::pin!(conn);
    tokio::pin!(exchange);
    // A server that closes after answering (HTTP/1.0) ends the connection as the answer
    // arrives: the answer, once the connection has delivered it, is what counts.
    let mut conn_done = false;
    let status = loop {
        tokio::select! {
            biased;
            r = &mut exchange => break r.map_err(|e| format!("GET {url}: {e}"))?,
            r = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = r {
                    return Err(format!("GET {url}: {e}"));
                }
            }
        }
    };
    let line = format!("HTTP {status}");
    if status.is_success() || status.is_redirection() {
        Ok(line)
    } else {
        Err(line)
    }
}

async fn exec(argv: &[String], timeout: Duration, ctx: &ExecContext) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&ctx.cwd)
        .envs(ctx.user.iter().flat_map(|u| u.env.iter().cloned()))
        .envs(&ctx.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    crate::os::set_credentials(cmd.as_std_mut(), ctx.user.as_ref(), ctx.umask, &[]);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let pgid = child.id();
    // Registered before any await, so the supervisor (on this same thread) cannot reap
    // it first; dropped last, after the wait below.
    let _registered = Registered::new(pgid);
    // Whatever the outcome, and also when the check is cancelled mid-flight (its job
    // stopped), nothing of the check's group is left behind.
    let _group = KillGroup(pgid);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        let ((), (), status) = tokio::join!(read_out, read_err, child.wait());
        out.extend_from_slice(&err);
        (status, out)
    };
    let result = tokio::time::timeout(timeout, work).await;
    if let Some(pgid) = pgid {
        crate::os::kill_group(pgid);
    }
    match result {
        Ok((Ok(status), out)) => {
            let text = clip(&out);
            if status.success() {
                Ok(text)
            } else {
                let code = status
                    .code()
                    .map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"));
                Err(if text.is_empty() {
                    code
                } else {
                    format!("{code}: {text}")
                })
            }
        }
        Ok((Err(e), _)) => Err(format!("{program}: {e}")),
        Err(_) => {
            // Reap the leader (killed above) so it is not left a zombie.
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            Err(format!(
                "{program}: timed out after {} (killed)",
                human(timeout)
            ))
        }
    }
}

/// Kills a check's process group when dropped.
struct KillGroup(Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            crate::os::kill_group(pgid);
        }
    }
}

/// The first [`OUTPUT_LIMIT`] bytes of `out`, as text, trimmed.
fn clip(out: &[u8]) -> String {
    let end = out.len().min(OUTPUT_LIMIT);
    String::from_utf8_lossy(&out[..end]).trim().to_owned()
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The health of one run: the rules of `retries` and `start_period`, without a clock of
/// its own (the caller passes `now`).
#[derive(Debug, Clone)]
pub struct HealthTrack {
    /// When the run reached `running`.
    since: Instant,
    /// The current health.
    pub health: Health,
    /// Failures in a row that counted.
    pub failures: u32,
    /// The last check's output.
    pub output: Option<String>,
}

impl HealthTrack {
    /// A run that just reached `running`.
    pub fn new(since: Instant) -> HealthTrack {
        HealthTrack {
            since,
            health: Health::Unknown,
            failures: 0,
            output: None,
        }
    }

    /// Record one result; returns the new health when it changed.
    pub fn record(
        &mut self,
        spec: &HealthSpec,
        passed: bool,
        output: String,
        now: Instant,
    ) -> Option<Health> {
        self.output = Some(output);
        let before = self.health;
        if passed {
            self.failures = 0;
            self.health = Health::Healthy;
        } else if now.saturating_duration_since(self.since) >= spec.start_period {
            self.failures += 1;
            if self.failures >= spec.retries {
                self.health = Health::Unhealthy;
            }
        }
        (self.health != before).then_some(self.health)
    }

    /// `unhealthy (3 failed: connection refused)`-style summary for people.
    pub fn describe(&self) -> String {
        match (self.health, &self.output) {
            (Health::Unhealthy, Some(out)) => {
                format!("unhealthy ({} failed: {out})", self.failures)
            }
            (h, _) => h.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnUnhealthy;

    fn spec(retries: u32, start_period: u64) -> HealthSpec {
        HealthSpec {
            probe: Probe::Tcp("127.0.0.1:1".into()),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            retries,
            start_period: Duration::from_secs(start_period),
            on_unhealthy: OnUnhealthy::Restart,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_failures_in_a_row_make_it_unhealthy_and_a_pass_resets_them() {
        let s = spec(3, 0);
        let mut t = HealthTrack::new(Instant::now());
        assert_eq!(t.health, Health::Unknown);
        assert_eq!(
            t.record(&s, true, "ok".into(), Instant::now()),
            Some(Health::Healthy)
        );
        tokio::time::advance(s.interval).await;
        assert_eq!(t.record(&s, false, "refused".into(), Instant::now()), None);
        assert_eq!(t.record(&s, false, "refused".into(), Instant::now()), None);
        assert_eq!(t.failures, 2);
        assert_eq!(t.record(&s, true, "ok".into(), Instant::now()), None);
        assert_eq!(t.failures, 0);
        for _ in 0..2 {
            tokio::time::advance(s.interval).await;
            assert_eq!(t.record(&s, false, "refused".into(), Instant::now()), None);
        }
        tokio::time::advance(s.interval).await;
        assert_eq!(
            t.record(&s, false, "connection refused".into(), Instant::now()),
            Some(Health::Unhealthy)
        );
        assert_eq!(t.describe(), "unhealthy (3 failed: connection refused)");
        assert_eq!(
            t.record(&s, true, "ok".into(), Instant::now()),
            Some(Health::Healthy)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_inside_start_period_do_not_count() {
        let s = spec(1, 30);
        let mut t = HealthTrack::new(Instant::now());
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(t.record(&s, false, "refused".into(), Instant::now()), None);
        assert_eq!((t.health, t.failures), (Health::Unknown, 0));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            t.record(&s, false, "refused".into(), Instant::now()),
            Some(Health::Unhealthy)
        );
    }

    #[tokio::test]
    async fn a_check_that_cannot_run_is_a_failed_check_with_the_error() {
        let ctx = ExecContext {
            cwd: std::env::temp_dir(),
            env: BTreeMap::new(),
            user: None,
            umask: None,
        };
        let out = run(
            &Probe::Exec(vec!["./no-such-check".into()]),
            Duration::from_secs(1),
            &ctx,
        )
        .await
        .expect_err("fails");
        assert!(out.starts_with("cannot run ./no-such-check"), "{out}");
        let out = run(
            &Probe::Tcp("no-such-host.invalid:1".into()),
            Duration::from_secs(2),
            &ctx,
        )
        .await
        .expect_err("fails");
        assert!(out.starts_with("no-such-host.invalid:1"), "{out}");
        let out = run(
            &Probe::Exec(vec!["sh".into(), "-c".into(), "echo hi; exit 2".into()]),
            Duration::from_secs(5),
            &ctx,
        )
        .await
        .expect_err("fails");
        assert_eq!(out, "exit 2: hi");
    }

    #[tokio::test]
    async fn an_exec_check_that_hangs_is_killed_with_its_group() {
        let ctx = ExecContext {
            cwd: std::env::temp_dir(),
            env: BTreeMap::new(),
            user: None,
            umask: None,
        };
        let mark = format!("300.{}", std::process::id());
        let argv = vec![
            "sh".into(),
            "-c".into(),
            format!("sleep {mark} & sleep {mark}"),
        ];
        let out = run(&Probe::Exec(argv), Duration::from_millis(300), &ctx)
            .await
            .expect_err("times out");
        assert!(out.contains("timed out after 300ms"), "{out}");
        // Neither the shell nor its background child is left.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let left: Vec<_> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(&mark))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
