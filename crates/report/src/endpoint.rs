//! Which endpoint an exchange belongs to: its method and its route.
//!
//! The route is the template `vxtap-routes` infers from the traffic (`/users/{id}`: numeric,
//! UUID, hex and high-cardinality segments become parameters), through [`Routes`]. Templates
//! are learned online: a segment that turns into `{param}` only after many distinct values
//! (no shape gave it away) leaves the exchanges counted before that under their literal paths.
//! The router caps its endpoints (`other`), and the [`EndpointCap`] keeps the number of
//! endpoints bounded too: past it, exchanges of new endpoints are counted in one overflow
//! endpoint instead of getting their own.

use std::collections::HashMap;
use std::hash::Hash;
use vxtap_http::Exchange;

/// Endpoints kept by default (the rest are counted together).
pub const DEFAULT_MAX_ENDPOINTS: usize = 10_000;

/// One endpoint: method and route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// Request method as sent (`GET`).
    pub method: String,
    /// Route: the path (see the module doc).
    pub route: String,
}

impl std::fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.route)
    }
}

/// The path and query of a request target: origin form (`/a?b`), absolute form
/// (`http://h/a?b`), `*` or an authority (CONNECT). The fragment, never sent by clients but
/// possible in hostile input, is dropped.
pub fn split_target(uri: &str) -> (&str, Option<&str>) {
    let uri = uri.split('#').next().unwrap_or("");
    let rest = match uri.find("://") {
        Some(i) if !uri[..i].contains('/') => {
            let after = &uri[i + 3..];
            match after.find(['/', '?']) {
                Some(j) => &after[j..],
                None => "/",
            }
        }
        _ => uri,
    };
    match rest.split_once('?') {
        Some((p, q)) => (if p.is_empty() { "/" } else { p }, Some(q)),
        None => (rest, None),
    }
}

/// Route templates, learned from the exchanges as they come.
pub struct Routes(vxtap_routes::Router);

impl Default for Routes {
    fn default() -> Self {
        Routes(vxtap_routes::Router::new(
            vxtap_routes::RouterConfig::default(),
        ))
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Routes")
    }
}

impl Routes {
    /// Routes with at most `max` learned endpoints (the rest are `other`).
    pub fn with_max(max: usize) -> Self {
        Routes(vxtap_routes::Router::new(vxtap_routes::RouterConfig {
            max_endpoints: max,
            ..vxtap_routes::RouterConfig::default()
        }))
    }

    /// The route template of `method` `uri` (`/users/{id}`; `other` past the router's cap).
    pub fn route(&mut self, method: &str, uri: &str) -> String {
        let name = self.0.template(method, uri);
        name.split_once(' ').map_or(name, |(_, r)| r).to_string()
    }

    /// The endpoint of an exchange, or None when its request was not seen.
    pub fn endpoint_of(&mut self, ex: &Exchange) -> Option<EndpointKey> {
        let req = ex.request.as_ref()?;
        let method = req.method.as_deref()?;
        let route = self.route(method, req.uri.as_deref().unwrap_or(""));
        Some(EndpointKey {
            method: method.to_string(),
            route,
        })
    }
}

/// A map of endpoints with a cap: past `max` distinct keys, new keys share one overflow value.
#[derive(Debug)]
pub struct EndpointCap<K, V> {
    /// The endpoints kept.
    pub map: HashMap<K, V>,
    /// Everything that did not get its own entry.
    pub overflow: V,
    /// Exchanges counted in `overflow`.
    pub overflowed: u64,
    max: usize,
}

impl<K: Eq + Hash, V: Default> EndpointCap<K, V> {
    /// At most `max` endpoints.
    pub fn new(max: usize) -> Self {
        EndpointCap {
            map: HashMap::new(),
            overflow: V::default(),
            overflowed: 0,
            max,
        }
    }

    /// The value of `key`, or the overflow once the cap is reached.
    pub fn entry(&mut self, key: K) -> &mut V {
        if self.map.len() < self.max || self.map.contains_key(&key) {
            self.map.entry(key).or_default()
        } else {
            self.overflowed += 1;
            &mut self.overflow
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(split_target("/a/b?x=1"), ("/a/b", Some("x=1")));
        assert_eq!(split_target("http://h:80/a?x"), ("/a", Some("x")));
        assert_eq!(split_target("http://h"), ("/", None));
        assert_eq!(split_target("http://h?q"), ("/", Some("q")));
        assert_eq!(split_target("/p#frag"), ("/p", None));
        assert_eq!(split_target("*"), ("*", None));
        assert_eq!(split_target("example.com:443"), ("example.com:443", None));
    }

    #[test]
    fn the_cap_sends_new_keys_to_the_overflow() {
        let mut c: EndpointCap<u32, u64> = EndpointCap::new(2);
        for k in [1, 2, 3, 1, 4] {
            *c.entry(k) += 1;
        }
        assert_eq!(c.map.len(), 2);
        assert_eq!(c.map[&1], 2);
        assert_eq!(c.overflow, 2);
        assert_eq!(c.overflowed, 2);
    }
}
