//! Breaking and non-breaking changes between two OpenAPI documents (the schema-migration check):
//! `old` is what clients were built against, `new` what the service now does.
//!
//! Rules, from a client's side:
//! - an operation removed, a response status removed, a new required parameter or request
//!   property, a parameter or property that became required in a request, a type that changed,
//!   a response property removed or no longer required, an enum value removed from a request:
//!   breaking;
//! - an operation, response status, optional parameter or property added, a parameter removed:
//!   non-breaking.
//!
//! Schemas are compared inline (vxtap's documents have no `$ref`); a `$ref` is compared as its
//! string. Recursion is bounded by [`MAX_DEPTH`].

use crate::ReportError;
use serde_json::Value;
use std::collections::BTreeSet;

const MAX_DEPTH: usize = 32;
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// How a change affects existing clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Existing clients may break.
    Breaking,
    /// Existing clients keep working.
    NonBreaking,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Breaking or not.
    pub severity: Severity,
    /// Where (`GET /users/{id} response 200 body .name`).
    pub at: String,
    /// What changed.
    pub what: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.severity {
            Severity::Breaking => "breaking",
            Severity::NonBreaking => "non-breaking",
        };
        write!(f, "{s}: {}: {}", self.at, self.what)
    }
}

fn check(doc: &Value, name: &str) -> Result<(), ReportError> {
    let ok = doc
        .get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with('3'));
    if ok {
        Ok(())
    } else {
        Err(ReportError::NotOpenApi(format!(
            "{name}: no `openapi: 3.x` field"
        )))
    }
}

/// The changes from `old` to `new`, breaking first.
pub fn diff(old: &Value, new: &Value) -> Result<Vec<Change>, ReportError> {
    check(old, "old")?;
    check(new, "new")?;
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let op = |doc: &Value| -> BTreeSet<(String, String)> {
        doc.get("paths")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .iter()
            .flat_map(|(p, item)| {
                METHODS
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(move |m| (p.clone(), m.to_string()))
            })
            .collect()
    };
    let (a, b) = (op(old), op(new));
    let mut push = |severity, at: String, what: String| out.push(Change { severity, at, what });
    for (p, m) in a.difference(&b) {
        push(
            Severity::Breaking,
            format!("{} {p}", m.to_uppercase()),
            "operation removed".into(),
        );
    }
    for (p, m) in b.difference(&a) {
        push(
            Severity::NonBreaking,
            format!("{} {p}", m.to_uppercase()),
            "operation added".into(),
        );
    }
    for (p, m) in a.intersection(&b) {
        let at = format!("{} {p}", m.to_uppercase());
        operation(&old["paths"][p][m], &new["paths"][p][m], &at, &mut push);
    }
    out.sort();
    Ok(out)
}

