//! JSON Schema inference: one [`Shape`] per body position, merged across samples.
//!
//! Each sample (a parsed JSON body) is folded into a [`Shape`] that remembers which JSON types
//! were seen, for objects which properties and in how many of the objects, for arrays the merged
//! shape of their items, for strings up to [`ShapeLimits::enum_max`] distinct values (an enum
//! when few) and whether every value had one of the formats `date-time`, `uuid` or `email`.
//! [`Shape::to_schema`] turns it into a JSON Schema (2020-12, the dialect of OpenAPI 3.1):
//! properties present in every sample are `required`, the others optional.
//!
//! Written here rather than taken from a crate: the Rust schema-inference crates (e.g.
//! `infers-jsonschema`, `genson-rs`) infer from whole documents at once and keep no counts, so
//! they can neither say which fields were optional across a stream of samples nor bound their
//! memory; this one is a few hundred lines with those two properties. Every sample is hostile:
//! depth, properties per object and distinct strings are bounded ([`ShapeLimits`]); what goes
//! past a bound is summarised (counted in [`Shape::truncated`]), never stored.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Bounds on what one [`Shape`] keeps.
#[derive(Clone, Copy, Debug)]
pub struct ShapeLimits {
    /// Nesting below which values are only typed, not described.
    pub max_depth: usize,
    /// Properties kept per object shape; later new names are counted, not kept.
    pub max_properties: usize,
    /// Distinct strings kept per position: at most this many becomes an `enum`.
    pub enum_max: usize,
    /// Longest string taken as an enum candidate (longer ones are free text).
    pub enum_value_max_len: usize,
    /// Samples a position needs before its strings are offered as an enum.
    pub enum_min_samples: u64,
}

impl Default for ShapeLimits {
    fn default() -> Self {
        ShapeLimits {
            max_depth: 12,
            max_properties: 200,
            enum_max: 8,
            enum_value_max_len: 40,
            enum_min_samples: 5,
        }
    }
}

const T_NULL: u8 = 1;
const T_BOOL: u8 = 2;
const T_INT: u8 = 4;
const T_NUM: u8 = 8;
const T_STR: u8 = 16;
const T_ARR: u8 = 32;
const T_OBJ: u8 = 64;

/// Every string seen here had this format (cleared at the first one that did not).
const F_DATE_TIME: u8 = 1;
const F_UUID: u8 = 2;
const F_EMAIL: u8 = 4;

/// The merged shape of the values seen at one position of a JSON document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shape {
    /// Values merged into this shape.
    pub samples: u64,
    types: u8,
    /// Objects seen and, per property name, how many of them had it.
    objects: u64,
    properties: BTreeMap<String, Shape>,
    /// Items of every array seen, merged.
    items: Option<Box<Shape>>,
    /// Distinct strings (None once there were too many, or one too long to be an enum value).
    strings: Option<BTreeSet<String>>,
    strings_seen: u64,
    formats: u8,
    /// Values not described because of a bound (depth, property count).
    pub truncated: u64,
}

impl Shape {
    /// Folds `v` into the shape.
    pub fn add(&mut self, v: &Value, limits: &ShapeLimits) {
        self.add_at(v, limits, 0);
    }

    fn add_at(&mut self, v: &Value, limits: &ShapeLimits, depth: usize) {
        self.samples += 1;
        match v {
            Value::Null => self.types |= T_NULL,
            Value::Bool(_) => self.types |= T_BOOL,
            Value::Number(n) => {
                self.types |= if n.is_f64() { T_NUM } else { T_INT };
            }
            Value::String(s) => {
                self.types |= T_STR;
                self.add_string(s, limits);
            }
            Value::Array(a) => {
                self.types |= T_ARR;
                if depth >= limits.max_depth {
                    self.truncated += 1;
                    return;
                }
                let items = self.items.get_or_insert_with(Box::default);
                for item in a {
                    items.add_at(item, limits, depth + 1);
                }
            }
            Value::Object(o) => {
                self.types |= T_OBJ;
                self.objects += 1;
                if depth >= limits.max_depth {
                    self.truncated += 1;
                    return;
                }
                for (k, v) in o {
                    if let Some(p) = self.properties.get_mut(k) {
                        p.add_at(v, limits, depth + 1);
                    } else if self.properties.len() < limits.max_properties {
                        let mut p = Shape::default();
                        p.add_at(v, limits, depth + 1);
                        self.properties.insert(k.clone(), p);
                    } else {
                        self.truncated += 1;
                    }
                }
            }
        }
    }

