//! The sandbox's conformance table: every single-call attack of the hostile
//! agents, what it must end in, and what it did. The test runs them one by
//! one (the host must answer a normal call after each) and checks that
//! `docs/src/sandbox-conformance.md` holds exactly the table it observed, so
//! the published claims are the tested ones. After changing an attack, run
//! it with `ORCHESTR8_UPDATE_DOCS=1` to rewrite the page.

use std::path::PathBuf;
use std::time::Duration;

use orchestr8_host::Coded;
use orchestr8_host::sandbox::{
    DirGrant, InvocationOutcome, MAX_ERROR_DETAILS_BYTES, MAX_ERROR_MESSAGE_BYTES,
    MAX_TARGET_BYTES, SandboxPolicy,
};
use serde_json::{Value, json};

use crate::hostile::limits;
use crate::support::{SilentServer, TestServer, call};

struct Attack {
    /// What the agent tries, for people.
    attack: &'static str,
    agent: &'static str,
    input: Value,
    policy: SandboxPolicy,
    /// What must happen, as [`observe`] words it.
    expected: &'static str,
}

fn writable(dir: &std::path::Path, f: impl FnOnce(&mut DirGrant)) -> SandboxPolicy {
    let mut grant = DirGrant {
        host_path: dir.to_path_buf(),
        guest_path: "/out".into(),
        writable: true,
        quota_bytes: None,
        quota_files: None,
    };
    f(&mut grant);
    let mut policy = SandboxPolicy::default();
    policy.grants.dirs.push(grant);
    policy
}

/// What an outcome amounts to, in words that do not change from run to
/// run: the code (or `ok`), refusals and what bounds held.
fn observe(outcome: &InvocationOutcome) -> String {
    let mut seen = match &outcome.result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code().as_str().to_string(),
    };
    let refused = outcome.denials.len() as u64 + outcome.denials_dropped;
    if refused > 0 {
        let longest = outcome.denials.iter().map(|d| d.target.len()).max();
        let plural = if refused == 1 { "" } else { "s" };
        seen.push_str(&format!(
            "; {refused} refusal{plural}, {} kept",
            outcome.denials.len()
        ));
        // A kept target is cut to the cap plus a note of what was cut.
        if longest.is_some_and(|l| l > MAX_TARGET_BYTES + 64) {
            seen.push_str(", a target past the cap");
        }
    }
    if outcome.logs_dropped > 0 {
        seen.push_str("; logs capped");
    }
    if let Err(e) = &outcome.result {
        let body = e.to_body();
        let size = body.message.len() + body.details.map_or(0, |d| d.to_string().len());
        if size > MAX_ERROR_MESSAGE_BYTES + MAX_ERROR_DETAILS_BYTES + 1024 {
            seen.push_str("; an error past the caps");
        }
    }
    seen
}

