//! The SAE call budget: at most N API calls in any 60-second window, per account.
//!
//! SAE allows 60 calls per minute per user across all of its APIs, and every submit, poll
//! and reconcile of every SAE job on the account draws from the same budget. One limiter
//! lives in each account's client and every request waits for a slot before it is sent.
//!
//! It is a sliding-window log, not a token bucket: a bucket of 60 refilled at 1/s would let
//! 120 calls through in some 60 s windows. Waiting is an async sleep inside the cloud task,
//! so the engine never blocks; waiters are served in order (tokio's mutex is fair).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub const WINDOW: Duration = Duration::from_secs(60);

pub struct RateLimiter {
    per_window: u32,
    window: Duration,
    /// When each call of the current window was let through, oldest first.
    granted: Mutex<VecDeque<Instant>>,
    total: std::sync::atomic::AtomicU64,
}

impl RateLimiter {
    /// `per_minute` calls per 60 s; 0 is taken as 1.
    pub fn per_minute(per_minute: u32) -> RateLimiter {
        RateLimiter::new(per_minute, WINDOW)
    }

    pub fn new(per_window: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            per_window: per_window.max(1),
            window,
            granted: Mutex::new(VecDeque::new()),
            total: Default::default(),
        }
    }

    pub fn limit(&self) -> u32 {
        self.per_window
    }

    /// Waits until a call fits in the window, then counts it. Returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let start = Instant::now();
        let mut granted = self.granted.lock().await;
        loop {
            let now = Instant::now();
            while granted
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
            {
                granted.pop_front();
            }
            if granted.len() < self.per_window as usize {
                granted.push_back(now);
                self.total
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return now.saturating_duration_since(start);
            }
            let Some(oldest) = granted.front().copied() else {
                continue;
            };
            let wait = (oldest + self.window).saturating_duration_since(now);
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                limit = self.per_window,
                "SAE call budget used up; waiting for a slot"
            );
            // Holding the lock while sleeping keeps later callers queued behind this one.
            tokio::time::sleep(wait).await;
        }
    }

    /// Calls let through since start (for tests and diagnostics).
    pub fn total_granted(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Calls that may go out right now without waiting.
    pub async fn available(&self) -> u32 {
        let granted = self.granted.lock().await;
        let now = Instant::now();
        let in_window = granted
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < self.window)
            .count();
        self.per_window.saturating_sub(in_window as u32)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_window_holds_at_most_the_budget() {
        let limiter = Arc::new(RateLimiter::per_minute(3));
        for _ in 0..3 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
        }
        assert_eq!(limiter.available().await, 0);
        // The fourth call waits until the first leaves the window (virtual time).
        tokio::time::advance(Duration::from_secs(10)).await;
        let waited = limiter.acquire().await;
        assert_eq!(waited, Duration::from_secs(50));
        assert_eq!(limiter.total_granted(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_from_several_tasks_share_one_budget() {
        let limiter = Arc::new(RateLimiter::per_minute(2));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let l = limiter.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap().saturating_duration_since(start));
        }
        times.sort();
        // Two at once, two a minute later, one after two minutes: never 3 in 60 s.
        assert_eq!(times, [0, 0, 60, 60, 120].map(Duration::from_secs).to_vec());
    }

    #[test]
    fn zero_is_one() {
        assert_eq!(RateLimiter::per_minute(0).limit(), 1);
    }
}
