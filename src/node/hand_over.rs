//! The client side of a move order: each listed key goes to its new owner with
//! that node's fence, and a leaving node then calls its manager back.

use super::NodeState;
use crate::wire::client::{ManagerClient, NodeClient, PutAnswer};
use crate::wire::headers;
use crate::wire::item::{ItemMeta, PutMarks};
use crate::wire::node::MoveReport;
use std::sync::Arc;

use axum::http::HeaderMap;
use futures::stream::{self, StreamExt};

use crate::balance::MoveKeysPayload;

/// Keys sent at once while moving.
const MOVES_IN_FLIGHT_MAX: usize = 8;

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
                let meta = ItemMeta {
                    mime: entry.mime.clone(),
                    version: entry.version,
                };
                let marks = PutMarks {
                    fence: fence.as_deref(),
                    moved: true,
                };
                let sent = NodeClient::new(state.client.clone(), addr.clone())
                    .put_item(&key, &meta, marks, entry.bytes.clone())
                    .await;
                // Any 409 ends the move of the key: the destination holds a newer
                // version, or was cleared since the front-end learned its token
                // (it then reads the key from storage).
                let delivered = matches!(
                    &sent,
                    Ok(PutAnswer::Stored | PutAnswer::Stale | PutAnswer::Fenced(_))
                );
                if delivered {
                    // Drop the local copy unless it changed meanwhile.
                    let mut store = state.store();
                    if store.peek(&key).map(|e| e.version) == Some(entry.version) {
                        store.remove(&key);
                    }
                } else {
                    tracing::warn!(%key, %addr, outcome = ?sent, "move of key failed");
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
    let manager = ManagerClient::new(state.client.clone(), addr);
    if let Err(error) = manager.move_done(&state.settings.node_id).await {
        tracing::warn!(%error, "manager callback failed");
    }
}
