//! The client side of a move order: each listed key goes to its new owner with
//! that node's fence, and a leaving node then calls its manager back.

use super::NodeState;
use crate::wire::{headers, paths};
use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::json;

use crate::balance::MoveKeysPayload;

/// Keys sent at once while moving.
const MOVES_IN_FLIGHT_MAX: usize = 8;

/// What became of the keys of one move order.
#[derive(Debug, Default, Serialize)]
pub(super) struct MoveReport {
    pub(super) moved: usize,
    pub(super) missing: usize,
    pub(super) failed: usize,
}

/// Sends every listed key this node holds to its destination, dropping it locally
/// once the destination has it (or has something newer).
pub(super) async fn hand_over(
    state: &Arc<NodeState>,
    payload: &MoveKeysPayload,
    fences: &[(String, String)],
) -> MoveReport {
    let work: Vec<(String, String, Option<String>)> = payload
        .dest
        .iter_keys()
        .map(|(dest, key)| {
            let fence = fences
                .iter()
                .find(|(node, _)| node == dest.as_str())
                .map(|(_, token)| token.clone());
            (
                dest.address(state.settings.node_port),
                key.to_owned(),
                fence,
            )
        })
        .collect();
    let outcomes: Vec<Option<bool>> = stream::iter(work)
        .map(|(addr, key, fence)| {
            let state = state.clone();
            async move {
                let entry = state.store().peek(&key).cloned()?;
                crate::buggify!("node.move.after_read");
                let headers = [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_str(&entry.mime)
                            .unwrap_or(HeaderValue::from_static(crate::mime::OCTET_STREAM)),
                    ),
                    (
                        header::HeaderName::from_static(headers::VERSION),
                        HeaderValue::from(entry.version),
                    ),
                    (
                        header::HeaderName::from_static(headers::MOVED),
                        HeaderValue::from_static("1"),
                    ),
                ];
                let fence_header = fence.and_then(|token| HeaderValue::from_str(&token).ok()).map(|token| {
                    (header::HeaderName::from_static(headers::FENCE), token)
                });
                let headers: Vec<(header::HeaderName, HeaderValue)> =
                    headers.into_iter().chain(fence_header).collect();
                let sent = state
                    .client
                    .send(Method::PUT, &addr, &paths::item_path(&key), &headers, entry.bytes.clone())
                    .await;
                let delivered = matches!(&sent, Ok(reply) if reply.status.is_success() || reply.status == StatusCode::CONFLICT);
                if delivered {
                    // Drop the local copy unless it changed meanwhile.
                    let mut store = state.store();
                    if store.peek(&key).map(|e| e.version) == Some(entry.version) {
                        store.remove(&key);
                    }
                } else {
                    tracing::warn!(%key, %addr, outcome = ?sent.map(|r| r.status), "move of key failed");
                }
                Some(delivered)
            }
        })
        .buffered(MOVES_IN_FLIGHT_MAX)
        .collect()
        .await;
    let mut report = MoveReport::default();
    for outcome in outcomes {
        match outcome {
            None => report.missing += 1,
            Some(true) => report.moved += 1,
            Some(false) => report.failed += 1,
        }
    }
    report
}

/// The destinations' fence tokens sent with a move order.
pub(super) fn parse_fences(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get(headers::FENCES)
        .and_then(|v| v.to_str().ok())
        .map(crate::wire::fence::decode_fences)
        .unwrap_or_default()
}

pub(super) async fn callback_manager(state: &Arc<NodeState>, ordered_port: u16) {
    let Some(host) = &state.settings.manager_host else {
        tracing::warn!("move order asks for a manager callback but no manager is configured");
        return;
    };
    let port = match state.settings.manager_port {
        Some(port) if port != ordered_port => {
            tracing::warn!(
                ordered_port,
                port,
                "the move order names another manager port; calling back the configured one"
            );
            port
        }
        Some(port) => port,
        None => ordered_port,
    };
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let body = json!({ "node": state.settings.node_id });
    if let Err(error) = state
        .client
        .send_json(Method::POST, &addr, paths::MOVE_DONE, &body)
        .await
    {
        tracing::warn!(%error, "manager callback failed");
    }
}
