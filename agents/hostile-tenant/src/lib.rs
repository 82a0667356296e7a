//! Hostile: attacks what sandboxes share rather than the sandbox itself,
//! one attack per call, chosen by the input's `attack`. Each stays within
//! its own limits and tries to make the host keep, hold or leave behind
//! more than its share; the isolation tests show that it cannot.

use std::time::{Duration, Instant};

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent};
use serde::Deserialize;
use serde_json::{Value, json};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

#[derive(Deserialize, JsonSchema)]
#[serde(tag = "attack", rename_all = "kebab-case")]
pub enum Input {
    /// Asks for `count` secrets that were not granted, each with a name of
    /// `bytes` bytes.
    SecretNames { count: usize, bytes: usize },
    /// Fails with an error whose message and details are `bytes` long.
    HugeError { bytes: usize },
    /// Builds HTTP header sets of `bytes` each until the host refuses.
    HoardResources { bytes: usize },
    /// Calls `exit(status)` instead of returning (WASI 0.2 carries only
    /// success or failure: a non-zero status arrives as 1).
    Exit { status: u8 },
    /// Starts `count` requests to `authority` (plain HTTP) at once, then
    /// waits for them; reports how many the host refused.
    Connections { authority: String, count: usize },
    /// Fills `mib` MiB of memory, then holds it for `hold_ms`.
    Fill { mib: usize, hold_ms: u64 },
    /// Burns CPU for `ms` milliseconds of wall-clock time.
    Burn { ms: u64 },
    /// Writes `files` files of `bytes` bytes each under `dir`.
    Write {
        dir: String,
        files: usize,
        bytes: usize,
    },
    /// Creates a symbolic link `link` (inside the first granted directory)
    /// pointing at `target`.
    Symlink { link: String, target: String },
}

pub struct Tenant;

impl Agent for Tenant {
    const ID: &'static str = "@hostile/tenant";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Tries to take more than its share of what sandboxes share.";
    type Input = Input;
    type Output = Value;

    fn process(input: Input, ctx: &Context) -> Result<Value, AgentError> {
        match input {
            Input::SecretNames { count, bytes } => {
                let name = "s".repeat(bytes);
                let refused = (0..count).filter(|_| ctx.secret(&name).is_err()).count();
                Ok(json!({ "refused": refused }))
            }
            Input::HugeError { bytes } => {
                Err(AgentError::fatal("e".repeat(bytes)).with_details(json!("d".repeat(bytes))))
            }
            Input::HoardResources { bytes } => {
                let value = vec![b'v'; bytes];
                let mut held = Vec::new();
                loop {
                    let fields = Fields::from_list(&[("x-hoard".to_string(), value.clone())])
                        .map_err(|e| AgentError::fatal(format!("after {}: {e:?}", held.len())))?;
                    held.push(fields);
                }
            }
            Input::Exit { status } => std::process::exit(status.into()),
            Input::Connections { authority, count } => connections(&authority, count),
            Input::Fill { mib, hold_ms } => {
                let blocks: Vec<Vec<u8>> = (0..mib).map(|i| vec![i as u8 | 1; 1 << 20]).collect();
                std::thread::sleep(Duration::from_millis(hold_ms));
                Ok(json!({ "filled": std::hint::black_box(blocks).len() }))
            }
            Input::Burn { ms } => {
                let start = Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(ms) {
                    for i in 0..10_000u64 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                    }
                }
                Ok(json!({ "burned": x % 2 }))
            }
            Input::Write { dir, files, bytes } => {
                let data = vec![b'w'; bytes];
                for i in 0..files {
                    if let Err(e) = std::fs::write(format!("{dir}/f{i}"), &data) {
                        return Ok(json!({ "written": i, "error": e.to_string() }));
                    }
                }
                Ok(json!({ "written": files }))
            }
            Input::Symlink { link, target } => {
                let Some((dir, _)) = wasip2::filesystem::preopens::get_directories().pop() else {
                    return Err(AgentError::fatal("no directory was granted"));
                };
                match dir.symlink_at(&target, &link) {
                    Ok(()) => Ok(json!({ "linked": true })),
                    Err(e) => Ok(json!({ "linked": false, "error": format!("{e:?}") })),
                }
            }
        }
    }
}

/// Starts every request before waiting for any, as a connection hog would.
fn connections(authority: &str, count: usize) -> Result<Value, AgentError> {
    let mut pending = Vec::new();
    let mut refused = 0;
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_scheme(Some(&Scheme::Http));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some("/"));
        match outgoing_handler::handle(request, None) {
            Ok(response) => pending.push(response),
            Err(_) => refused += 1,
        }
    }
    let mut answered = 0;
    for response in &pending {
        response.subscribe().block();
        match response.get() {
            Some(Ok(Ok(_))) => answered += 1,
            _ => refused += 1,
        }
    }
    Ok(json!({ "answered": answered, "refused": refused }))
}

export_agent!(Tenant);
