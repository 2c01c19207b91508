//! A k6 load-test script that reproduces the observed endpoint mix at the observed rate.
//!
//! Each endpoint keeps its request count and up to [`K6Config::samples_per_endpoint`] request
//! samples (target, headers, body); the script picks an endpoint with probability proportional
//! to its count, then one of its samples, under a `constant-arrival-rate` scenario running at
//! the observed rate times [`K6Config::multiplier`] for the observed span (both overridable
//! from the environment: `RATE`, `DURATION`, `BASE_URL`). Samples live in a `SharedArray`, so
//! k6 keeps one copy for all virtual users.
//!
//! Only safe methods (GET, HEAD, OPTIONS) are replayed unless [`K6Config::methods`] widens the
//! set. Credentials never reach the script: `Authorization`, `Cookie`, `Proxy-Authorization`
//! and headers whose name says key, token, secret or session are replaced by a placeholder
//! read from the environment at run time (`VXTAP_AUTHORIZATION` for `Authorization`).

use crate::endpoint::{split_target, EndpointCap, EndpointKey, DEFAULT_MAX_ENDPOINTS};
use serde_json::{json, Value};
use std::io::Write;
use vxtap_http::{Content, Exchange};

/// What the script reproduces.
#[derive(Clone, Debug)]
pub struct K6Config {
    /// Methods replayed (upper case).
    pub methods: Vec<String>,
    /// Rate multiplier.
    pub multiplier: f64,
    /// Request samples kept per endpoint.
    pub samples_per_endpoint: usize,
    /// Endpoints kept.
    pub max_endpoints: usize,
    /// Longest request body kept in a sample (longer ones are left out of the samples).
    pub max_body_bytes: usize,
}

impl Default for K6Config {
    fn default() -> Self {
        K6Config {
            methods: ["GET", "HEAD", "OPTIONS"].map(String::from).to_vec(),
            multiplier: 1.0,
            samples_per_endpoint: 5,
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Headers the client library sets itself, or that describe the connection.
const DROPPED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "expect",
];

/// The environment variable standing in for a credential header, if `name` is one.
pub fn credential_env(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let secret = matches!(
        lower.as_str(),
        "authorization" | "cookie" | "proxy-authorization"
    ) || ["key", "token", "secret", "session", "password", "auth"]
        .iter()
        .any(|w| lower.contains(w));
    secret.then(|| {
        let mut env = String::from("VXTAP_");
        env.extend(lower.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        }));
        env
    })
}

#[derive(Debug, Default)]
struct Endpoint {
    count: u64,
    samples: Vec<Value>,
}

/// Accumulates exchanges into a k6 script.
#[derive(Debug)]
pub struct K6Builder {
    cfg: K6Config,
    endpoints: EndpointCap<EndpointKey, Endpoint>,
    first_ns: u64,
    last_ns: u64,
    /// Requests left out because of their method.
    pub unsafe_skipped: u64,
    host: Option<String>,
}

impl K6Builder {
    /// An empty builder.
    pub fn new(cfg: K6Config) -> Self {
        K6Builder {
            endpoints: EndpointCap::new(cfg.max_endpoints),
            cfg,
            first_ns: u64::MAX,
            last_ns: 0,
            unsafe_skipped: 0,
            host: None,
        }
    }

