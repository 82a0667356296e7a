//! Shared fixtures: the agents, one sandbox per test process, and a
//! loopback HTTP server that counts its connections.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use orchestr8_host::sandbox::{
    InvocationOutcome, InvocationRequest, LoadedAgent, Sandbox, SandboxConfig, SandboxPolicy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Path of a first-party agent component, by crate name (`text-stats`) or,
/// for a Python or TypeScript agent, `py-<name>` or `ts-<name>`.
pub fn agent_path(name: &str) -> PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agents/target");
    // Rust agents in cargo's folder; Python and TypeScript ones in guests/.
    let path = ["wasm32-wasip2/release", "guests"]
        .iter()
        .map(|dir| built.join(dir).join(&file))
        .find(|p| p.is_file());
    path.unwrap_or_else(|| {
        panic!(
            "{file} is missing: build the agents first with `scripts/build-agents` (or `scripts/test`)"
        )
    })
}

/// One sandbox (one engine, one pool) for the whole test process, with a
/// private compile cache.
pub fn sandbox() -> Sandbox {
    static SANDBOX: OnceLock<(Sandbox, tempfile::TempDir)> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let cache = tempfile::tempdir().unwrap();
            let sandbox = Sandbox::new(SandboxConfig {
                max_instances: 256,
                cache_dir: Some(cache.path().to_path_buf()),
                ..SandboxConfig::default()
            })
            .unwrap();
            (sandbox, cache)
        })
        .0
        .clone()
}

pub async fn load(name: &str) -> LoadedAgent {
    sandbox().load(agent_path(name)).await.unwrap()
}

/// Loads `name` and invokes it once with `input` under `policy`.
pub async fn call(
    name: &str,
    input: serde_json::Value,
    policy: &SandboxPolicy,
) -> InvocationOutcome {
    let agent = load(name).await;
    sandbox()
        .invoke(
            &agent,
            policy,
            InvocationRequest::new(input),
            &CancellationToken::new(),
        )
        .await
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers every request with a
/// fixed body and counts the connections it accepted.
pub struct TestServer {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(body: &'static str) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        TestServer {
            port,
            connections,
            task,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Lets `policy` reach this server.
    pub fn grant(&self, policy: &mut SandboxPolicy) {
        let host = format!("127.0.0.1:{}", self.port).parse().unwrap();
        policy.grants.allowed_hosts.push(host);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server that accepts connections and never answers, counting them.
pub struct SilentServer {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        SilentServer {
            port,
            accepted,
            task,
        }
    }

    /// Lets `policy` reach this server.
    pub fn grant(&self, policy: &mut SandboxPolicy) {
        let host = format!("127.0.0.1:{}", self.port).parse().unwrap();
        policy.grants.allowed_hosts.push(host);
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
