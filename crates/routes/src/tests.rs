use super::*;
use proptest::prelude::*;

fn router() -> Router {
    Router::new(RouterConfig::default())
}

fn name(r: &mut Router, method: &str, uri: &str) -> String {
    let id = r.endpoint(method, uri);
    r.name(r.resolve(id)).to_string()
}

#[test]
fn shapes_become_parameters() {
    let mut r = router();
    assert_eq!(name(&mut r, "GET", "/users/42"), "GET /users/{id}");
    assert_eq!(name(&mut r, "GET", "/users/43?x=1"), "GET /users/{id}");
    assert_eq!(
        name(
            &mut r,
            "GET",
            "/orders/0b7f6c1e-3a5d-4e7b-9c2f-1d2e3f4a5b6c/items"
        ),
        "GET /orders/{uuid}/items"
    );
    assert_eq!(name(&mut r, "GET", "/blobs/deadbeef01"), "GET /blobs/{hex}");
    assert_eq!(
        name(
            &mut r,
            "GET",
            "/s/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
        ),
        "GET /s/{token}"
    );
    // Words stay words, even long ones or hex-lettered ones.
    assert_eq!(name(&mut r, "GET", "/feedback"), "GET /feedback");
    assert_eq!(
        name(&mut r, "GET", "/user-preferences-settings"),
        "GET /user-preferences-settings"
    );
    assert_eq!(
        name(&mut r, "GET", "/oauth2-authorization-callback"),
        "GET /oauth2-authorization-callback"
    );
    assert_eq!(name(&mut r, "POST", "/api/v1/items"), "POST /api/v1/items");
    assert_eq!(name(&mut r, "GET", "/"), "GET /");
    assert_eq!(name(&mut r, "GET", ""), "GET *");
    assert_eq!(name(&mut r, "OPTIONS", "*"), "OPTIONS *");
    assert_eq!(
        name(&mut r, "GET", "http://example.test/a/7?q"),
        "GET /a/{id}"
    );
    assert_eq!(name(&mut r, "get", "/a"), "OTHER /a");
    assert_eq!(name(&mut r, "GET", "/a//b/"), "GET /a/b");
}

#[test]
fn same_template_same_id() {
    let mut r = router();
    let a = r.endpoint("GET", "/users/1");
    let b = r.endpoint("GET", "/users/2");
    let c = r.endpoint("POST", "/users/2");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(r.origin(a), Origin::Learned);
}

#[test]
fn high_cardinality_collapses_and_keeps_established_literals() {
    let mut r = Router::new(RouterConfig {
        cardinality: 20,
        ..RouterConfig::default()
    });
    // Established static siblings with steady traffic.
    for _ in 0..10 {
        for s in ["me", "search"] {
            r.endpoint("GET", &format!("/users/{s}"));
        }
    }
    let early = r.endpoint("GET", "/users/alice");
    assert_eq!(r.name(early), "GET /users/alice");
    for i in 0..100 {
        r.endpoint(
            "GET",
            &format!("/users/name{}x/profile", char::from(b'a' + (i % 26) as u8)).repeat(1),
        );
        r.endpoint(
            "GET",
            &format!(
                "/users/user_{}_z",
                ["a", "b", "c", "d"][i % 4].repeat(i + 1)
            ),
        );
    }
    assert_eq!(name(&mut r, "GET", "/users/bob"), "GET /users/{param}");
    assert_eq!(
        name(&mut r, "GET", "/users/carol/profile"),
        "GET /users/{param}/profile"
    );
    assert_eq!(name(&mut r, "GET", "/users/me"), "GET /users/me");
    assert_eq!(name(&mut r, "GET", "/users/search"), "GET /users/search");
    // The early id is superseded, never reused, and resolves to the collapsed template.
    assert!(r.is_superseded(early));
    assert_eq!(r.name(early), "GET /users/alice");
    assert_eq!(r.name(r.resolve(early)), "GET /users/{param}");
    assert!(r.stats().collapses >= 1);
    // Other prefixes are untouched.
    assert_eq!(name(&mut r, "GET", "/groups/admins"), "GET /groups/admins");
}

#[test]
fn declared_templates_win_most_specific_first() {
    let cfg = RouterConfig {
        declared: vec![
            Template::parse("GET /api/v1/items/{item}").unwrap(),
            Template::parse("GET /api/v1/items/special").unwrap(),
            Template::parse("/health").unwrap(),
        ],
        ..RouterConfig::default()
    };
    let mut r = Router::new(cfg);
    let a = r.endpoint("GET", "/api/v1/items/abc");
    assert_eq!(r.name(a), "GET /api/v1/items/{item}");
    assert_eq!(r.origin(a), Origin::Declared);
    assert_eq!(
        name(&mut r, "GET", "/api/v1/items/special"),
        "GET /api/v1/items/special"
    );
    assert_eq!(name(&mut r, "HEAD", "/health?full=1"), "* /health");
    // Not the declared method: learned.
    assert_eq!(
        name(&mut r, "POST", "/api/v1/items/12"),
        "POST /api/v1/items/{id}"
    );
    // Declared templates are never superseded nor counted against the learned cap.
    assert_eq!(r.stats().live_endpoints, 1);
}

