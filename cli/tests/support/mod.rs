//! What the CLI's test binaries share: the `orchestr8` command with test
//! settings, exit status checks, and servers that announce their address.
//! Each test binary uses its own part of it.
#![allow(dead_code)]

pub mod api;
pub mod fake;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `orchestr8` binary under test, with a shared compile cache, plain
/// output and no token from the environment.
pub fn orchestr8() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orchestr8"));
    command
        .env(
            "ORCHESTR8_CACHE_DIR",
            std::env::temp_dir().join("orchestr8-cli-tests-cache"),
        )
        // The pinned Python and TypeScript toolchains, installed once by
        // scripts/build-agents and shared by every test that builds.
        .env(
            "ORCHESTR8_TOOLCHAINS_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/toolchains"),
        )
        // Agent crates build in the tests' one warm target directory, not
        // in the user's ~/.cache (as `orchestr8 build` would by default).
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scaffolded-agents"),
        )
        .env("NO_COLOR", "1")
        .env_remove("ORCHESTR8_TOKEN")
        // The agents are compiled for wasm32-wasip2: scripts/coverage's
        // instrumenting rustc wrapper is for the host build and must not
        // reach them (wasm32 has no profiler runtime).
        .env_remove("RUSTC_WRAPPER")
        .env_remove("__CARGO_LLVM_COV_RUSTC_WRAPPER");
    command
}

/// The stdout of a command that must have succeeded.
#[track_caller]
pub fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The stderr of a command that must have exited with `code`.
#[track_caller]
pub fn failed(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// A server process (`serve`, `agent serve`), stopped when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, from its `listening on` line.
    pub base: String,
}

impl Server {
    /// Starts `command` and waits for the line that says where it listens.
    pub fn start(mut command: Command) -> Server {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Server { child, base }
    }
}

impl Server {
    /// Sends SIGTERM, as a service manager would, and waits up to `within`
    /// for the process to exit; its exit code, or `None` if it had to be
    /// killed.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if sent.is_ok_and(|s| s.success()) {
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                match self.child.try_wait() {
                    Ok(Some(status)) => return status.code(),
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => break,
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

/// Stopped the way it is in production (SIGTERM), so that it also writes
/// its coverage profile under scripts/coverage; killed if it lingers.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(Duration::from_secs(5));
        }
    }
}

/// The Python of the virtual environment holding the outside clients the
/// tests drive (Schemathesis, the official MCP SDK), pinned in
/// `tests/clients/requirements.txt` and installed by `scripts/test`.
pub fn clients_python() -> std::path::PathBuf {
    let venv = std::env::var_os("ORCHESTR8_CLIENTS_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/clients-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: scripts/test installs the outside clients (Schemathesis, the MCP SDK) there",
        python.display()
    );
    python
}

/// A file of `tests/clients/`.
pub fn client_script(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(name)
}
