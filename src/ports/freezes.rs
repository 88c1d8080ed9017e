//! Freeze windows, kept durably.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Freeze;

#[async_trait]
pub trait FreezeStore: Send + Sync {
    /// Every stored freeze, ended ones included (until they are removed), by start.
    async fn list_freezes(&self) -> Result<Vec<Freeze>, StoreError>;
    /// Stores `freeze` under a new id, with its creator and creation time; retried on
    /// a concurrent change. Returns it as stored.
    async fn add_freeze(&self, freeze: Freeze) -> Result<Freeze, StoreError>;
    /// Removes the freeze `id`; `NotFound` when there is none.
    async fn remove_freeze(&self, id: &str) -> Result<Freeze, StoreError>;
}
