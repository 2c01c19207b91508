//! The admin HTTP port: `/metrics` (Prometheus), `/healthz` (the process answers) and `/readyz`
//! (the pipeline works). NLB health checks for UDP target groups must be TCP or HTTP, so this
//! port is what the load balancer probes; `/readyz` must mean that packets really flow, and it
//! must answer quickly whatever else reaches the port (deploy/ opens it to the whole VPC).
//!
//! Built for hostile clients: hyper on a one-thread tokio runtime of its own, so a connection
//! is a task and not a thread; the request head is capped ([`AdminLimits::max_head_bytes`],
//! then 431 and close); requests with a body are refused; a connection that makes no progress
//! reading or writing is closed ([`AdminLimits::io_timeout`]), and so is one that does not
//! finish a head in time ([`AdminLimits::head_timeout`], against slowloris); concurrent
//! connections are capped. At the cap, the oldest connection that is not being answered is
//! closed to admit the new one, so that a health probe always gets in while an attacker holds
//! connections open; when every connection is being answered the new one is refused. Metrics
//! are rendered on the runtime's single blocking thread, never on the thread that answers the
//! health checks, so a probe never waits behind a scrape. Every rejection is counted and
//! exported with the metrics.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::health::Health;

/// Limits of the admin server. The defaults suit an NLB probe plus a Prometheus scraper with
/// a wide margin; tests shrink them.
#[derive(Clone, Debug)]
pub struct AdminLimits {
    /// Largest request head (request line and headers) read; a larger one gets 431 and the
    /// connection is closed. hyper's floor is 8 KiB.
    pub max_head_bytes: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// A request head must be complete this long after the server starts waiting for it
    /// (this also closes keep-alive connections idle for that long).
    pub head_timeout: Duration,
    /// A connection that neither reads nor writes a byte for this long is closed (a client
    /// that stops reading its responses).
    pub io_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_head_bytes: 8 << 10,
            max_connections: 128,
            head_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of the admin server (admin path only; exported after the pipeline's metrics).
#[derive(Debug, Default)]
pub struct AdminStats {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections refused at the cap because every open one was being answered.
    pub refused: AtomicU64,
    /// Connections closed at the cap to admit a newer one (oldest first, never one that is
    /// being answered).
    pub shed: AtomicU64,
    /// Connections closed because the request head exceeded the cap (431 sent).
    pub head_too_large: AtomicU64,
    /// Connections closed because a head was not complete in time (slowloris; idle keep-alive
    /// connections are closed the same way and counted here too).
    pub head_timeout: AtomicU64,
    /// Connections closed because they made no progress reading or writing.
    pub io_timeout: AtomicU64,
    /// Connections closed on an unparseable request.
    pub malformed: AtomicU64,
    /// Requests refused because they carried a body or used a method other than GET/HEAD.
    pub bad_request: AtomicU64,
    /// Connections open now.
    pub active: AtomicU64,
}

impl AdminStats {
    /// Prometheus text exposition of these counters.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = String::with_capacity(1024);
        s.push_str(
            "# HELP vxtap_admin_connections_total Admin connections accepted.\n\
             # TYPE vxtap_admin_connections_total counter\n",
        );
        s.push_str(&format!(
            "vxtap_admin_connections_total {}\n",
            get(&self.accepted)
        ));
        s.push_str(
            "# HELP vxtap_admin_connections_rejected_total Admin connections refused at the \
             connection cap (over_limit) or closed to admit a newer one (shed).\n\
             # TYPE vxtap_admin_connections_rejected_total counter\n",
        );
        for (reason, c) in [("over_limit", &self.refused), ("shed", &self.shed)] {
            s.push_str(&format!(
                "vxtap_admin_connections_rejected_total{{reason=\"{reason}\"}} {}\n",
                get(c)
            ));
        }
        s.push_str(
            "# HELP vxtap_admin_requests_rejected_total Admin connections closed on a bad \
             request, by reason.\n\
             # TYPE vxtap_admin_requests_rejected_total counter\n",
        );
        for (reason, c) in [
            ("head_too_large", &self.head_too_large),
            ("head_timeout", &self.head_timeout),
            ("io_timeout", &self.io_timeout),
            ("malformed", &self.malformed),
            ("body_or_method", &self.bad_request),
        ] {
            s.push_str(&format!(
                "vxtap_admin_requests_rejected_total{{reason=\"{reason}\"}} {}\n",
                get(c)
            ));
        }
        s.push_str(
            "# HELP vxtap_admin_connections_active Admin connections open now.\n\
             # TYPE vxtap_admin_connections_active gauge\n",
        );
        s.push_str(&format!(
            "vxtap_admin_connections_active {}\n",
            get(&self.active)
        ));
        s
    }
}

type Render = Arc<dyn Fn() -> String + Send + Sync + 'static>;

/// A running admin server.
pub struct AdminServer {
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// The server's counters.
    pub stats: Arc<AdminStats>,
}

impl AdminServer {
    /// Binds `addr` with the default limits and serves on a thread of its own.
    /// `render_metrics` is called per scrape, off the thread that answers health checks.
    pub fn start(
        addr: SocketAddr,
        health: Arc<Health>,
        max_silence_ms: u64,
        render_metrics: impl Fn() -> String + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        Self::start_with(
            addr,
            AdminLimits::default(),
            health,
            max_silence_ms,
            render_metrics,
        )
    }

