//! One production response against one candidate response: status, headers, bodies.
//!
//! Bodies are compared after content decoding on both sides (gzip against identity is no
//! difference), in full up to [`Limits::max_body`](crate::Limits::max_body): a body that is
//! longer, was not captured completely, or does not decode makes the verdict `skipped` with a
//! reason (a comparison of part of a body would report differences that are not there).
//! Two bodies that both parse as JSON are compared as JSON: numbers by value (`1` equals
//! `1.0`; integers exactly as i64/u64, anything else as f64, with the tolerance of the path
//! if one is configured), objects key by key (objects whose keys are ids, i.e. not
//! identifiers or more than [`ID_KEYED_MIN_KEYS`], count their keys as `[*]`), arrays as the
//! path's [`ArrayMode`] says. Anything else is compared as text (UTF-8 on both sides) or bytes.

use crate::config::{ArrayMode, CompareConfig, Rule};
use crate::path::{is_ident, PathBuf};
use crate::shape::shape;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use vxtap_http::{decode_all, Content, ContentCoding, DecodeEnd, Message};

/// Objects with more keys than this are id-keyed whatever their keys look like.
pub const ID_KEYED_MIN_KEYS: usize = 64;
/// Strings in a difference are cut to this many characters (with `…`).
pub const MAX_EXCERPT: usize = 160;

vxtap_wire_like_labels! {
    /// The outcome of one comparison.
    pub enum Verdict {
        /// No difference.
        Match => "match",
        /// A difference where no noise is known.
        Mismatch => "mismatch",
        /// Differences only where noise is known (shape, learned or declared rates).
        Noise => "noise",
        /// The candidate failed (connection, timeout, refused).
        Error => "error",
        /// Not comparable (a body not captured completely, over the cap, undecodable).
        Skipped => "skipped",
    }
}

vxtap_wire_like_labels! {
    /// What differs at a path.
    pub enum Kind {
        /// Same type, other value.
        Value => "value",
        /// Other JSON type (or JSON on one side only).
        Type => "type",
        /// In production, not in the candidate.
        Missing => "missing",
        /// In the candidate, not in production.
        Extra => "extra",
        /// The same elements in another order (ordered arrays).
        ArrayOrder => "array_order",
        /// Arrays of different lengths.
        ArrayLength => "array_length",
    }
}

