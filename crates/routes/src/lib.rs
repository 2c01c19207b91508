//! Route templates ("endpoints") inferred online from observed (method, path) pairs.
//!
//! Summaries, comparisons and metrics group exchanges per endpoint: `GET /users/{id}`, not one
//! line per user. The [`Router`] turns each request into an [`EndpointId`], one exchange at a
//! time, with memory and endpoint count bounded whatever the traffic:
//!
//! - Shape: a path segment that is numeric (`{id}`), a UUID (`{uuid}`), hex of 8 or more
//!   characters with a digit (`{hex}`), or long and high-entropy like base64 tokens (`{token}`)
//!   is a parameter at once. Query strings and fragments are never part of a template;
//!   absolute-form targets (`http://host/path`) keep their path; any other non-origin-form
//!   target (`*`, `host:443`) is the template `*`.
//! - Cardinality: under one prefix (for example `GET /users`), the distinct literal values seen
//!   in the next segment are kept exactly up to [`RouterConfig::cardinality`]; the next new
//!   value collapses that position into `{param}`. The bounded sketch is this exact set: it is
//!   small (the threshold is tens), exact where it matters, and freed on collapse. Literals that
//!   already carry an established share of that prefix's traffic (at least
//!   [`RouterConfig::keep_min_hits`] hits and `1/cardinality` of the prefix's hits) stay
//!   literal (`/users/me` beside `/users/{param}`); the rare ones are dropped.
//! - Declared templates ([`Template`], `--route 'GET /api/v1/items/{id}'`) win over anything
//!   learned: the most specific match (most literal segments, then declaration order).
//! - Bounds: at most [`RouterConfig::max_endpoints`] live learned endpoints; beyond that, and
//!   when the prefix tree is full ([`RouterConfig::max_nodes`]) or too many methods appear,
//!   requests go to the endpoint [`EndpointId::OTHER`] (`other`), counted in
//!   [`RouterStats::overflow`]. Literal segments longer than
//!   [`RouterConfig::max_segment_len`] are `{token}`, segments past
//!   [`RouterConfig::max_depth`] fold into one `{rest}`, and methods that are not 1 to 16
//!   upper-case letters (or `-`, `_`) are `OTHER`.
//!
//! # Stability of ids and names
//! An [`EndpointId`] is never reused and its name never changes. Learning may *supersede* an
//! endpoint: when `/users/alice` collapses into `/users/{param}`, the id of `GET /users/alice`
//! stays valid and [`Router::resolve`] maps it to the id of `GET /users/{param}`. Online
//! consumers keep counts per id as returned and re-key them through `resolve` when they report
//! (counts then merge). Declared endpoints and shape parameters are never superseded. The
//! number of ids ever handed out is bounded by `2 * max_endpoints + declared + 1`; past that,
//! new endpoints are `other` as well.
//!
//! Written here rather than taken from a crate: no maintained Rust crate infers templates from
//! traffic (Akita's and Optic's inference live in Go and TypeScript services), and the bounds
//! and supersession above are what the summaries need.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Limits and declared templates of a [`Router`].
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Live learned endpoints at most (declared ones and `other` come on top).
    pub max_endpoints: usize,
    /// Distinct literal values kept under one prefix before the position becomes `{param}`.
    pub cardinality: usize,
    /// Hits a literal needs (besides `1/cardinality` of its prefix's) to stay literal when its
    /// position collapses.
    pub keep_min_hits: u64,
    /// Nodes of the prefix tree at most (each holds one segment of at most `max_segment_len`).
    pub max_nodes: usize,
    /// Distinct methods at most (each is one tree root).
    pub max_methods: usize,
    /// Segments at most in a template; the rest fold into `{rest}`.
    pub max_depth: usize,
    /// Longer literal segments are `{token}`.
    pub max_segment_len: usize,
    /// Templates that win over learned ones, in declaration order.
    pub declared: Vec<Template>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_endpoints: 1000,
            cardinality: 50,
            keep_min_hits: 4,
            max_nodes: 65_536,
            max_methods: 32,
            max_depth: 16,
            max_segment_len: 64,
            declared: Vec::new(),
        }
    }
}

