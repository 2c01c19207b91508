//! HAR 1.2 (the HTTP Archive format Chrome DevTools, Postman and Optic import), streamed: the
//! header is written first, then one entry per exchange as it comes, so memory does not grow
//! with the input.
//!
//! Timings come from packet times: `send` from the first to the last request byte, `wait` from
//! the last request byte to the first response byte, `receive` from the first to the last
//! response byte (milliseconds; 0 where a time is missing); `time` is their sum as the format
//! requires. Bodies are the captured (already redacted) bytes: UTF-8 as text, anything else
//! base64 (`encoding: "base64"`). The custom field `_vxtap` (HAR allows fields starting with an
//! underscore) carries the exchange id, VNI, tunnel, mirror source, flags and connection.
//! Exchanges whose request was not seen cannot be a HAR entry (it requires a request with a
//! URL): they are counted in [`HarWriter::skipped`], not written.

use crate::endpoint::split_target;
use crate::ReportError;
use base64::Engine;
use serde_json::{json, Value};
use std::io::Write;
use std::net::IpAddr;
use vxtap_http::{Exchange, Message};
use vxtap_sink::format::{hex16, rfc3339_us};

/// Writes a HAR document entry by entry.
pub struct HarWriter<W: Write> {
    out: W,
    written: u64,
    skipped: u64,
}

impl<W: Write> HarWriter<W> {
    /// Starts the document (`creator` names vxtap and `version`).
    pub fn new(mut out: W, version: &str) -> Result<Self, ReportError> {
        let creator = json!({"name": "vxtap", "version": version});
        write!(
            out,
            "{{\"log\":{{\"version\":\"1.2\",\"creator\":{},\"entries\":[",
            creator
        )?;
        Ok(HarWriter {
            out,
            written: 0,
            skipped: 0,
        })
    }

    /// Writes the entry of `ex` (or counts it as skipped when its request was not seen).
    pub fn write(&mut self, ex: &Exchange) -> Result<(), ReportError> {
        let Some(entry) = entry(ex) else {
            self.skipped += 1;
            return Ok(());
        };
        if self.written > 0 {
            self.out.write_all(b",\n")?;
        } else {
            self.out.write_all(b"\n")?;
        }
        serde_json::to_writer(&mut self.out, &entry)?;
        self.written += 1;
        Ok(())
    }

    /// Ends the document and returns the output.
    pub fn finish(mut self) -> Result<W, ReportError> {
        self.out.write_all(b"\n]}}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Entries written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Exchanges not written (no request seen).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

fn ms(from: Option<u64>, to: Option<u64>) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e6,
        _ => 0.0,
    }
}

fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

/// The absolute URL of a request: its target when absolute, else `http://` + Host (or the
/// server address) + target.
pub fn request_url(ex: &Exchange, req: &Message) -> String {
    let uri = req.uri.as_deref().unwrap_or("/");
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return uri.to_string();
    }
    let host = req
        .header("host")
        .map(str::to_string)
        .unwrap_or_else(|| host_port(ex.server.ip, ex.server.port));
    if uri.starts_with('/') {
        format!("http://{host}{uri}")
    } else {
        // `*` (OPTIONS) and authority-form (CONNECT) have no path: the URL is the host's.
        format!("http://{host}/")
    }
}

fn headers(m: &Message) -> Value {
    Value::Array(
        m.headers
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect(),
    )
}

/// Name/value pairs of a `Cookie` header, or of the first pair of each `Set-Cookie`.
fn cookies(m: &Message, request: bool) -> Value {
    let mut out = Vec::new();
    for (n, v) in &m.headers {
        if request && n.eq_ignore_ascii_case("cookie") {
            for pair in v.split(';') {
                if let Some((k, val)) = pair.trim().split_once('=') {
                    out.push(json!({"name": k, "value": val}));
                }
            }
        } else if !request && n.eq_ignore_ascii_case("set-cookie") {
            let first = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = first.trim().split_once('=') {
                out.push(json!({"name": k, "value": val}));
            }
        }
    }
    Value::Array(out)
}

fn query_string(uri: &str) -> Value {
    let (_, q) = split_target(uri);
    Value::Array(
        q.unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                json!({"name": k, "value": v})
            })
            .collect(),
    )
}

/// The captured body as HAR text: UTF-8 as is, anything else base64.
fn body_text(m: &Message) -> Option<(String, Option<&'static str>)> {
    let b = m.body.as_ref()?;
    Some(match std::str::from_utf8(&b.bytes) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&b.bytes),
            Some("base64"),
        ),
    })
}

