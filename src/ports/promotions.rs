//! Promotion rules and their latest promotion, one item per rule.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::PromotionName;
use crate::record::PromotionRecord;

#[async_trait]
pub trait PromotionStore: Send + Sync {
    /// Creates the record, or replaces its rule when `record.version` is the stored
    /// version (a new rule has version 0). `Conflict` when it changed meanwhile.
    async fn save_promotion(&self, record: &PromotionRecord) -> Result<PromotionRecord, StoreError>;
    /// `NotFound` (entity `Promotion`) when no such rule is stored.
    async fn load_promotion(&self, name: &PromotionName) -> Result<PromotionRecord, StoreError>;
    /// Every rule, by name.
    async fn list_promotions(&self) -> Result<Vec<PromotionRecord>, StoreError>;
    /// Deletes the rule; `NotFound` when there is none.
    async fn delete_promotion(&self, name: &PromotionName) -> Result<(), StoreError>;
}

/// Moves open promotions on (soak checks, approval requests, starts): implemented by
/// `app`, which can start rollouts, and run by the rollout controller's loop.
#[async_trait]
pub trait PromotionDriver: Send + Sync {
    /// One pass over every rule as of `now`; the error says what failed.
    async fn step_promotions(&self, now: DateTime<Utc>) -> Result<(), String>;
}
