//! What to ignore, how to compare, when to report: defaults, CLI flags and the TOML file.
//!
//! The file (`--compare-config FILE`) takes paths exactly as records and the summary print them:
//!
//! ```toml
//! [report]            # Diffy's rule, in percent
//! relative = 20.0
//! absolute = 0.03
//!
//! [headers]
//! ignore = ["x-cache", "x-backend-*"]   # added to the default list
//!
//! [[rule]]            # no endpoint: every endpoint
//! ignore = ["body.meta"]
//!
//! [[rule]]
//! endpoint = "GET /users/{id}"
//! ignore = ["body.last_seen", "header.x-shard"]
//! tolerance = { "body.scores[*]" = 0.001 }
//! unordered = ["body.tags"]
//! keyed = { "body.items" = "id" }
//! ```

use crate::path::{PathError, Pattern};
use serde::Deserialize;
use std::collections::BTreeMap;
use vxtap_routes::RouterConfig;

/// The headers never compared (issue #17's list); a trailing `*` is a prefix.
pub const DEFAULT_IGNORED_HEADERS: &[&str] = &[
    "date",
    "server",
    "x-request-id",
    "x-amzn-trace-id",
    "traceparent",
    "set-cookie",
    "age",
    "expires",
    "etag",
    "last-modified",
    "via",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "x-envoy-*",
];

/// How an array at a path is compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArrayMode {
    /// Index by index (the default); the same elements in another order are one `array_order`.
    Ordered,
    /// As multisets.
    Unordered,
    /// Elements matched by the value of this field (`id`).
    Keyed(String),
}

/// Rules for every endpoint (`endpoint: None`) or one endpoint name (`GET /users/{id}`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    /// The endpoint name the rule is for; None for all.
    pub endpoint: Option<String>,
    /// Differences at or below these paths are dropped.
    pub ignore: Vec<Pattern>,
    /// Absolute tolerance for numbers at or below these paths.
    pub tolerance: Vec<(Pattern, f64)>,
    /// Array modes at these paths (exact).
    pub arrays: Vec<(Pattern, ArrayMode)>,
}

/// Diffy's reporting rule: a path is reported for an endpoint when its differences exceed its
/// noise by more than `relative` percent of (differences + noise) and `absolute` percent of
/// the endpoint's requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReportRule {
    /// Percent, default 20.
    pub relative: f64,
    /// Percent, default 0.03.
    pub absolute: f64,
}

impl Default for ReportRule {
    fn default() -> Self {
        ReportRule {
            relative: 20.0,
            absolute: 0.03,
        }
    }
}

/// Bounds of the aggregation (every one counted when reached).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Differences kept in one record (the rest counted in `differences_dropped`).
    pub max_differences: usize,
    /// Distinct counting paths per endpoint in the summary.
    pub max_paths_per_endpoint: usize,
    /// Distinct counting paths over all endpoints.
    pub max_paths: usize,
    /// Production responses kept to learn noise from identical requests: entries.
    pub noise_store_entries: usize,
    /// ... and their bytes in all.
    pub noise_store_bytes: usize,
    /// Bodies larger than this are not kept for noise learning.
    pub noise_store_body: usize,
    /// Bytes of decoded body compared per side (`--shadow-max-body`); a longer body is
    /// `skipped` (never compared in part).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_differences: 64,
            max_paths_per_endpoint: 256,
            max_paths: 20_000,
            noise_store_entries: 10_000,
            noise_store_bytes: 32 << 20,
            noise_store_body: 64 << 10,
            max_body: 1 << 20,
        }
    }
}

