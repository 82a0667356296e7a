//! `orchestr8 agent …`: inspect and call one agent component directly.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use orchestr8_host::call::{AgentCall, Invoker, RegisteredAgent, ResilientOutcome};
use orchestr8_host::project::Secrets;
use orchestr8_host::resilience::{Resilience, ResilienceEvent, ResiliencePolicy, RetryPolicy};
use orchestr8_host::runtime::cancel_on_interrupt;
use orchestr8_host::sandbox::{
    DirGrant, HostPattern, InvocationOutcome, LoadedAgent, LogLevel, Sandbox, SandboxConfig,
    SandboxPolicy,
};
use orchestr8_host::{Coded, ErrorCode};

use crate::error::{Failure, Outcome, exit, report};
use crate::input::json_arg;
use crate::output;
use crate::project::{BuildCheck, resolve_agent};

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Print what an agent says about itself: id, version, description, schemas.
    #[command(
        after_help = "Examples:\n  orchestr8 agent info agents/target/wasm32-wasip2/release/text_stats.wasm\n  orchestr8 agent info text_stats.wasm --json"
    )]
    Info {
        /// The agent: a component file (.wasm), or inside a project an
        /// agent's id or name.
        agent: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run an agent once in a fresh sandbox and print its output.
    #[command(after_help = CALL_HELP)]
    Call(Box<CallArgs>),
    /// Serve one agent as a microservice: POST /process runs it (same
    /// limits, grants and resilience chain as in workflows), GET /health
    /// says what it is and its breaker state.
    #[command(
        after_help = "Examples:\n  orchestr8 agent serve @orchestr8/summarize --bind 127.0.0.1:8080\n  orchestr8 agent serve agents/target/wasm32-wasip2/release/text_stats.wasm\n\n  curl -s localhost:8080/process -d '{\"text\": \"Hello there.\"}'\n\nAgent errors answer with {\"error\": {\"code\", \"message\", \"details\"}}: INVALID_INPUT 400,\nRETRYABLE and CIRCUIT_OPEN 503 (with Retry-After), TIMEOUT 504, other agent\nfailures 500."
    )]
    Serve(Box<crate::serve::AgentServeArgs>),
}

const CALL_HELP: &str = "\
Examples:
  orchestr8 agent call text_stats.wasm --input '{\"text\":\"Hello world.\"}'
  orchestr8 agent call text_stats.wasm --input @input.json --json
  orchestr8 agent call fetch.wasm --input '{\"url\":\"https://api.github.com\"}' --allow-host api.github.com

Everything not granted is denied: no files, no environment variables, no
secrets, no network. A secret granted with --secret NAME takes its value from
the environment variable ORCHESTR8_SECRET_<NAME> (upper case, `-` as `_`).

With --max-attempts N the call goes through the resilience chain: failures
coded RETRYABLE or TIMEOUT are retried after an exponential, fully jittered
delay (--retry-base-ms, --retry-max-ms), within --budget-ms in all.

On failure the error code (TIMEOUT, FUEL_EXHAUSTED, MEMORY_LIMIT, TRAP,
CAPABILITY_DENIED, INVALID_INPUT, INVALID_OUTPUT, OUTPUT_TOO_LARGE, RETRYABLE,
FATAL, CANCELLED, BUDGET_EXHAUSTED) is printed and the exit code is 1.";

#[derive(Args)]
pub struct CallArgs {
    /// The agent: a component file (.wasm, nothing granted but the flags),
    /// or inside a project an agent's id or name (its limits, grants,
    /// secrets and config; flags given replace its limits and add grants).
    agent: PathBuf,
    /// The input: JSON text, @file, or @- for stdin.
    #[arg(long, short, default_value = "{}")]
    input: String,
    /// Per-agent configuration: JSON text, @file, or @- for stdin.
    #[arg(long)]
    config: Option<String>,
    /// Wall-clock deadline in milliseconds [default: 30000]
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Fuel budget (roughly, WebAssembly instructions) [default: 5000000000]
    #[arg(long)]
    fuel: Option<u64>,
    /// Cap on each linear memory, in MiB [default: 64]
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Cap on the output size, in bytes [default: 8388608]
    #[arg(long)]
    max_output_bytes: Option<u64>,
    /// Allow outbound HTTP to this host: `[scheme://]host[:port]`, `*.domain`. Repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<HostPattern>,
    /// Grant a directory: HOST_PATH:GUEST_PATH, read-only; add `:rw` to allow writes. Repeatable.
    #[arg(long = "dir", value_name = "HOST:GUEST[:rw]")]
    dirs: Vec<String>,
    /// Let the agent read this environment variable of the host. Repeatable.
    #[arg(long = "env", value_name = "NAME")]
    env: Vec<String>,
    /// Grant a secret by name (value from ORCHESTR8_SECRET_<NAME>). Repeatable.
    #[arg(long = "secret", value_name = "NAME")]
    secrets: Vec<String>,
    /// Total attempts, the first included (1–10); retries RETRYABLE and TIMEOUT failures.
    #[arg(long, default_value_t = 1)]
    max_attempts: u32,
    /// Base of the exponential backoff between attempts, in milliseconds.
    #[arg(long, default_value_t = orchestr8_host::resilience::DEFAULT_BASE_DELAY_MS)]
    retry_base_ms: u64,
    /// Cap on one backoff delay, in milliseconds.
    #[arg(long, default_value_t = orchestr8_host::resilience::DEFAULT_MAX_DELAY_MS)]
    retry_max_ms: u64,
    /// Time budget for all attempts and delays together, in milliseconds.
    #[arg(long, default_value_t = orchestr8_host::resilience::DEFAULT_BUDGET_MS)]
    budget_ms: u64,
    /// Print the whole outcome (output or error, and every attempt's logs,
    /// events, denials and stats) as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: AgentCommand, config: SandboxConfig) -> Outcome {
    let sandbox = Sandbox::new(config).map_err(|e| Failure::of(&e, exit::LOAD))?;
    match cmd {
        AgentCommand::Info { agent, json } => info(&sandbox, agent, json).await,
        AgentCommand::Call(args) => call(&sandbox, *args).await,
        AgentCommand::Serve(args) => crate::serve::agent_serve(*args, sandbox).await,
    }
}