    fn add_string(&mut self, s: &str, limits: &ShapeLimits) {
        let f = string_formats(s);
        self.formats = if self.strings_seen == 0 {
            f
        } else {
            self.formats & f
        };
        if self.strings_seen == 0 {
            self.strings = Some(BTreeSet::new());
        }
        self.strings_seen += 1;
        if let Some(set) = &mut self.strings {
            if s.len() > limits.enum_value_max_len {
                self.strings = None;
            } else if !set.contains(s) {
                if set.len() >= limits.enum_max {
                    self.strings = None;
                } else {
                    set.insert(s.to_string());
                }
            }
        }
    }

    /// Merges another shape of the same position (e.g. from another worker) into this one.
    pub fn merge(&mut self, other: &Shape, limits: &ShapeLimits) {
        let both_strings = self.strings_seen > 0 && other.strings_seen > 0;
        self.formats = match (self.strings_seen, other.strings_seen) {
            (0, _) => other.formats,
            (_, 0) => self.formats,
            _ => self.formats & other.formats,
        };
        self.strings = match (self.strings.take(), &other.strings) {
            (Some(mut a), Some(b)) if both_strings => {
                a.extend(b.iter().cloned());
                (a.len() <= limits.enum_max).then_some(a)
            }
            (a, b) if !both_strings => a.or_else(|| b.clone()),
            _ => None,
        };
        self.strings_seen += other.strings_seen;
        self.samples += other.samples;
        self.types |= other.types;
        self.objects += other.objects;
        self.truncated += other.truncated;
        for (k, p) in &other.properties {
            if let Some(mine) = self.properties.get_mut(k) {
                mine.merge(p, limits);
            } else if self.properties.len() < limits.max_properties {
                self.properties.insert(k.clone(), p.clone());
            } else {
                self.truncated += p.samples;
            }
        }
        match (&mut self.items, &other.items) {
            (Some(a), Some(b)) => a.merge(b, limits),
            (None, Some(b)) => self.items = Some(b.clone()),
            _ => {}
        }
    }

    /// The JSON Schema (2020-12) of everything merged so far.
    pub fn to_schema(&self, limits: &ShapeLimits) -> Value {
        let mut types: Vec<&str> = Vec::new();
        let mut out = Map::new();
        if self.types & T_OBJ != 0 {
            types.push("object");
            let mut props = Map::new();
            let mut required = Vec::new();
            for (k, p) in &self.properties {
                props.insert(k.clone(), p.to_schema(limits));
                if p.samples_in_objects() == self.objects {
                    required.push(Value::String(k.clone()));
                }
            }
            if !props.is_empty() {
                out.insert("properties".into(), Value::Object(props));
            }
            if !required.is_empty() {
                out.insert("required".into(), Value::Array(required));
            }
        }
        if self.types & T_ARR != 0 {
            types.push("array");
            if let Some(items) = &self.items {
                out.insert("items".into(), items.to_schema(limits));
            }
        }
        if self.types & T_STR != 0 {
            types.push("string");
            if let Some(f) = format_name(self.formats) {
                out.insert("format".into(), json!(f));
            } else if let Some(set) = &self.strings {
                // An enum only for a position of few values seen often: three samples of free
                // text are not a closed set.
                if self.strings_seen >= limits.enum_min_samples
                    && (set.len() as u64) * 2 <= self.strings_seen
                    && self.types == T_STR
                {
                    let vals: Vec<Value> = set.iter().map(|k| json!(k)).collect();
                    out.insert("enum".into(), Value::Array(vals));
                }
            }
        }
        if self.types & T_NUM != 0 {
            types.push("number");
        } else if self.types & T_INT != 0 {
            types.push("integer");
        }
        if self.types & T_BOOL != 0 {
            types.push("boolean");
        }
        if self.types & T_NULL != 0 {
            types.push("null");
        }
        match types.len() {
            0 => {}
            1 => {
                out.insert("type".into(), json!(types[0]));
            }
            _ => {
                out.insert("type".into(), json!(types));
            }
        }
        Value::Object(out)
    }

    /// How many objects this property was in: the samples of a property are one per object
    /// holding it.
    fn samples_in_objects(&self) -> u64 {
        self.samples
    }
}

fn format_name(f: u8) -> Option<&'static str> {
    if f & F_DATE_TIME != 0 {
        Some("date-time")
    } else if f & F_UUID != 0 {
        Some("uuid")
    } else if f & F_EMAIL != 0 {
        Some("email")
    } else {
        None
    }
}

