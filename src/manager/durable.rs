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
        if saved.params.validate().is_err() || saved.cache.validate().is_err() {
            tracing::warn!("saved manager parameters are not valid; starting afresh");
            return;
        }
        let mut inner = self.inner();
        // Restored into a copy: a saved pool that does not fit leaves the
        // membership as it was.
        let mut membership = inner.membership.clone();
        let pool = saved.pool.clone();
        if let Err(error) = membership.restore(
            saved.pool,
            saved.ejected,
            saved.epoch,
            saved.assignment.as_deref(),
        ) {
            tracing::warn!(%error, "saved manager state does not fit the slots; starting afresh");
            return;
        }
        tracing::info!(?pool, "manager state restored");
        inner.membership = membership;
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
            let membership = &inner.membership;
            state::SavedState {
                epoch: membership.epoch(),
                assignment: Some(
                    membership
                        .mapping()
                        .owners()
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                ),
                pool: membership.pool().to_vec(),
                ejected: membership.ejected().to_vec(),
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
