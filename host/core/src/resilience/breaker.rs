//! Circuit breakers, keyed by agent (and optionally target), shared by every
//! execution in the process.
//!
//! closed ──(failureThreshold consecutive counted failures)──► open
//! open ──(resetTimeoutMs elapsed, on the next call)──► half-open
//! half-open: exactly one probe at a time; success ► closed, counted
//! failure ► open again with a fresh timer.
//!
//! The state machine ([`Circuit`]) is pure: it takes the current instant as
//! an argument, so it is tested with arbitrary clocks. The registry reads
//! tokio's clock, which tests pause and advance.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::ErrorCode;

/// Default number of consecutive counted failures that opens a circuit.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Default time an open circuit rejects calls before letting a probe through.
pub const DEFAULT_RESET_TIMEOUT_MS: u64 = 60_000;
/// The registry keeps at most this many circuits; past it, idle closed
/// circuits without failures are forgotten (open ones never are).
pub const MAX_CIRCUITS: usize = 1_000;

/// When a circuit opens and closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CircuitBreakerPolicy {
    /// Consecutive counted failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit rejects calls, in milliseconds.
    pub reset_timeout_ms: u64,
    /// Failures that count towards opening. Others (invalid input, denied
    /// capabilities, cancellations) leave the count as it is.
    pub counted_errors: Vec<ErrorCode>,
    /// Key circuits by agent and outbound target (the hosts it may reach)
    /// rather than by agent alone, so one failing upstream does not open the
    /// circuit of an agent configured for another.
    pub include_target: bool,
}

impl Default for CircuitBreakerPolicy {
    fn default() -> Self {
        CircuitBreakerPolicy {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            reset_timeout_ms: DEFAULT_RESET_TIMEOUT_MS,
            counted_errors: vec![ErrorCode::Timeout, ErrorCode::Retryable],
            include_target: false,
        }
    }
}

impl CircuitBreakerPolicy {
    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.failure_threshold == 0 {
            return Err("circuitBreaker.failureThreshold must be at least 1".into());
        }
        Ok(())
    }

    /// How long an opened circuit stays open.
    pub fn reset_timeout(&self) -> Duration {
        Duration::from_millis(self.reset_timeout_ms)
    }

    /// The circuit key: `cb:<agent>`, or `cb:<agent>:<target>` when the
    /// policy includes the target and there is one.
    pub fn key(&self, agent_id: &str, target: Option<&str>) -> String {
        match target {
            Some(t) if self.include_target && !t.is_empty() => format!("cb:{agent_id}:{t}"),
            _ => format!("cb:{agent_id}"),
        }
    }
}

/// The externally visible state of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are rejected until the reset timeout passes.
    Open,
    /// One probe call is let through to test recovery.
    HalfOpen,
}

impl BreakerState {
    /// The state as serialized and shown: `closed`, `open`, `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// A change of state, to be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
}

/// How a call that was let through ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It worked.
    Success,
    /// It failed in a way that counts.
    Failure,
    /// It ended without telling anything about the agent's health (a failure
    /// that does not count, or a call abandoned by cancellation).
    Neutral,
}

/// A call refused by an open (or probing) circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// When a probe will be let through, if known.
    pub retry_in: Option<Duration>,
}

/// A call that was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether this call is the half-open probe.
    pub probe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// One circuit's state machine.
#[derive(Debug, Clone)]
pub struct Circuit {
    phase: Phase,
    last_used: Instant,
}

impl Circuit {
    /// A closed circuit with no failures.
    pub fn new(now: Instant) -> Self {
        Circuit {
            phase: Phase::Closed { failures: 0 },
            last_used: now,
        }
    }

    /// The current state (an open circuit whose timer ran out still reads
    /// open until the next call turns it half-open).
    pub fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn idle_and_healthy(&self) -> bool {
        matches!(self.phase, Phase::Closed { failures: 0 })
    }

