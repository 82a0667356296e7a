//! Retry policy: how many attempts, which failures are worth another one,
//! and how long to wait in between (exponential backoff with full jitter).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// When and how often to try again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Total attempts, the first one included (1–10).
    pub max_attempts: u32,
    /// Base of the exponential backoff, in milliseconds.
    pub base_delay_ms: u64,
    /// Cap on any single delay, in milliseconds.
    pub max_delay_ms: u64,
    /// Failures worth another attempt. `CIRCUIT_OPEN` and `CANCELLED` are
    /// never retried, whatever this says.
    pub retryable_errors: Vec<ErrorCode>,
}

/// Default `maxAttempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default `baseDelayMs`.
pub const DEFAULT_BASE_DELAY_MS: u64 = 1_000;
/// Default `maxDelayMs`.
pub const DEFAULT_MAX_DELAY_MS: u64 = 30_000;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay_ms: DEFAULT_BASE_DELAY_MS,
            max_delay_ms: DEFAULT_MAX_DELAY_MS,
            retryable_errors: vec![ErrorCode::Retryable, ErrorCode::Timeout],
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10).contains(&self.max_attempts) {
            return Err(format!(
                "retry.maxAttempts must be between 1 and 10, got {}",
                self.max_attempts
            ));
        }
        if self.max_delay_ms > super::MAX_DURATION_MS {
            return Err(format!(
                "retry.maxDelayMs must be at most {}, got {}",
                super::MAX_DURATION_MS,
                self.max_delay_ms
            ));
        }
        if self.max_delay_ms < self.base_delay_ms {
            return Err(format!(
                "retry.maxDelayMs ({}) must not be below retry.baseDelayMs ({})",
                self.max_delay_ms, self.base_delay_ms
            ));
        }
        Ok(())
    }

    /// Whether a failure with `code` may be tried again.
    pub fn retries(&self, code: ErrorCode) -> bool {
        !matches!(code, ErrorCode::CircuitOpen | ErrorCode::Cancelled)
            && self.retryable_errors.contains(&code)
    }

    /// The largest delay after the `failures`-th failed attempt:
    /// `min(maxDelayMs, baseDelayMs × 2^(failures − 1))`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(63);
        let ms = self
            .base_delay_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_delay_ms);
        Duration::from_millis(ms)
    }

    /// The delay after the `failures`-th failed attempt, with full jitter:
    /// uniform in `[0, ceiling(failures)]`.
    pub fn delay(&self, failures: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(failures).as_millis() as u64;
        Duration::from_millis(rng.u64(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceilings_double_from_the_base_up_to_the_cap() {
        let p = RetryPolicy {
            base_delay_ms: 1000,
            max_delay_ms: 5000,
            ..RetryPolicy::default()
        };
        let ceilings: Vec<u64> = (1..=5).map(|n| p.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, vec![1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn circuit_open_and_cancelled_are_never_retried() {
        let p = RetryPolicy {
            retryable_errors: ErrorCode::ALL.to_vec(),
            ..RetryPolicy::default()
        };
        assert!(!p.retries(ErrorCode::CircuitOpen));
        assert!(!p.retries(ErrorCode::Cancelled));
        assert!(p.retries(ErrorCode::FuelExhausted));
        let default = RetryPolicy::default();
        assert!(default.retries(ErrorCode::Timeout));
        assert!(default.retries(ErrorCode::Retryable));
        assert!(!default.retries(ErrorCode::InvalidInput));
        assert!(!default.retries(ErrorCode::CapabilityDenied));
        assert!(!default.retries(ErrorCode::FuelExhausted));
        assert!(!default.retries(ErrorCode::MemoryLimit));
    }

    #[test]
    fn out_of_range_policies_are_rejected_with_the_field_name() {
        let mut p = RetryPolicy {
            max_attempts: 11,
            ..RetryPolicy::default()
        };
        assert!(p.validate().unwrap_err().contains("maxAttempts"));
        p.max_attempts = 3;
        p.max_delay_ms = 10;
        assert!(p.validate().unwrap_err().contains("maxDelayMs"));
    }

    #[test]
    fn jitter_covers_the_whole_range() {
        let p = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let delays: Vec<u64> = (0..2000)
            .map(|_| p.delay(2, &mut rng).as_millis() as u64)
            .collect();
        assert!(delays.iter().all(|d| *d <= 2000));
        assert!(delays.iter().any(|d| *d < 200), "low end reached");
        assert!(delays.iter().any(|d| *d > 1800), "high end reached");
    }

    #[test]
    fn original_error_names_are_accepted() {
        let p: RetryPolicy =
            serde_json::from_str(r#"{"retryableErrors": ["RetryableError", "TimeoutError"]}"#)
                .unwrap();
        assert_eq!(
            p.retryable_errors,
            vec![ErrorCode::Retryable, ErrorCode::Timeout]
        );
    }

    proptest! {
        #[test]
        fn delays_stay_within_zero_and_the_cap(
            base in 0u64..100_000,
            extra in 0u64..1_000_000,
            failures in 0u32..200,
            seed in any::<u64>(),
        ) {
            let p = RetryPolicy { base_delay_ms: base, max_delay_ms: base + extra, ..RetryPolicy::default() };
            let mut rng = fastrand::Rng::with_seed(seed);
            let d = p.delay(failures, &mut rng);
            prop_assert!(d <= Duration::from_millis(p.max_delay_ms));
            prop_assert!(d <= p.ceiling(failures));
        }
    }
}
