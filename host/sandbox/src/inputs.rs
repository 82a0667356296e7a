//! What a call reads from the world besides HTTP: the clocks and random
//! numbers. With `record = "all"` a workflow step's readings are taped, in
//! order, so `orchestr8 replay` can hand the same readings back; a replay
//! serves them from the tape.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand_core::{Rng, TryRng};
use serde::{Deserialize, Serialize};
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};

/// Most clock readings kept per clock; past it the tape is incomplete.
const MAX_READINGS: usize = 4096;
/// Most random bytes kept; past it the tape is incomplete.
const MAX_RANDOM_BYTES: usize = 16 * 1024;

/// The clock readings and random bytes one call received, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedInputs {
    /// Wall-clock readings, nanoseconds since the Unix epoch.
    pub wall_ns: Vec<u64>,
    /// Monotonic clock readings, nanoseconds.
    pub monotonic_ns: Vec<u64>,
    /// Random bytes handed out (secure and insecure alike), as hex.
    pub random_hex: String,
    /// The insecure random seed, as a decimal string.
    pub seed: String,
    /// False when a cap was reached: a replay cannot be exact.
    pub complete: bool,
}

/// A shared tape: recording into it, or replaying from it.
#[derive(Clone)]
pub(crate) struct Tape {
    inner: Arc<Mutex<TapeState>>,
}

struct TapeState {
    inputs: RecordedInputs,
    random: Vec<u8>,
    /// Replay positions: wall, monotonic, random.
    at: (usize, usize, usize),
    replaying: bool,
}

impl Tape {
    /// A tape to record onto, with a fresh insecure seed.
    pub(crate) fn recording(seed: u128) -> Self {
        Tape::of(
            RecordedInputs {
                seed: seed.to_string(),
                complete: true,
                ..RecordedInputs::default()
            },
            false,
        )
    }

    /// A tape to replay `inputs` from.
    pub(crate) fn replaying(inputs: &RecordedInputs) -> Self {
        Tape::of(inputs.clone(), true)
    }

    fn of(inputs: RecordedInputs, replaying: bool) -> Self {
        let random = decode_hex(&inputs.random_hex);
        Tape {
            inner: Arc::new(Mutex::new(TapeState {
                inputs,
                random,
                at: (0, 0, 0),
                replaying,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TapeState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The insecure random seed on the tape.
    pub(crate) fn seed(&self) -> u128 {
        self.lock().inputs.seed.parse().unwrap_or(0)
    }

    /// What was recorded.
    pub(crate) fn recorded(&self) -> RecordedInputs {
        let state = self.lock();
        let mut inputs = state.inputs.clone();
        inputs.random_hex = crate::hex(&state.random);
        inputs
    }

    /// A reading of a clock: recorded from `live`, or the next on the tape
    /// (past its end, the last one again, a nanosecond later each time).
    fn reading(&self, which: Clock, live: impl FnOnce() -> u64) -> u64 {
        let mut state = self.lock();
        let state = &mut *state;
        let (list, at) = match which {
            Clock::Wall => (&mut state.inputs.wall_ns, &mut state.at.0),
            Clock::Monotonic => (&mut state.inputs.monotonic_ns, &mut state.at.1),
        };
        if state.replaying {
            let value = match list.get(*at) {
                Some(v) => *v,
                None => list.last().copied().unwrap_or(0) + (*at - list.len().min(*at)) as u64 + 1,
            };
            *at += 1;
            return value;
        }
        let value = live();
        if list.len() < MAX_READINGS {
            list.push(value);
        } else {
            state.inputs.complete = false;
        }
        value
    }

    /// Random bytes into `dst`: from `live` and recorded, or from the tape
    /// (past its end, zeros).
    fn random(&self, dst: &mut [u8], live: &mut (dyn Rng + Send)) {
        let mut state = self.lock();
        if state.replaying {
            let from = state.at.2.min(state.random.len());
            let take = dst.len().min(state.random.len() - from);
            dst[..take].copy_from_slice(&state.random[from..from + take]);
            dst[take..].fill(0);
            state.at.2 += dst.len();
            return;
        }
        live.fill_bytes(dst);
        if state.random.len() + dst.len() <= MAX_RANDOM_BYTES {
            state.random.extend_from_slice(dst);
        } else {
            state.inputs.complete = false;
        }
    }
}

#[derive(Clone, Copy)]
enum Clock {
    Wall,
    Monotonic,
}

/// The wall clock through a tape.
pub(crate) struct TapedWallClock(pub(crate) Tape, pub(crate) Box<dyn HostWallClock + Send>);

impl HostWallClock for TapedWallClock {
    fn resolution(&self) -> Duration {
        self.1.resolution()
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(
            self.0
                .reading(Clock::Wall, || self.1.now().as_nanos() as u64),
        )
    }
}

/// The monotonic clock through a tape.
pub(crate) struct TapedMonotonicClock(
    pub(crate) Tape,
    pub(crate) Box<dyn HostMonotonicClock + Send>,
);

impl HostMonotonicClock for TapedMonotonicClock {
    fn resolution(&self) -> u64 {
        self.1.resolution()
    }

    fn now(&self) -> u64 {
        self.0.reading(Clock::Monotonic, || self.1.now())
    }
}

/// A random source through a tape.
pub(crate) struct TapedRng(pub(crate) Tape, pub(crate) Box<dyn Rng + Send>);

impl TryRng for TapedRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.0.random(&mut bytes, self.1.as_mut());
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.0.random(&mut bytes, self.1.as_mut());
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.random(dst, self.1.as_mut());
        Ok(())
    }
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_tape_replays_the_same_readings_in_order() {
        let tape = Tape::recording(42);
        let mut live = wasmtime_wasi::random::thread_rng();
        let mut counter = 100;
        let mut tick = || {
            counter += 7;
            counter
        };
        let first = (
            tape.reading(Clock::Wall, &mut tick),
            tape.reading(Clock::Wall, &mut tick),
        );
        let mut bytes = [0u8; 12];
        tape.random(&mut bytes, live.as_mut());
        let recorded = tape.recorded();
        assert!(recorded.complete);
        assert_eq!(recorded.wall_ns, [first.0, first.1]);

        let replay = Tape::replaying(&recorded);
        assert_eq!(replay.seed(), 42);
        let again = (
            replay.reading(Clock::Wall, || 0),
            replay.reading(Clock::Wall, || 0),
        );
        assert_eq!(again, first);
        let past_the_end = replay.reading(Clock::Wall, || 0);
        assert!(past_the_end > first.1, "time does not run backwards");
        let mut same = [0u8; 12];
        replay.random(&mut same, live.as_mut());
        assert_eq!(same, bytes);
    }
}
