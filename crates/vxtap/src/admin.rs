//! The admin HTTP port: `/metrics` (Prometheus), `/healthz` (the process answers) and `/readyz`
//! (the pipeline works). NLB health checks for UDP target groups must be TCP or HTTP, so this
//! port is what the load balancer probes; `/readyz` must mean that packets really flow.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::health::Health;

/// A running admin server.
pub struct AdminServer {
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
}

impl AdminServer {
    /// Binds `addr` and serves on a thread of its own. `render_metrics` is called per scrape.
    pub fn start(
        addr: SocketAddr,
        health: Arc<Health>,
        max_silence_ms: u64,
        render_metrics: impl Fn() -> String + Send + 'static,
    ) -> Result<Self, String> {
        let server =
            Arc::new(tiny_http::Server::http(addr).map_err(|e| format!("admin bind {addr}: {e}"))?);
        let local_addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| format!("admin bind {addr}: not an IP listener"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (srv, stop2) = (server.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let req = match srv.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(_) => break,
                    };
                    let path = req.url().split('?').next().unwrap_or("").to_string();
                    let (code, body, ctype) = match path.as_str() {
                        "/metrics" => (200, render_metrics(), "text/plain; version=0.0.4"),
                        "/healthz" => (200, "ok\n".to_string(), "text/plain"),
                        "/readyz" => match health.readiness(max_silence_ms) {
                            Ok(()) => (200, "ready\n".to_string(), "text/plain"),
                            Err(why) => (503, format!("not ready\n{why}\n"), "text/plain"),
                        },
                        _ => (404, "not found\n".to_string(), "text/plain"),
                    };
                    let header = tiny_http::Header::from_bytes("Content-Type", ctype)
                        .expect("static header is valid");
                    let resp = tiny_http::Response::from_string(body)
                        .with_status_code(code)
                        .with_header(header);
                    // A client that hung up is not our problem.
                    let _ = req.respond(resp);
                }
            })
            .map_err(|e| format!("spawn admin thread: {e}"))?;
        Ok(AdminServer {
            server,
            stop,
            thread: Some(thread),
            local_addr,
        })
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