/// Why a declared template was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// The text was empty.
    #[error("empty route template")]
    Empty,
    /// The path part does not start with `/` (and is not `*`).
    #[error("route template path must start with '/': {0:?}")]
    NoLeadingSlash(String),
    /// The method is not 1 to 16 upper-case letters (or `-`, `_`), nor `*`.
    #[error("route template method must be upper-case letters or '*': {0:?}")]
    BadMethod(String),
    /// A segment has unbalanced braces, an empty parameter name, or a query string.
    #[error("bad route template segment {0:?} (use literal text or {{name}})")]
    BadSegment(String),
}

/// One segment of a declared template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TSeg {
    Lit(String),
    Param(String),
}

/// A declared route template: `[METHOD] /path/{param}/...` (`*` or no method: any method).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    method: Option<String>,
    segs: Vec<TSeg>,
    /// The endpoint name, `METHOD /path` (`* /path` for any method).
    name: String,
}

impl Template {
    /// Parses `GET /api/v1/items/{id}`, `/health` or `* /x/{y}`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let (method, path) = match text.split_once(char::is_whitespace) {
            Some((m, p)) => (Some(m), p.trim()),
            None => (None, text),
        };
        let method = match method {
            None | Some("*") => None,
            Some(m) if valid_method(m) => Some(m.to_string()),
            Some(m) => return Err(TemplateError::BadMethod(m.to_string())),
        };
        if !path.starts_with('/') {
            return Err(TemplateError::NoLeadingSlash(path.to_string()));
        }
        let mut segs = Vec::new();
        for s in path.split('/').filter(|s| !s.is_empty()) {
            if s.contains(['?', '#']) || s.chars().any(char::is_whitespace) {
                return Err(TemplateError::BadSegment(s.to_string()));
            }
            let opens = s.matches('{').count();
            let closes = s.matches('}').count();
            if opens == 0 && closes == 0 {
                segs.push(TSeg::Lit(s.to_string()));
            } else if opens == 1
                && closes == 1
                && s.starts_with('{')
                && s.ends_with('}')
                && s.len() > 2
            {
                segs.push(TSeg::Param(s[1..s.len() - 1].to_string()));
            } else {
                return Err(TemplateError::BadSegment(s.to_string()));
            }
        }
        let mut name = format!("{} ", method.as_deref().unwrap_or("*"));
        push_path(
            &mut name,
            segs.iter().map(|s| match s {
                TSeg::Lit(l) => SegRef::Lit(l),
                TSeg::Param(p) => SegRef::Named(p),
            }),
        );
        Ok(Template { method, segs, name })
    }

    /// The endpoint name this template gives: `GET /api/v1/items/{id}`.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn literal_count(&self) -> usize {
        self.segs
            .iter()
            .filter(|s| matches!(s, TSeg::Lit(_)))
            .count()
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let mut it = segments(path);
        for s in &self.segs {
            match (s, it.next()) {
                (_, None) => return false,
                (TSeg::Lit(l), Some(seg)) if l != seg => return false,
                _ => {}
            }
        }
        it.next().is_none()
    }
}

impl FromStr for Template {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// An endpoint: an index into the router's table. Stable for the router's life (see the
/// module doc on supersession).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(u32);

impl EndpointId {
    /// The endpoint of everything past the caps: named `other`.
    pub const OTHER: EndpointId = EndpointId(0);

    /// The id as an index (0 is `other`), for per-endpoint arrays.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where an endpoint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The overflow endpoint.
    Other,
    /// A `--route` template.
    Declared,
    /// Inferred from traffic.
    Learned,
}

/// Counters of a [`Router`] (all monotonic but `endpoints`, `live_endpoints` and `nodes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Ids handed out so far, `other` included.
    pub endpoints: usize,
    /// Learned endpoints not superseded.
    pub live_endpoints: usize,
    /// Live nodes of the prefix tree.
    pub nodes: usize,
    /// Requests routed to `other` because a cap was reached.
    pub overflow: u64,
    /// Positions collapsed into `{param}` by cardinality.
    pub collapses: u64,
    /// Learned endpoints superseded by a collapse.
    pub superseded: u64,
}

