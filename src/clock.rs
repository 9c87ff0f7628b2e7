//! The server's notion of "now": the system clock, or a clock a test sets.
//!
//! Renders that depend on the moment of the open (countdowns, `now` in templates) read it
//! from here, so integration tests can pin the instant through the library API
//! ([`crate::start_with_clock`]) instead of racing the wall clock.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of the current instant; cheap to clone (clones share a manual clock's time).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: milliseconds since the Unix epoch, set by hand.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that shows `at` until it is [`set`](Clock::set) again.
    pub fn manual(at: DateTime<Utc>) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(at.timestamp_millis()))),
        }
    }

    /// Moves a manual clock to `at` (a system clock ignores this).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(millis) = &self.manual {
            millis.store(at.timestamp_millis(), Ordering::SeqCst);
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            Some(millis) => DateTime::from_timestamp_millis(millis.load(Ordering::SeqCst))
                .unwrap_or_else(Utc::now),
            None => Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_set() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
        let clock = Clock::manual(at);
        let shared = clock.clone();
        assert_eq!(clock.now(), at);
        shared.set(at + chrono::Duration::seconds(5));
        assert_eq!(clock.now().timestamp(), 1_800_000_005);
        let system = Clock::system();
        system.set(at);
        assert!(system.now() > at - chrono::Duration::days(36_500));
    }
}
