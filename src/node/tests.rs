//! Router-level tests of the cache node: each call through `router` with a real
//! [`NodeState`], no socket and no peer.

use axum::Router;
use http::{Method, StatusCode};

use super::{router, NodeSettings, NodeState};
use crate::auth::Secrets;
use crate::ring::NodeId;
use crate::testing::{call, unreachable_client, JSON};
use crate::wire::frontend::KeyList;
use crate::wire::headers;
use crate::wire::node::{CacheConfig, Cleared, Invalidated, Stats};
use crate::wire::paths;

fn node() -> Router {
    let settings = NodeSettings {
        node_id: NodeId::new("10.0.0.1:5101").unwrap(),
        node_port: crate::limits::NODE_PORT_DEFAULT,
        manager_host: None,
        manager_port: None,
        peers: Some(vec![NodeId::new("10.0.0.1:5101").unwrap()]),
        cache: CacheConfig::default(),
        rng_seed: 1,
        body_max_bytes: 64 * 1024,
        floors_max: crate::limits::FLOORS_MAX_DEFAULT,
        incarnation: 7,
        secrets: Secrets::default(),
        server: Default::default(),
    };
    router(NodeState::new(settings, unreachable_client()))
}

async fn clear(node: &Router) -> String {
    let answer = call(node, Method::DELETE, paths::NODE_CLEAR, &[], "").await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.body::<Cleared>().fence
}

async fn put(
    node: &Router,
    key: &str,
    version: u64,
    fence: &str,
    bytes: &'static str,
) -> StatusCode {
    let version = version.to_string();
    let headers = [
        ("content-type", "image/png"),
        (headers::VERSION, version.as_str()),
        (headers::FENCE, fence),
    ];
    call(node, Method::PUT, &paths::item_path(key), &headers, bytes)
        .await
        .status
}

#[tokio::test]
async fn an_item_put_under_the_current_fence_reads_back_with_its_version_and_type() {
    let node = node();
    let fence = clear(&node).await;
    assert_eq!(put(&node, "k", 3, &fence, "old").await, StatusCode::CREATED);
    assert_eq!(
        put(&node, "k", 3, &fence, "png-bytes").await,
        StatusCode::NO_CONTENT
    );
    let hit = call(&node, Method::GET, &paths::item_path("k"), &[], "").await;
    assert_eq!(hit.status, StatusCode::OK);
    assert_eq!(&hit.body[..], b"png-bytes");
    assert_eq!(hit.headers[headers::VERSION], "3");
    assert_eq!(hit.headers["content-type"], "image/png");
    let miss = call(&node, Method::GET, &paths::item_path("other"), &[], "").await;
    assert_eq!(miss.status, StatusCode::NOT_FOUND);
    let stats: Stats = call(&node, Method::GET, paths::NODE_STATS, &[], "")
        .await
        .body();
    assert_eq!((stats.content.gets, stats.content.hits), (2, 1));
    assert_eq!(stats.hit_rate, Some(0.5));
    let keys: KeyList = call(&node, Method::GET, paths::NODE_KEYS, &[], "")
        .await
        .body();
    assert_eq!(keys.keys, ["k"]);
}

#[tokio::test]
async fn puts_without_a_current_fence_or_a_version_are_refused_in_the_envelope() {
    let node = node();
    let first = clear(&node).await;
    let second = clear(&node).await;
    assert_ne!(first, second, "every clear gives a new token");
    // A put with the token of an earlier clear is refused, and says why.
    let stale = call(
        &node,
        Method::PUT,
        &paths::item_path("k"),
        &[(headers::VERSION, "1"), (headers::FENCE, first.as_str())],
        "x",
    )
    .await;
    assert_eq!(stale.refusal(StatusCode::CONFLICT), "stale fence token");
    assert_eq!(stale.headers[headers::FENCE_MISMATCH], "reset");
    // So is one with no token at all.
    let unfenced = call(
        &node,
        Method::PUT,
        &paths::item_path("k"),
        &[(headers::VERSION, "1")],
        "x",
    )
    .await;
    unfenced.refusal(StatusCode::CONFLICT);
    // And one without a version, whatever its fence.
    let unversioned = call(
        &node,
        Method::PUT,
        &paths::item_path("k"),
        &[(headers::FENCE, second.as_str())],
        "x",
    )
    .await;
    assert!(unversioned
        .refusal(StatusCode::BAD_REQUEST)
        .contains(headers::VERSION));
    let keys: KeyList = call(&node, Method::GET, paths::NODE_KEYS, &[], "")
        .await
        .body();
    assert!(keys.keys.is_empty(), "nothing refused was stored");
}

