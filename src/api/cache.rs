//! Counts that cost a pass over the fleet, read at most once per bound of staleness:
//! a request within the bound gets the last read, a request past it reads again,
//! and requests that arrive while a read is in flight wait for that read and share
//! it (single flight), so any number of concurrent refreshes costs one pass.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

/// The last read of a value and when it was taken.
pub(crate) struct Cached<T> {
    max_age: Duration,
    slot: Mutex<Option<Entry<T>>>,
}

struct Entry<T> {
    value: T,
    as_of: DateTime<Utc>,
    started: Instant,
    finished: Instant,
}

impl<T: Clone> Cached<T> {
    /// Reuses a read for `max_age` after it started (zero: every request reads, but
    /// concurrent ones still share a read).
    pub(crate) fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            slot: Mutex::new(None),
        }
    }

    pub(crate) fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The value and when its read started: the last read's if it started within the
    /// bound or finished after this request arrived, else a new one from `read`.
    pub(crate) async fn get<E, Fut>(&self, read: impl FnOnce() -> Fut) -> Result<(T, DateTime<Utc>), E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let arrived = Instant::now();
        // Held across the read: later requests queue here and find its result.
        let mut slot = self.slot.lock().await;
        if let Some(e) = &*slot {
            if e.finished >= arrived || e.started.elapsed() <= self.max_age {
                return Ok((e.value.clone(), e.as_of));
            }
        }
        let (started, as_of) = (Instant::now(), Utc::now());
        let value = read().await?;
        *slot = Some(Entry {
            value: value.clone(),
            as_of,
            started,
            finished: Instant::now(),
        });
        Ok((value, as_of))
    }
}
