//! In-process event bus with bounded queues.
//!
//! Overflow policy: each subscriber has its own bounded queue; when it is
//! full, the newest item is dropped for that subscriber alone and counted
//! ([`Subscription::dropped`]). Publishing never blocks and never fails, so
//! a slow observer can never hold up an execution. The journal does not
//! listen here: it is written before anything is published, and the bus
//! carries only entries that are already durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

/// Default queue length of a subscription.
pub const DEFAULT_CAPACITY: usize = 1024;

struct Subscriber<T> {
    tx: mpsc::Sender<T>,
    dropped: Arc<AtomicU64>,
}

/// Fans items out to subscribers.
pub struct Bus<T> {
    subscribers: Mutex<Vec<Subscriber<T>>>,
}

impl<T> Default for Bus<T> {
    fn default() -> Self {
        Bus {
            subscribers: Mutex::new(Vec::new()),
        }
    }
}

/// One subscriber's end.
pub struct Subscription<T> {
    rx: mpsc::Receiver<T>,
    dropped: Arc<AtomicU64>,
}

impl<T> Subscription<T> {
    /// The next item; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// The next item if one is waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Items dropped because this subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<T: Clone> Bus<T> {
    /// An empty bus.
    pub fn new() -> Self {
        Bus::default()
    }

    /// A new subscriber with a queue of `capacity` items.
    pub fn subscribe(&self, capacity: usize) -> Subscription<T> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        self.lock().push(Subscriber {
            tx,
            dropped: dropped.clone(),
        });
        Subscription { rx, dropped }
    }

    /// Delivers `item` to every subscriber with room; never waits.
    pub fn publish(&self, item: T) {
        self.lock().retain(|s| match s.tx.try_send(item.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber<T>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_subscriber_loses_items_and_counts_them_while_others_get_all() {
        let bus = Bus::new();
        let mut slow = bus.subscribe(2);
        let mut fast = bus.subscribe(100);
        for i in 0..10 {
            bus.publish(i);
        }
        let mut got = Vec::new();
        while let Some(i) = fast.try_recv() {
            got.push(i);
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(slow.recv().await, Some(0));
        assert_eq!(slow.recv().await, Some(1));
        assert_eq!(slow.try_recv(), None);
        assert_eq!(slow.dropped(), 8);
    }

    #[tokio::test]
    async fn closed_subscribers_are_forgotten() {
        let bus = Bus::new();
        drop(bus.subscribe(1));
        bus.publish(1);
        assert!(bus.lock().is_empty());
    }
}