/// A parameter learned from a segment's shape or from cardinality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Param {
    Id,
    Uuid,
    Hex,
    Token,
    Many,
    Rest,
}

const PARAMS: usize = 6;
const NONE: u32 = u32::MAX;

impl Param {
    fn label(self) -> &'static str {
        match self {
            Param::Id => "{id}",
            Param::Uuid => "{uuid}",
            Param::Hex => "{hex}",
            Param::Token => "{token}",
            Param::Many => "{param}",
            Param::Rest => "{rest}",
        }
    }
}

#[derive(Clone, Copy)]
enum SegRef<'a> {
    Lit(&'a str),
    Named(&'a str),
    Param(Param),
}

fn push_path<'a>(out: &mut String, segs: impl Iterator<Item = SegRef<'a>>) {
    let start = out.len();
    for s in segs {
        out.push('/');
        match s {
            SegRef::Lit(l) => out.push_str(l),
            SegRef::Named(n) => {
                out.push('{');
                out.push_str(n);
                out.push('}');
            }
            SegRef::Param(p) => out.push_str(p.label()),
        }
    }
    if out.len() == start {
        out.push('/');
    }
}

#[derive(Default)]
struct Node {
    /// Requests that went through this node.
    hits: u64,
    /// Literal children (at most `cardinality`).
    lits: HashMap<Box<str>, u32>,
    /// Parameter children by [`Param`] index, `NONE` when absent.
    params: [u32; PARAMS],
    /// The position of the children collapsed: new literals go to `{param}`.
    collapsed: bool,
    /// Cache of the endpoint of paths ending here.
    endpoint: Option<EndpointId>,
    /// The segment index of this node's children (a root's is 0).
    depth: u16,
}

impl Node {
    fn new() -> Node {
        Node {
            params: [NONE; PARAMS],
            ..Node::default()
        }
    }
}

struct Endpoint {
    name: Box<str>,
    origin: Origin,
    superseded_by: Option<EndpointId>,
}

/// Online route-template inference with declared templates and hard caps (see the module doc).
pub struct Router {
    cfg: RouterConfig,
    /// Declared templates, most specific first, with their ids.
    declared: Vec<(Template, EndpointId)>,
    endpoints: Vec<Endpoint>,
    by_name: HashMap<Box<str>, EndpointId>,
    roots: HashMap<Box<str>, u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    stats: RouterStats,
    max_ids: usize,
}

impl Router {
    /// A router with `cfg`'s limits and declared templates.
    pub fn new(cfg: RouterConfig) -> Router {
        let mut r = Router {
            declared: Vec::new(),
            endpoints: Vec::new(),
            by_name: HashMap::new(),
            roots: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            stats: RouterStats::default(),
            max_ids: 0,
            cfg,
        };
        r.cfg.cardinality = r.cfg.cardinality.max(1);
        r.cfg.max_depth = r.cfg.max_depth.clamp(1, 1024);
        r.push_endpoint("other".into(), Origin::Other);
        let mut declared = std::mem::take(&mut r.cfg.declared);
        // Most literal segments first; the stable sort keeps declaration order among equals.
        declared.sort_by_key(|t| std::cmp::Reverse(t.literal_count()));
        for t in declared {
            let id = match r.by_name.get(t.name()) {
                Some(&id) => id,
                None => r.push_endpoint(t.name().into(), Origin::Declared),
            };
            r.declared.push((t, id));
        }
        r.max_ids = r.endpoints.len() + 2 * r.cfg.max_endpoints;
        r
    }

