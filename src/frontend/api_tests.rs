//! Router-level tests of the front-end: each call through `router` with a real
//! [`FrontendState`] on in-memory storage, no socket; every node is unreachable
//! and there is no manager, so the documented notify is taken as given.

use std::sync::Arc;

use axum::Router;
use http::{Method, StatusCode};

use super::{router, FrontendSettings, FrontendState};
use crate::storage::memory::{MemoryBlobStore, MemoryKeyIndex};
use crate::testing::{call, unreachable_client, JSON};
use crate::wire::frontend::{KeyContent, KeyList, Notified, PoolView, Uploaded};
use crate::wire::{form, headers, paths};

/// The PNG signature and a few bytes: a raster image to the front-end.
fn png(tag: u8) -> Vec<u8> {
    let mut image = b"\x89PNG\r\n\x1a\n".to_vec();
    image.extend_from_slice(&[tag; 32]);
    image
}

fn frontend() -> (Router, Arc<FrontendState>) {
    let state = FrontendState::new(
        FrontendSettings::default(),
        unreachable_client(),
        Arc::new(MemoryBlobStore::default()),
        Arc::new(MemoryKeyIndex::default()),
    );
    (router(state.clone()), state)
}

async fn upload(
    frontend: &Router,
    key: &str,
    image: &[u8],
    mime: Option<&str>,
) -> crate::testing::Answer {
    let (body, content_type) = form::upload_form(Some(key), Some((image, mime)));
    call(
        frontend,
        Method::POST,
        paths::UPLOAD,
        &[("content-type", content_type.as_str())],
        body,
    )
    .await
}