    /// Asks to make a call at `now`.
    pub fn try_acquire(
        &mut self,
        now: Instant,
    ) -> (Result<Admission, Rejection>, Option<Transition>) {
        self.last_used = now;
        match self.phase {
            Phase::Closed { .. } => (Ok(Admission { probe: false }), None),
            Phase::Open { until } if now < until => (
                Err(Rejection {
                    retry_in: Some(until - now),
                }),
                None,
            ),
            Phase::Open { .. } => {
                self.phase = Phase::HalfOpen { probing: true };
                (
                    Ok(Admission { probe: true }),
                    Some(Transition {
                        from: BreakerState::Open,
                        to: BreakerState::HalfOpen,
                    }),
                )
            }
            Phase::HalfOpen { probing: true } => (Err(Rejection { retry_in: None }), None),
            Phase::HalfOpen { probing: false } => {
                self.phase = Phase::HalfOpen { probing: true };
                (Ok(Admission { probe: true }), None)
            }
        }
    }

    /// Records how an admitted call ended.
    pub fn record(
        &mut self,
        now: Instant,
        policy: &CircuitBreakerPolicy,
        admission: Admission,
        outcome: Outcome,
    ) -> Option<Transition> {
        self.last_used = now;
        let from = self.state();
        let open = |now: Instant| Phase::Open {
            until: now + policy.reset_timeout(),
        };
        self.phase = match (self.phase, outcome) {
            (Phase::HalfOpen { .. }, _) if !admission.probe => self.phase,
            (Phase::HalfOpen { .. }, Outcome::Success) => Phase::Closed { failures: 0 },
            (Phase::HalfOpen { .. }, Outcome::Failure) => open(now),
            (Phase::HalfOpen { .. }, Outcome::Neutral) => Phase::HalfOpen { probing: false },
            (Phase::Closed { .. }, Outcome::Success) => Phase::Closed { failures: 0 },
            (Phase::Closed { failures }, Outcome::Failure) => {
                let failures = failures.saturating_add(1);
                if failures >= policy.failure_threshold {
                    open(now)
                } else {
                    Phase::Closed { failures }
                }
            }
            (phase, _) => phase,
        };
        let to = self.state();
        (from != to).then_some(Transition { from, to })
    }
}

/// Every circuit of the process.
#[derive(Debug, Default)]
pub struct BreakerRegistry {
    circuits: Mutex<HashMap<String, Circuit>>,
}