#[test]
fn template_parse_errors() {
    assert_eq!(Template::parse(""), Err(TemplateError::Empty));
    assert!(matches!(
        Template::parse("get /x"),
        Err(TemplateError::BadMethod(_))
    ));
    assert!(matches!(
        Template::parse("GET x"),
        Err(TemplateError::NoLeadingSlash(_))
    ));
    assert!(matches!(
        Template::parse("GET /a/{b"),
        Err(TemplateError::BadSegment(_))
    ));
    assert!(matches!(
        Template::parse("GET /a/{}"),
        Err(TemplateError::BadSegment(_))
    ));
    assert!(matches!(
        Template::parse("GET /a?x=1"),
        Err(TemplateError::BadSegment(_))
    ));
    assert_eq!(Template::parse("GET /").unwrap().name(), "GET /");
    assert_eq!(
        "* /a/{b}/c".parse::<Template>().unwrap().name(),
        "* /a/{b}/c"
    );
}

#[test]
fn endpoint_cap_sends_the_rest_to_other() {
    let mut r = Router::new(RouterConfig {
        max_endpoints: 5,
        ..RouterConfig::default()
    });
    let names = ["a", "b", "c", "d", "e", "f", "g"];
    let ids: Vec<_> = names
        .iter()
        .map(|n| r.endpoint("GET", &format!("/{n}")))
        .collect();
    assert!(ids[..5].iter().all(|&i| i != EndpointId::OTHER));
    assert_eq!(&ids[5..], &[EndpointId::OTHER, EndpointId::OTHER]);
    assert_eq!(r.name(EndpointId::OTHER), "other");
    assert_eq!(r.stats().overflow, 2);
    // Known endpoints still resolve.
    assert_eq!(r.endpoint("GET", "/a"), ids[0]);
}

#[test]
fn methods_and_depth_are_bounded() {
    let mut r = Router::new(RouterConfig {
        max_methods: 2,
        max_depth: 3,
        ..RouterConfig::default()
    });
    assert_eq!(name(&mut r, "GET", "/a/b/c/d/e"), "GET /a/b/{rest}");
    assert_eq!(name(&mut r, "GET", "/a/b/c"), "GET /a/b/c");
    r.endpoint("PUT", "/x");
    assert_eq!(r.endpoint("PATCH", "/x"), EndpointId::OTHER);
}

#[test]
fn hostile_segments_never_become_literals() {
    let mut r = router();
    assert_eq!(
        name(&mut r, "GET", &format!("/{}", "a".repeat(500))),
        "GET /{token}"
    );
    assert_eq!(name(&mut r, "GET", "/a{b}"), "GET /{token}");
    assert_eq!(name(&mut r, "GET", "/a\u{1}b"), "GET /{token}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever arrives, the tree, the tables and the live endpoints stay within the caps,
    /// every id resolves to a live endpoint, and the same request keeps giving the same
    /// current endpoint.
    #[test]
    fn bounded_under_any_traffic(
        reqs in proptest::collection::vec(
            (prop::sample::select(vec!["GET", "POST", "get", "X", "PUT", "DELETE"]),
             proptest::collection::vec("[a-z0-9{}]{0,6}", 0..8)),
            1..600),
        max_endpoints in 1usize..20,
        cardinality in 1usize..8,
        max_nodes in 1usize..200,
    ) {
        let cfg = RouterConfig {
            max_endpoints, cardinality, max_nodes, max_methods: 3, max_depth: 5,
            ..RouterConfig::default()
        };
        let mut r = Router::new(cfg);
        for (m, segs) in &reqs {
            let uri = format!("/{}", segs.join("/"));
            let id = r.endpoint(m, &uri);
            let cur = r.resolve(id);
            prop_assert!(!r.is_superseded(cur));
            let again = r.endpoint(m, &uri);
            prop_assert_eq!(r.resolve(again), r.resolve(cur));
            let s = r.stats();
            prop_assert!(s.nodes <= max_nodes);
            prop_assert!(s.live_endpoints <= max_endpoints);
            prop_assert!(s.endpoints <= 1 + 2 * max_endpoints);
            prop_assert!(r.name(cur).matches('/').count() <= 5);
        }
        let live = r.ids().filter(|&i| r.origin(i) == Origin::Learned && !r.is_superseded(i)).count();
        prop_assert_eq!(live, r.stats().live_endpoints);
    }
}

#[test]
fn a_million_distinct_paths_stay_bounded() {
    let mut r = router();
    for i in 0..1_000_000u32 {
        // Literal-looking, all distinct, at several depths.
        let uri = format!("/t{}/n{}x/k{}y", i % 7, i, i / 3);
        r.endpoint("GET", &uri);
    }
    let s = r.stats();
    assert!(s.live_endpoints <= 1000);
    assert!(s.nodes <= 65_536);
    assert!(r.heap_bytes() < 64 << 20, "{}", r.heap_bytes());
    assert_eq!(
        name(&mut r, "GET", "/t3/nfoo/kbar"),
        "GET /t3/{param}/{param}"
    );
}

#[test]
fn template_names_the_endpoint_of_a_request() {
    let mut r = Router::new(RouterConfig::default());
    assert_eq!(r.template("GET", "/users/42?x=1"), "GET /users/{id}");
    assert_eq!(r.template("GET", "/users/7"), "GET /users/{id}");
}
