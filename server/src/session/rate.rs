//! Per-connection rate limits: two token buckets, one counting messages and one
//! counting bytes. A bucket starts full, refills continuously at its rate and
//! holds at most its burst; a message that finds too few tokens ends the
//! connection (1008).

use std::time::Instant;

/// One token bucket.
#[derive(Debug, Clone)]
struct Bucket {
    /// Tokens per second.
    rate: f64,
    /// Most tokens held.
    burst: f64,
    /// Tokens now.
    tokens: f64,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
        }
    }

    fn refill(&mut self, seconds: f64) {
        self.tokens = (self.tokens + seconds * self.rate).min(self.burst);
    }

    fn take(&mut self, n: f64) -> bool {
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// Which limit a message broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateExceeded {
    /// Too many messages per second.
    Messages,
    /// Too many bytes per second.
    Bytes,
}

impl RateExceeded {
    /// The `reason` label of the refusal metric.
    pub fn reason(self) -> &'static str {
        match self {
            RateExceeded::Messages => "message_rate",
            RateExceeded::Bytes => "byte_rate",
        }
    }
}

/// The rate limits of one connection.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    messages: Bucket,
    bytes: Bucket,
    last: Instant,
}

impl RateLimiter {
    /// `messages_per_sec` messages (bursts of twice as many) and `bytes_per_sec`
    /// bytes (bursts up to `max_frame_bytes`, so one largest frame always fits).
    pub fn new(messages_per_sec: u32, bytes_per_sec: u32, max_frame_bytes: usize) -> Self {
        let messages = f64::from(messages_per_sec.max(1));
        let bytes = f64::from(bytes_per_sec.max(1));
        Self {
            messages: Bucket::new(messages, messages * 2.0),
            bytes: Bucket::new(bytes, bytes.max(max_frame_bytes as f64)),
            last: Instant::now(),
        }
    }

    /// Accounts one message of `len` bytes arriving at `now`.
    pub fn admit(&mut self, now: Instant, len: usize) -> Result<(), RateExceeded> {
        let seconds = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.messages.refill(seconds);
        self.bytes.refill(seconds);
        if !self.messages.take(1.0) {
            return Err(RateExceeded::Messages);
        }
        if !self.bytes.take(len as f64) {
            return Err(RateExceeded::Bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_pass_floods_do_not_and_time_refills() {
        let start = Instant::now();
        let mut limits = RateLimiter::new(10, 1000, 500);
        for _ in 0..20 {
            assert_eq!(limits.admit(start, 1), Ok(()));
        }
        assert_eq!(limits.admit(start, 1), Err(RateExceeded::Messages));
        let later = start + Duration::from_millis(500);
        assert_eq!(limits.admit(later, 1), Ok(()), "half a second refills 5");
    }

    #[test]
    fn bytes_are_limited_but_one_largest_frame_fits() {
        let start = Instant::now();
        let mut limits = RateLimiter::new(1000, 100, 4096);
        assert_eq!(limits.admit(start, 4096), Ok(()));
        assert_eq!(limits.admit(start, 1), Err(RateExceeded::Bytes));
        assert_eq!(limits.admit(start + Duration::from_secs(1), 100), Ok(()));
    }
}
