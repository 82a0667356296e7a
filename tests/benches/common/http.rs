//! The two HTTP servers the load benches drive, in-process over loopback
//! TCP, and a keep-alive client: `POST /process` of the echo agent (no
//! journal) and `POST /workflows/execute?wait=true` of a one-step workflow
//! journaled to a SQLite file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use orchestr8_host::call::Invoker;
use orchestr8_host::engine::{AgentStepRunner, Engine, RegisteredAgent};
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::registry::AgentRegistry;
use orchestr8_host::resilience::{Resilience, ResiliencePolicy};
use orchestr8_host::sandbox::{Sandbox, SandboxConfig, SandboxPolicy};
use orchestr8_host::store::{SqliteStore, Store};
use orchestr8_servers::api::{
    self, AgentService, ExecutionService, HttpOptions, Metrics, ServiceOptions,
};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

/// The servers, their request bodies, and the SQLite file's folder.
pub struct Servers {
    /// The baseline: bare axum on the same loopback answering `POST
    /// /process` with the request body, no agent.
    pub bare: SocketAddr,
    /// `POST /process` of the echo agent.
    pub process: SocketAddr,
    /// `POST /workflows/execute` with a SQLite journal.
    pub execute: SocketAddr,
    pub process_body: Bytes,
    pub execute_body: Bytes,
    /// Holds `orchestr8.db` (and its WAL).
    pub state: tempfile::TempDir,
}

async fn spawn_server(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api::serve(listener, router, std::future::pending()));
    addr
}

/// Starts both servers over one sandbox (after scripts/build-agents).
pub async fn start() -> Servers {
    let echo_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../agents/target/wasm32-wasip2/release/echo.wasm");
    let sandbox = Sandbox::new(SandboxConfig {
        max_instances: 256,
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let echo = RegisteredAgent::new(
        sandbox.load(&echo_path).await.unwrap(),
        SandboxPolicy::default(),
    );
    let id = echo.agent.info().id.clone();

    let chain = Resilience::default();
    let agent_service = AgentService::new(
        Invoker::new(sandbox.clone(), chain.clone()),
        echo.clone(),
        ResiliencePolicy::default(),
        orchestr8_host::sandbox::DEFAULT_QUEUE_TIMEOUT,
        Arc::new(Metrics::new(Some(chain))),
    );
    let process = spawn_server(agent_service.router(&HttpOptions::default())).await;

    let state = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&state.path().join("orchestr8.db")).unwrap();
    let agents = HashMap::from([(id.clone(), echo)]);
    let (execute, _) = execution_server(&sandbox, store, agents).await;

    let bare = spawn_server(axum::Router::new().route(
        "/process",
        axum::routing::post(|body: Bytes| async move { body }),
    ))
    .await;

    Servers {
        bare,
        process,
        execute,
        process_body: Bytes::from(json!({ "hello": "world" }).to_string()),
        execute_body: Bytes::from(
            json!({ "workflow": {
                "version": "1.0.0", "schemaVersion": "1.0.0",
                "metadata": { "id": "7f1d2c3e-0b4a-4f5e-9d8c-1a2b3c4d5e6f", "name": "bench" },
                "steps": [{ "id": "only", "name": "only", "agent": { "id": id }, "input": { "mapping": { "n": 1 } } }]
            }})
            .to_string(),
        ),
        state,
    }
}

/// `orchestr8 serve`'s REST API over `store`, running `agents`, and the
/// orchestrator behind it; on a shared store it takes over the executions
/// of nodes that die, as `serve` does.
pub async fn execution_server(
    sandbox: &Sandbox,
    store: impl Store + 'static,
    agents: HashMap<String, RegisteredAgent>,
) -> (SocketAddr, Arc<Orchestrator>) {
    let chain = Resilience::default();
    let agents = Arc::new(AgentRegistry::fixed(agents));
    let runner =
        AgentStepRunner::over(Invoker::new(sandbox.clone(), chain.clone()), agents.clone());
    let orchestrator =
        Arc::new(Orchestrator::new(Engine::new(Arc::new(runner)), Arc::new(store)).unwrap());
    let service = ExecutionService::new(
        orchestrator.clone(),
        agents,
        ServiceOptions {
            max_running: 256,
            queue_capacity: 4096,
            ..ServiceOptions::default()
        },
        Arc::new(Metrics::new(Some(chain))),
    );
    service.keep_taking_over(|_| {});
    let addr = spawn_server(service.router(&HttpOptions::default())).await;
    (addr, orchestrator)
}

/// One keep-alive HTTP/1.1 connection.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client { sender }
    }

    /// POSTs `body` to `path`: how long the answer took, and the answer.
    /// Panics on a failure status: a bench of failures measures nothing.
    pub async fn post(&mut self, path: &str, body: Bytes) -> (Duration, Bytes) {
        let request = hyper::Request::post(path)
            .header("host", "bench")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        self.send(request).await
    }

    /// GETs `path`: how long the answer took, and the answer.
    pub async fn get(&mut self, path: &str) -> (Duration, Bytes) {
        let request = hyper::Request::get(path)
            .header("host", "bench")
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(request).await
    }

    async fn send(&mut self, request: hyper::Request<Full<Bytes>>) -> (Duration, Bytes) {
        let started = Instant::now();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let took = started.elapsed();
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        (took, bytes)
    }
}