    /// Folds one exchange in.
    pub fn add(&mut self, ex: &Exchange) {
        let Some(req) = ex.request.as_ref() else {
            return;
        };
        let (Some(method), Some(uri)) = (req.method.as_deref(), req.uri.as_deref()) else {
            return;
        };
        let method = method.to_ascii_uppercase();
        if !self.cfg.methods.contains(&method) {
            self.unsafe_skipped += 1;
            return;
        }
        let (path, query) = split_target(uri);
        if !path.starts_with('/') {
            return;
        }
        self.first_ns = self.first_ns.min(ex.ts_ns);
        self.last_ns = self.last_ns.max(ex.ts_ns);
        if self.host.is_none() {
            self.host = req.header("host").map(str::to_string);
        }
        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let key = EndpointKey {
            method: method.clone(),
            route: path.to_string(),
        };
        let max_samples = self.cfg.samples_per_endpoint;
        let max_body = self.cfg.max_body_bytes;
        let ep = self.endpoints.entry(key);
        ep.count += 1;
        if ep.samples.len() >= max_samples {
            return;
        }
        let headers: Vec<Value> = req
            .headers
            .iter()
            .filter(|(n, _)| !DROPPED_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
            .map(|(n, v)| match credential_env(n) {
                Some(env) => json!([n, null, env]),
                None => json!([n, v]),
            })
            .collect();
        // A body that is not whole, or not text, would not reproduce the request.
        let body = match &req.body {
            Some(b)
                if b.content == Content::Plain
                    && !req.body_truncated
                    && b.bytes.len() <= max_body =>
            {
                match std::str::from_utf8(&b.bytes) {
                    Ok(s) => Some(s.to_string()),
                    Err(_) => return,
                }
            }
            Some(_) => return,
            None if req.body_len > 0 => return,
            None => None,
        };
        ep.samples
            .push(json!({"method": method, "target": target, "headers": headers, "body": body}));
    }

    /// Writes the script.
    pub fn write(&self, mut out: impl Write) -> std::io::Result<()> {
        let mut eps: Vec<_> = self
            .endpoints
            .map
            .iter()
            .filter(|(_, e)| !e.samples.is_empty())
            .collect();
        eps.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        let total: u64 = eps.iter().map(|(_, e)| e.count).sum();
        let span_s = if self.last_ns > self.first_ns {
            (self.last_ns - self.first_ns) as f64 / 1e9
        } else {
            1.0
        };
        let span_s = span_s.max(1.0);
        let per_minute = ((total as f64 / span_s) * 60.0 * self.cfg.multiplier)
            .round()
            .max(1.0) as u64;
        let duration = format!("{}s", span_s.ceil().max(10.0) as u64);
        let data: Vec<Value> = eps
            .iter()
            .map(|(k, e)| json!({"endpoint": k.to_string(), "weight": e.count, "samples": e.samples}))
            .collect();
        let base = self
            .host
            .as_deref()
            .map(|h| format!("http://{h}"))
            .unwrap_or_else(|| "http://localhost".into());
        let data = serde_json::to_string_pretty(&data).map_err(std::io::Error::other)?;
        let base = serde_json::to_string(&base).map_err(std::io::Error::other)?;
        write!(
            out,
            r#"// Generated by vxtap k6 from observed traffic: {total} requests of {endpoints} endpoints
// over {span_s:.1}s, replayed at {per_minute} requests per minute (observed rate x {mult}).
// Methods replayed: {methods}. Credentials are placeholders read from the environment
// (VXTAP_AUTHORIZATION, VXTAP_COOKIE, ...); set BASE_URL to the system under test.
// Overrides: RATE (requests per minute), DURATION (e.g. 5m), VUS (pre-allocated).
import http from 'k6/http';
import {{ check }} from 'k6';
import {{ SharedArray }} from 'k6/data';

const endpoints = new SharedArray('endpoints', function () {{
  return {data};
}});

const BASE_URL = __ENV.BASE_URL || {base};
const TOTAL_WEIGHT = endpoints.reduce((sum, e) => sum + e.weight, 0);

export const options = {{
  scenarios: {{
    observed_mix: {{
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || {per_minute}),
      timeUnit: '1m',
      duration: __ENV.DURATION || '{duration}',
      preAllocatedVUs: Number(__ENV.VUS || 10),
      maxVUs: Number(__ENV.MAX_VUS || 200),
    }},
  }},
}};

function pick() {{
  let r = Math.random() * TOTAL_WEIGHT;
  for (const e of endpoints) {{
    r -= e.weight;
    if (r < 0) {{
      return e;
    }}
  }}
  return endpoints[endpoints.length - 1];
}}

export default function () {{
  if (endpoints.length === 0) {{
    return;
  }}
  const e = pick();
  const s = e.samples[Math.floor(Math.random() * e.samples.length)];
  const headers = {{}};
  for (const [name, value, env] of s.headers) {{
    headers[name] = env ? (__ENV[env] || '') : value;
  }}
  const res = http.request(s.method, BASE_URL + s.target, s.body, {{
    headers: headers,
    tags: {{ endpoint: e.endpoint }},
  }});
  check(res, {{ 'not a server error': (r) => r.status < 500 }});
}}
"#,
            total = total,
            endpoints = eps.len(),
            span_s = span_s,
            per_minute = per_minute,
            mult = self.cfg.multiplier,
            methods = self.cfg.methods.join(", "),
            data = data,
            base = base,
            duration = duration,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ex;

    fn script(cfg: K6Config, exchanges: &[Exchange]) -> String {
        let mut b = K6Builder::new(cfg);
        exchanges.iter().for_each(|e| b.add(e));
        let mut out = Vec::new();
        b.write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_mix_rate_and_placeholders() {
        let mut v: Vec<Exchange> = (0..60)
            .map(|i| ex("GET", "/a?x=1", 200, None, i, 1))
            .collect();
        v.extend((0..30).map(|i| ex("GET", "/b", 200, None, i, 1)));
        v.push(ex("DELETE", "/a", 200, None, 3, 1));
        let s = script(K6Config::default(), &v);
        // 90 safe requests over 59 s: 91.5 per minute.
        assert!(s.contains("rate: Number(__ENV.RATE || 92)"), "{s}");
        assert!(s.contains("\"weight\": 60"));
        assert!(s.contains("\"weight\": 30"));
        assert!(!s.contains("DELETE"));
        assert!(s.contains("VXTAP_AUTHORIZATION"));
        assert!(!s.contains("Bearer"));
        let s = script(
            K6Config {
                methods: vec!["GET".into(), "DELETE".into()],
                multiplier: 2.0,
                ..K6Config::default()
            },
            &v,
        );
        assert!(s.contains("DELETE /a"));
        assert!(s.contains("rate: Number(__ENV.RATE || 185)"));
    }

    #[test]
    fn credential_headers_are_recognised() {
        assert_eq!(
            credential_env("Authorization").as_deref(),
            Some("VXTAP_AUTHORIZATION")
        );
        assert_eq!(
            credential_env("X-Api-Key").as_deref(),
            Some("VXTAP_X_API_KEY")
        );
        assert_eq!(credential_env("Accept"), None);
    }

    #[test]
    fn the_script_is_valid_javascript_when_node_is_there() {
        let Ok(node) = which("node") else {
            eprintln!("skipped: node not installed");
            return;
        };
        let v: Vec<Exchange> = (0..5)
            .map(|i| ex("GET", "/q?\u{2028}'\"`${x}", 200, None, i, 1))
            .collect();
        let s = script(K6Config::default(), &v);
        let dir = std::env::temp_dir().join(format!("vxtap-k6-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("load.mjs");
        std::fs::write(&f, s).unwrap();
        let out = std::process::Command::new(node)
            .arg("--check")
            .arg(&f)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn which(name: &str) -> Result<std::path::PathBuf, ()> {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or(())
    }
}
