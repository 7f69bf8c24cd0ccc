//! The one backoff every retry loop uses (syncs, key refreshes, event streams, throttled
//! requests, process restarts): exponential from `first`, capped at `max`, jittered so that
//! many sidecars (or many targets) started together do not retry in lockstep.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub enum Jitter {
    /// ±10 % around the delay (schedules: syncs, refreshes, reconnects).
    Spread,
    /// Uniform between half the delay and the delay ("equal jitter": retries of one request,
    /// where waiting less than the server needs is wasted).
    Equal,
}

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    jitter: Jitter,
    attempt: u32,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration, jitter: Jitter) -> Self {
        Self {
            first,
            max,
            jitter,
            attempt: 0,
        }
    }

    /// The delay for the next retry; each call doubles the one after it, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// The delay before retry `attempt` (0-based), without changing state.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .first
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        jitter(base, self.jitter)
    }

    /// After a success: the next failure starts from `first` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Caps further delays at `max` (e.g. never wait longer than the sync interval).
    pub fn with_max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }
}

pub fn jitter(d: Duration, kind: Jitter) -> Duration {
    let mut rng = rand::rng();
    match kind {
        Jitter::Spread => d.mul_f64(rng.random_range(0.9..1.1)),
        Jitter::Equal => d.mul_f64(0.5 + 0.5 * rng.random::<f64>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000), Jitter::Spread);
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (d, want) in delays.iter().zip([100, 200, 400, 800, 1000, 1000]) {
            assert!(
                *d >= ms(want * 9 / 10) && *d <= ms(want * 11 / 10),
                "{d:?} vs {want}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= ms(110));
        let e = Backoff::new(ms(100), ms(1000), Jitter::Equal);
        assert!((0..50).all(|_| (ms(400)..=ms(800)).contains(&e.delay(3))));
    }
}
