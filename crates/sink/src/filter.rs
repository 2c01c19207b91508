//! The exchange filter: host, path, method and status lists, decided per exchange after
//! parsing. (The packet filter, which runs on segments before reassembly, lives in the
//! binary's front stage: `vxtap::packet_filter`.)

use crate::SinkError;
use serde::Deserialize;
use vxtap_http::Exchange;

/// HTTP-level filter options (the `[filter.http]` table / matching flags). Kinds combine with
/// AND; entries within a kind combine with OR; an empty list does not restrict.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeFilterConfig {
    /// Hosts (from the Host header or an absolute URI), exact or `*.suffix` (any subdomain,
    /// not the bare suffix itself); case-insensitive, port ignored.
    pub hosts: Vec<String>,
    /// Path prefixes of the request target (query excluded), e.g. `/api/`.
    pub path_prefixes: Vec<String>,
    /// Methods, case-insensitive.
    pub methods: Vec<String>,
    /// Statuses: `404`, a class `5xx`, or a range `500-504`.
    pub statuses: Vec<String>,
}

vxtap_wire::labeled_enum! {
    /// Why an exchange was dropped by the HTTP-level filter.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum ExchangeFilterReason {
        /// The host did not match (or there was no request).
        Host => "host",
        /// The path did not match (or there was no request).
        Path => "path",
        /// The method did not match (or there was no request).
        Method => "method",
        /// The status did not match (or there was no response).
        Status => "status",
    }
}

/// What the HTTP-level filter decided for an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeDecision {
    /// Pass it on.
    Keep,
    /// Drop it, for this reason.
    Drop(ExchangeFilterReason),
}

/// Exchange counters by decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeFilterStats {
    /// Exchanges kept.
    pub kept: u64,
    /// Dropped by the host filter.
    pub host: u64,
    /// Dropped by the path filter.
    pub path: u64,
    /// Dropped by the method filter.
    pub method: u64,
    /// Dropped by the status filter.
    pub status: u64,
}

impl ExchangeFilterStats {
    /// Counts one decision.
    pub fn record(&mut self, d: ExchangeDecision) {
        match d {
            ExchangeDecision::Keep => self.kept += 1,
            ExchangeDecision::Drop(ExchangeFilterReason::Host) => self.host += 1,
            ExchangeDecision::Drop(ExchangeFilterReason::Path) => self.path += 1,
            ExchangeDecision::Drop(ExchangeFilterReason::Method) => self.method += 1,
            ExchangeDecision::Drop(ExchangeFilterReason::Status) => self.status += 1,
        }
    }

    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.host + self.path + self.method + self.status
    }

    /// Adds another instance's counters to these.
    pub fn merge(&mut self, o: &ExchangeFilterStats) {
        self.kept += o.kept;
        self.host += o.host;
        self.path += o.path;
        self.method += o.method;
        self.status += o.status;
    }

    /// `(reason label, drops)` for every reason, for the metrics exporter.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("host", self.host),
            ("path", self.path),
            ("method", self.method),
            ("status", self.status),
        ]
        .into_iter()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// Stored with its leading dot: `.example.com`.
    Suffix(String),
}

/// The HTTP-level filter, applied after parsing.
#[derive(Clone, Debug, Default)]
pub struct ExchangeFilter {
    hosts: Vec<HostPattern>,
    path_prefixes: Vec<String>,
    methods: Vec<String>,
    statuses: Vec<(u16, u16)>,
}

fn parse_status(s: &str) -> Result<(u16, u16), SinkError> {
    let t = s.trim();
    let bad = || SinkError::InvalidStatus(s.to_string());
    let lower = t.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let c: u16 = class.parse().map_err(|_| bad())?;
        if !(1..=9).contains(&c) {
            return Err(bad());
        }
        return Ok((c * 100, c * 100 + 99));
    }
    let (lo, hi) = match t.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (t, t),
    };
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if lo > hi || hi > 999 {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The host of a request: the Host header, else the authority of an absolute-form target;
/// lowercased, port and trailing dot removed.
fn request_host(ex: &Exchange) -> Option<String> {
    let req = ex.request.as_ref()?;
    let raw = req
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim())
        .or_else(|| {
            let uri = req.uri.as_deref()?;
            let rest = uri.split_once("://")?.1;
            Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
        })?;
    let host = if let Some(v6) = raw.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// The path of a request target, for origin-form and absolute-form alike.
fn request_path(uri: &str) -> &str {
    let after_authority = match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => uri,
    };
    after_authority
        .split(['?', '#'])
        .next()
        .unwrap_or(after_authority)
}

