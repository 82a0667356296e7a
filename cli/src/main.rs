//! The `orchestr8` command: a thin front over the `orchestr8-host` library.

mod agent;
mod build;
mod claude;
mod db;
mod dev;
mod distribute;
mod error;
mod eval;
mod executions;
mod init;
mod input;
mod output;
mod project;
mod prompts;
mod replay;
mod resume;
mod scaffold;
mod serve;
mod testing;
mod workflow;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use error::{Outcome, exit, report};
use orchestr8_host::ErrorCode;
use orchestr8_host::sandbox::{Allocator, SandboxConfig, default_cache_dir};
use orchestr8_host::telemetry::LogFormat;

const EXIT_CODES: &str = "\
Start a project:
  orchestr8 init demo && cd demo
  orchestr8 build && orchestr8 run workflows/hello.json && orchestr8 test

Exit codes:
  0  success
  1  the agent, workflow or a test case ran and failed (the error code,
     such as TIMEOUT, is printed), or a build failed
  2  invalid command line or input (files that exist, bad names, bad JSON)
  3  an agent could not be loaded, or the configuration is invalid

Environment: ORCHESTR8_CACHE_DIR, ORCHESTR8_STATE_DIR, ORCHESTR8_LOG,
ORCHESTR8_LOG_FORMAT, ORCHESTR8_SECRET_<NAME> (secret values), ORCHESTR8_TOKEN,
ORCHESTR8_REGISTRY_USERNAME and ORCHESTR8_REGISTRY_PASSWORD (OCI registries),
NO_COLOR (plain output), OTEL_EXPORTER_OTLP_ENDPOINT (export traces over
OTLP/HTTP; OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_SERVICE_NAME, OTEL_BSP_*).";

