//! The difference path grammar, shared by records, the summary and the config:
//!
//! ```text
//! path    = "status" | "header." name | "body" *segment
//! segment = "." ident            ; an object key that is an identifier: [A-Za-z_$][A-Za-z0-9_$-]*
//!         | "[" digits "]"       ; an array index (records)
//!         | "[" json-string "]"  ; any other object key, JSON-quoted: ["user id"], ["42"]
//!         | "[*]"                ; any index, or any key of an id-keyed object (counting form)
//! ```
//!
//! Every difference has two forms: the record form (`body.items[3].price`) and the counting
//! form with indexes and id keys wildcarded (`body.items[*].price`), which is what the summary
//! counts and shows. A config path ([`Pattern`]) is either form, pasted verbatim: it matches a
//! difference whose record or counting form equals it, or lies below it (`body.meta` covers
//! `body.meta.ts`). Parsing canonicalises (`body["a"]` is `body.a`).

use std::fmt::Write as _;

/// Whether `key` is written `.key` (else `["key"]`).
pub fn is_ident(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b'$')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'-')
}

/// A path being built during a walk: both forms at once, with cheap push and pop.
#[derive(Debug, Default, Clone)]
pub struct PathBuf {
    record: String,
    count: String,
    marks: Vec<(u32, u32)>,
}

impl PathBuf {
    /// A path at `root` (`status`, `header.x`, `body`).
    pub fn new(root: &str) -> PathBuf {
        PathBuf {
            record: root.to_string(),
            count: root.to_string(),
            marks: Vec::new(),
        }
    }

    /// The record form.
    pub fn record(&self) -> &str {
        &self.record
    }

    /// The counting form.
    pub fn count(&self) -> &str {
        &self.count
    }

    fn mark(&mut self) {
        self.marks
            .push((self.record.len() as u32, self.count.len() as u32));
    }

    /// Enters an object key; `id_keyed` objects count all their keys as `[*]`.
    pub fn push_key(&mut self, key: &str, id_keyed: bool) {
        self.mark();
        let start = self.record.len();
        if is_ident(key) {
            self.record.push('.');
            self.record.push_str(key);
        } else {
            self.record.push('[');
            // A String never fails to serialise.
            self.record
                .push_str(&serde_json::to_string(key).unwrap_or_default());
            self.record.push(']');
        }
        if id_keyed {
            self.count.push_str("[*]");
        } else {
            self.count.push_str(&self.record[start..]);
        }
    }

    /// Enters an array element.
    pub fn push_index(&mut self, i: usize) {
        self.mark();
        let _ = write!(self.record, "[{i}]");
        self.count.push_str("[*]");
    }

    /// Leaves the last segment pushed.
    pub fn pop(&mut self) {
        if let Some((r, c)) = self.marks.pop() {
            self.record.truncate(r as usize);
            self.count.truncate(c as usize);
        }
    }
}

/// Why a config path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad difference path {path:?}: {why} (expected status, header.NAME, body, body.a[0][\"k\"][*]...)")]
pub struct PathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A config path: matches differences at or below it (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Parses and canonicalises a path.
    pub fn parse(text: &str) -> Result<Pattern, PathError> {
        let err = |why| PathError {
            path: text.to_string(),
            why,
        };
        let t = text.trim();
        if t == "status" {
            return Ok(Pattern(t.into()));
        }
        if let Some(name) = t.strip_prefix("header.") {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
                return Err(err("a header name is visible ASCII"));
            }
            return Ok(Pattern(format!("header.{}", name.to_ascii_lowercase())));
        }
        let Some(mut rest) = t.strip_prefix("body") else {
            return Err(err("must start with status, header. or body"));
        };
        let mut out = String::from("body");
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let key = &r[..end];
                if !is_ident(key) {
                    return Err(err(
                        "a .key must be an identifier; quote others as [\"key\"]",
                    ));
                }
                out.push('.');
                out.push_str(key);
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix("[*]") {
                out.push_str("[*]");
                rest = r;
            } else if let Some(r) = rest.strip_prefix("[\"") {
                // A JSON string up to its closing quote (escapes allowed).
                let mut end = None;
                let mut esc = false;
                for (i, ch) in r.char_indices() {
                    match (esc, ch) {
                        (true, _) => esc = false,
                        (false, '\\') => esc = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| err("unterminated [\"key\"]"))?;
                let key: String = serde_json::from_str(&format!("\"{}\"", &r[..end]))
                    .map_err(|_| err("bad escape in [\"key\"]"))?;
                let r = r[end + 1..]
                    .strip_prefix(']')
                    .ok_or_else(|| err("[\"key\"] must close with ]"))?;
                let mut p = PathBuf::new("");
                p.push_key(&key, false);
                out.push_str(p.record());
                rest = r;
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| err("unterminated [index]"))?;
                let idx = &r[..end];
                if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) || idx.len() > 18 {
                    return Err(err("an [index] is digits, [*] or [\"key\"]"));
                }
                let _ = write!(out, "[{}]", idx.parse::<u64>().unwrap_or(0));
                rest = &r[end + 1..];
            } else {
                return Err(err("expected .key, [index], [\"key\"] or [*]"));
            }
        }
        Ok(Pattern(out))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` (either form) is this pattern or lies below it.
    pub fn covers(&self, path: &str) -> bool {
        let p = self.0.as_str();
        path.len() >= p.len()
            && path.starts_with(p)
            && matches!(path.as_bytes().get(p.len()), None | Some(b'.' | b'['))
    }

    /// Whether `path` (either form) is exactly this pattern.
    pub fn is(&self, path: &str) -> bool {
        self.0 == path
    }
}

impl std::str::FromStr for Pattern {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        let mut p = PathBuf::new("body");
        p.push_key("items", false);
        p.push_index(3);
        p.push_key("price", false);
        assert_eq!(p.record(), "body.items[3].price");
        assert_eq!(p.count(), "body.items[*].price");
        p.pop();
        p.pop();
        p.push_key("by id", false);
        assert_eq!(p.record(), "body.items[\"by id\"]");
        p.pop();
        p.push_key("123", true);
        assert_eq!(p.record(), "body.items[\"123\"]");
        assert_eq!(p.count(), "body.items[*]");
    }

    #[test]
    fn patterns_round_trip_what_records_show() {
        for s in [
            "status",
            "header.x-cache",
            "body",
            "body.items[3].price",
            "body.items[*].price",
            "body.m[\"a b\"].c",
            "body.m[\"4\\\"2\"]",
        ] {
            assert_eq!(Pattern::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(Pattern::parse("body[\"a\"]").unwrap().as_str(), "body.a");
        assert_eq!(
            Pattern::parse("header.X-Cache").unwrap().as_str(),
            "header.x-cache"
        );
        for bad in [
            "",
            "bod",
            "body.",
            "body.1a",
            "body[",
            "body[x]",
            "body[\"a]",
            "header.",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn covers_subtrees_only_at_segment_bounds() {
        let p = Pattern::parse("body.meta").unwrap();
        assert!(p.covers("body.meta"));
        assert!(p.covers("body.meta.ts"));
        assert!(p.covers("body.meta[0]"));
        assert!(!p.covers("body.metadata"));
        assert!(!p.covers("body"));
    }
}
