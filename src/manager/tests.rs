//! Router-level tests of the manager: each call through `router` with a real
//! [`ManagerState`], no socket; every node and the front-end are unreachable, so
//! a resize runs its whole protocol against peers that are down.

use std::sync::Arc;

use axum::Router;
use http::{Method, StatusCode};

use super::{router, ManagerSettings, ManagerState};
use crate::auth::{Secrets, Token};
use crate::ring::NodeId;
use crate::testing::{call, unreachable_client, Answer, JSON};
use crate::wire::envelope::Content;
use crate::wire::manager::{AggregateStats, PoolListing, ResizeConfig, Resized};
use crate::wire::node::MoveDoneAck;
use crate::wire::paths;

const ADMIN: &str = "admin-token-0123456789";

fn slots(count: usize) -> Vec<NodeId> {
    (1..=count)
        .map(|i| NodeId::new(&format!("10.0.0.{i}:5101")).unwrap())
        .collect()
}

fn manager(slot_count: usize, admin: bool) -> (Router, Arc<ManagerState>) {
    let mut settings = ManagerSettings::new(slots(slot_count));
    if admin {
        settings.secrets = Secrets {
            cluster: None,
            admin: Some(Token::new(ADMIN).unwrap()),
        };
    }
    let state = ManagerState::new(settings, unreachable_client()).unwrap();
    (router(state.clone()), state)
}

/// `POST poolsize/manual` with this body, no token.
async fn manual(manager: &Router, body: &str) -> Answer {
    call(
        manager,
        Method::POST,
        paths::POOLSIZE_MANUAL,
        JSON,
        body.to_owned(),
    )
    .await
}

async fn listing(manager: &Router) -> PoolListing {
    let answer = call(manager, Method::GET, paths::POOL_NODE_LIST, &[], "").await;
    answer.body::<Content<PoolListing>>().content
}

#[tokio::test]
async fn a_new_manager_lists_its_first_slot_at_epoch_zero() {
    let (manager, _) = manager(3, false);
    let listing = listing(&manager).await;
    assert_eq!(listing.node_ip_list, ["10.0.0.1:5101"]);
    assert_eq!(listing.node_id_list, [1]);
    assert!(listing.ejected_ip_list.is_empty());
    assert_eq!(listing.epoch, Some(0));
    assert_eq!(listing.assignment.as_ref().map(Vec::len), Some(16));
    let stats: Content<AggregateStats> =
        call(&manager, Method::GET, paths::AGGREGATE_STATS, &[], "")
            .await
            .body();
    assert_eq!(stats.content.number_of_nodes, 1);
    assert!(stats.content.minutes.is_empty());
}