/// Everything the comparison and the summary are configured with.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// Header names (lower case) never compared; a trailing `*` is a prefix.
    pub ignore_headers: Vec<String>,
    /// Rules, global and per endpoint.
    pub rules: Vec<Rule>,
    /// When a path is reported.
    pub report: ReportRule,
    /// Bounds.
    pub limits: Limits,
    /// Endpoint inference (templates, caps).
    pub routes: RouterConfig,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            ignore_headers: DEFAULT_IGNORED_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rules: Vec::new(),
            report: ReportRule::default(),
            limits: Limits::default(),
            routes: RouterConfig::default(),
        }
    }
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML did not parse or has unknown keys.
    #[error("compare config: {0}")]
    Toml(#[from] toml::de::Error),
    /// A path is not in the grammar.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A `PATH=VALUE` flag without `=` or with a bad value.
    #[error("expected PATH=VALUE with a {what}: {text:?}")]
    Assign {
        /// What the value should be.
        what: &'static str,
        /// The text given.
        text: String,
    },
    /// A tolerance that is negative or not a number.
    #[error("tolerance must be a finite number >= 0: {0}")]
    Tolerance(f64),
    /// A report threshold out of 0..=100.
    #[error("report thresholds are percents in 0..=100: {0}")]
    Percent(f64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReport {
    relative: Option<f64>,
    absolute: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHeaders {
    #[serde(default)]
    ignore: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    endpoint: Option<String>,
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    tolerance: BTreeMap<String, f64>,
    #[serde(default)]
    unordered: Vec<String>,
    #[serde(default)]
    keyed: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    report: Option<FileReport>,
    headers: Option<FileHeaders>,
    #[serde(default)]
    rule: Vec<FileRule>,
}

fn percent(x: f64) -> Result<f64, ConfigError> {
    if (0.0..=100.0).contains(&x) {
        Ok(x)
    } else {
        Err(ConfigError::Percent(x))
    }
}

fn tolerance(x: f64) -> Result<f64, ConfigError> {
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(ConfigError::Tolerance(x))
    }
}

impl CompareConfig {
    /// Adds the rules of a TOML config file (see the module doc).
    pub fn load_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let f: File = toml::from_str(text)?;
        if let Some(r) = f.report {
            if let Some(x) = r.relative {
                self.report.relative = percent(x)?;
            }
            if let Some(x) = r.absolute {
                self.report.absolute = percent(x)?;
            }
        }
        if let Some(h) = f.headers {
            self.ignore_headers
                .extend(h.ignore.into_iter().map(|s| s.to_ascii_lowercase()));
        }
        for r in f.rule {
            let mut rule = Rule {
                endpoint: r.endpoint,
                ..Rule::default()
            };
            for p in r.ignore {
                rule.ignore.push(Pattern::parse(&p)?);
            }
            for (p, t) in r.tolerance {
                rule.tolerance.push((Pattern::parse(&p)?, tolerance(t)?));
            }
            for p in r.unordered {
                rule.arrays
                    .push((Pattern::parse(&p)?, ArrayMode::Unordered));
            }
            for (p, k) in r.keyed {
                rule.arrays.push((Pattern::parse(&p)?, ArrayMode::Keyed(k)));
            }
            self.rules.push(rule);
        }
        Ok(())
    }

    fn global(&mut self) -> &mut Rule {
        if self.rules.first().is_none_or(|r| r.endpoint.is_some()) {
            self.rules.insert(0, Rule::default());
        }
        &mut self.rules[0]
    }

    /// `--tolerance 'body.scores[*]=0.001'`.
    pub fn add_tolerance(&mut self, flag: &str) -> Result<(), ConfigError> {
        let bad = || ConfigError::Assign {
            what: "number",
            text: flag.to_string(),
        };
        let (p, t) = flag.rsplit_once('=').ok_or_else(bad)?;
        let t: f64 = t.trim().parse().map_err(|_| bad())?;
        let entry = (Pattern::parse(p)?, tolerance(t)?);
        self.global().tolerance.push(entry);
        Ok(())
    }

    /// `--ignore PATH`.
    pub fn add_ignore(&mut self, path: &str) -> Result<(), ConfigError> {
        let p = Pattern::parse(path)?;
        self.global().ignore.push(p);
        Ok(())
    }

    /// `--unordered PATH`.
    pub fn add_unordered(&mut self, path: &str) -> Result<(), ConfigError> {
        let p = Pattern::parse(path)?;
        self.global().arrays.push((p, ArrayMode::Unordered));
        Ok(())
    }

    /// `--array-key 'body.items=id'`.
    pub fn add_array_key(&mut self, flag: &str) -> Result<(), ConfigError> {
        let bad = || ConfigError::Assign {
            what: "field name",
            text: flag.to_string(),
        };
        let (p, k) = flag.rsplit_once('=').ok_or_else(bad)?;
        if k.is_empty() {
            return Err(bad());
        }
        let entry = (Pattern::parse(p)?, ArrayMode::Keyed(k.to_string()));
        self.global().arrays.push(entry);
        Ok(())
    }

    /// `--ignore-header NAME` (a trailing `*` is a prefix).
    pub fn add_ignored_header(&mut self, name: &str) {
        self.ignore_headers.push(name.trim().to_ascii_lowercase());
    }

    /// Whether header `name` (lower case) is never compared.
    pub fn header_ignored(&self, name: &str) -> bool {
        self.ignore_headers
            .iter()
            .any(|h| match h.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => h == name,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_flags() {
        let mut c = CompareConfig::default();
        c.load_toml(
            r#"
            [report]
            relative = 10.0
            [headers]
            ignore = ["X-Cache", "x-backend-*"]
            [[rule]]
            endpoint = "GET /users/{id}"
            ignore = ["body.last_seen"]
            tolerance = { "body.scores[*]" = 0.001 }
            unordered = ["body.tags"]
            keyed = { "body.items" = "id" }
            "#,
        )
        .unwrap();
        assert_eq!(c.report.relative, 10.0);
        assert!(c.header_ignored("x-cache"));
        assert!(c.header_ignored("x-backend-7"));
        assert!(c.header_ignored("x-envoy-upstream-service-time"));
        assert!(!c.header_ignored("content-type"));
        let r = &c.rules[0];
        assert_eq!(r.endpoint.as_deref(), Some("GET /users/{id}"));
        assert_eq!(r.tolerance[0].0.as_str(), "body.scores[*]");
        assert_eq!(r.arrays.len(), 2);
        c.add_tolerance("body.x=0.5").unwrap();
        assert!(c.rules[0].endpoint.is_none());
        assert!(c.add_tolerance("body.x").is_err());
        assert!(c.add_tolerance("body.x=-1").is_err());
        assert!(c.add_array_key("body.items=").is_err());
        assert!(c.load_toml("[[rule]]\nignroe = []").is_err());
        assert!(c.load_toml("[report]\nabsolute = 200.0").is_err());
    }
}
