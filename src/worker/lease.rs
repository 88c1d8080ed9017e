//! Keeping a tenant's lease alive for as long as a worker holds it.
//!
//! One keeper spans the whole time a worker holds a tenant, across every step it runs
//! in a row, not one step: a chain of short steps must not outlast the lease TTL
//! between renewals. The keeper renews on a timer, every save that keeps the lease
//! refreshes it too, and [`LeaseKeeper::lost`] resolves as soon as the lease is lost
//! or is about to run out without a renewal, so the step in flight can be abandoned
//! before another worker may take the tenant over.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::domain::TenantId;
use crate::ports::{StoreError, TenantStore};
use crate::record::Lease;

/// The lease as this worker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Live(Lease),
    /// Another worker took it, or it was released: nothing may be written with it.
    Lost,
}

/// Renews a lease in the background until dropped.
pub struct LeaseKeeper {
    state: Arc<watch::Sender<Held>>,
    /// How long before the recorded expiry the lease counts as lost: a heartbeat,
    /// so a renewal that is late or hangs stops the step while the lease still holds.
    margin: Duration,
    renewer: JoinHandle<()>,
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl LeaseKeeper {
    /// Starts renewing `lease` every `heartbeat`, each renewal extending it to
    /// `ttl` from the moment it is sent.
    pub fn start(
        store: Arc<dyn TenantStore>,
        id: TenantId,
        lease: Lease,
        ttl: Duration,
        heartbeat: Duration,
    ) -> Self {
        let state = Arc::new(watch::Sender::new(Held::Live(lease)));
        let renewer = tokio::spawn(renew_until_lost(store, id, state.clone(), ttl, heartbeat));
        Self {
            state,
            margin: heartbeat,
            renewer,
        }
    }

    /// The lease as last written, or `None` once it is lost.
    pub fn current(&self) -> Option<Lease> {
        match &*self.state.borrow() {
            Held::Live(lease) => Some(lease.clone()),
            Held::Lost => None,
        }
    }

    /// A write with the lease went through carrying `lease` (a later expiry).
    pub fn extended(&self, lease: &Lease) {
        self.state.send_if_modified(|held| match held {
            Held::Live(current) if current.fence == lease.fence && lease.expires_at > current.expires_at => {
                *current = lease.clone();
                true
            }
            _ => false,
        });
    }

    /// Whether the lease is still safe to act on at `now`.
    pub fn is_safe(&self, now: DateTime<Utc>) -> bool {
        match &*self.state.borrow() {
            Held::Live(lease) => lease.is_live(after(now, self.margin)),
            Held::Lost => false,
        }
    }

    /// Resolves once the lease is lost, or is within one heartbeat of running out
    /// because renewals did not get through.
    pub async fn lost(&self) {
        let mut rx = self.state.subscribe();
        loop {
            let deadline = match &*rx.borrow_and_update() {
                Held::Lost => return,
                Held::Live(lease) => {
                    lease.expires_at - chrono::Duration::from_std(self.margin).unwrap_or_default()
                }
            };
            let Ok(wait) = (deadline - Utc::now()).to_std() else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

async fn renew_until_lost(
    store: Arc<dyn TenantStore>,
    id: TenantId,
    state: Arc<watch::Sender<Held>>,
    ttl: Duration,
    heartbeat: Duration,
) {
    let mut beat = tokio::time::interval(heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await; // the first tick is immediate; the lease was just written
    loop {
        beat.tick().await;
        let Held::Live(lease) = state.borrow().clone() else {
            return;
        };
        match store.renew_lease(&id, &lease, ttl, Utc::now()).await {
            Ok(renewed) => {
                state.send_if_modified(|held| match held {
                    Held::Live(current)
                        if current.fence == renewed.fence && renewed.expires_at > current.expires_at =>
                    {
                        *current = renewed;
                        true
                    }
                    _ => false,
                });
            }
            Err(StoreError::Conflict { .. }) => {
                state.send_replace(Held::Lost);
                return;
            }
            // The watchdog in `lost` stops the step if renewals keep failing until
            // the lease is about to run out.
            Err(e) => warn!(tenant = %id, error = %e, "lease renewal failed; will try again"),
        }
    }
}

pub fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
