//! THE retry engine, shared by every wait-and-retry loop (IMDS, Key Vault, the control-plane
//! endpoint, the API server probe, containerd's socket, artifact downloads): one `Backoff`, run by
//! `retry`/`retry_reporting` (blocking) or `retry_async` (tokio). Capped exponential backoff with
//! full jitter (each gap is drawn from zero to the capped exponential) and a random first delay,
//! so a thousand nodes booted together neither arrive together nor come back in waves. An answer
//! the server says when to retry (`Retry-After`) is retried no earlier. Whether a failure is worth
//! another attempt is the caller's call (`Failure`): one marked permanent (an answer that can
//! never parse, a request the server will never accept) is not retried. Without a deadline the
//! loop runs until the operation works, reporting each reason it waits for; with one, it is a
//! bounded poll.

use std::future::Future;
use std::time::{Duration, Instant};

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

/// Why a retry loop ended without a success: the last attempt's error, and how far it got.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Stopped {
    pub error: anyhow::Error,
    /// The attempt that failed last (counting from 1).
    pub attempt: u32,
    pub elapsed: Duration,
    /// The failure was permanent; otherwise the attempts or the deadline ran out.
    pub permanent: bool,
}

impl Stopped {
    fn describe(&self) -> String {
        match self.permanent {
            true => format!("{:#} (not retried: no retry can change this)", self.error),
            false => format!(
                "gave up after {} attempts in {:.1?}: {:#}",
                self.attempt, self.elapsed, self.error
            ),
        }
    }
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
    pub fn retry<T, E: Into<Failure>>(
        &self,
        op: impl FnMut(u32) -> Result<T, E>,
    ) -> Result<T, Stopped> {
        self.retry_reporting(op, |_| {})
    }

    /// Calls `op(attempt)` until it succeeds, fails permanently, or the attempts or the deadline
    /// run out; before each gap `report` learns why. Blocks the thread while it waits.
    pub fn retry_reporting<T, E: Into<Failure>>(
        &self,
        mut op: impl FnMut(u32) -> Result<T, E>,
        mut report: impl FnMut(&Waiting),
    ) -> Result<T, Stopped> {
        let mut attempts = Attempts::start(self);
        std::thread::sleep(attempts.first_delay());
        loop {
            match op(attempts.attempt) {
                Ok(v) => return Ok(v),
                Err(e) => std::thread::sleep(attempts.failed(e.into(), &mut report)?),
            }
        }
    }

    /// `retry_reporting` for async operations: waits on the tokio timer, not the thread.
    pub async fn retry_async<T, E: Into<Failure>, F: Future<Output = Result<T, E>>>(
        &self,
        mut op: impl FnMut(u32) -> F,
        mut report: impl FnMut(&Waiting),
    ) -> Result<T, Stopped> {
        let mut attempts = Attempts::start(self);
        tokio::time::sleep(attempts.first_delay()).await;
        loop {
            match op(attempts.attempt).await {
                Ok(v) => return Ok(v),
                Err(e) => tokio::time::sleep(attempts.failed(e.into(), &mut report)?).await,
            }
        }
    }
}

/// The bookkeeping of one retry loop, whichever way it sleeps.
struct Attempts<'a> {
    backoff: &'a Backoff,
    start: Instant,
    /// The attempt running now (counting from 1).
    attempt: u32,
}

impl<'a> Attempts<'a> {
    fn start(backoff: &'a Backoff) -> Self {
        Self {
            backoff,
            start: Instant::now(),
            attempt: 1,
        }
    }

    fn first_delay(&self) -> Duration {
        random_below(self.backoff.first_delay)
    }

    /// After the current attempt failed: the gap to wait before the next (reported first), or
    /// why the loop stops.
    fn failed(
        &mut self,
        failure: Failure,
        report: &mut impl FnMut(&Waiting),
    ) -> Result<Duration, Stopped> {
        let (error, after) = match failure {
            Failure::Permanent(error) => return Err(self.stop(error, true)),
            Failure::Transient { error, after } => (error, after),
        };
        let gap = self.backoff.gap(self.attempt, after);
        let out_of_time = (self.backoff.deadline).is_some_and(|d| self.start.elapsed() + gap > d);
        if self.attempt >= self.backoff.max_attempts || out_of_time {
            return Err(self.stop(error, false));
        }
        report(&Waiting {
            attempt: self.attempt,
            reason: &error,
            next_in: gap,
        });
        self.attempt = self.attempt.saturating_add(1);
        Ok(gap)
    }

    fn stop(&self, error: anyhow::Error, permanent: bool) -> Stopped {
        Stopped {
            error,
            attempt: self.attempt,
            elapsed: self.start.elapsed(),
            permanent,
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
    use anyhow::{anyhow, Result};

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

    #[tokio::test]
    async fn the_async_entry_point_retries_like_the_blocking_one() {
        let mut calls = 0;
        let v = quick(5)
            .retry_async(
                |n| {
                    calls += 1;
                    async move {
                        if n < 3 {
                            Err(anyhow!("not yet"))
                        } else {
                            Ok(n)
                        }
                    }
                },
                |_| {},
            )
            .await
            .unwrap();
        assert_eq!((v, calls), (3, 3));
        let stop = quick(5)
            .retry_async(
                |_| async { Err::<(), _>(Failure::permanent(anyhow!("not JSON"))) },
                |_| {},
            )
            .await
            .unwrap_err();
        assert_eq!((stop.attempt, stop.permanent), (1, true));
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
