//! Rebalancing: on notify (or when the manager's pool differs from the one in
//! force) the front-end plans the move with the core, logs the documented lines,
//! switches routing to the new mapping and sends the move orders.

use std::sync::Arc;

use futures::future::join_all;

use super::{clear_node, clear_nodes, lock, FrontendState, Routing};
use crate::api::parse_members;
use crate::api::ApiError;
use crate::assign::Assignment;
use crate::balance::{plan_from, plan_to, BalancePlan, PlanSettings};
use crate::render::plan_lines;
use crate::ring::{NodeId, Pool};

/// What the manager decided with a pool: its epoch and its assignment. A direct
/// notify (the documented payload) carries neither.
#[derive(Debug, Clone, Default)]
pub struct Directive {
    pub epoch: Option<u64>,
    pub assignment: Option<Vec<String>>,
}

/// What a rebalance did.
#[derive(Debug)]
pub struct Rebalanced {
    pub plan: BalancePlan,
    /// Move orders that were not confirmed.
    pub failed_orders: usize,
}

/// Moves the pool to `members` (survivors keep their order, newcomers append).
/// Waits for a rebalance in progress first.
pub async fn rebalance_to(
    state: &Arc<FrontendState>,
    members: &[NodeId],
    directive: &Directive,
) -> Result<Rebalanced, ApiError> {
    let _guard = state.rebalance_lock.lock().await;
    if let Some(current) = state.routing() {
        if current.refuses(directive.epoch) {
            return Err(ApiError::new(
                http::StatusCode::CONFLICT,
                format!(
                    "epoch {} is older than the pool in force ({})",
                    directive.epoch.unwrap_or(0),
                    current.epoch
                ),
            ));
        }
    }
    let settings = PlanSettings {
        strategy: state.settings.strategy,
        manager_port: state.settings.manager_port,
    };
    let Some(current) = state.routing() else {
        // The first pool: nothing is cached through this front-end yet, so there is
        // nothing to move; adopt it. Its nodes may hold entries from an earlier
        // life, so they are cleared first.
        let pool = Pool::new(members.to_vec())
            .map_err(|error| ApiError::bad_request(error.to_string()))?;
        clear_nodes(state, pool.nodes()).await;
        let mapping = match &directive.assignment {
            Some(ids) => Assignment::from_ids(ids, &pool)
                .map_err(|error| ApiError::bad_request(error.to_string()))?,
            None => settings.strategy.assign(&pool, None),
        };
        let plan = plan_from(&pool, &mapping, &pool, &state.cached_keys(), settings);
        state.set_routing(Routing {
            pool,
            mapping,
            epoch: directive.epoch.unwrap_or(0),
        });
        tracing::info!(nodes = ?members, "pool adopted");
        return Ok(Rebalanced {
            plan,
            failed_orders: 0,
        });
    };
    let (old_pool, old_mapping) = (current.pool.clone(), current.mapping.clone());
    if current.is(directive.epoch, members) {
        // The pool in force, told again (a re-notify, or the manager's answer
        // after the front-end took the pool from it): nothing to do.
        let plan = plan_to(
            &old_pool,
            &old_mapping,
            &old_pool,
            old_mapping.clone(),
            &state.cached_keys(),
            settings.manager_port,
        );
        return Ok(Rebalanced {
            plan,
            failed_orders: 0,
        });
    }
    let new_pool = old_pool
        .transition_to(members)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let cached = state.cached_keys();
    let new_mapping = match &directive.assignment {
        Some(ids) => Assignment::from_ids(ids, &new_pool)
            .map_err(|error| ApiError::bad_request(error.to_string()))?,
        None => settings.strategy.assign(&new_pool, Some(&old_mapping)),
    };
    let plan = plan_to(
        &old_pool,
        &old_mapping,
        &new_pool,
        new_mapping,
        &cached,
        settings.manager_port,
    );
    let epoch = directive.epoch.unwrap_or(current.epoch);
    for line in plan_lines(&plan, state.settings.node_port) {
        tracing::info!(target: "memring::rebalance", "{line}");
    }

    // Newcomers start empty: whatever a returning node still holds may be old.
    let newcomers: Vec<NodeId> = new_pool
        .nodes()
        .iter()
        .filter(|node| !old_pool.contains(node))
        .cloned()
        .collect();
    clear_nodes(state, &newcomers).await;

    // Leaving nodes hold what they will hand over: until their orders are done,
    // uploads invalidate them too (see `invalidate_everywhere`).
    let leaving: Vec<NodeId> = old_pool
        .nodes()
        .iter()
        .filter(|node| !new_pool.contains(node))
        .cloned()
        .collect();
    lock(&state.trust).hand_over_begins(&leaving);
    let _handed_over = HandedOver {
        state,
        nodes: leaving,
    };
    if crate::planted!(StaleRoute) {
        // Planted bug: the new pool is taken but routing keeps the old mapping.
        state.set_routing(Routing {
            pool: new_pool.clone(),
            mapping: old_mapping.clone(),
            epoch,
        });
    } else {
        state.set_routing(Routing {
            pool: new_pool.clone(),
            mapping: plan.new_mapping.clone(),
            epoch,
        });
    }

    crate::buggify!("rebalance.after_switch");
    let orders = plan.balance_result.iter().map(|entry| async move {
        // A quarantined node may hold images it missed the invalidation of: it
        // hands nothing over (its keys are re-read from storage), but a leaving one
        // still gets the order, so that it calls the manager back.
        let mut payload = entry.payload.clone();
        if state.is_quarantined(&entry.send_to) {
            payload.dest = crate::balance::Dest::default();
        }
        let fences = crate::wire::fence::encode_fences(
            payload
                .dest
                .0
                .iter()
                .filter_map(|(node, _)| state.fence(node).map(|token| (node, token))),
        );
        let outcome = state
            .node_client(&entry.send_to)
            .with_timeout_ms(state.settings.move_timeout_ms)
            .move_keys(&payload, &fences)
            .await;
        let confirmed = payload.dest == entry.payload.dest && outcome.is_ok();
        (entry, confirmed)
    });
    let mut failed_orders = 0;
    for (entry, confirmed) in join_all(orders).await {
        if confirmed {
            continue;
        }
        failed_orders += 1;
        tracing::warn!(node = %entry.send_to, "move order not confirmed; its keys will be re-read from storage");
        // The keys did not reach their new owner: forget them, reads refill.
        let mut cached = lock(&state.cached);
        for (_, key) in entry.payload.dest.iter_keys() {
            cached.remove(key);
        }
    }
    Ok(Rebalanced {
        plan,
        failed_orders,
    })
}

