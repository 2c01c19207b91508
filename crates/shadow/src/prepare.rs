//! From a captured exchange to the request the candidate gets, or the reason it gets none.
//!
//! The safety rules live here, in one function: the method allow-list, the loop guard, bodies
//! sent whole or not at all, credentials dropped, hop-by-hop fields removed (they describe the
//! production connection, not this one), the marker added.

use bytes::Bytes;
use std::net::IpAddr;
use vxtap_http::{Exchange, Flag, Message};

use crate::config::{ShadowConfig, CREDENTIAL_HEADERS, MARKER_HEADER};
use crate::record::{ProductionSide, Response, SkipReason};

/// Fields of the production connection rather than of the request: the candidate connection
/// has its own (RFC 9110 7.6.1). `expect` goes too: the body is sent at once.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "http2-settings",
];

/// The production connection a request came on: requests of one go, in order, on one
/// candidate connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LaneKey {
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Server address and port.
    pub server: (IpAddr, u16),
    /// Mirror session.
    pub vni: Option<u32>,
}

/// One exchange on its way to the candidate (or straight to its record).
#[derive(Debug)]
pub struct Job {
    /// The exchange's id.
    pub id: u64,
    /// First request byte (packet time), for `--speed`.
    pub ts_ns: u64,
    /// Its production connection.
    pub lane: LaneKey,
    /// Method (None when no request was seen).
    pub method: Option<String>,
    /// Target as captured (redacted only when written).
    pub uri: Option<String>,
    /// Fields to send, in order.
    pub headers: Vec<(String, String)>,
    /// Body to send, as captured.
    pub body: Bytes,
    /// Production's side for the record.
    pub production: ProductionSide,
    /// Production's response for the comparison.
    pub production_response: Option<Response>,
    /// Set when it is not to be sent.
    pub skip: Option<SkipReason>,
    /// Bytes charged to the queue for it.
    pub charged: usize,
}

/// Fixed part of a job's cost (the struct and its allocations' headers), for the queue budget.
const JOB_OVERHEAD: usize = std::mem::size_of::<Job>() + 256;

fn response_of(m: &Message, max_body: usize) -> Response {
    let body = m
        .replay_body
        .as_deref()
        .or(m.body.as_ref().map(|b| b.bytes.as_slice()))
        .unwrap_or_default();
    let body = &body[..body.len().min(max_body)];
    Response {
        status: m.status.unwrap_or(0),
        headers: m.headers.clone(),
        body: body.to_vec(),
        body_truncated: (body.len() as u64) < m.body_len || m.gap_bytes > 0,
    }
}

/// Builds the job for `ex`; `ex`'s replay bodies are taken out (they are for this stage only).
pub fn prepare(ex: &mut Exchange, cfg: &ShadowConfig) -> Job {
    let production = ProductionSide {
        status: ex.response.as_ref().and_then(|r| r.status),
        latency_us: ex.timing.duration_us(),
        body_len: ex.response.as_ref().map(|r| r.body_len),
    };
    let production_response = ex.response.as_mut().map(|r| {
        let resp = response_of(r, cfg.max_body);
        r.replay_body = None;
        resp
    });
    let mut job = Job {
        id: ex.id,
        ts_ns: ex.timing.request_start_ns.unwrap_or(ex.ts_ns),
        lane: LaneKey {
            client: (ex.client.ip, ex.client.port),
            server: (ex.server.ip, ex.server.port),
            vni: ex.vni,
        },
        method: None,
        uri: None,
        headers: Vec::new(),
        body: Bytes::new(),
        production,
        production_response,
        skip: None,
        charged: 0,
    };
    let replay_body = ex.request.as_mut().and_then(|r| r.replay_body.take());
    let Some(req) = ex.request.as_ref() else {
        job.skip = Some(SkipReason::NoRequest);
        return charge(job);
    };
    job.method = req.method.clone();
    job.uri = req.uri.clone();
    job.skip = check(ex, req, replay_body.as_deref(), cfg).err();
    if job.skip.is_none() {
        job.headers = headers_to_send(req, cfg);
        job.body = Bytes::from(replay_body.unwrap_or_default());
    }
    charge(job)
}

