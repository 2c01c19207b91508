//! The comparison stage in one piece: endpoint inference, the comparison, production-repeat
//! noise learning and the aggregation, fed one exchange pair at a time (the offline `compare`
//! command and the shadow stage both drive it).

use crate::config::CompareConfig;
use crate::diff::{Comparer, Comparison, Response};
use crate::summary::{Aggregator, NoiseSource, Summary};
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use vxtap_routes::{EndpointId, Router};

/// One production/candidate pair.
#[derive(Clone, Copy, Debug)]
pub struct Pair<'a> {
    /// The exchange id, for examples.
    pub id: Option<&'a str>,
    /// Request method.
    pub method: &'a str,
    /// Request target as sent.
    pub uri: &'a str,
    /// Request body (with the method and target, what makes two requests identical).
    pub request_body: &'a [u8],
    /// Capture time, for timestamp noise (0 if unknown).
    pub ts_ns: u64,
    /// Production's response.
    pub production: Response<'a>,
    /// The candidate's, or why there is none (`timeout`, `connect`...).
    pub candidate: Result<Response<'a>, &'a str>,
    /// Production and candidate latency, microseconds.
    pub latency_us: (Option<u64>, Option<u64>),
}

/// A fingerprint of a request: identical requests (method, target with query, body) have the
/// same one. SipHash with fixed keys: stable within a run, which is all it is used for.
pub fn request_fingerprint(method: &str, uri: &str, body: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    (method, uri, body).hash(&mut h);
    h.finish()
}

struct Stored {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Stored {
    fn bytes(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 48)
                .sum::<usize>()
            + 96
    }
}

/// Production responses by request fingerprint, bounded in entries and bytes (oldest out).
#[derive(Default)]
struct Store {
    map: HashMap<(EndpointId, u64), Stored>,
    order: VecDeque<(EndpointId, u64)>,
    bytes: usize,
}

/// The comparison stage (see the module doc).
pub struct Engine {
    router: Router,
    comparer: Comparer,
    agg: Aggregator,
    store: Store,
    /// Production repeats not kept for noise learning (store full of larger bodies, over the
    /// per-body cap, undecodable).
    pub not_stored: u64,
}

impl Engine {
    /// A stage with `cfg`.
    pub fn new(cfg: CompareConfig) -> Engine {
        Engine {
            router: Router::new(cfg.routes.clone()),
            agg: Aggregator::new(cfg.limits, cfg.report),
            comparer: Comparer::new(cfg),
            store: Store::default(),
            not_stored: 0,
        }
    }

    /// The router (endpoint names, stats).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The aggregator (caps, memory).
    pub fn aggregator(&self) -> &Aggregator {
        &self.agg
    }

    /// The current name of an endpoint id.
    pub fn endpoint_name(&self, id: EndpointId) -> &str {
        self.router.name(self.router.resolve(id))
    }

    /// Compares one pair, learns from it and counts it.
    pub fn process(&mut self, pair: &Pair) -> (EndpointId, Comparison) {
        let raw = self.router.endpoint(pair.method, pair.uri);
        let ep = self.router.resolve(raw);
        let name = self.router.name(ep).to_string();
        let now_s = (pair.ts_ns / 1_000_000_000) as i64;
        self.learn_from_repeat(ep, &name, pair, now_s);
        let mut cmp = match &pair.candidate {
            Err(e) => Comparison::error(*e),
            Ok(c) => self.comparer.compare(&name, &pair.production, c, now_s),
        };
        for d in &mut cmp.differences {
            if !d.noise && self.agg.noise_known(ep, &d.count_path) {
                d.noise = true;
            }
        }
        cmp.settle();
        let cand_status = pair.candidate.as_ref().ok().map(|c| c.status);
        self.agg.record(
            ep,
            pair.id,
            &cmp,
            (Some(pair.production.status), cand_status),
            pair.latency_us,
        );
        (ep, cmp)
    }

    /// Counts a baseline secondary's response against production's for the same request:
    /// its differences are noise (Diffy's primary/secondary measurement).
    pub fn baseline(
        &mut self,
        method: &str,
        uri: &str,
        ts_ns: u64,
        production: &Response,
        secondary: &Response,
    ) {
        let raw = self.router.endpoint(method, uri);
        let ep = self.router.resolve(raw);
        let name = self.router.name(ep).to_string();
        let c = self
            .comparer
            .compare(&name, production, secondary, (ts_ns / 1_000_000_000) as i64);
        if c.reason.is_none() {
            self.agg
                .record_noise(ep, NoiseSource::Baseline, &c.differences);
        }
    }

    /// Production against production for identical requests: what differs is noise.
    fn learn_from_repeat(&mut self, ep: EndpointId, name: &str, pair: &Pair, now_s: i64) {
        let limits = self.comparer.config().limits;
        let key = (
            ep,
            request_fingerprint(pair.method, pair.uri, pair.request_body),
        );
        if let Some(prev) = self.store.map.get(&key) {
            let prev_resp = Response {
                status: prev.status,
                headers: &prev.headers,
                body: &prev.body,
                coding: crate::diff::BodyCoding::Plain,
                complete: true,
            };
            let c = self
                .comparer
                .compare(name, &prev_resp, &pair.production, now_s);
            if c.reason.is_none() {
                self.agg
                    .record_noise(ep, NoiseSource::SelfRepeat, &c.differences);
            }
            return;
        }
        let body = match pair.production.decoded(limits.noise_store_body) {
            Ok(b) => b.into_owned(),
            Err(_) => {
                self.not_stored += 1;
                return;
            }
        };
        let s = Stored {
            status: pair.production.status,
            headers: pair.production.headers.to_vec(),
            body,
        };
        let size = s.bytes();
        if size > limits.noise_store_bytes || limits.noise_store_entries == 0 {
            self.not_stored += 1;
            return;
        }
        while self.store.map.len() >= limits.noise_store_entries
            || self.store.bytes + size > limits.noise_store_bytes
        {
            let Some(old) = self.store.order.pop_front() else {
                break;
            };
            if let Some(o) = self.store.map.remove(&old) {
                self.store.bytes -= o.bytes();
            }
        }
        self.store.bytes += size;
        self.store.order.push_back(key);
        self.store.map.insert(key, s);
    }

    /// Bytes held by the production-repeat store.
    pub fn store_bytes(&self) -> usize {
        self.store.bytes
    }

    /// The summary (consumes the stage), `top_paths` paths per endpoint.
    pub fn summary(self, top_paths: usize) -> Summary {
        self.agg.summary(&self.router, top_paths)
    }
}