    fn push_endpoint(&mut self, name: Box<str>, origin: Origin) -> EndpointId {
        let id = EndpointId(self.endpoints.len() as u32);
        self.by_name.insert(name.clone(), id);
        self.endpoints.push(Endpoint {
            name,
            origin,
            superseded_by: None,
        });
        self.stats.endpoints = self.endpoints.len();
        if origin == Origin::Learned {
            self.stats.live_endpoints += 1;
        }
        id
    }

    /// The endpoint of a request (`uri` as sent: origin-form, absolute-form, `*`), current as
    /// of now: may later be superseded (see [`Router::resolve`]).
    pub fn endpoint(&mut self, method: &str, uri: &str) -> EndpointId {
        let method = if valid_method(method) {
            method
        } else {
            "OTHER"
        };
        let Some(path) = origin_path(uri) else {
            return self.learned_name(format!("{method} *"));
        };
        if let Some(id) = self
            .declared
            .iter()
            .find(|(t, _)| t.matches(method, path))
            .map(|(_, id)| *id)
        {
            return id;
        }
        self.learn(method, path)
    }

    /// The endpoint `id` stands for now: itself, or what superseded it.
    pub fn resolve(&self, mut id: EndpointId) -> EndpointId {
        // Each supersession adds a parameter, so chains are shorter than max_depth; the bound
        // is a guard, not a case.
        for _ in 0..=self.cfg.max_depth + 1 {
            match self.endpoints.get(id.index()).and_then(|e| e.superseded_by) {
                Some(next) => id = next,
                None => break,
            }
        }
        id
    }

    /// The name of the endpoint `method` `uri` belongs to ([`Router::endpoint`] already
    /// answers with the template that superseded a collapsed one).
    pub fn template(&mut self, method: &str, uri: &str) -> &str {
        let id = self.endpoint(method, uri);
        self.name(id)
    }

    /// The endpoint's name: `GET /users/{id}`, `* /health` (declared for any method), `other`.
    pub fn name(&self, id: EndpointId) -> &str {
        self.endpoints.get(id.index()).map_or("other", |e| &e.name)
    }

    /// Where the endpoint came from.
    pub fn origin(&self, id: EndpointId) -> Origin {
        self.endpoints
            .get(id.index())
            .map_or(Origin::Other, |e| e.origin)
    }

    /// Whether a later collapse superseded the endpoint.
    pub fn is_superseded(&self, id: EndpointId) -> bool {
        self.endpoints
            .get(id.index())
            .is_some_and(|e| e.superseded_by.is_some())
    }

    /// The id of an endpoint name, if handed out.
    pub fn lookup(&self, name: &str) -> Option<EndpointId> {
        self.by_name.get(name).copied()
    }

