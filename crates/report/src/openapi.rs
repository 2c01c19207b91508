//! OpenAPI 3.1 inferred from exchanges.
//!
//! Per endpoint (method + route, [`crate::endpoint`]) one operation: path parameters from the
//! route's `{name}` segments, query parameters (required when every request had them, their
//! schema inferred from the values), header parameters for the headers that vary (present in
//! only some requests, or with more than one value; the headers OpenAPI describes elsewhere,
//! such as `Content-Type`, `Accept` and `Authorization`, are left out), the request body and one
//! response per status code, each body as a JSON Schema merged across samples
//! ([`crate::schema`]) per media type. A bearer or basic `Authorization` header becomes a
//! security scheme. Examples are included only when the caller says the exchanges went through
//! redaction ([`OpenApiConfig::examples`]), and then only the first JSON sample of each body.
//!
//! Bounded: endpoints by [`OpenApiConfig::max_endpoints`] (the rest counted in
//! `x-vxtap-endpoints-over-cap`), parameters and headers per operation by
//! [`MAX_PARAMS`], bodies by the schema limits; truncated or undecoded bodies are not parsed.

use crate::endpoint::{split_target, EndpointCap, EndpointKey, DEFAULT_MAX_ENDPOINTS};
use crate::schema::{Shape, ShapeLimits};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use vxtap_http::{Content, Exchange, Message};

/// Query parameters and headers kept per operation (the rest are counted).
pub const MAX_PARAMS: usize = 64;
/// Hosts listed as servers.
const MAX_SERVERS: usize = 16;

/// Headers that OpenAPI describes otherwise (content negotiation, security) or that belong to
/// the connection rather than the API.
const IGNORED_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "host",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-amzn-trace-id",
    "x-request-id",
];

/// What the builder keeps and emits.
#[derive(Clone, Debug)]
pub struct OpenApiConfig {
    /// Operations kept.
    pub max_endpoints: usize,
    /// Include examples (only for exchanges that went through redaction).
    pub examples: bool,
    /// Bounds of the body schemas.
    pub limits: ShapeLimits,
}

impl Default for OpenApiConfig {
    fn default() -> Self {
        OpenApiConfig {
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
            examples: false,
            limits: ShapeLimits::default(),
        }
    }
}

#[derive(Debug, Default)]
struct Body {
    samples: u64,
    shape: Shape,
    /// Samples that were not JSON (or could not be parsed: cut, still encoded).
    opaque: u64,
    example: Option<Value>,
}

#[derive(Debug, Default)]
struct Param {
    count: u64,
    values: Shape,
    first: Option<String>,
    varies: bool,
}

#[derive(Debug, Default)]
struct Response {
    count: u64,
    reason: Option<String>,
    media: BTreeMap<String, Body>,
}

#[derive(Debug, Default)]
struct Operation {
    count: u64,
    query: BTreeMap<String, Param>,
    headers: BTreeMap<String, Param>,
    params_over_cap: u64,
    request: BTreeMap<String, Body>,
    responses: BTreeMap<u16, Response>,
    no_response: u64,
    bearer: u64,
    basic: u64,
}

/// Accumulates exchanges into an OpenAPI document.
#[derive(Debug)]
pub struct OpenApiBuilder {
    cfg: OpenApiConfig,
    ops: EndpointCap<EndpointKey, Operation>,
    servers: BTreeMap<String, u64>,
    /// Exchanges without a request, or whose target is not a path (`*`, CONNECT).
    pub skipped: u64,
    exchanges: u64,
    /// Route templates: the OpenAPI paths (`{id}` segments become path parameters).
    routes: crate::endpoint::Routes,
}