/// Takes leaving nodes off the hand-over list when a rebalance ends, however it
/// ends.
struct HandedOver<'a> {
    state: &'a FrontendState,
    nodes: Vec<NodeId>,
}

impl Drop for HandedOver<'_> {
    fn drop(&mut self) {
        lock(&self.state.trust).hand_over_ends(&self.nodes);
    }
}

/// The pool the manager holds: its members and its directive.
#[derive(Debug, Clone)]
pub struct ManagerPool {
    pub members: Vec<NodeId>,
    pub directive: Directive,
}

impl ManagerPool {
    pub fn epoch(&self) -> u64 {
        self.directive.epoch.unwrap_or(0)
    }
}

/// Asks the manager for its pool (`None`: no manager is configured).
pub async fn manager_pool(state: &Arc<FrontendState>) -> Option<Result<ManagerPool, String>> {
    let manager = state
        .manager_client()?
        .with_timeout_ms(crate::limits::MANAGER_LISTING_TIMEOUT_MS);
    let fetched = async {
        let listing = manager
            .pool_listing()
            .await
            .map_err(|error| error.to_string())?;
        let members = parse_members(&listing.node_ip_list).map_err(|e| e.message)?;
        Ok(ManagerPool {
            members,
            directive: Directive {
                epoch: listing.epoch,
                assignment: listing.assignment,
            },
        })
    };
    Some(fetched.await)
}

/// Asks the manager for its pool and moves to it if it is not the one in force.
/// The manager is the source of truth: whatever the front-end was told, it ends
/// up on the manager's pool and epoch within one sync interval.
pub async fn sync_with_manager(state: &Arc<FrontendState>) -> Result<(), String> {
    let Some(fetched) = manager_pool(state).await else {
        return Ok(());
    };
    let managers = fetched?;
    if state
        .routing()
        .is_some_and(|routing| routing.holds(managers.epoch(), &managers.members))
    {
        return Ok(());
    }
    tracing::info!(nodes = ?managers.members, "pool differs from the manager's; rebalancing");
    rebalance_to(state, &managers.members, &managers.directive)
        .await
        .map(|_| ())
        .map_err(|error| error.message)
}

/// Clears each quarantined node; those that confirm are routed to again.
pub async fn heal_quarantined(state: &Arc<FrontendState>) {
    let nodes = lock(&state.trust).quarantined();
    for node in nodes {
        // A quarantine taken while this clear is out (an invalidation the node
        // missed meanwhile) is not lifted by it.
        let ticket = lock(&state.trust).heal_ticket(&node);
        if clear_node(state, &node, ticket).await == Some(true) {
            tracing::info!(%node, "node cleared; quarantine lifted");
        }
    }
}

/// Clears the cache: every node of the pool and the cached-key index. Waits for a
/// rebalance in progress: its move orders carry images read before the clear, and
/// would put them back into nodes this clear has just emptied.
pub async fn clear_cache(state: &Arc<FrontendState>) {
    let _guard = state.rebalance_lock.lock().await;
    // Keys left unsettled from here on may have rows newer than the clear.
    let mark = lock(&state.flux).mark();
    let nodes: Vec<NodeId> = state
        .routing()
        .map(|routing| routing.pool.nodes().to_vec())
        .unwrap_or_default();
    clear_nodes(state, &nodes).await;
    lock(&state.cached).clear();
    // Every node is empty or quarantined until cleared: no key left unsettled
    // before the clear began is unsettled now.
    lock(&state.flux).settle_all_before(mark);
}