fn params(op: &Value) -> Vec<(String, String, bool, Value)> {
    op.get("parameters")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["in"].as_str().unwrap_or("").to_string(),
                        p["name"].as_str().unwrap_or("").to_string(),
                        p["required"].as_bool().unwrap_or(false),
                        p.get("schema").cloned().unwrap_or(Value::Null),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn operation(old: &Value, new: &Value, at: &str, push: &mut impl FnMut(Severity, String, String)) {
    let (po, pn) = (params(old), params(new));
    for (loc, name, req, schema) in &pn {
        let at = format!("{at} {loc} parameter `{name}`");
        match po.iter().find(|(l, n, _, _)| l == loc && n == name) {
            None if *req => push(Severity::Breaking, at, "required parameter added".into()),
            None => push(Severity::NonBreaking, at, "optional parameter added".into()),
            Some((_, _, was_req, old_schema)) => {
                if *req && !was_req {
                    push(Severity::Breaking, at.clone(), "became required".into());
                }
                schemas(old_schema, schema, &at, true, 0, push);
            }
        }
    }
    for (loc, name, _, _) in &po {
        if !pn.iter().any(|(l, n, _, _)| l == loc && n == name) {
            push(
                Severity::NonBreaking,
                format!("{at} {loc} parameter `{name}`"),
                "parameter removed".into(),
            );
        }
    }
    let media = |v: &Value| {
        v.get("content")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (ro, rn) = (media(&old["requestBody"]), media(&new["requestBody"]));
    for (m, n) in &rn {
        if let Some(o) = ro.get(m) {
            schemas(
                &o["schema"],
                &n["schema"],
                &format!("{at} request {m}"),
                true,
                0,
                push,
            );
        }
    }
    let empty = serde_json::Map::new();
    let (so, sn) = (
        old["responses"].as_object().unwrap_or(&empty),
        new["responses"].as_object().unwrap_or(&empty),
    );
    for (status, o) in so {
        let at = format!("{at} response {status}");
        match sn.get(status) {
            None => push(Severity::Breaking, at, "response status removed".into()),
            Some(n) => {
                let (mo, mn) = (media(o), media(n));
                for (m, o) in &mo {
                    match mn.get(m) {
                        None => push(
                            Severity::Breaking,
                            format!("{at} {m}"),
                            "media type removed".into(),
                        ),
                        Some(n) => schemas(
                            &o["schema"],
                            &n["schema"],
                            &format!("{at} {m}"),
                            false,
                            0,
                            push,
                        ),
                    }
                }
            }
        }
    }
    for status in sn.keys().filter(|s| !so.contains_key(*s)) {
        push(
            Severity::NonBreaking,
            format!("{at} response {status}"),
            "response status added".into(),
        );
    }
}

fn types(s: &Value) -> BTreeSet<String> {
    match s.get("type") {
        Some(Value::String(t)) => [t.clone()].into(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// Compares two schemas at `at`; `request` says which side of the exchange they describe.
fn schemas(
    old: &Value,
    new: &Value,
    at: &str,
    request: bool,
    depth: usize,
    push: &mut impl FnMut(Severity, String, String),
) {
    if depth > MAX_DEPTH {
        return;
    }
    if old.get("$ref").is_some() || new.get("$ref").is_some() {
        if old.get("$ref") != new.get("$ref") {
            push(
                Severity::Breaking,
                at.into(),
                "referenced schema changed".into(),
            );
        }
        return;
    }
    let (to, tn) = (types(old), types(new));
    if !to.is_empty() && !tn.is_empty() && to != tn {
        // A request accepting more types, or a response sending fewer, breaks nobody.
        let widened = if request {
            to.is_subset(&tn)
        } else {
            tn.is_subset(&to)
        };
        let sev = if widened {
            Severity::NonBreaking
        } else {
            Severity::Breaking
        };
        push(sev, at.into(), format!("type {to:?} -> {tn:?}"));
    }
    let set = |v: &Value, k: &str| -> BTreeSet<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default()
    };
    let (eo, en) = (set(old, "enum"), set(new, "enum"));
    if !eo.is_empty() && !en.is_empty() {
        for v in eo.difference(&en) {
            let sev = if request {
                Severity::Breaking
            } else {
                Severity::NonBreaking
            };
            push(sev, at.into(), format!("enum value {v} removed"));
        }
        for v in en.difference(&eo) {
            let sev = if request {
                Severity::NonBreaking
            } else {
                Severity::Breaking
            };
            push(sev, at.into(), format!("enum value {v} added"));
        }
    }
    let (qo, qn) = (set(old, "required"), set(new, "required"));
    let empty = serde_json::Map::new();
    let po = old
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let pn = new
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (k, n) in pn {
        let q = format!("\"{k}\"");
        let at = format!("{at} .{k}");
        match po.get(k) {
            None if request && qn.contains(&q) => {
                push(Severity::Breaking, at, "required property added".into())
            }
            None => push(Severity::NonBreaking, at, "property added".into()),
            Some(o) => {
                if request && qn.contains(&q) && !qo.contains(&q) {
                    push(Severity::Breaking, at.clone(), "became required".into());
                }
                if !request && qo.contains(&q) && !qn.contains(&q) {
                    push(
                        Severity::Breaking,
                        at.clone(),
                        "no longer always present".into(),
                    );
                }
                schemas(o, n, &at, request, depth + 1, push);
            }
        }
    }
    for k in po.keys().filter(|k| !pn.contains_key(*k)) {
        let sev = if request {
            Severity::NonBreaking
        } else {
            Severity::Breaking
        };
        push(sev, format!("{at} .{k}"), "property removed".into());
    }
    if let (Some(io), Some(inew)) = (old.get("items"), new.get("items")) {
        schemas(io, inew, &format!("{at}[]"), request, depth + 1, push);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(paths: Value) -> Value {
        json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths})
    }

    fn body(schema: Value) -> Value {
        json!({"content": {"application/json": {"schema": schema}}})
    }

    #[test]
    fn classifies_changes() {
        let old = doc(json!({
            "/a": {"get": {"responses": {"200": body(json!({"type": "object", "required": ["id", "name"],
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}))}}},
            "/gone": {"get": {"responses": {"200": {"description": "x"}}}},
            "/p": {"post": {"requestBody": body(json!({"type": "object", "properties": {"q": {"type": "string"}}})),
                "responses": {"201": {"description": "x"}, "400": {"description": "x"}}}}
        }));
        let new = doc(json!({
            "/a": {"get": {"parameters": [{"name": "v", "in": "query", "required": false, "schema": {}}],
                "responses": {"200": body(json!({"type": "object", "required": ["id"],
                "properties": {"id": {"type": "string"}, "extra": {"type": "string"}}}))}}},
            "/new": {"get": {"responses": {"200": {"description": "x"}}}},
            "/p": {"post": {"requestBody": body(json!({"type": "object", "required": ["q", "r"],
                "properties": {"q": {"type": "string"}, "r": {"type": "string"}}})),
                "responses": {"201": {"description": "x"}}}}
        }));
        let changes = diff(&old, &new).unwrap();
        let text: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        let has = |s: &str| text.iter().any(|t| t == s);
        assert!(has("breaking: GET /gone: operation removed"), "{text:#?}");
        assert!(has("breaking: GET /a response 200 application/json .id: type {\"integer\"} -> {\"string\"}"), "{text:#?}");
        assert!(
            has("breaking: GET /a response 200 application/json .name: property removed"),
            "{text:#?}"
        );
        assert!(
            has("breaking: POST /p request application/json .r: required property added"),
            "{text:#?}"
        );
        assert!(
            has("breaking: POST /p response 400: response status removed"),
            "{text:#?}"
        );
        assert!(
            has("non-breaking: GET /a query parameter `v`: optional parameter added"),
            "{text:#?}"
        );
        assert!(
            has("non-breaking: GET /a response 200 application/json .extra: property added"),
            "{text:#?}"
        );
        assert!(has("non-breaking: GET /new: operation added"), "{text:#?}");
        assert!(changes[0].severity == Severity::Breaking);
        assert!(diff(&old, &old).unwrap().is_empty());
    }

    #[test]
    fn refuses_what_is_not_openapi() {
        assert!(diff(&json!({"swagger": "2.0"}), &doc(json!({}))).is_err());
    }
}