fn attacks(out: &std::path::Path, silent_server: &SilentServer) -> Vec<Attack> {
    let silent = format!("127.0.0.1:{}", silent_server.port);
    let mut hog = limits(|l| l.timeout_ms = 1_000);
    silent_server.grant(&mut hog);
    vec![
        Attack {
            attack: "endless loop, fuel budget of 50M",
            agent: "hostile-loop",
            input: json!({}),
            policy: limits(|l| l.fuel = 50_000_000),
            expected: "FUEL_EXHAUSTED",
        },
        Attack {
            attack: "endless loop, unlimited fuel, 300 ms deadline",
            agent: "hostile-loop",
            input: json!({}),
            policy: limits(|l| {
                l.fuel = u64::MAX;
                l.timeout_ms = 300;
            }),
            expected: "TIMEOUT",
        },
        Attack {
            attack: "allocates 1 MiB blocks forever, 32 MiB cap",
            agent: "hostile-memory",
            input: json!({}),
            policy: limits(|l| l.memory_bytes = 32 << 20),
            expected: "MEMORY_LIMIT",
        },
        Attack {
            attack: "unbounded recursion",
            agent: "hostile-recursion",
            input: json!({}),
            policy: SandboxPolicy::default(),
            expected: "TRAP",
        },
        Attack {
            attack: "panics",
            agent: "hostile-panic",
            input: json!({}),
            policy: SandboxPolicy::default(),
            expected: "TRAP",
        },
        Attack {
            attack: "sleeps inside a host call, 300 ms deadline",
            agent: "hostile-sleep",
            input: json!({}),
            policy: limits(|l| l.timeout_ms = 300),
            expected: "TIMEOUT",
        },
        Attack {
            attack: "returns 100 MiB of output, 512 MiB memory",
            agent: "hostile-output",
            input: json!({}),
            policy: limits(|l| l.memory_bytes = 512 << 20),
            expected: "OUTPUT_TOO_LARGE",
        },
        Attack {
            attack: "returns 100 MiB of output, default memory",
            agent: "hostile-output",
            input: json!({}),
            policy: SandboxPolicy::default(),
            expected: "MEMORY_LIMIT",
        },
        Attack {
            attack: "reads /etc/passwd, $HOME and a secret it was not granted",
            agent: "hostile-snoop",
            input: json!({}),
            policy: SandboxPolicy::default(),
            expected: "CAPABILITY_DENIED; 1 refusal, 1 kept",
        },
        Attack {
            attack: "logs without end, fuel budget of 200M",
            agent: "hostile-logs",
            input: json!({}),
            policy: limits(|l| l.fuel = 200_000_000),
            expected: "FUEL_EXHAUSTED; logs capped",
        },
        Attack {
            attack: "fetches a host not on its allowlist",
            agent: "hostile-fetch",
            input: json!({"url": "http://example.com/"}),
            policy: SandboxPolicy::default(),
            expected: "CAPABILITY_DENIED; 1 refusal, 1 kept",
        },
        Attack {
            attack: "asks for 200 ungranted secrets with 1 MiB names",
            agent: "hostile-tenant",
            input: json!({"attack": "secret-names", "count": 200, "bytes": 1 << 20}),
            policy: SandboxPolicy::default(),
            expected: "ok; 200 refusals, 64 kept",
        },
        Attack {
            attack: "fails with an 8 MiB message and 8 MiB of details",
            agent: "hostile-tenant",
            input: json!({"attack": "huge-error", "bytes": 8 << 20}),
            policy: SandboxPolicy::default(),
            expected: "FATAL",
        },
        Attack {
            attack: "builds 8 KiB HTTP header sets until refused",
            agent: "hostile-tenant",
            input: json!({"attack": "hoard-resources", "bytes": 8192}),
            policy: SandboxPolicy::default(),
            expected: "TRAP",
        },
        Attack {
            attack: "calls exit(1) inside process",
            agent: "hostile-tenant",
            input: json!({"attack": "exit", "status": 1}),
            policy: SandboxPolicy::default(),
            expected: "TRAP",
        },
        Attack {
            attack: "opens 300 requests to a granted server that never answers, 1 s deadline",
            agent: "hostile-tenant",
            input: json!({"attack": "connections", "authority": silent, "count": 300}),
            policy: hog,
            expected: "TIMEOUT; 284 refusals, 64 kept",
        },
        Attack {
            attack: "writes 10 × 300 kB into a writable grant with a 1 MiB quota",
            agent: "hostile-tenant",
            input: json!({"attack": "write", "dir": "/out", "files": 10, "bytes": 300_000}),
            policy: writable(&out.join("bytes"), |g| g.quota_bytes = Some(1 << 20)),
            expected: "ok; 1 refusal, 1 kept",
        },
        Attack {
            attack: "creates 10 files in a writable grant with a 4-file quota",
            agent: "hostile-tenant",
            input: json!({"attack": "write", "dir": "/out", "files": 10, "bytes": 1}),
            policy: writable(&out.join("files"), |g| g.quota_files = Some(4)),
            expected: "ok; 1 refusal, 1 kept",
        },
        Attack {
            attack: "links ../../../etc/passwd into a writable grant",
            agent: "hostile-tenant",
            input: json!({"attack": "symlink", "link": "escape", "target": "../../../etc/passwd"}),
            policy: writable(&out.join("links"), |_| {}),
            expected: "ok; 1 refusal, 1 kept",
        },
    ]
}

async fn normal_call_still_works(server: &TestServer) {
    let mut policy = SandboxPolicy::default();
    server.grant(&mut policy);
    let url = format!("http://127.0.0.1:{}/", server.port);
    let outcome = call("hostile-fetch", json!({ "url": url }), &policy).await;
    assert_eq!(outcome.result.unwrap()["body"], "fine");
}

#[tokio::test]
async fn every_attack_ends_as_published() {
    let out = tempfile::tempdir().unwrap();
    for dir in ["bytes", "files", "links"] {
        std::fs::create_dir(out.path().join(dir)).unwrap();
    }
    let silent = SilentServer::start().await;
    let server = TestServer::start("fine").await;
    let mut table = String::from("| Attack | Agent | Expected | Observed |\n|---|---|---|---|\n");
    let mut wrong = Vec::new();
    for a in attacks(out.path(), &silent) {
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            call(a.agent, a.input.clone(), &a.policy),
        )
        .await
        .unwrap_or_else(|_| panic!("{}: the host did not answer", a.attack));
        let seen = observe(&outcome);
        let mark = if seen == a.expected { "✅" } else { "❌" };
        if seen != a.expected {
            wrong.push(format!(
                "{}: expected `{}`, got `{seen}`",
                a.attack, a.expected
            ));
        }
        table.push_str(&format!(
            "| {} | `{}` | {} | {mark} {seen} |\n",
            a.attack, a.agent, a.expected
        ));
        normal_call_still_works(&server).await;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let page = format!("{}{table}", include_str!("conformance-header.md"));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/src/sandbox-conformance.md");
    if std::env::var_os("ORCHESTR8_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &page).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == page,
        "docs/src/sandbox-conformance.md is not the table this run observed: rerun with ORCHESTR8_UPDATE_DOCS=1\n{page}"
    );
}
