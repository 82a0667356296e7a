//! Why a command failed, and the exit status that says so: every command
//! returns `Result<u8, Failure>` (the `u8` an exit status for a command
//! that ran, 0 or 1 when its own output already told what failed), and
//! [`Failure`] is rendered in one place, `main`, as `error[CODE]: message`
//! (or its JSON line).

use orchestr8_host::{Coded, ErrorCode};

/// Exit statuses.
pub mod exit {
    /// The command worked.
    pub const OK: u8 = 0;
    /// The agent (or workflow) ran and failed; the error code is printed.
    pub const FAILED: u8 = 1;
    /// The command line or its input is wrong.
    pub const USAGE: u8 = 2;
    /// The agent could not be loaded, or the configuration is invalid.
    pub const LOAD: u8 = 3;
}

/// A command that could not do its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, and what to do.
    pub message: String,
    /// The exit status.
    pub exit: u8,
}

/// `code` and `message`, exiting with `exit`.
pub fn report(code: ErrorCode, message: &str, exit: u8) -> Failure {
    Failure {
        code,
        message: message.to_string(),
        exit,
    }
}

impl Failure {
    /// A failure of the library, with its own code and message.
    pub fn of(e: &impl Coded, exit: u8) -> Failure {
        report(e.code(), &e.to_string(), exit)
    }
}

/// What a command returns.
pub type Outcome = Result<u8, Failure>;