fn entry(ex: &Exchange) -> Option<Value> {
    let req = ex.request.as_ref()?;
    let t = &ex.timing;
    let send = ms(t.request_start_ns, t.request_end_ns);
    let wait = ms(t.request_end_ns, t.response_start_ns);
    let receive = ms(t.response_start_ns, t.response_end_ns);
    let mut request = json!({
        "method": req.method.as_deref().unwrap_or(""),
        "url": request_url(ex, req),
        "httpVersion": req.version.as_str(),
        "cookies": cookies(req, true),
        "headers": headers(req),
        "queryString": query_string(req.uri.as_deref().unwrap_or("")),
        "headersSize": -1,
        "bodySize": req.body_len,
    });
    if let Some((text, encoding)) = body_text(req) {
        let mime = req
            .header("content-type")
            .unwrap_or("application/octet-stream");
        let mut post = json!({"mimeType": mime, "text": text});
        if let Some(e) = encoding {
            // Not in HAR 1.2's postData, but what importers read for binary bodies.
            post["_encoding"] = json!(e);
        }
        request["postData"] = post;
    }
    let response = match &ex.response {
        Some(resp) => {
            let mut content = json!({
                "size": resp.body_len,
                "mimeType": resp.header("content-type").unwrap_or(""),
            });
            if let Some((text, encoding)) = body_text(resp) {
                content["text"] = json!(text);
                if let Some(e) = encoding {
                    content["encoding"] = json!(e);
                }
            }
            json!({
                "status": resp.status.unwrap_or(0),
                "statusText": resp.reason.as_deref().unwrap_or(""),
                "httpVersion": resp.version.as_str(),
                "cookies": cookies(resp, false),
                "headers": headers(resp),
                "content": content,
                "redirectURL": resp.header("location").unwrap_or(""),
                "headersSize": -1,
                "bodySize": resp.body_len,
            })
        }
        // No response seen: status 0, as browsers record a request that got none.
        None => json!({
            "status": 0,
            "statusText": "",
            "httpVersion": req.version.as_str(),
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": "no response seen",
        }),
    };
    let connection = format!(
        "{}-{}",
        host_port(ex.client.ip, ex.client.port),
        host_port(ex.server.ip, ex.server.port)
    );
    let started = t.request_start_ns.unwrap_or(ex.ts_ns);
    Some(json!({
        "startedDateTime": rfc3339_us(started).as_str(),
        "time": send + wait + receive,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"send": send, "wait": wait, "receive": receive},
        "serverIPAddress": ex.server.ip.to_string(),
        "connection": connection,
        "_vxtap": {
            "id": hex16(ex.id).as_str(),
            "vni": ex.vni,
            "tunnel": ex.tunnel,
            "mirror_source": ex.mirror_source.map(|ip| ip.to_string()),
            "flags": ex.flags.labels(),
            "connection": connection,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ex;
    use vxtap_http::Flag;

    fn har(exchanges: &[Exchange]) -> Value {
        let mut w = HarWriter::new(Vec::new(), "0.1.0").unwrap();
        for e in exchanges {
            w.write(e).unwrap();
        }
        serde_json::from_slice(&w.finish().unwrap()).unwrap()
    }

    #[test]
    fn entries_carry_timings_urls_and_custom_fields() {
        let mut a = ex("GET", "/users/7?x=1&y", 200, Some("{\"id\":7}"), 0, 40);
        a.flags.insert(Flag::Redacted);
        let v = har(&[a, ex("POST", "/b", 201, None, 1, 5)]);
        let e = &v["log"]["entries"][0];
        assert_eq!(e["request"]["url"], "http://api.example.com/users/7?x=1&y");
        assert_eq!(
            e["request"]["queryString"][1],
            json!({"name": "y", "value": ""})
        );
        assert_eq!(
            e["timings"],
            json!({"send": 1.0, "wait": 39.0, "receive": 2.0})
        );
        assert_eq!(e["time"], 42.0);
        assert_eq!(e["response"]["content"]["text"], "{\"id\":7}");
        assert_eq!(e["_vxtap"]["vni"], 101);
        assert_eq!(e["_vxtap"]["flags"], json!(["redacted"]));
        assert_eq!(v["log"]["entries"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_empty_input_is_a_valid_document_and_responses_alone_are_skipped() {
        let mut only_response = ex("GET", "/", 200, None, 0, 1);
        only_response.request = None;
        let mut w = HarWriter::new(Vec::new(), "0.1.0").unwrap();
        w.write(&only_response).unwrap();
        assert_eq!(w.skipped(), 1);
        let v: Value = serde_json::from_slice(&w.finish().unwrap()).unwrap();
        assert_eq!(v["log"]["entries"], json!([]));
    }

    #[test]
    fn binary_bodies_are_base64() {
        let mut a = ex("GET", "/img", 200, None, 0, 1);
        a.response.as_mut().unwrap().body = Some(vxtap_http::Body {
            bytes: vec![0xff, 0x00, 0x89],
            ..Default::default()
        });
        let v = har(&[a]);
        let c = &v["log"]["entries"][0]["response"]["content"];
        assert_eq!(c["encoding"], "base64");
        assert_eq!(c["text"], "/wCJ");
    }
}
