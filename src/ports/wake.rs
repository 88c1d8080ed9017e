//! In-process wake-ups between the parts of one process that would otherwise only
//! meet through the table: the rollout controller tells the workers beside it that it
//! made tenants due, and the workers tell the controller that a tenant settled, so
//! each looks at once instead of at its next poll or tick. Processes that share the
//! table but not the process keep polling; a wake-up only ever shortens a wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::domain::{Region, TenantId};

/// A wake-up many listeners can wait for. A listener that was busy when it was sent
/// still sees it on its next wait, so none is lost between two waits. A wake-up may
/// name the tenants it is about ([`Wakeup::wake_for`]), so a worker can take them
/// without first looking for them in the work index.
#[derive(Debug, Clone)]
pub struct Wakeup {
    sent: watch::Sender<u64>,
    named: Arc<Mutex<VecDeque<(TenantId, Region)>>>,
}

/// Most tenants a wake-up keeps named for its listeners; older names are dropped
/// (the tenants are still found by polling).
const MAX_NAMED: usize = 4096;

impl Default for Wakeup {
    fn default() -> Self {
        Self {
            sent: watch::Sender::new(0),
            named: Arc::default(),
        }
    }
}

impl Wakeup {
    /// Wakes every listener, now or at its next wait.
    pub fn wake(&self) {
        self.sent.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Wakes every listener and names the tenants the wake-up is about (with their
    /// region), for the first listener that takes them ([`Wakeup::take_named`]). A
    /// name is a hint, not a claim: the tenant's lease still decides who works on it.
    pub fn wake_for(&self, tenants: impl IntoIterator<Item = (TenantId, Region)>) {
        {
            let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
            named.extend(tenants);
            let over = named.len().saturating_sub(MAX_NAMED);
            named.drain(..over);
        }
        self.wake();
    }

    /// The tenants named since the last take whose region `serves` accepts; the
    /// others stay named for another listener.
    pub fn take_named(&self, serves: impl Fn(&Region) -> bool) -> Vec<TenantId> {
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        let (taken, kept): (Vec<_>, Vec<_>) = named.drain(..).partition(|(_, region)| serves(region));
        named.extend(kept);
        taken.into_iter().map(|(id, _)| id).collect()
    }

    /// A listener that sees the wake-ups sent from now on.
    pub fn listen(&self) -> WakeupListener {
        let mut seen = self.sent.subscribe();
        seen.mark_unchanged();
        WakeupListener { seen }
    }
}

/// One listener of a [`Wakeup`].
#[derive(Debug)]
pub struct WakeupListener {
    seen: watch::Receiver<u64>,
}

impl WakeupListener {
    /// Returns once a wake-up has been sent since the last one this listener saw.
    pub async fn woken(&mut self) {
        if self.seen.changed().await.is_err() {
            // Every `Wakeup` was dropped: no wake-up will come.
            std::future::pending::<()>().await;
        }
    }
}

/// Waits for `listener`'s next wake-up, or forever when there is none.
pub async fn woken(listener: &mut Option<WakeupListener>) {
    match listener {
        Some(listener) => listener.woken().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_tenants_go_to_the_first_listener_serving_their_region() {
        let wakeup = Wakeup::default();
        let id = |s: &str| TenantId::parse(s).unwrap();
        let (east, west) = (
            Region::parse("us-east-1").unwrap(),
            Region::parse("eu-west-1").unwrap(),
        );
        wakeup.wake_for([(id("acme"), east.clone()), (id("bravo"), west.clone())]);
        assert_eq!(wakeup.take_named(|r| *r == west), vec![id("bravo")]);
        assert_eq!(wakeup.take_named(|_| true), vec![id("acme")]);
        assert!(wakeup.take_named(|_| true).is_empty(), "a name is taken once");
    }

    /// Whether a wake-up is waiting for `listener`, without waiting for one.
    async fn woken_now(listener: &mut WakeupListener) -> bool {
        tokio::select! {
            biased;
            _ = listener.woken() => true,
            _ = std::future::ready(()) => false,
        }
    }

    #[tokio::test]
    async fn a_wake_up_sent_while_the_listener_was_busy_is_seen_at_its_next_wait() {
        let wakeup = Wakeup::default();
        let (mut first, mut second) = (wakeup.listen(), wakeup.listen());
        wakeup.wake();
        wakeup.wake();
        first.woken().await;
        second.woken().await;
        assert!(
            !woken_now(&mut first).await,
            "two wake-ups before a wait count as one"
        );
    }

    #[tokio::test]
    async fn a_listener_does_not_see_wake_ups_sent_before_it_listened() {
        let wakeup = Wakeup::default();
        wakeup.wake();
        let mut late = wakeup.listen();
        assert!(!woken_now(&mut late).await);
        wakeup.wake();
        assert!(woken_now(&mut late).await);
    }
}
