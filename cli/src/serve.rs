//! `orchestr8 serve` (the REST API) and `orchestr8 agent serve` (one agent
//! as a microservice).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use orchestr8_host::ErrorCode;
use orchestr8_host::call::Invoker;
use orchestr8_host::resilience::{Resilience, ResiliencePolicy};
use orchestr8_host::runtime::{Runtime, shutdown_signal};
use orchestr8_host::sandbox::{Sandbox, SandboxConfig};
use orchestr8_servers::api::{
    self, AgentService, ExecutionService, HttpOptions, Metrics, ServiceOptions,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{Failure, Outcome, exit, report};
use crate::output;
use crate::project::{self, BuildCheck, ProjectArgs};

/// Where and how a server listens.
#[derive(Args, Clone)]
pub struct ListenArgs {
    /// Address to listen on; port 0 picks a free one (the address is printed).
    #[arg(long, default_value = "127.0.0.1:7878")]
    bind: SocketAddr,
    /// Bearer token required on every route but /health; needed to bind
    /// anything but a loopback address. Must not be empty.
    #[arg(long, env = "ORCHESTR8_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// On SIGINT/SIGTERM, how long running work may take to finish before it
    /// is cancelled, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    grace_ms: u64,
}

/// How the REST API server admits and waits for executions.
#[derive(Args)]
pub struct ServerArgs {
    #[command(flatten)]
    listen: ListenArgs,
    /// Executions running at once.
    #[arg(long, default_value_t = 64)]
    max_running: usize,
    /// Executions waiting beyond those; past it the server answers 503.
    #[arg(long, default_value_t = 1024)]
    queue: usize,
    /// The longest `?wait=true` waits, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    max_wait_ms: u64,
    /// Leave executions whose process died interrupted instead of resuming
    /// them at start (`orchestr8 resume` can later); with --store, also
    /// leave those of other nodes that die to the other nodes.
    #[arg(long)]
    no_resume: bool,
}

impl ServerArgs {
    /// Where and how it listens.
    pub fn listen(&self) -> &ListenArgs {
        &self.listen
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    project: ProjectArgs,
}

#[derive(Args)]
pub struct AgentServeArgs {
    /// The agent: an id or name from orchestr8.toml (with its limits and
    /// grants), or a component file (nothing granted).
    agent: String,
    #[command(flatten)]
    listen: ListenArgs,
    /// Total attempts per call, the first included; RETRYABLE and TIMEOUT
    /// failures are retried.
    #[arg(long, default_value_t = 1)]
    max_attempts: u32,
    /// How long a call may wait for room to run (a turn under
    /// --max-concurrency, a sandbox slot, room in --memory-budget-mb) before
    /// it is answered 503 OVERLOADED with Retry-After.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    queue_timeout_ms: u64,
    /// Calls of the agent allowed to run at once (a bulkhead); others wait
    /// their turn [default: the agent's `max_concurrency`, else no limit]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrency: Option<u32>,
    #[command(flatten)]
    build: BuildCheck,
}

/// Checks the bind rule and opens the listener.
pub async fn listen(args: &ListenArgs) -> Result<(TcpListener, HttpOptions), Failure> {
    // An empty token (`ORCHESTR8_TOKEN=`) would start a server that refuses
    // every request: say so instead.
    if args.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(report(
            ErrorCode::InvalidConfig,
            "the token is empty: give --token (or ORCHESTR8_TOKEN) a value, or unset it to serve loopback without one",
            exit::USAGE,
        ));
    }
    if !args.bind.ip().is_loopback() && args.token.is_none() {
        return Err(report(
            ErrorCode::InvalidConfig,
            &format!(
                "binding {} exposes the server beyond this machine: set --token (or ORCHESTR8_TOKEN)",
                args.bind
            ),
            exit::USAGE,
        ));
    }
    let listener = TcpListener::bind(args.bind).await.map_err(|e| {
        let message = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "port {} is already in use (another orchestr8 serve or agent serve?): pick another with --bind {}:PORT, or --bind {}:0 for any free port",
                args.bind.port(),
                args.bind.ip(),
                args.bind.ip()
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "not allowed to listen on port {}: ports below 1024 need privileges; pick another with --bind {}:PORT",
                args.bind.port(),
                args.bind.ip()
            ),
            _ => format!("cannot listen on {}: {e} (set another address with --bind)", args.bind),
        };
        report(ErrorCode::InvalidConfig, &message, exit::USAGE)
    })?;
    let options = HttpOptions {
        token: args.token.clone(),
        body_limit: args.max_body_bytes,
        ..HttpOptions::default()
    };
    Ok((listener, options))
}

