//! What a shadow replay may send, where, and how fast: parsed and checked once, before any
//! request leaves (a bad target or header is a startup error, never a per-request surprise).

use std::time::Duration;

use hyper::http::uri::{Scheme, Uri};

use crate::ShadowError;

/// The credentials dropped from every shadow request unless `--keep-header` names them.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// The marker every shadow request carries; a mirrored request carrying it is never replayed.
pub const MARKER_HEADER: &str = "x-vxtap-shadow";

/// Methods replayed when `--methods` is not given: the safe ones (RFC 9110, 9.2.1).
pub const DEFAULT_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

/// What a full queue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Drop the exchange, count it and write a `skipped: queue_full` record (live capture:
    /// capture and the JSON output never wait for the candidate).
    Drop,
    /// Wait for room (capture files: nothing is lost by reading a file more slowly).
    Wait,
}

/// The candidate: scheme, host and port from `--target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// True for `https://`.
    pub tls: bool,
    /// Host name or address as given (brackets removed from IPv6 literals).
    pub host: String,
    /// Port (80 or 443 unless given).
    pub port: u16,
}

impl Target {
    /// Parses `http://host[:port][/]` or `https://...`. A path, query or user info is refused:
    /// requests keep their own path, and credentials in a URL would end up in logs.
    pub fn parse(url: &str) -> Result<Target, ShadowError> {
        let bad = |why: &str| ShadowError::Target(format!("{url}: {why}"));
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let tls = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => false,
            Some(s) if *s == Scheme::HTTPS => true,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let auth = uri.authority().ok_or_else(|| bad("no host"))?;
        if auth.as_str().contains('@') {
            return Err(bad("user info is not accepted (use --set-header)"));
        }
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err(bad(
                "a path or query is not accepted (requests keep theirs)",
            ));
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Target {
            tls,
            host: host.to_string(),
            port: auth.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        })
    }

    /// `host:port` (brackets around IPv6 literals), what `--allow-target` lists.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `Name: value` (for `--set-header` and `--target-header`).
pub fn parse_header(s: &str) -> Result<(String, String), ShadowError> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| ShadowError::Header(format!("{s}: expected 'Name: value'")))?;
    let name = name.trim();
    let value = value.trim();
    if hyper::http::HeaderName::from_bytes(name.as_bytes()).is_err()
        || hyper::http::HeaderValue::from_str(value).is_err()
    {
        return Err(ShadowError::Header(format!(
            "{s}: not a valid header name or value"
        )));
    }
    Ok((name.to_ascii_lowercase(), value.to_string()))
}

/// Everything the shadow stage needs to know.
#[derive(Clone, Debug)]
pub struct ShadowConfig {
    /// Where requests go.
    pub target: Target,
    /// `host:port` entries the target must be one of (`--allow-target`); empty allows the
    /// explicit `--target` alone.
    pub allow_targets: Vec<String>,
    /// Methods replayed (upper case).
    pub methods: Vec<String>,
    /// Credential headers kept anyway (lower case).
    pub keep_headers: Vec<String>,
    /// Headers set (replacing any captured value), lower-case names; `--target-header` lands
    /// here too.
    pub set_headers: Vec<(String, String)>,
    /// Production's inter-arrival times scaled by this (from packet timestamps); 0 sends as
    /// fast as the other limits allow.
    pub speed: f64,
    /// Requests per second at most (0: no cap).
    pub rate: f64,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Per request, connect included.
    pub timeout: Duration,
    /// Consecutive failures (errors and timeouts) that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe is let through.
    pub breaker_cooldown: Duration,
    /// Request and response body bytes kept for replay and comparison (`--shadow-max-body`).
    pub max_body: usize,
    /// Exchanges waiting or in flight at most.
    pub queue_len: usize,
    /// Bytes those exchanges may hold at most (charged to `--max-memory` by the caller).
    pub queue_bytes: usize,
    /// Drop or wait when the queue is full.
    pub when_full: WhenFull,
    /// How long shutdown waits for queued and in-flight requests.
    pub drain_timeout: Duration,
    /// Tokio worker threads for the sender.
    pub threads: usize,
}

impl ShadowConfig {
    /// Defaults for `target`: safe methods, 1 MiB bodies, 64 in flight, 5 s timeout.
    pub fn new(target: Target) -> ShadowConfig {
        ShadowConfig {
            target,
            allow_targets: Vec::new(),
            methods: DEFAULT_METHODS.iter().map(|m| m.to_string()).collect(),
            keep_headers: Vec::new(),
            set_headers: Vec::new(),
            speed: 0.0,
            rate: 0.0,
            concurrency: 64,
            timeout: Duration::from_secs(5),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(5),
            max_body: 1 << 20,
            queue_len: 4096,
            queue_bytes: 64 << 20,
            when_full: WhenFull::Drop,
            drain_timeout: Duration::from_secs(5),
            threads: 1,
        }
    }

    /// Refuses a configuration that could send somewhere it should not, or never send.
    pub fn validate(&self) -> Result<(), ShadowError> {
        if !self.allow_targets.is_empty() {
            let want = self.target.authority().to_ascii_lowercase();
            let ok = self.allow_targets.iter().any(|a| {
                let a = a.trim().to_ascii_lowercase();
                // An allow-list entry may be a URL or host:port.
                let a = Target::parse(&a).map(|t| t.authority()).unwrap_or(a);
                a == want
            });
            if !ok {
                return Err(ShadowError::Target(format!(
                    "{want} is not in --allow-target ({})",
                    self.allow_targets.join(", ")
                )));
            }
        }
        if self.methods.is_empty() {
            return Err(ShadowError::Config("--methods lists no method".into()));
        }
        if !(self.speed >= 0.0 && self.speed.is_finite()) {
            return Err(ShadowError::Config("--speed must be 0 or more".into()));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(ShadowError::Config("--rate must be 0 or more".into()));
        }
        if self.concurrency == 0 || self.queue_len == 0 || self.threads == 0 {
            return Err(ShadowError::Config(
                "--concurrency, the queue and the threads must be at least 1".into(),
            ));
        }
        if self.breaker_failures == 0 {
            return Err(ShadowError::Config(
                "--breaker-failures must be at least 1".into(),
            ));
        }
        if self.set_headers.iter().any(|(n, _)| n == MARKER_HEADER) {
            return Err(ShadowError::Header(format!(
                "{MARKER_HEADER} is the loop guard's marker and cannot be set"
            )));
        }
        Ok(())
    }

    /// Whether `method` is replayed.
    pub fn method_allowed(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_refuse() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "127.0.0.1", 8080));
        let t = Target::parse("https://candidate.internal/").unwrap();
        assert_eq!((t.tls, t.port), (true, 443));
        assert_eq!(
            Target::parse("http://[::1]:81").unwrap().authority(),
            "[::1]:81"
        );
        for bad in [
            "ftp://x",
            "x:80",
            "http://u:p@x",
            "http://x/path",
            "http://x/?q",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_list_is_enforced() {
        let mut c = ShadowConfig::new(Target::parse("http://127.0.0.1:8080").unwrap());
        c.validate().unwrap();
        c.allow_targets = vec!["10.0.0.1:80".into()];
        assert!(c.validate().is_err());
        c.allow_targets.push("http://127.0.0.1:8080".into());
        c.validate().unwrap();
        c.set_headers.push(("x-vxtap-shadow".into(), "0".into()));
        assert!(c.validate().is_err());
    }

    #[test]
    fn headers_parse() {
        assert_eq!(
            parse_header("Host: a.example").unwrap(),
            ("host".to_string(), "a.example".to_string())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }
}