/// Declares a small label enum with `as_str`, `ALL`, `COUNT`, `index()` and a serde form
/// (the crate's own twin of `vxtap_wire::labeled_enum!`, which has no serde).
#[macro_export]
#[doc(hidden)]
macro_rules! vxtap_wire_like_labels {
    (
        $(#[$m:meta])*
        pub enum $name:ident { $( $(#[$vm:meta])* $var:ident => $label:literal, )* }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vm])* $var, )* }
        impl $name {
            /// Number of variants.
            pub const COUNT: usize = [$(stringify!($var),)*].len();
            /// Every variant in declaration order.
            pub const ALL: [$name; Self::COUNT] = [$($name::$var,)*];
            /// The stable label.
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $label,)* } }
            /// Position in `ALL`.
            pub fn index(self) -> usize { self as usize }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
use vxtap_wire_like_labels;

/// One difference, as records show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    /// Record form: `body.items[3].price`.
    pub path: String,
    /// Counting form: `body.items[*].price` (the summary's key; not in records).
    #[serde(skip)]
    pub count_path: String,
    /// What differs.
    pub kind: Kind,
    /// Production's value (absent for `extra`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production: Option<Value>,
    /// The candidate's value (absent for `missing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Value>,
    /// Known noise: a noisy shape on both sides, or a path whose noise was learned.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub noise: bool,
    /// Noise by shape alone (timestamps, UUIDs, tokens on both sides).
    #[serde(skip)]
    pub shape_noise: bool,
}

/// The comparison of one exchange pair: the record's `comparison` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// The verdict.
    pub verdict: Verdict,
    /// Why `skipped` or `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The differences (at most `Limits::max_differences`).
    pub differences: Vec<Difference>,
    /// Differences past that cap.
    #[serde(skip_serializing_if = "is_zero")]
    pub differences_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Comparison {
    /// A candidate that failed.
    pub fn error(reason: impl Into<String>) -> Comparison {
        Comparison {
            verdict: Verdict::Error,
            reason: Some(reason.into()),
            differences: Vec::new(),
            differences_dropped: 0,
        }
    }

    /// A pair that is not compared.
    pub fn skipped(reason: impl Into<String>) -> Comparison {
        Comparison {
            verdict: Verdict::Skipped,
            reason: Some(reason.into()),
            differences: Vec::new(),
            differences_dropped: 0,
        }
    }

    /// Recomputes `match`/`mismatch`/`noise` from the differences' noise marks (`error` and
    /// `skipped` stay).
    pub fn settle(&mut self) {
        if matches!(self.verdict, Verdict::Error | Verdict::Skipped) {
            return;
        }
        self.verdict = if self.differences.is_empty() && self.differences_dropped == 0 {
            Verdict::Match
        } else if self.differences_dropped == 0 && self.differences.iter().all(|d| d.noise) {
            Verdict::Noise
        } else {
            Verdict::Mismatch
        };
    }
}

/// What the captured bytes of a body are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyCoding {
    /// The content itself.
    Plain,
    /// Still in this content coding.
    Coded(ContentCoding),
    /// A coding vxtap cannot undo: compared as bytes.
    Opaque,
}

/// One side's response, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Response<'a> {
    /// Status code.
    pub status: u16,
    /// Header fields as received.
    pub headers: &'a [(String, String)],
    /// Body bytes as captured.
    pub body: &'a [u8],
    /// Their content coding.
    pub coding: BodyCoding,
    /// Whether `body` is the whole body.
    pub complete: bool,
}

impl<'a> Response<'a> {
    /// A response received whole (the candidate's): coding from its `Content-Encoding`.
    pub fn received(status: u16, headers: &'a [(String, String)], body: &'a [u8]) -> Self {
        let coding = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-encoding"))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("identity"))
            .map_or(BodyCoding::Plain, |v| {
                ContentCoding::from_header(v.as_bytes())
                    .map_or(BodyCoding::Opaque, BodyCoding::Coded)
            });
        Response {
            status,
            headers,
            body,
            coding,
            complete: true,
        }
    }

    /// A captured response message (the exchange's); None when it has no status.
    pub fn from_message(m: &'a Message) -> Option<Self> {
        let status = m.status?;
        let (body, coding, complete) = match &m.body {
            Some(b) => (
                b.bytes.as_slice(),
                match b.content {
                    Content::Plain => BodyCoding::Plain,
                    Content::Encoded(c) => BodyCoding::Coded(c),
                    Content::Opaque => BodyCoding::Opaque,
                },
                b.cut.is_none() && !m.body_truncated,
            ),
            None => (&[][..], BodyCoding::Plain, m.body_len == 0),
        };
        Some(Response {
            status,
            headers: &m.headers,
            body,
            coding,
            complete,
        })
    }

    /// The decoded body, or why it cannot be compared.
    pub fn decoded(&self, max: usize) -> Result<Cow<'a, [u8]>, &'static str> {
        if !self.complete {
            return Err("body_incomplete");
        }
        match self.coding {
            BodyCoding::Plain | BodyCoding::Opaque if self.body.len() > max => Err("body_over_cap"),
            BodyCoding::Plain | BodyCoding::Opaque => Ok(Cow::Borrowed(self.body)),
            BodyCoding::Coded(c) => match decode_all(c, self.body, max, true) {
                (b, DecodeEnd::Ok) => Ok(Cow::Owned(b)),
                (_, DecodeEnd::Truncated) => Err("body_over_cap"),
                (_, DecodeEnd::InputCut) => Err("body_incomplete"),
                (_, DecodeEnd::Error) => Err("body_undecodable"),
            },
        }
    }
}

/// Compares responses with one config (cheap to share by reference across pairs).
#[derive(Clone, Debug)]
pub struct Comparer {
    cfg: CompareConfig,
}

/// One step of the path being walked; the path text is only rendered when a difference is
/// pushed or a rule must be matched (the walk itself does no string work).
#[derive(Clone, Copy)]
enum Seg<'v> {
    Key(&'v str, bool),
    Index(usize),
}

struct Walk<'c, 'v> {
    rules: Vec<&'c Rule>,
    has_ignore: bool,
    has_tolerance: bool,
    has_arrays: bool,
    now_s: i64,
    max: usize,
    out: Vec<Difference>,
    dropped: u64,
    root: String,
    stack: Vec<Seg<'v>>,
}

fn parse_json(b: &[u8]) -> Option<Value> {
    if might_be_json(b) {
        serde_json::from_slice::<Value>(b).ok()
    } else {
        None
    }
}

impl Comparer {
    /// A comparer with `cfg`.
    pub fn new(cfg: CompareConfig) -> Comparer {
        Comparer { cfg }
    }

    /// The config.
    pub fn config(&self) -> &CompareConfig {
        &self.cfg
    }

    /// Compares `prod` and `cand` for `endpoint` (its rules apply); `now_s` is the capture time
    /// in Unix seconds (0 if unknown), for timestamp noise.
    pub fn compare(
        &self,
        endpoint: &str,
        prod: &Response,
        cand: &Response,
        now_s: i64,
    ) -> Comparison {
        let max = self.cfg.limits.max_body;
        let bodies = match (prod.decoded(max), cand.decoded(max)) {
            (Ok(p), Ok(c)) => Ok((p, c)),
            (Err(e), _) => Err(format!("production_{e}")),
            (_, Err(e)) => Err(format!("candidate_{e}")),
        };
        // Parsed before the walk starts: the walk's path borrows the documents' keys.
        let parsed = match &bodies {
            Ok((p, c)) if p != c => (parse_json(p), parse_json(c)),
            _ => (None, None),
        };
        let rules: Vec<&Rule> = self
            .cfg
            .rules
            .iter()
            .filter(|r| r.endpoint.as_deref().is_none_or(|e| e == endpoint))
            .collect();
        let mut w = Walk {
            has_ignore: rules.iter().any(|r| !r.ignore.is_empty()),
            has_tolerance: rules.iter().any(|r| !r.tolerance.is_empty()),
            has_arrays: rules.iter().any(|r| !r.arrays.is_empty()),
            rules,
            now_s,
            max: self.cfg.limits.max_differences,
            out: Vec::new(),
            dropped: 0,
            root: "status".into(),
            stack: Vec::new(),
        };
        if prod.status != cand.status {
            w.push(
                Kind::Value,
                Some(&prod.status.into()),
                Some(&cand.status.into()),
            );
        }
        self.headers(&mut w, prod, cand);
        let reason = match &bodies {
            Ok((p, c)) => {
                w.root = "body".into();
                w.bodies(p, c, &parsed);
                None
            }
            Err(e) => Some(e.clone()),
        };
        let mut c = Comparison {
            verdict: if reason.is_some() {
                Verdict::Skipped
            } else {
                Verdict::Match
            },
            reason,
            differences: w.out,
            differences_dropped: w.dropped,
        };
        c.settle();
        c
    }

    fn headers(&self, w: &mut Walk, prod: &Response, cand: &Response) {
        let collect = |r: &Response| {
            let mut m: Vec<(String, String)> = Vec::new();
            for (n, v) in r.headers {
                let n = n.to_ascii_lowercase();
                if self.cfg.header_ignored(&n) {
                    continue;
                }
                match m.iter_mut().find(|(k, _)| *k == n) {
                    Some((_, acc)) => {
                        acc.push_str(", ");
                        acc.push_str(v.trim());
                    }
                    None => m.push((n, v.trim().to_string())),
                }
            }
            m.sort_by(|a, b| a.0.cmp(&b.0));
            m
        };
        let (p, c) = (collect(prod), collect(cand));
        let (mut i, mut j) = (0, 0);
        while i < p.len() || j < c.len() {
            let ord = match (p.get(i), c.get(j)) {
                (Some(a), Some(b)) => a.0.cmp(&b.0),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let name = match ord {
                std::cmp::Ordering::Greater => &c[j].0,
                _ => &p[i].0,
            };
            w.root = format!("header.{name}");
            match ord {
                std::cmp::Ordering::Less => {
                    w.push(Kind::Missing, Some(&Value::String(p[i].1.clone())), None);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    w.push(Kind::Extra, None, Some(&Value::String(c[j].1.clone())));
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if p[i].1 != c[j].1 {
                        w.push(
                            Kind::Value,
                            Some(&Value::String(p[i].1.clone())),
                            Some(&Value::String(c[j].1.clone())),
                        );
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
    }
}

/// Whether an object's keys are ids (counted as `[*]`).
fn id_keyed(m: &Map<String, Value>) -> bool {
    m.len() > ID_KEYED_MIN_KEYS || m.keys().any(|k| !is_ident(k))
}

fn might_be_json(b: &[u8]) -> bool {
    b.iter()
        .find(|c| !c.is_ascii_whitespace())
        .is_some_and(|c| b"{[\"-0123456789tfn".contains(c))
}

/// A difference's value, bounded: long strings cut, large containers summarised.
fn clip(v: &Value) -> Value {
    match v {
        Value::String(s) if s.chars().count() > MAX_EXCERPT => {
            let mut t: String = s.chars().take(MAX_EXCERPT).collect();
            t.push('…');
            Value::String(t)
        }
        Value::Array(a) if a.len() > 8 || a.iter().any(|e| e.is_array() || e.is_object()) => {
            Value::String(format!("<array of {}>", a.len()))
        }
        Value::Object(o) if o.len() > 8 || o.values().any(|e| e.is_array() || e.is_object()) => {
            Value::String(format!("<object of {} keys>", o.len()))
        }
        Value::Array(a) => Value::Array(a.iter().map(clip).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), clip(v))).collect()),
        v => v.clone(),
    }
}

/// Numbers by value: integers exactly, `1` equals `1.0`, within `tol` when one is set.
pub fn numbers_equal(a: &Number, b: &Number, tol: f64) -> bool {
    if tol == 0.0 {
        if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
            return x == y;
        }
        if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
            return x == y;
        }
        // An integer against an integral float: compare as integers when the float is one
        // exactly (f64 cannot hold every i64, so comparing as f64 would equate neighbours).
        let int = |n: &Number| n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
        let float_int = |n: &Number| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1.7e38)
                .map(|f| f as i128)
        };
        if let (Some(x), Some(y)) = (int(a), float_int(b)) {
            return x == y;
        }
        if let (Some(x), Some(y)) = (float_int(a), int(b)) {
            return x == y;
        }
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= tol,
        _ => false,
    }
}