#[tokio::test]
async fn a_manual_resize_takes_the_next_slot_and_a_new_epoch_even_with_peers_down() {
    let (manager, _) = manager(3, false);
    let grown = manual(&manager, r#"{"change":"increase"}"#).await;
    assert_eq!(grown.status, StatusCode::OK);
    let grown: Content<Resized> = grown.body();
    assert_eq!(grown.content.size, 2);
    assert_eq!(grown.content.wanted, 2);
    let after_growth = listing(&manager).await;
    assert_eq!(
        after_growth.node_ip_list,
        ["10.0.0.1:5101", "10.0.0.2:5101"]
    );
    assert_eq!(after_growth.epoch, Some(1));
    let shrunk = manual(&manager, r#"{"change":"decrease"}"#).await;
    assert_eq!(shrunk.status, StatusCode::OK);
    let listing = super::tests::listing(&manager).await;
    assert_eq!(
        listing.node_ip_list,
        ["10.0.0.1:5101"],
        "the latest joiner leaves"
    );
    assert_eq!(listing.epoch, Some(2));
}

#[tokio::test]
async fn resizes_past_the_bounds_or_with_bad_words_are_refused_and_change_nothing() {
    let (manager, _) = manager(1, false);
    let shrink = manual(&manager, r#"{"change":"decrease"}"#).await;
    assert!(shrink.refusal(StatusCode::BAD_REQUEST).contains("fewest"));
    let grow = manual(&manager, r#"{"change":"increase"}"#).await;
    assert!(grow.refusal(StatusCode::BAD_REQUEST).contains("most"));
    let sideways = manual(&manager, r#"{"change":"sideways"}"#).await;
    assert!(sideways
        .refusal(StatusCode::BAD_REQUEST)
        .contains("change must be"));
    let stranger = call(
        &manager,
        Method::POST,
        paths::POOL_NODE_LIST,
        JSON,
        r#"{"node_ip_list":["10.9.9.9:5101"]}"#,
    )
    .await;
    assert!(stranger.refusal(StatusCode::BAD_REQUEST).contains("slots"));
    let empty = call(
        &manager,
        Method::POST,
        paths::POOL_NODE_LIST,
        JSON,
        r#"{"node_ip_list":[]}"#,
    )
    .await;
    empty.refusal(StatusCode::BAD_REQUEST);
    assert_eq!(listing(&manager).await.epoch, Some(0), "nothing changed");
}

#[tokio::test]
async fn automatic_mode_takes_only_valid_parameters() {
    let (manager, _) = manager(2, false);
    let bad = r#"{"max_miss_rate_threshold":0.2,"min_miss_rate_threshold":0.5,"expand_ratio":2,"shrink_ratio":0.5}"#;
    call(&manager, Method::POST, paths::POOLSIZE_AUTOMATIC, JSON, bad)
        .await
        .refusal(StatusCode::BAD_REQUEST);
    let good = r#"{"max_miss_rate_threshold":0.7,"min_miss_rate_threshold":0.3,"expand_ratio":2,"shrink_ratio":0.5}"#;
    let answer = call(
        &manager,
        Method::POST,
        paths::POOLSIZE_AUTOMATIC,
        JSON,
        good,
    )
    .await;
    let config: Content<ResizeConfig> = answer.body();
    assert!(config.content.resize_pool_parameters.auto_mode);
    assert_eq!(
        config
            .content
            .resize_pool_parameters
            .max_miss_rate_threshold,
        0.7
    );
    let shown: Content<ResizeConfig> = call(&manager, Method::GET, paths::POOLSIZE_CONFIG, &[], "")
        .await
        .body();
    assert_eq!(shown, config);
}

#[tokio::test]
async fn changes_take_the_admin_token_and_reading_stays_open() {
    let (manager, _) = manager(2, true);
    let body = r#"{"change":"increase"}"#;
    call(&manager, Method::POST, paths::POOLSIZE_MANUAL, JSON, body)
        .await
        .refusal(StatusCode::UNAUTHORIZED);
    let wrong = [
        ("content-type", "application/json"),
        ("authorization", "Bearer not-the-admin-token"),
    ];
    call(&manager, Method::POST, paths::POOLSIZE_MANUAL, &wrong, body)
        .await
        .refusal(StatusCode::UNAUTHORIZED);
    assert_eq!(listing(&manager).await.node_ip_list.len(), 1);
    let bearer = format!("Bearer {ADMIN}");
    let right = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    let grown = call(&manager, Method::POST, paths::POOLSIZE_MANUAL, &right, body).await;
    assert_eq!(grown.status, StatusCode::OK);
    assert_eq!(listing(&manager).await.node_ip_list.len(), 2);
}

#[tokio::test]
async fn a_callback_nobody_waits_for_is_answered_not_expected() {
    let (manager, state) = manager(2, false);
    let answer = call(
        &manager,
        Method::POST,
        paths::MOVE_DONE,
        JSON,
        r#"{"node":"10.0.0.2:5101"}"#,
    )
    .await;
    assert!(!answer.body::<MoveDoneAck>().expected);
    assert!(!state.move_done(&slots(2)[1]));
    call(
        &manager,
        Method::POST,
        paths::MOVE_DONE,
        JSON,
        r#"{"node":"not a node!"}"#,
    )
    .await
    .refusal(StatusCode::BAD_REQUEST);
    // Clears are forwarded to a front-end; none is configured.
    call(
        &manager,
        Method::DELETE,
        paths::MANAGER_CACHE_CLEAR,
        &[],
        "",
    )
    .await
    .refusal(StatusCode::SERVICE_UNAVAILABLE);
}
