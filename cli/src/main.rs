//! The `orchestr8` command: a thin front over the `orchestr8-host` library.

mod agent;
mod input;
mod project;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use orchestr8_host::sandbox::{Allocator, SandboxConfig, default_cache_dir};

/// Exit codes shared by every command.
pub(crate) mod exit {
    /// The command worked.
    pub const OK: u8 = 0;
    /// The agent (or workflow) ran and failed; the error code is printed.
    pub const FAILED: u8 = 1;
    /// The command line or its input is wrong.
    pub const USAGE: u8 = 2;
    /// The agent could not be loaded, or the configuration is invalid.
    pub const LOAD: u8 = 3;
}

/// Prints an error in the one CLI shape, `error[CODE]: message`, and
/// returns the exit code to use.
pub(crate) fn report(code: orchestr8_host::ErrorCode, message: &str, exit_code: u8) -> u8 {
    eprintln!("error[{code}]: {message}");
    exit_code
}

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the agent ran and failed (the error code, such as TIMEOUT, is printed)
  2  invalid command line or input
  3  the agent could not be loaded, or the configuration is invalid";

/// Run AI agents as sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "orchestr8", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Where compiled agents are cached [default: ~/.cache/orchestr8/components]
    #[arg(long, global = true, env = "ORCHESTR8_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Do not use the compile cache.
    #[arg(long, global = true)]
    no_cache: bool,

    /// Host log verbosity (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "ORCHESTR8_LOG")]
    log_level: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow: its steps run as sandboxed agents; progress is shown
    /// as the journal records it.
    #[command(
        after_help = "Examples:\n  orchestr8 run examples/text-pipeline/workflow.json\n  orchestr8 run workflow.json --input '{\"text\": \"…\"}' --json"
    )]
    Run(workflow::RunArgs),
    /// Check a workflow document and print every problem with its JSON path.
    #[command(
        after_help = "Examples:\n  orchestr8 validate workflow.json\n  orchestr8 validate workflow.json --agents-dir agents/target/wasm32-wasip2/release --json"
    )]
    Validate(workflow::ValidateArgs),
    /// Print an execution's journal as a timeline.
    #[command(
        after_help = "Examples:\n  orchestr8 inspect --last\n  orchestr8 inspect 3f0c…-… --json"
    )]
    Inspect(workflow::InspectArgs),
    /// Print the JSON Schema of workflow documents.
    Schema(workflow::SchemaArgs),
    /// Inspect and run single agent components.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let config = SandboxConfig {
        allocator: Allocator::Pooling,
        // One command runs a handful of sandboxes at once: a small pool starts faster.
        max_instances: 64,
        cache_dir: if cli.no_cache {
            None
        } else {
            cli.cache_dir.clone().or_else(default_cache_dir)
        },
        ..SandboxConfig::default()
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => workflow::run(args, config).await,
            Command::Validate(args) => workflow::validate(args, config).await,
            Command::Inspect(args) => workflow::inspect(args),
            Command::Schema(args) => workflow::schema(args),
            Command::Agent(cmd) => agent::run(cmd, config).await,
        }
    });
    ExitCode::from(code)
}