/// The media type of a message, without parameters, lower case.
fn media_type(m: &Message) -> String {
    m.header("content-type")
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/octet-stream".into())
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// The body of `m` as JSON, when it is JSON and whole.
fn json_body(m: &Message) -> Option<Value> {
    let b = m.body.as_ref()?;
    if m.body_truncated || b.cut.is_some() || b.content != Content::Plain || b.bytes.is_empty() {
        return None;
    }
    serde_json::from_slice(&b.bytes).ok()
}

impl Body {
    fn add(&mut self, m: &Message, media: &str, cfg: &OpenApiConfig) {
        self.samples += 1;
        match is_json(media).then(|| json_body(m)).flatten() {
            Some(v) => {
                self.shape.add(&v, &cfg.limits);
                if cfg.examples && self.example.is_none() {
                    self.example = Some(v);
                }
            }
            None => self.opaque += 1,
        }
    }

    fn to_media(&self, cfg: &OpenApiConfig) -> Value {
        let mut m = Map::new();
        let schema = if self.shape.samples > 0 {
            self.shape.to_schema(&cfg.limits)
        } else {
            json!({})
        };
        m.insert("schema".into(), schema);
        if let Some(e) = &self.example {
            m.insert("example".into(), e.clone());
        }
        Value::Object(m)
    }
}

impl Param {
    fn add(&mut self, value: &str, limits: &ShapeLimits) {
        self.count += 1;
        match &self.first {
            None => self.first = Some(value.to_string()),
            Some(f) if f != value => self.varies = true,
            _ => {}
        }
        // A value that reads as a JSON number or boolean is typed as one.
        let v = match serde_json::from_str::<Value>(value) {
            Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
            _ => Value::String(value.to_string()),
        };
        self.values.add(&v, limits);
    }
}

fn add_param(
    map: &mut BTreeMap<String, Param>,
    over: &mut u64,
    name: &str,
    value: &str,
    limits: &ShapeLimits,
) {
    if let Some(p) = map.get_mut(name) {
        p.add(value, limits);
    } else if map.len() < MAX_PARAMS {
        map.entry(name.to_string()).or_default().add(value, limits);
    } else {
        *over += 1;
    }
}

impl OpenApiBuilder {
    /// An empty builder.
    pub fn new(cfg: OpenApiConfig) -> Self {
        OpenApiBuilder {
            ops: EndpointCap::new(cfg.max_endpoints),
            cfg,
            servers: BTreeMap::new(),
            skipped: 0,
            exchanges: 0,
            routes: crate::endpoint::Routes::default(),
        }
    }

    /// Folds one exchange in.
    pub fn add(&mut self, ex: &Exchange) {
        self.exchanges += 1;
        let Some(req) = ex.request.as_ref() else {
            self.skipped += 1;
            return;
        };
        let (Some(method), Some(uri)) = (req.method.as_deref(), req.uri.as_deref()) else {
            self.skipped += 1;
            return;
        };
        let (path, query) = split_target(uri);
        if !path.starts_with('/') {
            self.skipped += 1;
            return;
        }
        if let Some(h) = req.header("host") {
            if self.servers.len() < MAX_SERVERS || self.servers.contains_key(h) {
                *self.servers.entry(h.to_string()).or_default() += 1;
            }
        }
        let key = EndpointKey {
            method: method.to_ascii_uppercase(),
            route: self.routes.route(method, path),
        };
        let cfg = &self.cfg;
        let op = self.ops.entry(key);
        op.count += 1;
        let mut seen = BTreeSet::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            // A repeated name counts once per request (it is one array-valued parameter).
            if seen.insert(k) {
                add_param(&mut op.query, &mut op.params_over_cap, k, v, &cfg.limits);
            }
        }
        let mut seen = BTreeSet::new();
        for (n, v) in &req.headers {
            let lower = n.to_ascii_lowercase();
            if lower == "authorization" {
                let scheme = v.split(' ').next().unwrap_or("").to_ascii_lowercase();
                op.bearer += u64::from(scheme == "bearer");
                op.basic += u64::from(scheme == "basic");
            }
            if IGNORED_HEADERS.contains(&lower.as_str()) || !seen.insert(lower.clone()) {
                continue;
            }
            add_param(
                &mut op.headers,
                &mut op.params_over_cap,
                &lower,
                v,
                &cfg.limits,
            );
        }
        if req.body.is_some() || req.body_len > 0 {
            let media = media_type(req);
            op.request
                .entry(media.clone())
                .or_default()
                .add(req, &media, cfg);
        }
        match ex.response.as_ref().and_then(|r| r.status.map(|s| (r, s))) {
            Some((resp, status)) => {
                let r = op.responses.entry(status).or_default();
                r.count += 1;
                if r.reason.is_none() {
                    r.reason = resp.reason.clone().filter(|s| !s.is_empty());
                }
                if resp.body.is_some() || resp.body_len > 0 {
                    let media = media_type(resp);
                    r.media
                        .entry(media.clone())
                        .or_default()
                        .add(resp, &media, cfg);
                }
            }
            None => op.no_response += 1,
        }
    }

    /// The OpenAPI 3.1 document (as a JSON value; YAML is one `serde_yaml_ng` call away).
    pub fn document(&self, title: &str, version: &str) -> Value {
        let cfg = &self.cfg;
        let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        let mut op_ids = BTreeSet::new();
        let mut keys: Vec<_> = self.ops.map.keys().collect();
        keys.sort();
        let mut uses_bearer = false;
        let mut uses_basic = false;
        for key in keys {
            let op = &self.ops.map[key];
            let mut o = Map::new();
            o.insert("operationId".into(), json!(operation_id(key, &mut op_ids)));
            let mut params = Vec::new();
            for name in path_params(&key.route) {
                params.push(json!({
                    "name": name, "in": "path", "required": true, "schema": {"type": "string"}
                }));
            }
            for (name, p) in &op.query {
                params.push(json!({
                    "name": name,
                    "in": "query",
                    "required": p.count == op.count,
                    "schema": p.values.to_schema(&cfg.limits),
                }));
            }
            for (name, p) in &op.headers {
                // Only the headers that vary say something about the API.
                if p.count == op.count && !p.varies {
                    continue;
                }
                params.push(json!({
                    "name": name,
                    "in": "header",
                    "required": p.count == op.count,
                    "schema": p.values.to_schema(&cfg.limits),
                }));
            }
            if !params.is_empty() {
                o.insert("parameters".into(), Value::Array(params));
            }
            if !op.request.is_empty() {
                let content: Map<String, Value> = op
                    .request
                    .iter()
                    .map(|(m, b)| (m.clone(), b.to_media(cfg)))
                    .collect();
                o.insert("requestBody".into(), json!({"content": content}));
            }
            let mut responses = Map::new();
            for (status, r) in &op.responses {
                let mut resp = Map::new();
                let description = r
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("status {status}"));
                resp.insert("description".into(), json!(description));
                if !r.media.is_empty() {
                    let content: Map<String, Value> = r
                        .media
                        .iter()
                        .map(|(m, b)| (m.clone(), b.to_media(cfg)))
                        .collect();
                    resp.insert("content".into(), Value::Object(content));
                }
                resp.insert("x-vxtap-count".into(), json!(r.count));
                responses.insert(status.to_string(), Value::Object(resp));
            }
            if responses.is_empty() {
                responses.insert(
                    "default".into(),
                    json!({"description": "no response was seen"}),
                );
            }
            o.insert("responses".into(), Value::Object(responses));
            let mut security = Vec::new();
            if op.bearer > 0 {
                uses_bearer = true;
                security.push(json!({"bearerAuth": []}));
            }
            if op.basic > 0 {
                uses_basic = true;
                security.push(json!({"basicAuth": []}));
            }
            if !security.is_empty() {
                o.insert("security".into(), Value::Array(security));
            }
            o.insert("x-vxtap-requests".into(), json!(op.count));
            if op.no_response > 0 {
                o.insert("x-vxtap-no-response".into(), json!(op.no_response));
            }
            paths
                .entry(key.route.as_str())
                .or_default()
                .insert(key.method.to_ascii_lowercase(), Value::Object(o));
        }
        let mut doc = json!({
            "openapi": "3.1.0",
            "info": {
                "title": title,
                "version": version,
                "description": format!(
                    "Inferred by vxtap from {} observed exchanges ({} operations).",
                    self.exchanges,
                    self.ops.map.len()
                ),
            },
        });
        let mut servers: Vec<(&String, &u64)> = self.servers.iter().collect();
        servers.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if !servers.is_empty() {
            doc["servers"] = Value::Array(
                servers
                    .iter()
                    .map(|(h, _)| json!({"url": format!("http://{h}")}))
                    .collect(),
            );
        }
        // Methods OpenAPI has no field for (`PROPFIND`, garbage) cannot be an operation: they
        // stay in the count, not in the document.
        let mut out_paths = Map::new();
        for (p, ops) in paths {
            let ops: Map<String, Value> = ops
                .into_iter()
                .filter(|(m, _)| {
                    matches!(
                        m.as_str(),
                        "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
                    )
                })
                .collect();
            if !ops.is_empty() {
                out_paths.insert(p.to_string(), Value::Object(ops));
            }
        }
        doc["paths"] = Value::Object(out_paths);
        let mut schemes = Map::new();
        if uses_bearer {
            schemes.insert(
                "bearerAuth".into(),
                json!({"type": "http", "scheme": "bearer"}),
            );
        }
        if uses_basic {
            schemes.insert(
                "basicAuth".into(),
                json!({"type": "http", "scheme": "basic"}),
            );
        }
        if !schemes.is_empty() {
            doc["components"] = json!({"securitySchemes": schemes});
        }
        if self.ops.overflowed > 0 {
            doc["x-vxtap-endpoints-over-cap"] = json!(self.ops.overflowed);
        }
        doc
    }
}