async fn load(sandbox: &Sandbox, path: &PathBuf) -> Result<LoadedAgent, Failure> {
    sandbox
        .load(path)
        .await
        .map_err(|e| Failure::of(&e, exit::LOAD))
}

/// Whether `agent` names a component file rather than a project's agent.
fn is_component(agent: &std::path::Path) -> bool {
    agent.extension().is_some_and(|x| x == "wasm")
}

async fn info(sandbox: &Sandbox, path: PathBuf, json: bool) -> Outcome {
    let agent = if is_component(&path) {
        load(sandbox, &path).await?
    } else {
        let name = path.to_string_lossy();
        resolve_agent(sandbox.clone(), &name, BuildCheck::default())
            .await?
            .agent
    };
    let info = agent.info();
    if json {
        let mut value = serde_json::to_value(info).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("digest".into(), format!("sha256:{}", agent.digest()).into());
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        println!("{} {}", info.id, info.version);
        println!("{}", info.description);
        println!("digest: sha256:{}", agent.digest());
        println!(
            "input schema:\n{}",
            serde_json::to_string_pretty(&info.input_schema).unwrap_or_default()
        );
        println!(
            "output schema:\n{}",
            serde_json::to_string_pretty(&info.output_schema).unwrap_or_default()
        );
    }
    Ok(exit::OK)
}

/// The flags' limits and grants over `policy`: a limit given replaces the
/// policy's, grants given are added to its own.
fn apply_flags(policy: &mut SandboxPolicy, args: &CallArgs) -> Result<(), String> {
    let limits = &mut policy.limits;
    if let Some(ms) = args.timeout_ms {
        limits.timeout_ms = ms;
    }
    if let Some(fuel) = args.fuel {
        limits.fuel = fuel;
    }
    if let Some(mb) = args.memory_mb {
        limits.memory_bytes = mb.saturating_mul(1024 * 1024);
    }
    if let Some(bytes) = args.max_output_bytes {
        limits.output_bytes = bytes;
    }
    policy
        .grants
        .allowed_hosts
        .extend(args.allow_hosts.iter().cloned());
    for spec in &args.dirs {
        policy.grants.dirs.push(parse_dir(spec)?);
    }
    for name in &args.env {
        if let Ok(value) = std::env::var(name) {
            policy.env_values.insert(name.clone(), value);
        }
        policy.grants.env.push(name.clone());
    }
    policy.grants.secrets.extend(args.secrets.iter().cloned());
    let secrets = Secrets::from_env();
    for name in &args.secrets {
        if let Some(value) = secrets.get(name) {
            policy.secret_values.insert(name.clone(), value);
        }
    }
    Ok(())
}

fn parse_dir(spec: &str) -> Result<DirGrant, String> {
    let (rest, writable) = match spec.strip_suffix(":rw") {
        Some(rest) => (rest, true),
        None => (spec.strip_suffix(":ro").unwrap_or(spec), false),
    };
    let (host, guest) = rest
        .split_once(':')
        .ok_or_else(|| format!("--dir `{spec}` must look like HOST_PATH:GUEST_PATH[:rw]"))?;
    Ok(DirGrant {
        host_path: host.into(),
        guest_path: guest.into(),
        writable,
        quota_bytes: None,
        quota_files: None,
    })
}