fn charge(mut job: Job) -> Job {
    let strings = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let resp = job.production_response.as_ref().map_or(0, |r| {
        r.body.len()
            + r.headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 48)
                .sum::<usize>()
    });
    job.charged = JOB_OVERHEAD
        + strings(&job.method)
        + strings(&job.uri)
        + job
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 48)
            .sum::<usize>()
        + job.body.len()
        + resp;
    job
}

/// The rules, in the order a reason is reported.
fn check(
    ex: &Exchange,
    req: &Message,
    body: Option<&[u8]>,
    cfg: &ShadowConfig,
) -> Result<(), SkipReason> {
    if ex.flags.contains(Flag::ParseError) || req.start_line.is_some() {
        return Err(SkipReason::UnparsedRequest);
    }
    let (Some(method), Some(uri)) = (req.method.as_deref(), req.uri.as_deref()) else {
        return Err(SkipReason::UnparsedRequest);
    };
    if req.header(MARKER_HEADER).is_some() {
        return Err(SkipReason::LoopGuard);
    }
    if !cfg.method_allowed(method) {
        return Err(SkipReason::Method);
    }
    if hyper::http::Method::from_bytes(method.as_bytes()).is_err()
        || uri.parse::<hyper::http::uri::PathAndQuery>().is_err()
        || !uri.starts_with('/')
    {
        return Err(SkipReason::Unsendable);
    }
    if req.body_len > 0 || body.is_some_and(|b| !b.is_empty()) {
        if req.body_len > cfg.max_body as u64 {
            return Err(SkipReason::BodyTooLarge);
        }
        let Some(b) = body else {
            return Err(SkipReason::BodyNotCaptured);
        };
        if req.gap_bytes > 0 || (b.len() as u64) != req.body_len {
            return Err(SkipReason::BodyIncomplete);
        }
    }
    // A request cut by the end of its connection is incomplete even with no body counted.
    if ex.flags.contains(Flag::Incomplete) && req.body_len > 0 {
        return Err(SkipReason::BodyIncomplete);
    }
    Ok(())
}