/// A hash equal for values that compare equal (numbers by value, objects in any key order).
fn value_hash(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            let int = n
                .as_i64()
                .map(i128::from)
                .or(n.as_u64().map(i128::from))
                .or(n
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1.7e38)
                    .map(|f| f as i128));
            match int {
                Some(i) => i.hash(h),
                None => (n.as_f64().unwrap_or(0.0) + 0.0).to_bits().hash(h),
            }
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            for e in a {
                value_hash(e, h);
            }
        }
        Value::Object(o) => {
            let mut sum = 0u64;
            for (k, v) in o {
                let mut eh = DefaultHasher::new();
                k.hash(&mut eh);
                value_hash(v, &mut eh);
                sum = sum.wrapping_add(eh.finish());
            }
            (5u8, o.len(), sum).hash(h);
        }
    }
}

fn hash_of(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    value_hash(v, &mut h);
    h.finish()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl<'v> Walk<'_, 'v> {
    fn render(&self) -> PathBuf {
        let mut p = PathBuf::new(&self.root);
        for s in &self.stack {
            match *s {
                Seg::Key(k, ids) => p.push_key(k, ids),
                Seg::Index(i) => p.push_index(i),
            }
        }
        p
    }

    fn push(&mut self, kind: Kind, p: Option<&Value>, c: Option<&Value>) {
        let path = self.render();
        let (r, cp) = (path.record(), path.count());
        if self.has_ignore
            && self
                .rules
                .iter()
                .any(|rule| rule.ignore.iter().any(|p| p.covers(r) || p.covers(cp)))
        {
            return;
        }
        if self.out.len() >= self.max {
            self.dropped += 1;
            return;
        }
        let shape_noise = kind == Kind::Value
            && match (p, c) {
                (Some(p), Some(c)) => {
                    let s = shape(p, self.now_s);
                    s.is_some() && s == shape(c, self.now_s)
                }
                _ => false,
            };
        self.out.push(Difference {
            path: r.to_string(),
            count_path: cp.to_string(),
            kind,
            production: p.map(clip),
            candidate: c.map(clip),
            noise: shape_noise,
            shape_noise,
        });
    }

    fn tolerance(&self) -> f64 {
        if !self.has_tolerance {
            return 0.0;
        }
        let path = self.render();
        let (r, c) = (path.record(), path.count());
        self.rules
            .iter()
            .flat_map(|rule| rule.tolerance.iter())
            .find(|(p, _)| p.covers(r) || p.covers(c))
            .map_or(0.0, |(_, t)| *t)
    }

    fn array_mode(&self) -> ArrayMode {
        if !self.has_arrays {
            return ArrayMode::Ordered;
        }
        let path = self.render();
        let (r, c) = (path.record(), path.count());
        self.rules
            .iter()
            .flat_map(|rule| rule.arrays.iter())
            .find(|(p, _)| p.is(r) || p.is(c))
            .map_or(ArrayMode::Ordered, |(_, m)| m.clone())
    }

    fn bodies(&mut self, p: &[u8], c: &[u8], parsed: &'v (Option<Value>, Option<Value>)) {
        if p == c {
            return;
        }
        match parsed {
            (Some(pv), Some(cv)) => self.value(pv, cv),
            (Some(_), None) => self.push(
                Kind::Type,
                Some(&Value::String("json".into())),
                Some(&Value::String(text_kind(c).into())),
            ),
            (None, Some(_)) => self.push(
                Kind::Type,
                Some(&Value::String(text_kind(p).into())),
                Some(&Value::String("json".into())),
            ),
            (None, None) => match (std::str::from_utf8(p), std::str::from_utf8(c)) {
                (Ok(ps), Ok(cs)) => {
                    let at = first_difference(p, c);
                    let excerpt = |s: &str| {
                        let start = s.floor_char_boundary_compat(at.saturating_sub(40));
                        Value::String(s[start..].chars().take(MAX_EXCERPT).collect())
                    };
                    self.push(Kind::Value, Some(&excerpt(ps)), Some(&excerpt(cs)));
                }
                _ => {
                    let desc = |b: &[u8]| Value::String(format!("<{} bytes>", b.len()));
                    self.push(Kind::Value, Some(&desc(p)), Some(&desc(c)));
                }
            },
        }
    }

    fn value(&mut self, p: &'v Value, c: &'v Value) {
        match (p, c) {
            (Value::Null, Value::Null) => {}
            (Value::Bool(a), Value::Bool(b)) => {
                if a != b {
                    self.push(Kind::Value, Some(p), Some(c));
                }
            }
            (Value::Number(a), Value::Number(b)) => {
                if !numbers_equal(a, b, self.tolerance()) {
                    self.push(Kind::Value, Some(p), Some(c));
                }
            }
            (Value::String(a), Value::String(b)) => {
                if a != b {
                    self.push(Kind::Value, Some(p), Some(c));
                }
            }
            (Value::Object(a), Value::Object(b)) => {
                let ids = id_keyed(a) || id_keyed(b);
                // Same keys in the same order (one serializer on both sides, the usual case):
                // pairwise, without a lookup per key.
                if a.len() == b.len() && a.keys().zip(b.keys()).all(|(x, y)| x == y) {
                    for ((k, pv), cv) in a.iter().zip(b.values()) {
                        self.stack.push(Seg::Key(k, ids));
                        self.value(pv, cv);
                        self.stack.pop();
                    }
                    return;
                }
                for (k, pv) in a {
                    self.stack.push(Seg::Key(k, ids));
                    match b.get(k) {
                        Some(cv) => self.value(pv, cv),
                        None => self.push(Kind::Missing, Some(pv), None),
                    }
                    self.stack.pop();
                }
                for (k, cv) in b {
                    if !a.contains_key(k) {
                        self.stack.push(Seg::Key(k, ids));
                        self.push(Kind::Extra, None, Some(cv));
                        self.stack.pop();
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => self.array(a, b),
            _ => self.push(
                Kind::Type,
                Some(&Value::String(type_name(p).into())),
                Some(&Value::String(type_name(c).into())),
            ),
        }
    }

    /// Elements of `a` not matched in `b` (as multisets) are `missing` at their production
    /// index; those of `b` not matched in `a` are `extra` at their candidate index.
    fn multiset(&mut self, a: &[(usize, &'v Value)], b: &[(usize, &'v Value)]) {
        let mut counts: HashMap<u64, Vec<usize>> = HashMap::new();
        for (j, (_, e)) in b.iter().enumerate() {
            counts.entry(hash_of(e)).or_default().push(j);
        }
        let mut matched = vec![false; b.len()];
        for &(i, e) in a {
            match counts.get_mut(&hash_of(e)).and_then(|v| v.pop()) {
                Some(j) => matched[j] = true,
                None => {
                    self.stack.push(Seg::Index(i));
                    self.push(Kind::Missing, Some(e), None);
                    self.stack.pop();
                }
            }
        }
        for (k, &(j, e)) in b.iter().enumerate() {
            if !matched[k] {
                self.stack.push(Seg::Index(j));
                self.push(Kind::Extra, None, Some(e));
                self.stack.pop();
            }
        }
    }

    fn same_multiset(a: &[Value], b: &[Value]) -> bool {
        let mut x: Vec<u64> = a.iter().map(hash_of).collect();
        let mut y: Vec<u64> = b.iter().map(hash_of).collect();
        x.sort_unstable();
        y.sort_unstable();
        x == y
    }

    fn array(&mut self, a: &'v [Value], b: &'v [Value]) {
        match self.array_mode() {
            ArrayMode::Unordered => self.multiset(&indexed(a), &indexed(b)),
            ArrayMode::Keyed(field) => {
                let key = |e: &Value| e.get(&field).map(hash_of);
                let mut by_key: HashMap<u64, usize> = HashMap::new();
                for (j, e) in b.iter().enumerate() {
                    if let Some(k) = key(e) {
                        by_key.entry(k).or_insert(j);
                    }
                }
                let mut matched = vec![false; b.len()];
                let (mut rest_a, mut rest_b) = (Vec::new(), Vec::new());
                for (i, e) in a.iter().enumerate() {
                    match key(e).and_then(|k| by_key.get(&k).copied()) {
                        Some(j) if !matched[j] => {
                            matched[j] = true;
                            self.stack.push(Seg::Index(i));
                            self.value(e, &b[j]);
                            self.stack.pop();
                        }
                        _ if key(e).is_some() => {
                            self.stack.push(Seg::Index(i));
                            self.push(Kind::Missing, Some(e), None);
                            self.stack.pop();
                        }
                        _ => rest_a.push((i, e)),
                    }
                }
                for (j, e) in b.iter().enumerate() {
                    if matched[j] {
                        continue;
                    }
                    if key(e).is_some() {
                        self.stack.push(Seg::Index(j));
                        self.push(Kind::Extra, None, Some(e));
                        self.stack.pop();
                    } else {
                        rest_b.push((j, e));
                    }
                }
                // Elements without the key field: as a multiset.
                self.multiset(&rest_a, &rest_b);
            }
            ArrayMode::Ordered if a.len() != b.len() => {
                self.push(
                    Kind::ArrayLength,
                    Some(&Value::from(a.len())),
                    Some(&Value::from(b.len())),
                );
                self.multiset(&indexed(a), &indexed(b));
            }
            ArrayMode::Ordered => {
                let (before, dropped) = (self.out.len(), self.dropped);
                let mut differing = 0;
                for (i, (pe, ce)) in a.iter().zip(b).enumerate() {
                    let at = (self.out.len(), self.dropped);
                    self.stack.push(Seg::Index(i));
                    self.value(pe, ce);
                    self.stack.pop();
                    if (self.out.len(), self.dropped) != at {
                        differing += 1;
                    }
                }
                // A reordering moves at least two elements; one differing element is a change.
                if differing >= 2 && Self::same_multiset(a, b) {
                    self.out.truncate(before);
                    self.dropped = dropped;
                    let first = a
                        .iter()
                        .zip(b)
                        .position(|(x, y)| hash_of(x) != hash_of(y))
                        .unwrap_or(0);
                    self.push(
                        Kind::ArrayOrder,
                        Some(&Value::from(first)),
                        Some(&Value::from(first)),
                    );
                }
            }
        }
    }
}

fn indexed(a: &[Value]) -> Vec<(usize, &Value)> {
    a.iter().enumerate().collect()
}

fn text_kind(b: &[u8]) -> &'static str {
    if b.is_empty() {
        "empty"
    } else if std::str::from_utf8(b).is_ok() {
        "text"
    } else {
        "bytes"
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    /// `str::floor_char_boundary` (unstable on this toolchain's MSRV).
    fn floor_char_boundary_compat(&self, i: usize) -> usize {
        let mut i = i.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
