//! In-process wake-ups between the parts of one process that would otherwise only
//! meet through the table: the rollout controller tells the workers beside it that it
//! made tenants due, and the workers tell the controller that a tenant settled, so
//! each looks at once instead of at its next poll or tick. Processes that share the
//! table but not the process keep polling; a wake-up only ever shortens a wait.

use tokio::sync::watch;

/// A wake-up many listeners can wait for. A listener that was busy when it was sent
/// still sees it on its next wait, so none is lost between two waits.
#[derive(Debug, Clone)]
pub struct Wakeup {
    sent: watch::Sender<u64>,
}

impl Default for Wakeup {
    fn default() -> Self {
        Self {
            sent: watch::Sender::new(0),
        }
    }
}

impl Wakeup {
    /// Wakes every listener, now or at its next wait.
    pub fn wake(&self) {
        self.sent.send_modify(|count| *count = count.wrapping_add(1));
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