fn announce(listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        // Scripts and tests read this line to learn the port.
        println!("listening on http://{addr}");
    }
}

pub async fn serve(args: ServeArgs, config: SandboxConfig) -> Outcome {
    let (listener, http) = listen(&args.server.listen).await?;
    let runtime = args.project.open_live(config).await?;
    serve_api(listener, http, runtime, &args.server).await
}

/// Serves the REST API over `runtime` (its agents reloaded as they change)
/// until SIGINT or SIGTERM, then drains.
pub async fn serve_api(
    listener: TcpListener,
    http: HttpOptions,
    runtime: Runtime,
    args: &ServerArgs,
) -> Outcome {
    for (id, why) in runtime.agents().broken() {
        output::warning(&format!(
            "agent `{id}` is not loaded ({why}); workflows that use it fail until it is fixed"
        ));
    }
    let orchestrator = runtime
        .orchestrator()
        .map_err(|e| Failure::of(&e, exit::LOAD))?;
    let workflows_root = runtime.project().map(|p| p.root.clone());
    let service = ExecutionService::new(
        Arc::new(orchestrator),
        runtime.registry().clone(),
        ServiceOptions {
            max_running: args.max_running,
            queue_capacity: args.queue,
            max_wait: Duration::from_millis(args.max_wait_ms),
            workflows_root,
        },
        Arc::new(Metrics::new(Some(runtime.resilience().clone()))),
    );
    let router = service.router(&http);
    let resumed = if args.no_resume {
        Vec::new()
    } else {
        service.resume_interrupted().await
    };
    if !resumed.is_empty() {
        output::notice(&format!(
            "resuming {} execution(s) whose process died: {}",
            resumed.len(),
            resumed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // On a shared store, executions of nodes that die are taken over.
    if !args.no_resume {
        service.keep_taking_over(|ids| {
            output::notice(&format!(
                "taking over {} execution(s) of a node that stopped: {}",
                ids.len(),
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        });
    }
    announce(&listener);
    let grace = Duration::from_millis(args.listen.grace_ms);
    let stop = CancellationToken::new();
    let draining = {
        let service = service.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            output::notice(&format!(
                "shutting down: running executions get {} ms to finish",
                grace.as_millis()
            ));
            stop.cancel();
            service.shutdown(grace).await;
        })
    };
    let served = api::serve(listener, router, {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    })
    .await;
    let _ = draining.await;
    match served {
        Ok(()) => Ok(exit::OK),
        Err(e) => Err(report(
            ErrorCode::Internal,
            &format!("the server failed: {e}"),
            exit::FAILED,
        )),
    }
}

pub async fn agent_serve(args: AgentServeArgs, sandbox: Sandbox) -> Outcome {
    let (listener, http) = listen(&args.listen).await?;
    let mut registered = project::resolve_agent(sandbox.clone(), &args.agent, args.build).await?;
    if let Some(n) = args.max_concurrency {
        registered.policy.limits.max_concurrency = Some(n);
    }
    let mut resilience = ResiliencePolicy {
        timeout_ms: registered.policy.limits.timeout_ms,
        ..ResiliencePolicy::default()
    };
    resilience.retry.max_attempts = args.max_attempts;
    if let Err(message) = resilience.validate() {
        return Err(report(ErrorCode::InvalidConfig, &message, exit::USAGE));
    }
    let chain = Resilience::default();
    let service = AgentService::new(
        Invoker::new(sandbox.clone(), chain.clone()),
        registered,
        resilience,
        Duration::from_millis(args.queue_timeout_ms),
        Arc::new(Metrics::new(Some(chain))),
    );
    let router = service.router(&http);
    announce(&listener);
    match api::serve(listener, router, shutdown_signal()).await {
        Ok(()) => Ok(exit::OK),
        Err(e) => Err(report(
            ErrorCode::Internal,
            &format!("the server failed: {e}"),
            exit::FAILED,
        )),
    }
}