/// The `{name}` segments of a route template.
pub fn path_params(route: &str) -> Vec<&str> {
    route
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .filter(|s| !s.is_empty())
        .collect()
}

/// `get_users_id` from `GET /users/{id}`, made unique.
fn operation_id(key: &EndpointKey, used: &mut BTreeSet<String>) -> String {
    let mut base = key.method.to_ascii_lowercase();
    for c in key.route.chars() {
        if c.is_ascii_alphanumeric() {
            base.push(c.to_ascii_lowercase());
        } else if !base.ends_with('_') {
            base.push('_');
        }
    }
    let base = base.trim_end_matches('_').to_string();
    let mut id = base.clone();
    let mut n = 2;
    while !used.insert(id.clone()) {
        id = format!("{base}_{n}");
        n += 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ex;

    fn build(exchanges: &[Exchange], examples: bool) -> Value {
        let mut b = OpenApiBuilder::new(OpenApiConfig {
            examples,
            ..OpenApiConfig::default()
        });
        exchanges.iter().for_each(|e| b.add(e));
        b.document("t", "1")
    }

    #[test]
    fn operations_with_query_parameters_bodies_and_statuses() {
        let mut v = Vec::new();
        for i in 0..10 {
            let body = format!(
                "{{\"id\":\"123e4567-e89b-12d3-a456-42661417400{}\",\"n\":{i},\"state\":\"{}\"}}",
                i,
                if i % 2 == 0 { "on" } else { "off" }
            );
            let uri = if i % 2 == 0 {
                format!("/items?limit={i}&q=x")
            } else {
                format!("/items?limit={i}")
            };
            v.push(ex("GET", &uri, 200, Some(&body), i, 5));
        }
        v.push(ex(
            "GET",
            "/items?limit=1",
            404,
            Some("{\"error\":\"nope\"}"),
            20,
            5,
        ));
        let doc = build(&v, true);
        let op = &doc["paths"]["/items"]["get"];
        assert_eq!(op["operationId"], "get_items");
        let params = op["parameters"].as_array().unwrap();
        let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["required"], true);
        assert_eq!(limit["schema"]["type"], "integer");
        let q = params.iter().find(|p| p["name"] == "q").unwrap();
        assert_eq!(q["required"], false);
        let ok = &op["responses"]["200"]["content"]["application/json"];
        assert_eq!(ok["schema"]["properties"]["id"]["format"], "uuid");
        assert_eq!(
            ok["schema"]["properties"]["state"]["enum"],
            json!(["off", "on"])
        );
        assert_eq!(ok["schema"]["required"], json!(["id", "n", "state"]));
        assert!(ok.get("example").is_some());
        assert!(op["responses"]["404"].is_object());
        assert_eq!(op["security"], json!([{"bearerAuth": []}]));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["servers"][0]["url"], "http://api.example.com");
    }

    #[test]
    fn examples_only_when_asked() {
        let doc = build(&[ex("GET", "/a", 200, Some("{\"k\":1}"), 0, 1)], false);
        assert!(
            doc["paths"]["/a"]["get"]["responses"]["200"]["content"]["application/json"]
                .get("example")
                .is_none()
        );
    }

    #[test]
    fn template_segments_become_path_parameters() {
        assert_eq!(path_params("/users/{id}/posts/{post}"), vec!["id", "post"]);
        // A numeric id is a parameter from the first request on.
        let doc = build(&[ex("GET", "/users/42", 200, None, 0, 1)], false);
        let p = &doc["paths"]["/users/{id}"]["get"]["parameters"][0];
        assert_eq!(p["in"], "path");
        assert_eq!(p["required"], true);
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut used = BTreeSet::new();
        let k = |r: &str| EndpointKey {
            method: "GET".into(),
            route: r.into(),
        };
        assert_eq!(operation_id(&k("/a-b"), &mut used), "get_a_b");
        assert_eq!(operation_id(&k("/a_b"), &mut used), "get_a_b_2");
    }
}