/// The formats `s` has: RFC 3339 date-time, RFC 4122 textual UUID, an address shaped like
/// `local@domain.tld` (the shape, not RFC 5322's grammar: what a schema's `format: email` means
/// to its readers).
fn string_formats(s: &str) -> u8 {
    let mut f = 0;
    if is_date_time(s) {
        f |= F_DATE_TIME;
    }
    if is_uuid(s) {
        f |= F_UUID;
    }
    if is_email(s) {
        f |= F_EMAIL;
    }
    f
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains(|c: char| c.is_whitespace() || c == '@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(samples: &[Value]) -> Value {
        let l = ShapeLimits::default();
        let mut s = Shape::default();
        for v in samples {
            s.add(v, &l);
        }
        s.to_schema(&l)
    }

    #[test]
    fn required_and_optional_properties() {
        let s = infer(&[json!({"a": 1, "b": "x"}), json!({"a": 2})]);
        assert_eq!(s["type"], "object");
        assert_eq!(s["required"], json!(["a"]));
        assert_eq!(s["properties"]["a"]["type"], "integer");
        assert_eq!(s["properties"]["b"]["type"], "string");
    }

    #[test]
    fn types_merge_into_a_list() {
        let s = infer(&[json!({"a": 1}), json!({"a": 1.5}), json!({"a": null})]);
        assert_eq!(s["properties"]["a"]["type"], json!(["number", "null"]));
    }

    #[test]
    fn formats_hold_only_when_every_value_has_them() {
        let s = infer(&[
            json!({"at": "2026-01-01T00:00:00Z", "id": "123e4567-e89b-12d3-a456-426614174000", "m": "a@b.io"}),
            json!({"at": "2026-01-02T10:00:00.5+01:00", "id": "00000000-0000-0000-0000-000000000000", "m": "not mail"}),
        ]);
        assert_eq!(s["properties"]["at"]["format"], "date-time");
        assert_eq!(s["properties"]["id"]["format"], "uuid");
        assert!(s["properties"]["m"].get("format").is_none());
    }

    #[test]
    fn low_cardinality_strings_become_an_enum_high_ones_do_not() {
        let few: Vec<Value> = (0..20)
            .map(|i| {
                let s = if i % 2 == 0 { "on" } else { "off" };
                json!({"s": s, "free": format!("v{i}")})
            })
            .collect();
        let s = infer(&few);
        assert_eq!(s["properties"]["s"]["enum"], json!(["off", "on"]));
        assert!(s["properties"]["free"].get("enum").is_none());
        // Too few samples to call two values a closed set.
        let s = infer(&[json!({"s": "a"}), json!({"s": "b"})]);
        assert!(s["properties"]["s"].get("enum").is_none());
    }

    #[test]
    fn arrays_merge_their_items() {
        let s = infer(&[json!([{"a": 1}, {"a": 2, "b": true}]), json!([])]);
        assert_eq!(s["type"], "array");
        assert_eq!(s["items"]["required"], json!(["a"]));
        assert_eq!(s["items"]["properties"]["b"]["type"], "boolean");
    }

    #[test]
    fn depth_and_width_are_bounded() {
        let l = ShapeLimits {
            max_depth: 3,
            max_properties: 2,
            ..ShapeLimits::default()
        };
        let mut deep = json!(1);
        for _ in 0..1000 {
            deep = json!({ "x": deep });
        }
        let mut s = Shape::default();
        s.add(&deep, &l);
        s.add(&json!({"a": 1, "b": 2, "c": 3, "d": 4}), &l);
        assert!(s.truncated >= 3);
        assert!(s.properties.len() <= 2);
        // Renders without recursion trouble.
        let _ = s.to_schema(&l);
    }

    #[test]
    fn merge_equals_adding_everything_to_one() {
        let l = ShapeLimits::default();
        let a = [json!({"a": 1, "s": "x"}), json!({"a": 2, "s": "y"})];
        let b = [
            json!({"a": 3}),
            json!({"b": "2026-01-01T00:00:00Z", "s": "x"}),
        ];
        let mut one = Shape::default();
        for v in a.iter().chain(b.iter()) {
            one.add(v, &l);
        }
        let (mut sa, mut sb) = (Shape::default(), Shape::default());
        a.iter().for_each(|v| sa.add(v, &l));
        b.iter().for_each(|v| sb.add(v, &l));
        sa.merge(&sb, &l);
        assert_eq!(sa.to_schema(&l), one.to_schema(&l));
    }

    #[test]
    fn date_time_and_email_shapes() {
        assert!(is_date_time("2026-12-04T19:04:42Z"));
        assert!(is_date_time("2026-12-04T19:04:42.123-05:00"));
        assert!(!is_date_time("2026-12-04 19:04:42"));
        assert!(!is_date_time("2026-12-04T19:04:42"));
        assert!(is_email("ops@example.com"));
        assert!(!is_email("@example.com"));
        assert!(!is_email("ops@localhost"));
    }
}
