//! The outbox's use cases for operators: which events are pending, delivered or dead,
//! and delivering a dead (or any) event again.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::{OutboxStore, StoreError};
use crate::record::{DeliveryState, OutboxEvent};

/// Most events one listing returns.
pub const MAX_EVENTS_LISTED: usize = 500;

#[derive(Clone)]
pub struct EventCommands {
    store: Arc<dyn OutboxStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("nothing to redeliver for event {id}: {detail}")]
    NothingToRedeliver { id: String, detail: String },
    #[error("the limit (--limit, `limit` in the API) must be between 1 and {MAX_EVENTS_LISTED}, not {0}")]
    BadLimit(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EventCommands {
    pub fn new(store: Arc<dyn OutboxStore>) -> Self {
        Self { store }
    }

    /// The newest events, in `state` if given.
    pub async fn list(
        &self,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, EventError> {
        if limit == 0 || limit > MAX_EVENTS_LISTED {
            return Err(EventError::BadLimit(limit));
        }
        Ok(self.store.list_events(state, limit).await?)
    }

    /// Gives event `id`'s delivery to `sink` (or, without one, every delivery that was
    /// given up) a fresh set of attempts; the dispatchers deliver it on their next pass.
    pub async fn redeliver(&self, id: &str, sink: Option<&str>) -> Result<OutboxEvent, EventError> {
        let mut event = self.store.event(id).await?;
        let reset = event.redeliver(sink);
        if reset.is_empty() {
            return Err(EventError::NothingToRedeliver {
                id: id.to_owned(),
                detail: match sink {
                    Some(s) => {
                        format!("it has no delivery to sink {s:?}; `tenantctl events list` shows its sinks")
                    }
                    None => {
                        "no sink gave it up; name one (--sink, `sink` in the API) to deliver it there again"
                            .to_owned()
                    }
                },
            });
        }
        // A pending event carries no expiry; the retention is not used.
        self.store.record_deliveries(&event, Duration::ZERO).await?;
        event.version += 1;
        Ok(event)
    }
}
