//! Restoring and saving the manager's state through its [`state::StateStore`].

use super::{state, ManagerState, Mode};

impl ManagerState {
    /// Takes up the saved state, if there is a valid one.
    pub async fn restore(&self) {
        let Some(store) = &self.settings.state else {
            return;
        };
        let Some(bytes) = store.load().await else {
            return;
        };
        let saved: state::SavedState = match serde_json::from_slice(&bytes) {
            Ok(saved) => saved,
            Err(error) => {
                tracing::warn!(%error, "saved manager state unreadable; starting afresh");
                return;
            }
        };
        let valid = crate::ring::Pool::new(saved.pool.clone()).is_ok()
            && saved
                .pool
                .iter()
                .all(|node| self.settings.slots.contains(node))
            && saved.params.validate().is_ok()
            && saved.cache.validate().is_ok();
        if !valid {
            tracing::warn!("saved manager state does not fit the slots; starting afresh");
            return;
        }
        let mut inner = self.inner();
        tracing::info!(pool = ?saved.pool, "manager state restored");
        let pool = crate::ring::Pool::new(saved.pool.clone()).expect("validated above");
        inner.mapping = saved
            .assignment
            .as_deref()
            .and_then(|ids| crate::assign::Assignment::from_ids(ids, &pool).ok())
            .unwrap_or_else(|| self.settings.strategy.assign(&pool, None));
        inner.epoch = saved.epoch;
        inner.pool = saved.pool;
        inner.ejected = saved
            .ejected
            .into_iter()
            .filter(|node| self.settings.slots.contains(node))
            .collect();
        inner.mode = if saved.automatic {
            Mode::Automatic
        } else {
            Mode::Manual
        };
        inner.params = saved.params;
        inner.cache = saved.cache;
    }

    /// Saves the state (pool, mode, parameters, cache configuration).
    pub async fn persist(&self) {
        let Some(store) = &self.settings.state else {
            return;
        };
        let saved = {
            let inner = self.inner();
            state::SavedState {
                epoch: inner.epoch,
                assignment: Some(
                    inner
                        .mapping
                        .owners()
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                ),
                pool: inner.pool.clone(),
                ejected: inner.ejected.clone(),
                automatic: inner.mode == Mode::Automatic,
                params: inner.params,
                cache: inner.cache,
            }
        };
        let bytes = serde_json::to_vec(&saved).expect("the state serializes");
        if let Err(error) = store.save(bytes).await {
            tracing::error!(%error, "could not save the manager state");
        }
    }
}