impl BreakerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        BreakerRegistry::default()
    }

    /// The state of a circuit (closed when it was never used).
    pub fn state(&self, key: &str) -> BreakerState {
        self.lock()
            .get(key)
            .map_or(BreakerState::Closed, Circuit::state)
    }

    /// The state of every known circuit.
    pub fn states(&self) -> Vec<(String, BreakerState)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, c)| (k.clone(), c.state()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Circuit>> {
        self.circuits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn acquire(&self, key: &str) -> (Result<Admission, Rejection>, Option<Transition>) {
        let now = Instant::now();
        let mut circuits = self.lock();
        if !circuits.contains_key(key) {
            if circuits.len() >= MAX_CIRCUITS {
                evict_one(&mut circuits);
            }
            circuits.insert(key.to_string(), Circuit::new(now));
        }
        match circuits.get_mut(key) {
            Some(circuit) => circuit.try_acquire(now),
            None => (Ok(Admission { probe: false }), None),
        }
    }

    /// Opens circuit `key` for `remaining` (what an open circuit recorded by
    /// a process that died still had to run), unless this process already
    /// knows the circuit: its own view is newer.
    pub fn carry_open(&self, key: &str, remaining: Duration) {
        let now = Instant::now();
        let mut circuits = self.lock();
        if circuits.contains_key(key) || remaining.is_zero() {
            return;
        }
        if circuits.len() >= MAX_CIRCUITS {
            evict_one(&mut circuits);
        }
        circuits.insert(
            key.to_string(),
            Circuit {
                phase: Phase::Open {
                    until: now + remaining,
                },
                last_used: now,
            },
        );
    }

    pub(crate) fn record(
        &self,
        key: &str,
        policy: &CircuitBreakerPolicy,
        admission: Admission,
        outcome: Outcome,
    ) -> Option<Transition> {
        let now = Instant::now();
        self.lock()
            .get_mut(key)
            .and_then(|c| c.record(now, policy, admission, outcome))
    }
}

/// Forgets the least recently used closed circuit without failures, if any.
fn evict_one(circuits: &mut HashMap<String, Circuit>) {
    let victim = circuits
        .iter()
        .filter(|(_, c)| c.idle_and_healthy())
        .min_by_key(|(_, c)| c.last_used)
        .map(|(k, _)| k.clone());
    if let Some(key) = victim {
        circuits.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_circuit_carried_open_refuses_until_its_time_is_up_but_a_known_one_keeps_its_state() {
        let registry = BreakerRegistry::new();
        registry.carry_open("cb:carried", Duration::from_secs(30));
        let (admission, _) = registry.acquire("cb:carried");
        let rejection = admission.unwrap_err();
        assert!(rejection.retry_in.unwrap() <= Duration::from_secs(30));
        assert_eq!(registry.state("cb:carried"), BreakerState::Open);

        let (admission, _) = registry.acquire("cb:known");
        assert!(admission.is_ok());
        registry.carry_open("cb:known", Duration::from_secs(30));
        assert_eq!(registry.state("cb:known"), BreakerState::Closed);
        registry.carry_open("cb:done", Duration::ZERO);
        assert_eq!(registry.state("cb:done"), BreakerState::Closed);
    }

    fn policy(threshold: u32, reset_ms: u64) -> CircuitBreakerPolicy {
        CircuitBreakerPolicy {
            failure_threshold: threshold,
            reset_timeout_ms: reset_ms,
            ..CircuitBreakerPolicy::default()
        }
    }

    fn admitted(c: &mut Circuit, now: Instant, p: &CircuitBreakerPolicy) -> Admission {
        let _ = p;
        c.try_acquire(now).0.expect("admitted")
    }

    #[test]
    fn consecutive_failures_open_the_circuit_and_a_success_resets_the_count() {
        let p = policy(3, 1000);
        let t0 = Instant::now();
        let mut c = Circuit::new(t0);
        for _ in 0..2 {
            let a = admitted(&mut c, t0, &p);
            assert_eq!(c.record(t0, &p, a, Outcome::Failure), None);
        }
        let a = admitted(&mut c, t0, &p);
        assert_eq!(c.record(t0, &p, a, Outcome::Success), None);
        for _ in 0..2 {
            let a = admitted(&mut c, t0, &p);
            c.record(t0, &p, a, Outcome::Failure);
        }
        assert_eq!(c.state(), BreakerState::Closed);
        let a = admitted(&mut c, t0, &p);
        assert_eq!(
            c.record(t0, &p, a, Outcome::Failure),
            Some(Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open
            })
        );
    }

    #[test]
    fn open_rejects_until_the_reset_timeout_then_admits_one_probe() {
        let p = policy(1, 1000);
        let t0 = Instant::now();
        let mut c = Circuit::new(t0);
        let a = admitted(&mut c, t0, &p);
        c.record(t0, &p, a, Outcome::Failure);
        let (r, _) = c.try_acquire(t0 + Duration::from_millis(999));
        assert_eq!(
            r,
            Err(Rejection {
                retry_in: Some(Duration::from_millis(1))
            })
        );
        let t1 = t0 + Duration::from_millis(1000);
        let (r, t) = c.try_acquire(t1);
        assert_eq!(r, Ok(Admission { probe: true }));
        assert_eq!(t.unwrap().to, BreakerState::HalfOpen);
        assert_eq!(c.try_acquire(t1).0, Err(Rejection { retry_in: None }));
    }

    #[test]
    fn probe_success_closes_and_probe_failure_reopens_with_a_fresh_timer() {
        let p = policy(1, 1000);
        let t0 = Instant::now();
        let mut c = Circuit::new(t0);
        let a = admitted(&mut c, t0, &p);
        c.record(t0, &p, a, Outcome::Failure);
        let t1 = t0 + Duration::from_millis(1500);
        let probe = admitted(&mut c, t1, &p);
        let t = c.record(t1, &p, probe, Outcome::Failure).unwrap();
        assert_eq!((t.from, t.to), (BreakerState::HalfOpen, BreakerState::Open));
        assert!(c.try_acquire(t1 + Duration::from_millis(999)).0.is_err());
        let t2 = t1 + Duration::from_millis(1000);
        let probe = admitted(&mut c, t2, &p);
        let t = c.record(t2, &p, probe, Outcome::Success).unwrap();
        assert_eq!(
            (t.from, t.to),
            (BreakerState::HalfOpen, BreakerState::Closed)
        );
        assert!(admitted(&mut c, t2, &p) == Admission { probe: false });
    }

    #[test]
    fn a_neutral_probe_lets_the_next_call_probe() {
        let p = policy(1, 10);
        let t0 = Instant::now();
        let mut c = Circuit::new(t0);
        let a = admitted(&mut c, t0, &p);
        c.record(t0, &p, a, Outcome::Failure);
        let t1 = t0 + Duration::from_millis(10);
        let probe = admitted(&mut c, t1, &p);
        assert_eq!(c.record(t1, &p, probe, Outcome::Neutral), None);
        assert_eq!(c.state(), BreakerState::HalfOpen);
        assert_eq!(c.try_acquire(t1).0, Ok(Admission { probe: true }));
    }

    #[test]
    fn the_registry_forgets_healthy_circuits_but_never_open_ones() {
        let registry = BreakerRegistry::new();
        let p = policy(1, 60_000);
        let (a, _) = registry.acquire("open");
        registry.record("open", &p, a.unwrap(), Outcome::Failure);
        for i in 0..MAX_CIRCUITS + 5 {
            let key = format!("k{i}");
            let (a, _) = registry.acquire(&key);
            registry.record(&key, &p, a.unwrap(), Outcome::Success);
        }
        assert!(registry.lock().len() <= MAX_CIRCUITS);
        assert_eq!(registry.state("open"), BreakerState::Open);
    }

    #[test]
    fn keys_name_the_agent_and_the_target_when_asked() {
        let mut p = CircuitBreakerPolicy::default();
        assert_eq!(p.key("@a/b", Some("api.x.com")), "cb:@a/b");
        p.include_target = true;
        assert_eq!(p.key("@a/b", Some("api.x.com")), "cb:@a/b:api.x.com");
        assert_eq!(p.key("@a/b", None), "cb:@a/b");
    }

    #[derive(Debug, Clone)]
    enum Step {
        Advance(u64),
        Acquire,
        Finish(usize, u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u64..400).prop_map(Step::Advance),
            Just(Step::Acquire),
            (0usize..8, 0u8..3).prop_map(|(i, o)| Step::Finish(i, o)),
        ]
    }

    proptest! {
        #[test]
        fn open_never_admits_early_and_half_open_has_one_probe_at_most(
            threshold in 1u32..4,
            reset_ms in 1u64..1000,
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let p = policy(threshold, reset_ms);
            let mut now = Instant::now();
            let mut c = Circuit::new(now);
            let mut in_flight: Vec<Admission> = Vec::new();
            let mut opened_at: Option<Instant> = None;
            for s in steps {
                match s {
                    Step::Advance(ms) => now += Duration::from_millis(ms),
                    Step::Acquire => {
                        let before = c.state();
                        let (r, _) = c.try_acquire(now);
                        if let Ok(a) = r {
                            if before == BreakerState::Open {
                                let since = now - opened_at.expect("opened");
                                prop_assert!(since >= Duration::from_millis(reset_ms));
                            }
                            in_flight.push(a);
                        }
                    }
                    Step::Finish(i, o) => {
                        if in_flight.is_empty() { continue; }
                        let a = in_flight.remove(i % in_flight.len());
                        let outcome = [Outcome::Success, Outcome::Failure, Outcome::Neutral][o as usize];
                        let t = c.record(now, &p, a, outcome);
                        if t.is_some_and(|t| t.to == BreakerState::Open) {
                            opened_at = Some(now);
                        }
                    }
                }
                let probes = in_flight.iter().filter(|a| a.probe).count();
                prop_assert!(probes <= 1, "{probes} probes in flight");
                if c.state() == BreakerState::Open {
                    prop_assert_eq!(probes, 0);
                }
            }
        }
    }
}