/// The captured fields minus credentials and hop-by-hop fields, with `--set-header` values
/// replacing captured ones and the marker added. `Content-Length` and `Transfer-Encoding`
/// stay: hyper frames the body as they say (chunked again, or with the original length), so
/// the body goes out as the original did.
fn headers_to_send(req: &Message, cfg: &ShadowConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(req.headers.len() + 1);
    // `Connection: x-foo` names more hop-by-hop fields.
    let named_hop: Vec<String> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in &req.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str())
            || named_hop.contains(&lower)
            || (CREDENTIAL_HEADERS.contains(&lower.as_str()) && !cfg.keep_headers.contains(&lower))
            || cfg.set_headers.iter().any(|(n, _)| *n == lower)
            || lower == MARKER_HEADER
        {
            continue;
        }
        out.push((name.clone(), value.clone()));
    }
    for (n, v) in &cfg.set_headers {
        out.push((n.clone(), v.clone()));
    }
    out.push((MARKER_HEADER.to_string(), "1".to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Target;
    use std::net::Ipv4Addr;
    use vxtap_http::{Body, FlagSet, Peer, Timing};

    fn ex(method: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Exchange {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Exchange {
            ts_ns: 1,
            id: 7,
            vni: None,
            tunnel: None,
            mirror_source: None,
            client: Peer { ip, port: 1000 },
            server: Peer { ip, port: 80 },
            request: Some(Message {
                method: Some(method.into()),
                uri: Some("/a?b=1".into()),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                body_len: body.map_or(0, |b| b.len() as u64),
                replay_body: body.map(<[u8]>::to_vec),
                ..Message::default()
            }),
            response: Some(Message {
                status: Some(200),
                body: Some(Body {
                    bytes: b"ok".to_vec(),
                    ..Body::default()
                }),
                body_len: 2,
                ..Message::default()
            }),
            interim: Vec::new(),
            timing: Timing::default(),
            flags: FlagSet::EMPTY,
            stream_id: None,
            rst_error: None,
            grpc: None,
        }
    }

    fn cfg() -> ShadowConfig {
        ShadowConfig::new(Target::parse("http://127.0.0.1:1").unwrap())
    }

    #[test]
    fn safe_methods_only_unless_widened() {
        let mut c = cfg();
        assert_eq!(prepare(&mut ex("GET", &[], None), &c).skip, None);
        assert_eq!(
            prepare(&mut ex("POST", &[], Some(b"x")), &c).skip,
            Some(SkipReason::Method)
        );
        c.methods.push("POST".into());
        let j = prepare(&mut ex("POST", &[], Some(b"x")), &c);
        assert_eq!((j.skip, &j.body[..]), (None, &b"x"[..]));
    }

    #[test]
    fn loop_guard_and_credentials() {
        let c = cfg();
        let j = prepare(&mut ex("GET", &[("X-Vxtap-Shadow", "1")], None), &c);
        assert_eq!(j.skip, Some(SkipReason::LoopGuard));
        let j = prepare(
            &mut ex(
                "GET",
                &[
                    ("Authorization", "Bearer s"),
                    ("Cookie", "a=b"),
                    ("Connection", "keep-alive, x-hop"),
                    ("X-Hop", "1"),
                    ("Accept", "*/*"),
                ],
                None,
            ),
            &c,
        );
        let names: Vec<&str> = j.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Accept", "x-vxtap-shadow"]);
        let mut c = cfg();
        c.keep_headers.push("cookie".into());
        c.set_headers
            .push(("authorization".into(), "Bearer test".into()));
        let j = prepare(
            &mut ex(
                "GET",
                &[("Authorization", "Bearer s"), ("Cookie", "a=b")],
                None,
            ),
            &c,
        );
        assert_eq!(
            j.headers,
            [
                ("Cookie".to_string(), "a=b".to_string()),
                ("authorization".into(), "Bearer test".into()),
                ("x-vxtap-shadow".into(), "1".into())
            ]
        );
    }

    #[test]
    fn bodies_whole_or_not_at_all() {
        let mut c = cfg();
        c.methods.push("POST".into());
        let mut e = ex("POST", &[], Some(b"abcd"));
        e.request.as_mut().unwrap().body_len = 10;
        assert_eq!(prepare(&mut e, &c).skip, Some(SkipReason::BodyIncomplete));
        let mut e = ex("POST", &[], Some(b"abcd"));
        e.request.as_mut().unwrap().replay_body = None;
        assert_eq!(prepare(&mut e, &c).skip, Some(SkipReason::BodyNotCaptured));
        c.max_body = 3;
        assert_eq!(
            prepare(&mut ex("POST", &[], Some(b"abcd")), &c).skip,
            Some(SkipReason::BodyTooLarge)
        );
        let mut e = ex("GET", &[], None);
        e.request = None;
        assert_eq!(prepare(&mut e, &c).skip, Some(SkipReason::NoRequest));
    }

    #[test]
    fn replay_bodies_are_taken_out_of_the_exchange() {
        let mut c = cfg();
        c.methods.push("POST".into());
        let mut e = ex("POST", &[], Some(b"abcd"));
        e.response.as_mut().unwrap().replay_body = Some(b"ok".to_vec());
        let j = prepare(&mut e, &c);
        assert!(e.request.unwrap().replay_body.is_none());
        assert!(e.response.unwrap().replay_body.is_none());
        assert_eq!(j.production_response.unwrap().body, b"ok");
        assert!(j.charged > 4);
    }
}