async fn call(sandbox: &Sandbox, args: CallArgs) -> Outcome {
    let input = match json_arg(&args.input) {
        Ok(v) => v,
        Err(e) => {
            return Err(report(
                ErrorCode::InvalidInput,
                &format!("{e:#}"),
                exit::USAGE,
            ));
        }
    };
    let config = match args.config.as_deref().map(json_arg).transpose() {
        Ok(c) => c,
        Err(e) => {
            return Err(report(
                ErrorCode::InvalidConfig,
                &format!("{e:#}"),
                exit::USAGE,
            ));
        }
    };
    // A component file runs with what the flags grant; a project's agent
    // with its own limits, grants, secrets and config, the flags on top.
    let mut agent = if is_component(&args.agent) {
        RegisteredAgent::new(load(sandbox, &args.agent).await?, SandboxPolicy::default())
    } else {
        let name = args.agent.to_string_lossy();
        resolve_agent(sandbox.clone(), &name, BuildCheck::default()).await?
    };
    apply_flags(&mut agent.policy, &args)
        .map_err(|message| report(ErrorCode::InvalidConfig, &message, exit::USAGE))?;
    let policy = &agent.policy;
    if let Err(e) = policy.validate(sandbox.config().max_memory_bytes) {
        return Err(report(
            ErrorCode::InvalidConfig,
            &e.to_string(),
            exit::USAGE,
        ));
    }
    let resilience = ResiliencePolicy {
        retry: RetryPolicy {
            max_attempts: args.max_attempts,
            base_delay_ms: args.retry_base_ms,
            max_delay_ms: args.retry_max_ms,
            ..RetryPolicy::default()
        },
        timeout_ms: policy.limits.timeout_ms,
        budget_ms: args.budget_ms,
        ..ResiliencePolicy::default()
    };
    if let Err(message) = resilience.validate() {
        return Err(report(ErrorCode::InvalidConfig, &message, exit::USAGE));
    }
    let mut call = AgentCall::new(&agent, input);
    if let Some(config) = config {
        call.config = config;
    }
    call.resilience = resilience;
    call.cancel_grace = Duration::from_secs(2);
    let cancel = call.cancel.clone();
    let on_ctrl_c = cancel_on_interrupt(cancel, || {
        output::notice("cancelling (the agent gets 2 s to stop)…")
    });
    let invoker = Invoker::new(sandbox.clone(), Resilience::default());
    let quiet = args.json;
    let events = move |event: ResilienceEvent| {
        if let ResilienceEvent::RetryScheduled {
            attempt,
            delay_ms,
            reason,
        } = event
            && !quiet
        {
            output::notice(&format!(
                "[retry] {reason}: attempt {attempt} in {delay_ms} ms"
            ));
        }
    };
    let outcome = invoker.call(&agent, call, &events).await;
    on_ctrl_c.abort();
    print_outcome(&outcome, args.json)
}

fn print_outcome(outcome: &ResilientOutcome, json: bool) -> Outcome {
    if json {
        let mut value = match &outcome.result {
            Ok(output) => serde_json::json!({ "ok": true, "output": output }),
            Err(e) => serde_json::json!({ "ok": false, "error": e.to_body() }),
        };
        value["attempts"] = outcome
            .attempts
            .iter()
            .map(InvocationOutcome::to_json)
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        let several = outcome.attempts.len() > 1;
        for (i, attempt) in outcome.attempts.iter().enumerate() {
            print_attempt(attempt, several.then_some(i + 1));
        }
        if let Ok(output) = &outcome.result {
            println!(
                "{}",
                serde_json::to_string_pretty(output).unwrap_or_default()
            );
        }
    }
    match &outcome.result {
        Ok(_) => Ok(exit::OK),
        Err(e) => {
            if !json {
                output::error(e.code(), &e.to_string());
            }
            Ok(exit::FAILED)
        }
    }
}

fn print_attempt(attempt: &InvocationOutcome, number: Option<usize>) {
    let tag = number.map_or(String::new(), |n| format!(" #{n}"));
    for line in &attempt.logs {
        let level = match line.level {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        output::line(
            &level.to_ascii_uppercase(),
            "orchestr8::agent",
            &format!("[agent{tag} {level}] {}", line.message),
            serde_json::Map::new(),
        );
    }
    if attempt.logs_dropped > 0 {
        output::notice(&format!(
            "[agent{tag}] {} log lines dropped past the log volume cap",
            attempt.logs_dropped
        ));
    }
    // A hostile agent can be refused thousands of times: show a few.
    const SHOWN_DENIALS: usize = 10;
    for denial in attempt.denials.iter().take(SHOWN_DENIALS) {
        output::notice(&format!(
            "[denied{tag}] {} ({})",
            denial.target, denial.reason
        ));
    }
    let unshown =
        attempt.denials.len().saturating_sub(SHOWN_DENIALS) as u64 + attempt.denials_dropped;
    if unshown > 0 {
        output::notice(&format!(
            "[denied{tag}] and {unshown} more refusals (--json lists the first 64)"
        ));
    }
    if let (Some(_), Err(e)) = (number, &attempt.result) {
        output::notice(&format!("[attempt{tag} failed] {}: {e}", e.code()));
    }
}