#[tokio::test]
async fn an_upload_reads_back_from_storage_with_its_version_as_etag() {
    let (frontend, _) = frontend();
    let first: Uploaded = upload(&frontend, "cat", &png(1), Some("image/png"))
        .await
        .body();
    let second: Uploaded = upload(&frontend, "cat", &png(2), Some("image/png"))
        .await
        .body();
    assert!(
        second.version > first.version,
        "a new upload is a newer version"
    );
    let read = call(&frontend, Method::GET, &paths::image_path("cat"), &[], "").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(&read.body[..], &png(2)[..]);
    assert_eq!(read.headers["content-type"], "image/png");
    assert_eq!(
        read.headers[headers::CACHE_STATE],
        "miss",
        "no pool: storage answers"
    );
    assert_eq!(read.headers["x-content-type-options"], "nosniff");
    let etag = read.headers["etag"].to_str().unwrap().to_owned();
    let again = call(
        &frontend,
        Method::GET,
        &paths::image_path("cat"),
        &[("if-none-match", etag.as_str())],
        "",
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let keys: KeyList = call(&frontend, Method::POST, paths::LIST_KEYS, &[], "")
        .await
        .body();
    assert_eq!(keys.keys, ["cat"]);
    let content: KeyContent = call(&frontend, Method::POST, "/api/key/cat", &[], "")
        .await
        .body();
    assert!(content.content.starts_with("data:image/png;base64,"));
    call(&frontend, Method::GET, &paths::image_path("dog"), &[], "")
        .await
        .refusal(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_uploads_are_refused_in_the_envelope_and_store_nothing() {
    let (frontend, _) = frontend();
    let text = upload(&frontend, "notes", b"just some text", Some("text/plain")).await;
    assert!(text
        .refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .contains("raster"));
    let empty = upload(&frontend, "empty", b"", Some("image/png")).await;
    empty.refusal(StatusCode::BAD_REQUEST);
    let long_key = "k".repeat(200);
    upload(&frontend, &long_key, &png(1), Some("image/png"))
        .await
        .refusal(StatusCode::BAD_REQUEST);
    let (body, content_type) = form::upload_form(None, Some((&png(1), Some("image/png"))));
    let keyless = call(
        &frontend,
        Method::POST,
        paths::UPLOAD,
        &[("content-type", content_type.as_str())],
        body,
    )
    .await;
    assert!(keyless.refusal(StatusCode::BAD_REQUEST).contains("key"));
    let keys: KeyList = call(&frontend, Method::POST, paths::LIST_KEYS, &[], "")
        .await
        .body();
    assert!(keys.keys.is_empty(), "nothing refused was stored");
}

#[tokio::test]
async fn a_notify_without_a_manager_is_taken_and_unreachable_nodes_are_quarantined() {
    let (frontend, state) = frontend();
    let health = call(&frontend, Method::GET, paths::HEALTHZ, &[], "").await;
    assert_eq!(
        health.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no pool yet"
    );
    let body = r#"{"node_ip":["10.0.0.1","10.0.0.2"],"mode":"manual","change":"increase"}"#;
    let answer = call(&frontend, Method::POST, paths::NOTIFY, JSON, body).await;
    let notified: Notified = answer.body();
    assert_eq!(notified.pool.len(), 2);
    let view: PoolView = call(&frontend, Method::GET, paths::POOL, &[], "")
        .await
        .body();
    assert_eq!(view.pool.map(|p| p.len()), Some(2));
    assert_eq!(view.epoch, Some(0));
    assert_eq!(view.mapping.map(|m| m.len()), Some(16));
    // Their first clear failed: both are bypassed until a clear confirms.
    assert_eq!(view.quarantined, ["10.0.0.1", "10.0.0.2"]);
    assert!(state.routing().is_some());
    let health = call(&frontend, Method::GET, paths::HEALTHZ, &[], "").await;
    assert_eq!(health.status, StatusCode::OK);
    // Reads go to storage while the owner is quarantined.
    upload(&frontend, "cat", &png(3), Some("image/png")).await;
    let read = call(&frontend, Method::GET, &paths::image_path("cat"), &[], "").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.headers[headers::CACHE_STATE], "miss");
}

#[tokio::test]
async fn notifies_with_bad_words_or_pools_are_refused_and_change_nothing() {
    let (frontend, state) = frontend();
    let cases = [
        (
            r#"{"node_ip":["10.0.0.1"],"mode":"sometimes","change":"increase"}"#,
            "mode must be",
        ),
        (
            r#"{"node_ip":["10.0.0.1"],"mode":"manual","change":"up"}"#,
            "change must be",
        ),
        (
            r#"{"node_ip":[],"mode":"manual","change":"increase"}"#,
            "at least one node",
        ),
        (
            r#"{"node_ip":["a","b","c","d","e","f","g","h","i"],"mode":"manual","change":"increase"}"#,
            "at most 8",
        ),
        (
            r#"{"node_ip":["10.0.0.1"],"mode":"manual","change":"increase","epoch":18446744073709551615}"#,
            "epoch must be at most",
        ),
        (r#"{"node_ip":"10.0.0.1"}"#, "bad JSON body"),
    ];
    for (body, message) in cases {
        let refused = call(&frontend, Method::POST, paths::NOTIFY, JSON, body).await;
        let text = refused.refusal(StatusCode::BAD_REQUEST);
        assert!(text.contains(message), "{body}: {text}");
    }
    assert!(state.routing().is_none(), "no refused notify set a pool");
}

#[tokio::test]
async fn clearing_the_data_deletes_every_image() {
    let (frontend, _) = frontend();
    upload(&frontend, "a", &png(1), Some("image/png")).await;
    upload(&frontend, "b", &png(2), Some("image/png")).await;
    let cleared = call(&frontend, Method::DELETE, paths::CLEAR_DATA, &[], "").await;
    assert_eq!(cleared.status, StatusCode::OK);
    let keys: KeyList = call(&frontend, Method::POST, paths::LIST_KEYS, &[], "")
        .await
        .body();
    assert!(keys.keys.is_empty());
    call(&frontend, Method::GET, &paths::image_path("a"), &[], "")
        .await
        .refusal(StatusCode::NOT_FOUND);
}
