//! THE retry engine, shared by every wait-and-retry loop (IMDS, Key Vault, the control-plane
//! endpoint, the API server probe). Capped exponential backoff with full jitter (each gap is drawn
//! from zero to the capped exponential) and a random first delay, so a thousand nodes booted
//! together neither arrive together nor come back in waves. An answer the server says when to
//! retry (`Retry-After`) is retried no earlier. A failure marked permanent (an answer that can
//! never parse, a request the server will never accept) is not retried. Without a deadline the
//! loop runs until the operation works, reporting each reason it waits for.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use rand::Rng;

/// The longest `Retry-After` honoured as given; a longer one is cut to this, so a gap stays
/// bounded whatever a server says.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first attempt waits a random time below this (zero: starts at once).
    pub first_delay: Duration,
    /// Cap of the first gap; each later cap is `factor` times the one before, up to `max_delay`.
    pub initial: Duration,
    pub max_delay: Duration,
    pub factor: f64,
    /// Give up after this many attempts (`u32::MAX`: no limit) ...
    pub max_attempts: u32,
    /// ... or once this much time has passed (None: until it works), whichever comes first.
    pub deadline: Option<Duration>,
}

/// Why one attempt failed, and whether another can help.
#[derive(Debug)]
pub enum Failure {
    /// Worth retrying; `after` is the server's `Retry-After`, if it gave one.
    Transient {
        error: anyhow::Error,
        after: Option<Duration>,
    },
    /// No retry can fix it: stop now with this error.
    Permanent(anyhow::Error),
}

impl Failure {
    pub fn transient(error: anyhow::Error) -> Self {
        Self::Transient { error, after: None }
    }

    pub fn permanent(error: anyhow::Error) -> Self {
        Self::Permanent(error)
    }

    fn error(&self) -> &anyhow::Error {
        match self {
            Self::Transient { error, .. } | Self::Permanent(error) => error,
        }
    }
}

/// A plain error is worth retrying (a refused connection, a timeout).
impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::transient(error)
    }
}

/// What the loop is waiting for, handed to the caller's reporter before each gap.
#[derive(Debug)]
pub struct Waiting<'a> {
    pub attempt: u32,
    pub reason: &'a anyhow::Error,
    pub next_in: Duration,
}

impl Backoff {
    /// The cap of the gap after attempt `attempt` (counting from 1).
    pub fn cap(&self, attempt: u32) -> Duration {
        let scaled = self.initial.as_secs_f64() * self.factor.powi(attempt as i32 - 1);
        Duration::from_secs_f64(scaled.min(self.max_delay.as_secs_f64()))
    }

    /// The gap after attempt `attempt`: full jitter below the cap, but never before the server's
    /// `Retry-After` (itself at most `MAX_RETRY_AFTER`).
    pub fn gap(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let jittered = random_below(self.cap(attempt));
        jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }

    /// `retry_reporting` without a reporter.
    pub fn retry<T, E: Into<Failure>>(&self, op: impl FnMut(u32) -> Result<T, E>) -> Result<T> {
        self.retry_reporting(op, |_| {})
    }

    /// Calls `op(attempt)` until it succeeds, fails permanently, or the attempts or the deadline
    /// run out; before each gap `report` learns why. The last error is returned with the count of
    /// attempts.
    pub fn retry_reporting<T, E: Into<Failure>>(
        &self,
        mut op: impl FnMut(u32) -> Result<T, E>,
        mut report: impl FnMut(&Waiting),
    ) -> Result<T> {
        let start = Instant::now();
        std::thread::sleep(random_below(self.first_delay));
        let mut attempt = 1;
        loop {
            let failure = match op(attempt) {
                Ok(v) => return Ok(v),
                Err(e) => e.into(),
            };
            let gap = match &failure {
                Failure::Permanent(error) => {
                    return Err(anyhow!("{error:#} (not retried: no retry can change this)"))
                }
                Failure::Transient { after, .. } => self.gap(attempt, *after),
            };
            let out_of_time = self.deadline.is_some_and(|d| start.elapsed() + gap > d);
            if attempt >= self.max_attempts || out_of_time {
                return Err(anyhow!(
                    "gave up after {attempt} attempts in {:.1?}: {:#}",
                    start.elapsed(),
                    failure.error()
                ));
            }
            report(&Waiting {
                attempt,
                reason: failure.error(),
                next_in: gap,
            });
            std::thread::sleep(gap);
            attempt = attempt.saturating_add(1);
        }
    }
}

fn random_below(limit: Duration) -> Duration {
    match limit.is_zero() {
        true => Duration::ZERO,
        false => limit.mul_f64(rand::thread_rng().gen_range(0.0..1.0)),
    }
}

/// Seconds from a `Retry-After` header (the HTTP-date form is not used by IMDS or Key Vault and
/// counts as absent: the backoff's own gap applies).
pub fn retry_after_seconds(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(max_attempts: u32) -> Backoff {
        Backoff {
            first_delay: Duration::ZERO,
            initial: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            factor: 2.0,
            max_attempts,
            deadline: Some(Duration::from_secs(10)),
        }
    }

    #[test]
    fn caps_grow_to_the_maximum_and_gaps_stay_below_them() {
        let b = quick(10);
        assert_eq!(b.cap(1), Duration::from_millis(1));
        assert_eq!(b.cap(3), Duration::from_millis(4));
        assert_eq!(b.cap(9), Duration::from_millis(4));
        let gaps: Vec<_> = (0..200).map(|_| b.gap(9, None)).collect();
        assert!(gaps.iter().all(|g| *g < Duration::from_millis(4)));
        // Full jitter: gaps spread over the whole range, not bunched at the cap.
        assert!(gaps.iter().any(|g| *g < Duration::from_millis(1)));
        assert!(gaps.iter().any(|g| *g > Duration::from_millis(3)));
    }

    #[test]
    fn retry_after_is_a_floor_within_a_bound() {
        let b = quick(10);
        assert_eq!(
            b.gap(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(b.gap(1, Some(Duration::from_secs(86400))), MAX_RETRY_AFTER);
        assert_eq!(
            retry_after_seconds(Some(" 3 ")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after_seconds(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
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
    fn a_permanent_failure_is_not_retried() {
        let mut calls = 0;
        let err = quick(50)
            .retry(|_| -> Result<(), Failure> {
                calls += 1;
                Err(Failure::permanent(anyhow!("not JSON")))
            })
            .unwrap_err();
        assert_eq!(calls, 1);
        assert!(err.to_string().contains("not JSON"), "{err}");
    }

    #[test]
    fn without_a_deadline_it_waits_as_long_as_it_takes_and_reports_why() {
        let b = Backoff {
            deadline: None,
            max_attempts: u32::MAX,
            ..quick(0)
        };
        let mut reasons = Vec::new();
        let v = b
            .retry_reporting(
                |n| {
                    if n < 40 {
                        Err(anyhow!("down {n}"))
                    } else {
                        Ok(n)
                    }
                },
                |w| reasons.push(format!("{} {}", w.attempt, w.reason)),
            )
            .unwrap();
        assert_eq!(v, 40);
        assert_eq!(reasons.len(), 39);
        assert_eq!(reasons[0], "1 down 1");
    }

    #[test]
    fn stops_at_the_deadline() {
        let b = Backoff {
            deadline: Some(Duration::ZERO),
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
