//! A circuit breaker for the key service: after `threshold` consecutive failures it opens and
//! fails calls at once for `cooldown`, then lets one trial call through (half-open). A down
//! Vault then costs callers microseconds instead of a timeout each.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is out. If it never reports back (its future was dropped, e.g. the client
    /// went away), the trial expires after a cooldown and another one may go.
    HalfOpen {
        since: Instant,
    },
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may be attempted now.
    pub fn allows(&self) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen {
                    since: Instant::now(),
                };
                true
            }
            State::HalfOpen { since } if since.elapsed() >= self.cooldown => {
                *state = State::HalfOpen {
                    since: Instant::now(),
                };
                true
            }
            // One trial at a time: while it runs, others fail fast.
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    pub fn success(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *state = State::Closed { failures: 0 };
        metrics::gauge!("key_service_circuit_open").set(0.0);
    }

    pub fn failure(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let failures = match *state {
            State::Closed { failures } => failures + 1,
            State::HalfOpen { .. } | State::Open { .. } => self.threshold,
        };
        *state = if failures >= self.threshold {
            metrics::gauge!("key_service_circuit_open").set(1.0);
            State::Open {
                until: Instant::now() + self.cooldown,
            }
        } else {
            State::Closed { failures }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_half_opens_after_cooldown() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            breaker.failure();
            assert!(breaker.allows(), "still closed below the threshold");
        }
        breaker.failure();
        assert!(!breaker.allows(), "open after 3 failures");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allows(), "one trial after the cooldown");
        assert!(!breaker.allows(), "only one trial at a time");
        breaker.failure();
        assert!(!breaker.allows(), "a failed trial reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allows());
        breaker.success();
        assert!(breaker.allows() && breaker.allows(), "closed again");
    }

    #[test]
    fn an_abandoned_trial_expires() {
        let breaker = Breaker::new(1, Duration::from_millis(30));
        breaker.failure();
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allows(), "trial");
        // The trial's future is dropped: neither success nor failure is ever reported.
        assert!(!breaker.allows());
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            breaker.allows(),
            "a new trial once the abandoned one expired"
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(60));
        breaker.failure();
        breaker.success();
        breaker.failure();
        assert!(breaker.allows());
    }
}
