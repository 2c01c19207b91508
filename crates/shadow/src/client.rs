//! One candidate connection (hyper 1's HTTP/1.1 client connection over TCP, or TLS with
//! rustls): requests go one after another on it, as they came on their production connection.
//! hyper-util's pooled client would hand each request whichever idle connection it has, which
//! loses that order; the connection API keeps it, and a lane reconnects when the candidate
//! closes. Redirects are never followed: hyper's connection API does not follow them, and
//! nothing here looks at `Location`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::http::{HeaderName, HeaderValue, Method, Request, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::config::Target;
use crate::prepare::Job;
use crate::record::{ErrorKind, Response, SkipReason};

/// Opens candidate connections.
#[derive(Clone)]
pub struct Connector {
    target: Target,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.target)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// A connector for `target` (the Mozilla roots, from webpki-roots, for https).
    pub fn new(target: &Target) -> Result<Connector, crate::ShadowError> {
        let tls = if target.tls {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            // rustls 0.23.3x deprecates the ring provider for lacking post-quantum key exchange;
            // ring is what builds here without cmake/nasm (aws-lc-rs needs them).
            #[allow(deprecated)]
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| crate::ShadowError::Target(format!("tls: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| crate::ShadowError::Target(format!("{}: {e}", target.host)))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Connector {
            target: target.clone(),
            tls,
        })
    }

    /// A new connection, its driver running on the current runtime.
    pub async fn connect(&self) -> Result<Conn, ErrorKind> {
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Conn::handshake(TokioIo::new(tcp)).await,
            Some((tls, name)) => {
                let s = tls
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|_| ErrorKind::Connect)?;
                Conn::handshake(TokioIo::new(s)).await
            }
        }
    }

    /// `host:port` for a request that carried no Host field (HTTP/1.0).
    pub fn authority(&self) -> String {
        self.target.authority()
    }
}

/// An open candidate connection.
#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // A connection given up (timeout) must not linger waiting for its late answer.
        self.driver.abort();
    }
}

/// The candidate's answer.
#[derive(Debug)]
pub struct Answer {
    /// Status, fields, and the body up to the cap.
    pub response: Response,
    /// Body bytes received in all.
    pub body_len: u64,
}

impl Conn {
    async fn handshake<T>(io: T) -> Result<Conn, ErrorKind>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        // A fixed 16 KiB read buffer: hundreds of lanes may be open at once, and hyper's
        // adaptive buffer grows each to hundreds of kB.
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .read_buf_exact_size(Some(16 << 10))
            .handshake(io)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender, driver })
    }

    /// False once the candidate closed it (the next request needs a new one).
    pub fn usable(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends `req` and reads the whole answer, keeping `max_body` bytes of its body.
    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<Answer, ErrorKind> {
        self.sender.ready().await.map_err(|_| ErrorKind::Protocol)?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|_| ErrorKind::Protocol)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = resp.into_body();
        let mut kept = Vec::new();
        let mut len = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ErrorKind::Protocol)?;
            if let Some(d) = frame.data_ref() {
                len += d.len() as u64;
                let room = max_body.saturating_sub(kept.len());
                kept.extend_from_slice(&d[..d.len().min(room)]);
            }
        }
        Ok(Answer {
            response: Response {
                status,
                headers,
                body_truncated: (kept.len() as u64) < len,
                body: kept,
            },
            body_len: len,
        })
    }
}

/// The request for `job` (its fields as prepared, the Host field added when it had none).
pub fn build_request(job: &Job, authority: &str) -> Result<Request<Full<Bytes>>, SkipReason> {
    let method = job.method.as_deref().ok_or(SkipReason::UnparsedRequest)?;
    let uri = job.uri.as_deref().ok_or(SkipReason::UnparsedRequest)?;
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).map_err(|_| SkipReason::Unsendable)?)
        .uri(uri)
        .version(Version::HTTP_11)
        .body(Full::new(job.body.clone()))
        .map_err(|_| SkipReason::Unsendable)?;
    let h = req.headers_mut();
    for (n, v) in &job.headers {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| SkipReason::Unsendable)?;
        let value = HeaderValue::from_str(v).map_err(|_| SkipReason::Unsendable)?;
        h.append(name, value);
    }
    if !h.contains_key(hyper::http::header::HOST) {
        let v = HeaderValue::from_str(authority).map_err(|_| SkipReason::Unsendable)?;
        h.insert(hyper::http::header::HOST, v);
    }
    Ok(req)
}