/// Run AI agents as sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "orchestr8", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Run as if started in DIR (like `git -C`); the project is found there.
    #[arg(
        short = 'C',
        long = "directory",
        visible_alias = "project",
        value_name = "DIR",
        global = true
    )]
    directory: Option<PathBuf>,

    /// Where compiled agents are cached [default: ~/.cache/orchestr8/components]
    #[arg(long, global = true, env = "ORCHESTR8_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Do not use the compile cache.
    #[arg(long, global = true)]
    no_cache: bool,

    /// Memory all running agents may take together, in MiB: a call starts
    /// only while the memory caps of the running sandboxes, its own
    /// included, fit; others wait up to their queue timeout, then fail with
    /// OVERLOADED [default: half the machine's memory]
    #[arg(
        long,
        global = true,
        value_name = "MIB",
        env = "ORCHESTR8_MEMORY_BUDGET_MB",
        value_parser = clap::value_parser!(u64).range(64..)
    )]
    memory_budget_mb: Option<u64>,

    /// Host log verbosity (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "ORCHESTR8_LOG")]
    log_level: String,

    /// Log lines for people (pretty) or one JSON object per line (json)
    /// [default: json for `run --json` and `resume --json`, whose stderr
    /// is JSON lines, else pretty].
    #[arg(long, global = true, value_enum, env = "ORCHESTR8_LOG_FORMAT")]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project: orchestr8.toml, a first agent, a workflow, a test
    /// case and the vendored agent SDK.
    #[command(
        after_help = "Examples:\n  orchestr8 init demo\n  orchestr8 init . --name my-agents\n\nExisting files are never overwritten unless --force is given."
    )]
    Init(init::InitArgs),
    /// Add an agent under agents/<name> (a Rust crate, or with --lang
    /// python or typescript a Python or TypeScript module), registered in
    /// orchestr8.toml, with passing test cases in tests/<name>.json.
    #[command(
        after_help = "Examples:\n  orchestr8 create greeter\n  orchestr8 create repo-lookup --template http\n  orchestr8 create hi --lang python     # a Python agent (agents/hi/app.py)\n  orchestr8 create hello --lang ts      # a TypeScript agent (agents/hello/agent.ts)"
    )]
    Create(init::CreateArgs),
    /// Compile the project's agent crates, Python and TypeScript agents to
    /// WebAssembly components (installing the wasm32-wasip2 target, or the
    /// pinned componentize-py or ComponentizeJS toolchain, if missing) and
    /// pre-compile them into the host's cache.
    #[command(
        after_help = "Examples:\n  orchestr8 build\n  orchestr8 build greeter --json\n\nComponents land in .orchestr8/components/; the compilers' own output (cargo, tsc, componentize-py) shows build errors. TypeScript agents are type-checked: a type error fails the build."
    )]
    Build(build::BuildArgs),
    /// Run the project's test cases (tests/*.json) in the real sandbox, with
    /// outbound HTTP answered from recorded fixtures.
    #[command(after_help = TEST_HELP)]
    Test(testing::TestArgs),
    /// Measure an agent's quality: run every case of an evaluation suite N
    /// times per variant (a prompt, a model, another version), grade each
    /// run, and report pass rates with 95% intervals and whether one
    /// variant is better than another.
    #[command(after_help = EVAL_HELP)]
    Eval(eval::EvalArgs),
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
    /// Print an execution's journal as a timeline (--follow: as it is written).
    #[command(
        after_help = "Examples:\n  orchestr8 inspect --last\n  orchestr8 inspect 3f0c…-… --json\n  orchestr8 inspect 3f0c…-… --follow"
    )]
    Inspect(executions::InspectArgs),
    /// List recorded executions, newest first, with filters.
    #[command(
        after_help = "Examples:\n  orchestr8 executions\n  orchestr8 executions --status failed --since 2h\n  orchestr8 executions --workflow nightly-report --limit 50 --json"
    )]
    Executions(executions::ListArgs),
    /// Cancel a running execution, whichever process runs it (`run`,
    /// `serve`, `dev`) on this state directory.
    #[command(
        after_help = "Examples:\n  orchestr8 cancel 3f0c…-…\n  orchestr8 cancel 3f0c…-… --wait\n\nThe request is recorded in the state directory; the process running the\nexecution picks it up within a quarter of a second and cancels it (running\nsteps get their grace period, as with Ctrl-C). Exit code 1 when it had\nalready ended, 2 when there is no such execution."
    )]
    Cancel(executions::CancelArgs),
    /// Go on with executions whose process died (killed, crashed, the
    /// machine restarted), from their journals: steps that ended are not
    /// run again.
    #[command(after_help = RESUME_HELP)]
    Resume(resume::ResumeArgs),
    /// Run a recorded execution's steps again, offline: each on its
    /// recorded input, with the HTTP responses it received served back from
    /// the journal; says per step whether the output is identical.
    #[command(after_help = REPLAY_HELP)]
    Replay(replay::ReplayArgs),
    /// Print the JSON Schema of workflow documents (or of eval suites).
    #[command(
        after_help = "Examples:\n  orchestr8 schema > workflow.schema.json\n  orchestr8 schema --hash\n  orchestr8 schema --eval-suite > eval-suite.schema.json"
    )]
    Schema(workflow::SchemaArgs),
    /// Inspect and run single agent components.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Serve the REST API: execute workflows, read their status and
    /// journal, cancel them; plus /health, /metrics and /openapi.json.
    #[command(after_help = SERVE_HELP)]
    Serve(serve::ServeArgs),
    /// Build, serve and watch: the REST API as `serve` gives it, with every
    /// agent rebuilt and swapped in as soon as its sources change.
    #[command(after_help = DEV_HELP)]
    Dev(dev::DevArgs),
    /// Package a built agent for other projects: its component and a
    /// manifest (id, version, schemas, grants it asks for, limits, digest).
    #[command(
        after_help = "Examples:\n  orchestr8 package context7\n  orchestr8 package @orchestr8/context7 --out /tmp/pkg --json"
    )]
    Package(distribute::PackageArgs),
    /// Install an agent package into this project (from a file or
    /// directory, an http(s):// URL or oci://host/repo:tag), verified and
    /// pinned in orchestr8.lock; with no source, restore the lockfile.
    #[command(after_help = INSTALL_HELP)]
    Install(distribute::InstallArgs),
    /// Push a built agent's package to an OCI registry.
    #[command(
        after_help = "Examples:\n  orchestr8 publish context7 oci://ghcr.io/acme/agents/context7:0.1.0\n  orchestr8 publish greeter oci://127.0.0.1:5000/agents/greeter:1.0.0\n\nRegistries on loopback are spoken to over plain HTTP, others over HTTPS.\nCredentials: ORCHESTR8_REGISTRY_USERNAME and ORCHESTR8_REGISTRY_PASSWORD."
    )]
    Publish(distribute::PublishArgs),
    /// Remove an installed agent: its table, its lockfile pin, its component.
    #[command(after_help = "Examples:\n  orchestr8 uninstall context7")]
    Uninstall(distribute::UninstallArgs),
    /// The project's agents.
    #[command(subcommand)]
    Agents(distribute::AgentsCommand),
    /// Serve the project's agents as tools to Claude Code (or any MCP
    /// client): an MCP server over stdio.
    #[command(after_help = MCP_HELP)]
    Mcp(claude::McpArgs),
    /// Set a project up for Claude Code.
    #[command(subcommand)]
    Claude(claude::ClaudeCommand),
    /// The shared PostgreSQL database of several nodes (`--store`).
    #[command(
        subcommand,
        after_help = "Examples:\n  orchestr8 db migrate --store postgres://orchestr8:secret@db:5432/orchestr8\n  ORCHESTR8_DATABASE_URL=postgres://… orchestr8 db migrate --json"
    )]
    Db(db::DbCommand),
    /// The prompt templates agents ship.
    #[command(
        subcommand,
        after_help = "Examples:\n  orchestr8 prompts check\n  orchestr8 prompts check @demo/brief --json\n\nA template (prompts/*.xml in the agent's directory) must be well-formed XML;\neach {{placeholder}} must be given a value by the agent's code, as a\n(\"name\", value) pair for prompt::fill, and the value must go through\nprompt::escape (or say `// escaped …` on the line above). Exit 1 on a problem."
    )]
    Prompts(prompts::PromptsCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  orchestr8 completions bash > ~/.local/share/bash-completion/completions/orchestr8\n  orchestr8 completions zsh > ~/.zfunc/_orchestr8\n  orchestr8 completions fish > ~/.config/fish/completions/orchestr8.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether the command writes its progress on stderr as JSON lines.
    fn streams_json_progress(&self) -> bool {
        match self {
            Command::Run(args) => args.streams_json_progress(),
            Command::Resume(args) => args.streams_json_progress(),
            _ => false,
        }
    }
}

