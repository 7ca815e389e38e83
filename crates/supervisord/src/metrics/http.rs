//! `[supervisor] metrics = "ADDR:PORT"`: the exposition at `GET /metrics` over HTTP/1.1
//! (hyper), for Prometheus to scrape. Read-only by construction: the one thing it can do
//! is [`collect`](super::collect), which reads the table; nothing here can change a job.
//!
//! Any other path is 404, any other method on `/metrics` 405 (`GET` and `HEAD` are
//! allowed). At most [`CONNECTIONS`] connections are served at once (more are closed at
//! once), one request each (no keep-alive), each within [`DEADLINE`]; headers must arrive
//! within [`HEADER_TIMEOUT`]. The accept loop and every connection are tasks on the
//! daemon's tracker and end when the shutdown token fires.

use crate::supervisor::SupervisorHandle;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connections served at once; more are closed as soon as they are accepted.
pub const CONNECTIONS: usize = 32;
/// How long a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last in all.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// The exposition's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A bound metrics listener.
pub struct Listener {
    listener: TcpListener,
}

impl Listener {
    /// Bind `addr`; an error names the address.
    pub async fn bind(addr: SocketAddr) -> Result<Listener, std::io::Error> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot serve metrics on {addr} ([supervisor] metrics): {e}"),
            )
        })?;
        Ok(Listener { listener })
    }

    /// The address it listens on (the port chosen when it was 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Accept connections until `shutdown` fires; every task goes on `tracker`.
    pub async fn serve(
        self,
        supervisor: SupervisorHandle,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) {
        let permits = Arc::new(Semaphore::new(CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                () = shutdown.cancelled() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = shutdown.cancelled() => return,
                    }
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::debug!(limit = CONNECTIONS, "metrics: connection limit reached");
                continue;
            };
            let (supervisor, shutdown) = (supervisor.clone(), shutdown.clone());
            tracker.spawn(async move {
                connection(stream, supervisor, shutdown).await;
                drop(permit);
            });
        }
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    supervisor: SupervisorHandle,
    shutdown: CancellationToken,
) {
    let service = service_fn(move |req| {
        let supervisor = supervisor.clone();
        async move { Ok::<_, Infallible>(answer(&req, &supervisor).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = tokio::time::timeout(DEADLINE, conn.as_mut()) => {
            if let Ok(Err(e)) = r {
                tracing::debug!(error = %e, "metrics: connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

/// The one page: `/metrics`, read with `GET` or `HEAD`.
async fn answer(req: &Request<Incoming>, supervisor: &SupervisorHandle) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: /metrics is read with GET\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match super::collect(supervisor).await {
        Ok(text) => {
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
            r
        }
        Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &format!("{}\n", e.message)),
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