    /// [`AdminServer::start`] with explicit limits.
    pub fn start_with(
        addr: SocketAddr,
        limits: AdminLimits,
        health: Arc<Health>,
        max_silence_ms: u64,
        render_metrics: impl Fn() -> String + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        // Bind here so that a bad address fails startup rather than a background thread.
        let listener =
            std::net::TcpListener::bind(addr).with_context(|| format!("admin bind {addr}"))?;
        let local_addr = listener
            .local_addr()
            .with_context(|| format!("admin bind {addr}"))?;
        listener
            .set_nonblocking(true)
            .with_context(|| format!("admin bind {addr}"))?;
        // One thread answers everything; one more renders metrics, so that a scrape (which
        // takes the pipeline's metric locks) never delays a health answer.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(1)
            .thread_name("admin-render")
            .build()
            .context("admin runtime")?;
        let stop = Arc::new(Notify::new());
        let stats = Arc::new(AdminStats::default());
        let server = Server {
            limits,
            health,
            max_silence_ms,
            render: Arc::new(render_metrics),
            stats: stats.clone(),
            live: Mutex::new(VecDeque::new()),
            rendered: tokio::sync::Mutex::new(None),
        };
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || {
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => Arc::new(server).accept_loop(l, stop2).await,
                        Err(e) => tracing::error!("admin listener: {e}"),
                    }
                });
                // A render in progress holds the pipeline's metric locks only briefly; do not
                // let a stuck one hold shutdown.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .context("spawn admin thread")?;
        Ok(AdminServer {
            stop,
            thread: Some(thread),
            local_addr,
            stats,
        })
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        // notify_one stores a permit, so the stop is not lost if the loop is not waiting yet.
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One open connection, as the accept loop sees it.
#[derive(Default)]
struct Slot {
    /// True while a request on it is being answered (then it is never shed).
    busy: AtomicBool,
    /// Closes the connection.
    kill: Notify,
}

struct Server {
    limits: AdminLimits,
    health: Arc<Health>,
    max_silence_ms: u64,
    render: Render,
    stats: Arc<AdminStats>,
    /// Open connections, oldest first. Only the admin thread touches it; the lock is never
    /// contended and never on the packet path.
    live: Mutex<VecDeque<(u64, Arc<Slot>)>>,
    /// The last metrics text and when it was rendered.
    rendered: tokio::sync::Mutex<Option<(Instant, String)>>,
}

/// How long a rendered metrics text is served again.
const RENDER_REUSE: Duration = Duration::from_millis(200);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    async fn accept_loop(self: Arc<Self>, listener: tokio::net::TcpListener, stop: Arc<Notify>) {
        let mut next_id = 0u64;
        loop {
            let accepted = tokio::select! {
                _ = stop.notified() => return,
                r = listener.accept() => r,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!("admin accept: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let slot = Arc::new(Slot::default());
            {
                let mut live = lock(&self.live);
                if live.len() >= self.limits.max_connections {
                    match live
                        .iter()
                        .position(|(_, s)| !s.busy.load(Ordering::Relaxed))
                    {
                        Some(i) => {
                            if let Some((_, victim)) = live.remove(i) {
                                victim.kill.notify_one();
                            }
                            self.stats.shed.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            self.stats.refused.fetch_add(1, Ordering::Relaxed);
                            drop(stream);
                            continue;
                        }
                    }
                }
                next_id += 1;
                live.push_back((next_id, slot.clone()));
            }
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            self.stats.active.fetch_add(1, Ordering::Relaxed);
            let id = next_id;
            let server = self.clone();
            tokio::spawn(async move {
                server.serve(stream, slot.clone()).await;
                lock(&server.live).retain(|(i, _)| *i != id);
                server.stats.active.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    async fn serve(self: &Arc<Self>, stream: TcpStream, slot: Arc<Slot>) {
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Stalled::new(stream, self.limits.io_timeout));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.head_timeout)
            .max_buf_size(self.limits.max_head_bytes.max(8192))
            // Pipelined requests are answered one at a time, each as its own write: a client
            // that does not read stops being read from, and nothing queues up for it.
            .pipeline_flush(false)
            .half_close(false);
        let server = self.clone();
        let slot2 = slot.clone();
        let service = hyper::service::service_fn(move |req| {
            let server = server.clone();
            let slot = slot2.clone();
            async move {
                slot.busy.store(true, Ordering::Relaxed);
                let resp = server.answer(req).await;
                slot.busy.store(false, Ordering::Relaxed);
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = builder.serve_connection(io, service);
        tokio::select! {
            r = conn => if let Err(e) = r { self.count_error(&e) },
            _ = slot.kill.notified() => {}
        }
    }

    fn count_error(&self, e: &hyper::Error) {
        let stats = &self.stats;
        let c = if e.is_parse_too_large() {
            &stats.head_too_large
        } else if e.is_timeout() {
            &stats.head_timeout
        } else if e.is_parse() {
            &stats.malformed
        } else if std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            &stats.io_timeout
        } else {
            // A client that hung up: not a rejection.
            return;
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics text, rendered at most once per [`RENDER_REUSE`]: scrapes that arrive while
    /// one renders wait for it and share its result, so that a flood of scrapes costs one
    /// render and keeps connections busy (unsheddable) only for that long.
    async fn metrics_text(&self) -> Option<String> {
        let mut cache = self.rendered.lock().await;
        if let Some((at, text)) = cache.as_ref() {
            if at.elapsed() < RENDER_REUSE {
                return Some(text.clone());
            }
        }
        let render = self.render.clone();
        let stats = self.stats.clone();
        // On the blocking thread: the render takes the pipeline's metric locks.
        let text = tokio::task::spawn_blocking(move || {
            let mut text = render();
            text.push_str(&stats.render());
            text
        })
        .await
        .ok()?;
        *cache = Some((Instant::now(), text.clone()));
        Some(text)
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let has_body = req.headers().contains_key(TRANSFER_ENCODING)
            || req
                .headers()
                .get(CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        if has_body || !matches!(*req.method(), Method::GET | Method::HEAD) {
            // The body is never read: closing the connection is what keeps it out of memory.
            self.stats.bad_request.fetch_add(1, Ordering::Relaxed);
            let (code, text) = if has_body {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request bodies are not accepted\n",
                )
            } else {
                (StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n")
            };
            let mut r = text_response(code, "text/plain", text.into());
            r.headers_mut()
                .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
            return r;
        }
        match req.uri().path() {
            "/healthz" => text_response(StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" => match self.health.readiness(self.max_silence_ms) {
                Ok(()) => text_response(StatusCode::OK, "text/plain", "ready\n".into()),
                Err(why) => text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready\n{why}\n"),
                ),
            },
            "/metrics" => match self.metrics_text().await {
                Some(text) => text_response(StatusCode::OK, "text/plain; version=0.0.4", text),
                None => text_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "metrics render failed\n".into(),
                ),
            },
            _ => text_response(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        }
    }
}

fn text_response(code: StatusCode, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
    r
}

/// A stream that fails with `TimedOut` once it has made no progress (no byte read or written)
/// for `timeout` while someone waits on it: the write timeout hyper lacks, and an idle timeout.
struct Stalled {
    inner: TcpStream,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    armed: bool,
}

impl Stalled {
    fn new(inner: TcpStream, timeout: Duration) -> Self {
        Stalled {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
        }
    }

    /// Maps the inner poll: progress disarms the timer; waiting arms it (once) and fails when
    /// it fires.
    fn check<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.armed = false;
                Poll::Ready(v)
            }
            Poll::Pending => {
                if !self.armed {
                    self.armed = true;
                    self.sleep.as_mut().reset(Instant::now() + self.timeout);
                }
                match self.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "admin connection made no progress",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for Stalled {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.check(cx, r)
    }
}

impl AsyncWrite for Stalled {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;
    use std::time::Instant as StdInstant;

    /// Generous: these tests assert that health answers at all while an attack runs, never
    /// how fast (the goal, under 100 ms, is measured by hand).
    const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

    /// A server whose scrape is slow and large, as a loaded instance's is.
    fn server(limits: AdminLimits) -> AdminServer {
        let health = Arc::new(Health::default());
        AdminServer::start_with(
            "127.0.0.1:0".parse().unwrap(),
            limits,
            health,
            60_000,
            || {
                std::thread::sleep(Duration::from_millis(20));
                "# filler\n".repeat(8_000)
            },
        )
        .expect("bind loopback")
    }

    /// Sends one request on a fresh connection and returns the status line and latency.
    fn get(addr: SocketAddr, path: &str) -> io::Result<(String, Duration)> {
        let t = StdInstant::now();
        let mut s = StdStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
        s.set_read_timeout(Some(PROBE_TIMEOUT))?;
        s.set_write_timeout(Some(PROBE_TIMEOUT))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: vxtap\r\nConnection: close\r\n\r\n"
        )?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let text = String::from_utf8_lossy(&resp);
        let status = text.lines().next().unwrap_or("").to_string();
        Ok((status, t.elapsed()))
    }

    fn assert_ready(addr: SocketAddr, during: &str) {
        for path in ["/readyz", "/healthz"] {
            let (status, took) = get(addr, path)
                .unwrap_or_else(|e| panic!("{path} did not answer during {during}: {e}"));
            assert!(
                status.starts_with("HTTP/1.1 200"),
                "{path} during {during}: {status}"
            );
            eprintln!("{path} during {during}: {took:?}");
        }
    }

    fn counter(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Polls `cond` for up to 5 s (the server acts on its own schedule).
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let t = StdInstant::now();
        while !cond() {
            assert!(t.elapsed() < Duration::from_secs(5), "never: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn pipelined_scrapes_that_are_never_read_do_not_block_health() {
        let srv = server(AdminLimits::default());
        let mut hog = StdStream::connect(srv.local_addr).unwrap();
        hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let req = "GET /metrics HTTP/1.1\r\nHost: vxtap\r\n\r\n".repeat(300);
        // The server stops reading once its writes back up, so this may not complete.
        let _ = hog.write_all(req.as_bytes());
        assert_ready(srv.local_addr, "300 pipelined scrapes never read");
        let (status, _) = get(srv.local_addr, "/metrics").unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        drop(hog);
    }

    #[test]
    fn a_client_that_stops_reading_is_closed() {
        let srv = server(AdminLimits {
            io_timeout: Duration::from_millis(300),
            ..AdminLimits::default()
        });
        let mut hog = StdStream::connect(srv.local_addr).unwrap();
        hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let req = "GET /metrics HTTP/1.1\r\nHost: vxtap\r\n\r\n".repeat(300);
        let _ = hog.write_all(req.as_bytes());
        eventually("stalled writer closed", || {
            counter(&srv.stats.io_timeout) >= 1 && counter(&srv.stats.active) == 0
        });
    }

    #[test]
    fn a_huge_header_is_cut_at_the_cap_with_431() {
        let srv = server(AdminLimits::default());
        // Just over the cap, sent whole: the answer is 431.
        let mut s = StdStream::connect(srv.local_addr).unwrap();
        s.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
        let head = format!(
            "GET /readyz HTTP/1.1\r\nHost: vxtap\r\nX-Big: {}\r\n\r\n",
            "a".repeat(9 << 10)
        );
        let _ = s.write_all(head.as_bytes());
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 431"), "{text}");

        // 64 MiB streamed: the server closes long before, and still answers probes.
        let addr = srv.local_addr;
        let streamer = std::thread::spawn(move || {
            let mut s = StdStream::connect(addr).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /readyz HTTP/1.1\r\nX-Big: ").unwrap();
            let chunk = vec![b'a'; 64 << 10];
            let mut sent = 0usize;
            while sent < 64 << 20 {
                match s.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            sent
        });
        assert_ready(addr, "a 64 MiB header");
        let sent = streamer.join().unwrap();
        assert!(
            sent < 64 << 20,
            "server read all {sent} bytes of the header"
        );
        eventually("two heads too large", || {
            counter(&srv.stats.head_too_large) >= 2
        });
    }

    #[test]
    fn a_long_request_line_and_many_headers_are_refused() {
        let srv = server(AdminLimits::default());
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1 << 20));
        let many = format!("GET /readyz HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(100_000));
        for (i, req) in [long_line, many].iter().enumerate() {
            let mut s = StdStream::connect(srv.local_addr).unwrap();
            s.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
            s.set_write_timeout(Some(PROBE_TIMEOUT)).unwrap();
            // The server closes mid-write: the write may fail, the answer is still 431 or
            // a reset (the unread rest of the request makes the close a reset).
            let _ = s.write_all(req.as_bytes());
            assert_ready(srv.local_addr, "an oversized head");
            let mut resp = Vec::new();
            let _ = s.read_to_end(&mut resp);
            let text = String::from_utf8_lossy(&resp);
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 431"),
                "case {i}: {text}"
            );
            eventually("oversized head counted", || {
                counter(&srv.stats.head_too_large) > i as u64
            });
        }
    }

    #[test]
    fn requests_with_bodies_or_other_methods_are_refused() {
        let srv = server(AdminLimits::default());
        for (req, want) in [
            (
                "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc",
                "HTTP/1.1 413",
            ),
            (
                "GET /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n",
                "HTTP/1.1 413",
            ),
            ("DELETE /readyz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405"),
        ] {
            let mut s = StdStream::connect(srv.local_addr).unwrap();
            s.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut resp = Vec::new();
            // read_to_end returning proves the server closed the connection.
            let _ = s.read_to_end(&mut resp);
            let text = String::from_utf8_lossy(&resp);
            assert!(text.starts_with(want), "{req:?}: {text}");
        }
        assert_eq!(counter(&srv.stats.bad_request), 3);
        assert_ready(srv.local_addr, "refused bodies");
    }

    #[test]
    fn slowloris_over_the_cap_neither_exhausts_nor_blocks_health() {
        let srv = server(AdminLimits {
            max_connections: 64,
            ..AdminLimits::default()
        });
        let mut held = Vec::new();
        for _ in 0..2_000 {
            let mut s = StdStream::connect(srv.local_addr).unwrap();
            // A head that never ends.
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nX-Slow: ");
            held.push(s);
        }
        assert_ready(srv.local_addr, "2,000 slowloris connections");
        eventually("connections shed", || {
            counter(&srv.stats.shed) >= 2_000 - 64
        });
        assert!(counter(&srv.stats.active) <= 64);
        drop(held);
    }

    #[test]
    fn a_head_that_never_ends_times_out() {
        let srv = server(AdminLimits {
            head_timeout: Duration::from_millis(200),
            ..AdminLimits::default()
        });
        let mut s = StdStream::connect(srv.local_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /readyz HTTP/1.1\r\nX-Slow: a").unwrap();
        let mut resp = Vec::new();
        // Returns once the server closes (408 or nothing).
        let _ = s.read_to_end(&mut resp);
        eventually("head timeout counted", || {
            counter(&srv.stats.head_timeout) == 1
        });
    }

    #[test]
    fn every_connection_busy_means_refused() {
        let health = Arc::new(Health::default());
        // The render waits until the test opens the gate (10 s at most, so a failing test
        // cannot hang).
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let gate2 = gate.clone();
        let started = Arc::new(AtomicBool::new(false));
        let started2 = started.clone();
        let srv = AdminServer::start_with(
            "127.0.0.1:0".parse().unwrap(),
            AdminLimits {
                max_connections: 1,
                ..AdminLimits::default()
            },
            health,
            60_000,
            move || {
                started2.store(true, Ordering::SeqCst);
                let (open, cv) = &*gate2;
                let guard = lock(open);
                let _ = cv.wait_timeout_while(guard, Duration::from_secs(10), |o| !*o);
                "slow\n".into()
            },
        )
        .unwrap();
        // The only slot holds a scrape being answered: it is not shed, the newcomer is refused.
        let mut scrape = StdStream::connect(srv.local_addr).unwrap();
        scrape
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        eventually("scrape accepted", || counter(&srv.stats.accepted) == 1);
        // The request is being answered once the render started (the connection is busy).
        eventually("scrape in progress", || started.load(Ordering::SeqCst));
        let refused = get(srv.local_addr, "/healthz");
        assert!(
            refused.as_ref().map_or(true, |(s, _)| s.is_empty()),
            "{refused:?}"
        );
        assert_eq!(counter(&srv.stats.refused), 1);
        assert_eq!(counter(&srv.stats.shed), 0);
        {
            let (open, cv) = &*gate;
            *lock(open) = true;
            cv.notify_all();
        }
        let mut resp = String::new();
        scrape
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        scrape.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200") && resp.contains("slow"),
            "{resp}"
        );
        assert!(resp.contains("vxtap_admin_connections_rejected_total{reason=\"over_limit\"} 1"));
    }
}
