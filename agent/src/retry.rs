//! Bounded exponential backoff with jitter, shared by every wait-and-retry loop (IMDS calls,
//! waiting for the control-plane endpoint). Each attempt is logged by the caller's closure.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max_delay: Duration,
    pub factor: f64,
    /// Up to this fraction of each delay is added at random, so nodes booted together spread out.
    pub jitter: f64,
    /// Give up after this many attempts ...
    pub max_attempts: u32,
    /// ... or once this much time has passed, whichever comes first.
    pub deadline: Duration,
}

impl Backoff {
    /// The delay before attempt `attempt + 1` (attempt counts from 1), without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let scaled = self.initial.as_secs_f64() * self.factor.powi(attempt as i32 - 1);
        Duration::from_secs_f64(scaled.min(self.max_delay.as_secs_f64()))
    }

    fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        base + base.mul_f64(rand::thread_rng().gen_range(0.0..=self.jitter))
    }

    /// Calls `op(attempt)` until it succeeds or the attempts or the deadline run out; the last
    /// error is returned with the count of attempts.
    pub fn retry<T>(&self, mut op: impl FnMut(u32) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let mut attempt = 1;
        loop {
            match op(attempt) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let delay = self.delay(attempt);
                    let out_of_time = start.elapsed() + delay > self.deadline;
                    if attempt >= self.max_attempts || out_of_time {
                        return Err(anyhow!(
                            "gave up after {attempt} attempts in {:.1?}: {e:#}",
                            start.elapsed()
                        ));
                    }
                    std::thread::sleep(delay);
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(max_attempts: u32) -> Backoff {
        Backoff {
            initial: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            factor: 2.0,
            jitter: 0.5,
            max_attempts,
            deadline: Duration::from_secs(10),
        }
    }

    #[test]
    fn grows_to_the_cap() {
        let b = quick(10);
        assert_eq!(b.base_delay(1), Duration::from_millis(1));
        assert_eq!(b.base_delay(3), Duration::from_millis(4));
        assert_eq!(b.base_delay(9), Duration::from_millis(4));
    }

    #[test]
    fn retries_until_success_or_gives_up() {
        let mut calls = 0;
        let v = quick(5)
            .retry(|n| {
                calls += 1;
                if n < 3 {
                    Err(anyhow!("not yet"))
                } else {
                    Ok(n)
                }
            })
            .unwrap();
        assert_eq!((v, calls), (3, 3));
        let err = quick(2)
            .retry(|_| -> Result<()> { Err(anyhow!("down")) })
            .unwrap_err();
        assert!(
            err.to_string().contains("gave up after 2 attempts"),
            "{err}"
        );
    }

    #[test]
    fn stops_at_the_deadline() {
        let b = Backoff {
            deadline: Duration::from_millis(0),
            ..quick(100)
        };
        let mut calls = 0;
        assert!(b
            .retry(|_| -> Result<()> {
                calls += 1;
                Err(anyhow!("down"))
            })
            .is_err());
        assert_eq!(calls, 1);
    }
}