impl ExchangeFilter {
    /// Builds a filter; fails on a malformed host pattern or status selector.
    pub fn new(cfg: &ExchangeFilterConfig) -> Result<Self, SinkError> {
        let hosts = cfg
            .hosts
            .iter()
            .map(|h| {
                let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
                if let Some(suffix) = h.strip_prefix("*.") {
                    if suffix.is_empty() || suffix.contains('*') {
                        return Err(SinkError::InvalidHost(h.clone()));
                    }
                    Ok(HostPattern::Suffix(format!(".{suffix}")))
                } else if h.is_empty() || h.contains('*') {
                    Err(SinkError::InvalidHost(h))
                } else {
                    Ok(HostPattern::Exact(h))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(ExchangeFilter {
            hosts,
            path_prefixes: cfg.path_prefixes.clone(),
            methods: cfg.methods.iter().map(|m| m.trim().to_string()).collect(),
            statuses: cfg
                .statuses
                .iter()
                .map(|s| parse_status(s))
                .collect::<Result<_, _>>()?,
        })
    }

    /// True when the filter can drop nothing.
    pub fn is_pass_all(&self) -> bool {
        self.hosts.is_empty()
            && self.path_prefixes.is_empty()
            && self.methods.is_empty()
            && self.statuses.is_empty()
    }

    /// Decides for one exchange.
    pub fn decide(&self, ex: &Exchange) -> ExchangeDecision {
        use ExchangeFilterReason as R;
        if !self.hosts.is_empty() {
            let ok = request_host(ex).is_some_and(|h| {
                self.hosts.iter().any(|p| match p {
                    HostPattern::Exact(e) => *e == h,
                    HostPattern::Suffix(s) => h.len() > s.len() && h.ends_with(s.as_str()),
                })
            });
            if !ok {
                return ExchangeDecision::Drop(R::Host);
            }
        }
        let req = ex.request.as_ref();
        if !self.methods.is_empty() {
            let ok = req
                .and_then(|r| r.method.as_deref())
                .is_some_and(|m| self.methods.iter().any(|x| x.eq_ignore_ascii_case(m)));
            if !ok {
                return ExchangeDecision::Drop(R::Method);
            }
        }
        if !self.path_prefixes.is_empty() {
            let ok = req.and_then(|r| r.uri.as_deref()).is_some_and(|u| {
                let p = request_path(u);
                self.path_prefixes.iter().any(|x| p.starts_with(x.as_str()))
            });
            if !ok {
                return ExchangeDecision::Drop(R::Path);
            }
        }
        if !self.statuses.is_empty() {
            let ok = ex
                .response
                .as_ref()
                .and_then(|r| r.status)
                .is_some_and(|s| self.statuses.iter().any(|&(lo, hi)| (lo..=hi).contains(&s)));
            if !ok {
                return ExchangeDecision::Drop(R::Status);
            }
        }
        ExchangeDecision::Keep
    }

    /// Decides for one exchange and counts the decision.
    pub fn check(&self, ex: &Exchange, stats: &mut ExchangeFilterStats) -> ExchangeDecision {
        let d = self.decide(ex);
        stats.record(d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{exchange, request, response};

    fn ex(method: &str, uri: &str, host: Option<&str>, status: Option<u16>) -> Exchange {
        let headers: Vec<(&str, &str)> = host.map(|h| ("Host", h)).into_iter().collect();
        exchange(
            Some(request(method, uri, &headers, None)),
            status.map(|s| response(s, &[], None)),
        )
    }

    #[test]
    fn exchange_filter_each_kind() {
        use ExchangeFilterReason as R;
        let f = |cfg: ExchangeFilterConfig| ExchangeFilter::new(&cfg).unwrap();
        let hosts = f(ExchangeFilterConfig {
            hosts: vec!["api.example.com".into(), "*.internal".into()],
            ..Default::default()
        });
        let d = |f: &ExchangeFilter, e: &Exchange| f.decide(e);
        assert_eq!(
            d(&hosts, &ex("GET", "/", Some("API.example.com:8080"), None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&hosts, &ex("GET", "/", Some("a.b.internal"), None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&hosts, &ex("GET", "http://x.internal/p", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&hosts, &ex("GET", "/", Some("internal"), None)),
            ExchangeDecision::Drop(R::Host)
        );
        assert_eq!(
            d(&hosts, &ex("GET", "/", Some("example.com"), None)),
            ExchangeDecision::Drop(R::Host)
        );
        assert_eq!(
            d(&hosts, &ex("GET", "/", None, None)),
            ExchangeDecision::Drop(R::Host)
        );
        assert_eq!(
            d(&hosts, &exchange(None, Some(response(200, &[], None)))),
            ExchangeDecision::Drop(R::Host)
        );

        let paths = f(ExchangeFilterConfig {
            path_prefixes: vec!["/api/".into()],
            ..Default::default()
        });
        assert_eq!(
            d(&paths, &ex("GET", "/api/v1?x=1", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&paths, &ex("GET", "http://h/api/v1", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&paths, &ex("GET", "/apix", None, None)),
            ExchangeDecision::Drop(R::Path)
        );
        assert_eq!(
            d(&paths, &ex("GET", "/x?/api/", None, None)),
            ExchangeDecision::Drop(R::Path)
        );

        let methods = f(ExchangeFilterConfig {
            methods: vec!["post".into(), "PUT".into()],
            ..Default::default()
        });
        assert_eq!(
            d(&methods, &ex("POST", "/", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&methods, &ex("PUT", "/", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&methods, &ex("GET", "/", None, None)),
            ExchangeDecision::Drop(R::Method)
        );

        let statuses = f(ExchangeFilterConfig {
            statuses: vec!["5xx".into(), "404".into(), "301-302".into()],
            ..Default::default()
        });
        for s in [500, 503, 599, 404, 301, 302] {
            assert_eq!(
                d(&statuses, &ex("GET", "/", None, Some(s))),
                ExchangeDecision::Keep,
                "{s}"
            );
        }
        for s in [200, 303, 403, 600] {
            assert_eq!(
                d(&statuses, &ex("GET", "/", None, Some(s))),
                ExchangeDecision::Drop(R::Status),
                "{s}"
            );
        }
        assert_eq!(
            d(&statuses, &ex("GET", "/", None, None)),
            ExchangeDecision::Drop(R::Status)
        );
    }

    #[test]
    fn exchange_filter_combined_and_counted() {
        let f = ExchangeFilter::new(&ExchangeFilterConfig {
            hosts: vec!["*.example.com".into()],
            methods: vec!["GET".into()],
            statuses: vec!["2xx".into()],
            ..Default::default()
        })
        .unwrap();
        let mut stats = ExchangeFilterStats::default();
        let cases = [
            (ex("GET", "/", Some("a.example.com"), Some(200)), true),
            (ex("POST", "/", Some("a.example.com"), Some(200)), false),
            (ex("GET", "/", Some("a.example.org"), Some(200)), false),
            (ex("GET", "/", Some("a.example.com"), Some(500)), false),
        ];
        for (e, keep) in &cases {
            assert_eq!(f.check(e, &mut stats) == ExchangeDecision::Keep, *keep);
        }
        assert_eq!(
            stats,
            ExchangeFilterStats {
                kept: 1,
                host: 1,
                path: 0,
                method: 1,
                status: 1
            }
        );
        assert_eq!(stats.dropped(), 3);
        assert!(ExchangeFilter::default().is_pass_all());
        for bad in ["5x", "abc", "600-500", "0xx"] {
            assert!(
                matches!(
                    ExchangeFilter::new(&ExchangeFilterConfig {
                        statuses: vec![bad.into()],
                        ..Default::default()
                    }),
                    Err(SinkError::InvalidStatus(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            ExchangeFilter::new(&ExchangeFilterConfig {
                hosts: vec!["a.*.com".into()],
                ..Default::default()
            }),
            Err(SinkError::InvalidHost(_))
        ));
    }
}