#[tokio::test]
async fn an_invalidation_keeps_a_floor_that_refuses_older_versions() {
    let node = node();
    let fence = clear(&node).await;
    assert_eq!(
        put(&node, "k", 5, &fence, "five").await,
        StatusCode::CREATED
    );
    let path = format!("{}?version=6", paths::item_path("k"));
    let dropped: Invalidated = call(&node, Method::DELETE, &path, &[], "").await.body();
    assert!(dropped.removed);
    assert_eq!(
        put(&node, "k", 5, &fence, "five").await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        put(&node, "k", 7, &fence, "seven").await,
        StatusCode::CREATED
    );
    let again: Invalidated = call(&node, Method::DELETE, &paths::item_path("absent"), &[], "")
        .await
        .body();
    assert!(!again.removed);
}

#[tokio::test]
async fn the_cache_configuration_is_checked_before_it_is_applied() {
    let node = node();
    let bad = call(
        &node,
        Method::POST,
        paths::NODE_CONFIG,
        JSON,
        r#"{"capacity":0,"policy":"lru"}"#,
    )
    .await;
    assert!(bad.refusal(StatusCode::BAD_REQUEST).contains("capacity"));
    let unknown = call(
        &node,
        Method::POST,
        paths::NODE_CONFIG,
        JSON,
        r#"{"capacity":2,"policy":"fifo"}"#,
    )
    .await;
    unknown.refusal(StatusCode::BAD_REQUEST);
    let good = call(
        &node,
        Method::POST,
        paths::NODE_CONFIG,
        JSON,
        r#"{"capacity":2,"policy":"rr"}"#,
    )
    .await;
    assert_eq!(good.status, StatusCode::OK);
    let shown: crate::wire::envelope::Content<CacheConfig> =
        call(&node, Method::GET, paths::NODE_CONFIG, &[], "")
            .await
            .body();
    assert_eq!(shown.content.capacity, 2.0);
    assert_eq!(shown.content.policy, crate::cache::store::Policy::Rr);
}

#[tokio::test]
async fn move_orders_to_strangers_and_unknown_calls_are_refused_in_the_envelope() {
    let node = node();
    let stranger = call(
        &node,
        Method::POST,
        paths::MOVE_KEYS,
        JSON,
        r#"{"port":-1,"dest":{"10.9.9.9:5101":["k"]}}"#,
    )
    .await;
    assert!(stranger
        .refusal(StatusCode::BAD_REQUEST)
        .contains("not a node of this cluster"));
    let bad_port = call(
        &node,
        Method::POST,
        paths::MOVE_KEYS,
        JSON,
        r#"{"port":70000,"dest":{}}"#,
    )
    .await;
    bad_port.refusal(StatusCode::BAD_REQUEST);
    call(&node, Method::GET, "/api/cache/nothing", &[], "")
        .await
        .refusal(StatusCode::NOT_FOUND);
    call(&node, Method::PATCH, paths::NODE_STATS, &[], "")
        .await
        .refusal(StatusCode::METHOD_NOT_ALLOWED);
    let oversize = call(
        &node,
        Method::PUT,
        &paths::item_path("k"),
        &[("content-length", "10000000")],
        "",
    )
    .await;
    oversize.refusal(StatusCode::PAYLOAD_TOO_LARGE);
}