    /// Every id handed out, `other` first.
    pub fn ids(&self) -> impl Iterator<Item = EndpointId> + '_ {
        (0..self.endpoints.len() as u32).map(EndpointId)
    }

    /// Counters and sizes.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            nodes: self.nodes.len() - self.free.len(),
            ..self.stats
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// An upper estimate of the heap the router holds (tables, names, tree).
    pub fn heap_bytes(&self) -> usize {
        let names: usize = self.endpoints.iter().map(|e| 2 * e.name.len()).sum();
        let per_entry = std::mem::size_of::<(Box<str>, u32)>() + 8;
        let lits: usize = self
            .nodes
            .iter()
            .map(|n| n.lits.capacity() * per_entry + n.lits.keys().map(|k| k.len()).sum::<usize>())
            .sum();
        names
            + self.endpoints.capacity() * std::mem::size_of::<Endpoint>()
            + self.by_name.capacity() * per_entry
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.free.capacity() * 4
            + lits
    }

    fn overflow(&mut self) -> EndpointId {
        self.stats.overflow += 1;
        EndpointId::OTHER
    }

    fn alloc(&mut self, depth: u16) -> Option<u32> {
        let node = Node {
            depth,
            ..Node::new()
        };
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = node;
            return Some(i);
        }
        if self.nodes.len() >= self.cfg.max_nodes {
            return None;
        }
        self.nodes.push(node);
        Some(self.nodes.len() as u32 - 1)
    }

    /// The id of a learned name for a request, creating it within the caps.
    fn learned_name(&mut self, name: String) -> EndpointId {
        match self.find_or_create(name) {
            Some(id) => id,
            None => self.overflow(),
        }
    }

    /// The id of a learned name, created if the caps allow.
    fn find_or_create(&mut self, name: String) -> Option<EndpointId> {
        if let Some(&id) = self.by_name.get(name.as_str()) {
            return Some(self.resolve(id));
        }
        if self.stats.live_endpoints >= self.cfg.max_endpoints
            || self.endpoints.len() >= self.max_ids
        {
            return None;
        }
        Some(self.push_endpoint(name.into_boxed_str(), Origin::Learned))
    }

    fn learn(&mut self, method: &str, path: &str) -> EndpointId {
        let root = match self.roots.get(method) {
            Some(&r) => r,
            None => {
                if self.roots.len() >= self.cfg.max_methods {
                    return self.overflow();
                }
                let Some(r) = self.alloc(0) else {
                    return self.overflow();
                };
                self.roots.insert(method.into(), r);
                r
            }
        };
        let mut node = root;
        self.nodes[node as usize].hits += 1;
        let mut walked: Vec<SegRef<'_>> = Vec::new();
        for (depth, seg) in segments(path).enumerate() {
            let step = if depth + 1 == self.cfg.max_depth && segments(path).nth(depth + 1).is_some()
            {
                Some(Param::Rest)
            } else {
                classify(seg, self.cfg.max_segment_len)
            };
            let next = match step {
                Some(p) => self.param_child(node, p),
                None => self.literal_child(node, seg),
            };
            let Some((next, seg_ref)) = next else {
                return self.overflow();
            };
            walked.push(seg_ref);
            node = next;
            self.nodes[node as usize].hits += 1;
            if step == Some(Param::Rest) {
                break;
            }
        }
        if let Some(id) = self.nodes[node as usize].endpoint {
            return self.resolve(id);
        }
        let mut name = String::with_capacity(method.len() + path.len() + 8);
        name.push_str(method);
        name.push(' ');
        push_path(&mut name, walked.into_iter());
        let id = self.learned_name(name);
        if id != EndpointId::OTHER {
            self.nodes[node as usize].endpoint = Some(id);
        }
        id
    }

    fn param_child<'a>(&mut self, node: u32, p: Param) -> Option<(u32, SegRef<'a>)> {
        let have = self.nodes[node as usize].params[p as usize];
        if have != NONE {
            return Some((have, SegRef::Param(p)));
        }
        let c = self.alloc(self.nodes[node as usize].depth + 1)?;
        self.nodes[node as usize].params[p as usize] = c;
        Some((c, SegRef::Param(p)))
    }

    fn literal_child<'a>(&mut self, node: u32, seg: &'a str) -> Option<(u32, SegRef<'a>)> {
        let n = &self.nodes[node as usize];
        if let Some(&c) = n.lits.get(seg) {
            return Some((c, SegRef::Lit(seg)));
        }
        if n.collapsed {
            return self.param_child(node, Param::Many);
        }
        if n.lits.len() >= self.cfg.cardinality {
            self.collapse(node);
            return self.param_child(node, Param::Many);
        }
        // A full tree takes new literals as parameters rather than refusing them.
        let depth = n.depth + 1;
        let Some(c) = self.alloc(depth) else {
            return self.param_child(node, Param::Many);
        };
        self.nodes[node as usize].lits.insert(seg.into(), c);
        Some((c, SegRef::Lit(seg)))
    }

    /// Collapses the literal children of `node` into `{param}`, keeping the established ones.
    fn collapse(&mut self, node: u32) {
        self.stats.collapses += 1;
        let hits = self.nodes[node as usize].hits;
        let share = hits / self.cfg.cardinality as u64;
        let keep_min = self.cfg.keep_min_hits.max(share);
        let lits = std::mem::take(&mut self.nodes[node as usize].lits);
        let mut kept = HashMap::new();
        let mut dropped = Vec::new();
        for (k, c) in lits {
            if self.nodes[c as usize].hits >= keep_min {
                kept.insert(k, c);
            } else {
                dropped.push(c);
            }
        }
        kept.shrink_to_fit();
        let n = &mut self.nodes[node as usize];
        n.lits = kept;
        n.collapsed = true;
        let depth = n.depth as usize;
        let mut stack = dropped;
        while let Some(c) = stack.pop() {
            let n = std::mem::replace(&mut self.nodes[c as usize], Node::new());
            stack.extend(n.lits.values().copied());
            stack.extend(n.params.iter().copied().filter(|&p| p != NONE));
            if let Some(id) = n.endpoint {
                self.supersede(id, depth);
            }
            self.free.push(c);
        }
    }

    fn supersede(&mut self, id: EndpointId, depth: usize) {
        let e = &self.endpoints[id.index()];
        if e.origin != Origin::Learned || e.superseded_by.is_some() {
            return;
        }
        // "GET /a/b/c": the method, then one path segment per '/'.
        let Some((method, path)) = e.name.split_once(' ') else {
            return;
        };
        let mut target = String::with_capacity(e.name.len() + 8);
        target.push_str(method);
        target.push(' ');
        let segs = path
            .split('/')
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| {
                if i == depth {
                    SegRef::Param(Param::Many)
                } else {
                    SegRef::Lit(s)
                }
            });
        push_path(&mut target, segs);
        self.stats.live_endpoints -= 1;
        self.stats.superseded += 1;
        let to = self.find_or_create(target).unwrap_or(EndpointId::OTHER);
        self.endpoints[id.index()].superseded_by = Some(to);
    }
}