const EVAL_HELP: &str = "\
Examples:
  orchestr8 eval evals/brief.json
  orchestr8 eval evals/brief.json --variant terse --variant cited --trials 20
  orchestr8 eval evals/brief.json --report eval.md --min-pass-rate 0.8
  orchestr8 eval evals/brief.json --baseline .orchestr8/evals/brief-….json

Each run is a fresh sandbox under the project's limits and grants; the
suite's fixtures answer outbound HTTP as in `orchestr8 test`. The report
gives each variant's pass rate with its Wilson 95% interval (per grader and
per case too), latency p50/p95, tokens and cost when the output reports
them, and, for each variant against the first, the difference with its
95% interval, the exact McNemar test over runs paired by case and trial,
and a verdict in words. Grader errors are reported apart and not counted.
--report writes it as Markdown, or HTML for a name ending in .html. Every
run (output, grades with their reasons, time, tokens) is recorded in
.orchestr8/evals/ (or the --state-dir's evals/). Exit 1 when --min-pass-rate
is not met or a variant is significantly worse than in --baseline.";

const SERVE_HELP: &str = "\
Examples:
  orchestr8 serve
  orchestr8 serve --bind 127.0.0.1:0 --max-running 8 --queue 100
  ORCHESTR8_TOKEN=s3cret orchestr8 serve --bind 0.0.0.0:7878

  curl -s localhost:7878/workflows/execute?wait=true \\
       -d '{\"workflowFile\": \"workflows/hello.json\", \"input\": {\"name\": \"Ada\"}}'
  curl -s localhost:7878/executions/<id>/journal?after=0&limit=100

The web console is at / (open http://127.0.0.1:7878/ in a browser): executions
live as a graph, a timeline and the journal; agents; the project's workflows,
validated and started from a form.

Routes: POST /workflows/execute, GET /executions, GET /executions/{id},
GET /executions/{id}/journal, GET /executions/{id}/events (live, SSE),
POST /executions/{id}/cancel, GET /agents, GET /workflows,
POST /workflows/validate, GET /health, GET /metrics, GET /openapi.json. Every error is
{\"error\": {\"code\", \"message\", \"details\"}}. A full queue answers 503 with
Retry-After. Before it accepts an execution the server loads its agents
again if orchestr8.toml, the secrets file or a component changed (a new
`orchestr8 build` is served at once; running calls finish on their build);
an agent that cannot load fails only the workflows that use it. On SIGINT/SIGTERM running executions get --grace-ms to finish,
then are cancelled (the journal says so). Binding a non-loopback address
needs a token (--token or ORCHESTR8_TOKEN), checked on every route but /health
and the console's page (the console asks for the token).";

const REPLAY_HELP: &str = "\
Examples:
  orchestr8 replay 3f0c…-…
  orchestr8 replay 3f0c…-… --step fetch --agent target/wasm32-wasip2/release/fetch.wasm
  orchestr8 replay 3f0c…-… --json

Each step that ended is run again in a fresh sandbox with the input its
journal recorded, as the same execution, step and attempt, with the HTTP
responses its last attempt received answered from the journal, each once
and in order: no network. A request the recording does not have is refused
and reported. Per step: identical, diverged (the first differing JSON path,
or the error codes), or not-replayable (a response was not recorded whole:
over 48 KiB, not text, or not read to its end; or `record = \"off\"` for the
agent). Clock readings and random numbers are recorded and handed back with
`record = \"all\"`; otherwise an agent whose output depends on them
diverges. Exit code 0 when every step is identical.";

const RESUME_HELP: &str = "\
Examples:
  orchestr8 executions --status interrupted
  orchestr8 resume 3f0c…-…
  orchestr8 resume --all

An execution whose process is gone is `interrupted`; resuming it goes on in
this process as the same execution, into the same journal (an
`execution-resumed` entry says what was done before). Steps recorded as
ended keep their results and are not run again; steps that were running run
again as new attempts, numbered after the recorded ones and counted against
their maxAttempts; its timeouts count the time it ran, not the time it was
down. `orchestr8 serve` resumes its project's interrupted executions when
it starts.";

const DEV_HELP: &str = "\
Examples:
  orchestr8 dev
  orchestr8 dev --bind 127.0.0.1:0 --poll-ms 1000

Agents never built, or whose sources changed since their last build, are
built first (cargo, componentize-py or ComponentizeJS, as `orchestr8 build`
does), then the REST API is served (see `orchestr8 serve --help`). Every
--poll-ms the sources and orchestr8.toml are looked at again: a changed or
new agent is rebuilt and swapped in, while calls already running finish on
the build they started with; each attempt's `attempt-started` journal
entry names the component it ran (`agentDigest`). A build that fails is
shown, and the last good build keeps serving until the sources change.";

const INSTALL_HELP: &str = "\
Examples:
  orchestr8 install ../other-repo/dist/acme.translator-1.2.0.agent.json
  orchestr8 install https://example.com/agents/acme.translator-1.2.0.agent.json
  orchestr8 install oci://ghcr.io/acme/agents/translator:1.2.0 --yes
  orchestr8 install oci://127.0.0.1:5000/agents/translator:1.2.0 --as @mine/translator
  orchestr8 install ./dist/acme.translator-1.2.0.wasm   # uses the manifest beside it
  orchestr8 install                  # restore everything pinned in orchestr8.lock

Before anything changes, the component's SHA-256 must equal the manifest's
digest, and the manifest must agree with the component (id, version,
description, schemas, WIT world). The grants the agent asks for are shown;
they are written to orchestr8.toml only with --yes or your answer on the
terminal. The component goes to .orchestr8/installed/, the pin (source,
version, digest) to orchestr8.lock. Restoring refuses a component whose
digest differs from the pin, naming both digests.

A plain component (a .wasm with no manifest beside it, or an OCI artifact
published the standard way, as wkg does) is installed from what its own
info says, asking for no grants, with the default limits. A source that is
not an agent at all is refused with INVALID_INPUT (exit code 2).";

const MCP_HELP: &str = "\
Examples:
  orchestr8 mcp
  orchestr8 mcp --agent @orchestr8/context7
  orchestr8 claude install     # writes .mcp.json so Claude Code starts `orchestr8 mcp`

Every agent of the project becomes a tool named after its id
(`@orchestr8/context7` → `orchestr8_context7`, shown in Claude Code as
`mcp__orchestr8__orchestr8_context7`), with the agent's description and
input schema (an object schema, as MCP requires: an agent whose input
cannot be an object takes it as the `input` argument), and its output
schema when its output is an object. A call runs the agent in a fresh sandbox with the project's
limits, grants and config, through the resilience chain. An agent failure
answers `isError: true` with its error code. One JSON-RPC message per line
on stdout; logs on stderr; ends when stdin closes.";

const TEST_HELP: &str = "\
Examples:
  orchestr8 test
  orchestr8 test --filter greeter
  orchestr8 test tests/repo.json --json

A case names an `agent` (or a `workflow` file), its `input`, and what to
`expect`: `output` (exactly), `outputMatches` (a subset), `error` (a code such
as INVALID_INPUT) or, for workflows, `status`. `fixtures` (files relative to
the case file, or inline objects) answer the agent's outbound HTTP requests:
{\"request\": {\"method\", \"url\", \"body\"?}, \"response\": {\"status\", \"headers\", \"body\"}}.
A request no fixture matches fails the case and is printed. The grants in
orchestr8.toml still apply. Exit code 1 when any case fails.";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        Some(LogFormatArg::Pretty) => LogFormat::Pretty,
        Some(LogFormatArg::Json) => LogFormat::Json,
        // A warning in between must not break a reader of JSON progress.
        None if cli.command.streams_json_progress() => LogFormat::Json,
        None => LogFormat::Pretty,
    };
    output::use_json(format == LogFormat::Json);
    if let Some(dir) = &cli.directory
        && let Err(e) = std::env::set_current_dir(dir)
    {
        return render(Err(report(
            ErrorCode::InvalidInput,
            &format!("cannot change to `{}`: {e}", dir.display()),
            exit::USAGE,
        )));
    }
    let ansi = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    // Before the runtime: the trace exporter's HTTP client is blocking.
    let telemetry = match orchestr8_host::telemetry::init(&cli.log_level, format, ansi) {
        Ok(t) => t,
        Err(e) => {
            return render(Err(report(
                ErrorCode::InvalidConfig,
                &e.to_string(),
                exit::USAGE,
            )));
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return render(Err(report(
                ErrorCode::Internal,
                &format!("cannot start the async runtime: {e}"),
                exit::FAILED,
            )));
        }
    };
    let mut config = SandboxConfig {
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
    if let Some(mib) = cli.memory_budget_mb {
        config.memory_budget_bytes = mib.saturating_mul(1 << 20);
        // No agent's cap can be above the whole budget.
        config.max_memory_bytes = config.max_memory_bytes.min(config.memory_budget_bytes);
    }
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => workflow::run(args, config).await,
            Command::Validate(args) => workflow::validate(args, config).await,
            Command::Inspect(args) => executions::inspect(args).await,
            Command::Executions(args) => executions::list(args),
            Command::Cancel(args) => executions::cancel(args).await,
            Command::Resume(args) => resume::resume(args, config).await,
            Command::Replay(args) => replay::replay(args, config).await,
            Command::Schema(args) => workflow::schema(args),
            Command::Agent(cmd) => agent::run(cmd, config).await,
            Command::Init(args) => init::init(args),
            Command::Create(args) => init::create(args),
            Command::Build(args) => build::build(args, config).await,
            Command::Test(args) => testing::test(args, config).await,
            Command::Eval(args) => eval::eval(args, config).await,
            Command::Serve(args) => serve::serve(args, config).await,
            Command::Dev(args) => dev::dev(args, config).await,
            Command::Mcp(args) => claude::mcp(args, config).await,
            Command::Package(args) => distribute::package(args, config).await,
            Command::Install(args) => distribute::install(args, config).await,
            Command::Publish(args) => distribute::publish(args, config).await,
            Command::Uninstall(args) => distribute::uninstall(args),
            Command::Agents(cmd) => distribute::agents(cmd, config).await,
            Command::Claude(cmd) => claude::run(cmd),
            Command::Db(cmd) => db::run(cmd),
            Command::Prompts(cmd) => prompts::run(cmd),
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "orchestr8",
                    &mut std::io::stdout(),
                );
                Ok(exit::OK)
            }
        }
    });
    drop(runtime);
    telemetry.shutdown();
    render(outcome)
}

/// The one place a command's end is shown: a failure as
/// `error[CODE]: message` (or its JSON line), and the exit status.
fn render(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            output::error(failure.code, &failure.message);
            ExitCode::from(failure.exit)
        }
    }
}