/// Methods kept as they are: 1 to 16 of `A-Z`, `-`, `_`.
fn valid_method(m: &str) -> bool {
    (1..=16).contains(&m.len())
        && m.bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
}

/// The path of an origin-form or absolute-form target, without query or fragment; None for
/// anything else (`*`, authority-form, garbage).
fn origin_path(uri: &str) -> Option<&str> {
    let uri = &uri[..uri.find(['?', '#']).unwrap_or(uri.len())];
    if uri.starts_with('/') {
        return Some(uri);
    }
    let (scheme, rest) = uri.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
}

/// The non-empty segments of a path (`/a//b/` has two).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The parameter a segment's shape makes it, or None for a literal.
fn classify(seg: &str, max_len: usize) -> Option<Param> {
    let b = seg.as_bytes();
    if b.iter().all(u8::is_ascii_digit) {
        return Some(Param::Id);
    }
    if is_uuid(b) {
        return Some(Param::Uuid);
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if b.len() >= 8 && digits > 0 && b.iter().all(u8::is_ascii_hexdigit) {
        return Some(Param::Hex);
    }
    // Too long to be a name, or not something a name is made of (braces would break the
    // template grammar; controls and spaces do not belong in labels).
    if b.len() > max_len
        || b.iter()
            .any(|&c| c < 0x21 || c == 0x7f || c == b'{' || c == b'}')
    {
        return Some(Param::Token);
    }
    if b.len() >= 20 && digits >= 2 && looks_random(b) {
        return Some(Param::Token);
    }
    None
}

/// Base64/base64url-ish text that switches between letters, digits and symbols often, as
/// random tokens do and words (`user-preferences`, `oauth2-callback`) do not.
fn looks_random(b: &[u8]) -> bool {
    let charset = |c: &u8| c.is_ascii_alphanumeric() || b"+/=_-.~%".contains(c);
    if !b.iter().all(charset) || !b.iter().any(u8::is_ascii_alphabetic) {
        return false;
    }
    let class = |c: u8| {
        if c.is_ascii_digit() {
            0
        } else if c.is_ascii_lowercase() {
            1
        } else if c.is_ascii_uppercase() {
            2
        } else {
            3
        }
    };
    let switches = b.windows(2).filter(|w| class(w[0]) != class(w[1])).count();
    switches * 3 >= b.len()
}

#[cfg(test)]
mod tests;
