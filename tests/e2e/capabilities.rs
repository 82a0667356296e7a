//! Deny-by-default capabilities: files, environment, secrets, outbound HTTP.

use orchestr8_host::sandbox::{Capability, DirGrant, HttpFixtures, SandboxPolicy, SecretValue};
use orchestr8_host::{Coded, ErrorCode};
use serde_json::json;

use crate::support::{TestServer, call};

fn hosts(patterns: &[String]) -> SandboxPolicy {
    let mut policy = SandboxPolicy::default();
    policy.grants.allowed_hosts = patterns.iter().map(|p| p.parse().unwrap()).collect();
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_http_to_a_loopback_server_works() {
    let server = TestServer::start("hello from loopback").await;
    let url = format!("http://127.0.0.1:{}/greeting", server.port);
    let policy = hosts(&[format!("127.0.0.1:{}", server.port)]);
    let outcome = call("hostile-fetch", json!({ "url": url }), &policy).await;
    let output = outcome.result.unwrap();
    assert_eq!(output["status"], 200);
    assert_eq!(output["body"], "hello from loopback");
    assert_eq!(server.connections(), 1);
    assert!(outcome.denials.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_host_is_refused_before_any_connection() {
    let server = TestServer::start("you should not see this").await;
    let url = format!("http://127.0.0.1:{}/", server.port);
    // Allowed: a different port on the same address.
    let policy = hosts(&[format!("127.0.0.1:{}", server.port.wrapping_add(1))]);
    let outcome = call("hostile-fetch", json!({ "url": url }), &policy).await;
    let error = outcome.result.unwrap_err();
    assert_eq!(error.code(), ErrorCode::CapabilityDenied);
    assert_eq!(server.connections(), 0, "the server must see nothing");
    assert_eq!(outcome.denials.len(), 1);
    assert_eq!(outcome.denials[0].capability, Capability::Http);
    assert_eq!(outcome.denials[0].target, format!("GET {url}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_name_that_resolves_to_loopback_is_refused() {
    let server = TestServer::start("inside network").await;
    let url = format!("http://localhost:{}/", server.port);
    let policy = hosts(&[format!("localhost:{}", server.port)]);
    let outcome = call("hostile-fetch", json!({ "url": url }), &policy).await;
    assert_eq!(
        outcome.result.unwrap_err().code(),
        ErrorCode::CapabilityDenied
    );
    assert_eq!(server.connections(), 0);
    assert!(
        outcome.denials[0].reason.contains("internal addresses"),
        "{:?}",
        outcome.denials
    );
}

#[tokio::test]
async fn nothing_is_visible_without_grants() {
    let host_var = std::env::vars()
        .next()
        .map(|(k, _)| k)
        .unwrap_or_else(|| "PATH".into());
    let input = json!({
        "strict": false,
        "read": ["/etc/passwd", "Cargo.toml", "/proc/self/environ"],
        "write": ["/tmp/orchestr8-escape"],
        "env": [host_var.clone(), "HOME", "PATH"],
        "list": ["/", "."],
    });
    let outcome = call("hostile-snoop", input, &SandboxPolicy::default()).await;
    let out = outcome.result.unwrap();
    for (path, result) in out["read"].as_object().unwrap() {
        assert!(
            result.as_str().unwrap().starts_with("error:"),
            "{path} was readable: {result}"
        );
    }
    assert!(
        out["write"]["/tmp/orchestr8-escape"]
            .as_str()
            .unwrap()
            .starts_with("error:")
    );
    assert!(!std::path::Path::new("/tmp/orchestr8-escape").exists());
    for (name, value) in out["env"].as_object().unwrap() {
        assert!(value.is_null(), "{name} was visible");
    }
    assert_eq!(out["allEnv"], json!([]));
    for (dir, entries) in out["list"].as_object().unwrap() {
        let entries = entries.as_array().unwrap();
        assert!(
            entries.len() == 1 && entries[0].as_str().unwrap().starts_with("error:"),
            "{dir} was listable: {entries:?}"
        );
    }
}

#[tokio::test]
async fn granted_read_only_directory_can_be_read_but_not_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "granted text").unwrap();
    let mut policy = SandboxPolicy::default();
    policy.grants.dirs.push(DirGrant {
        host_path: dir.path().to_path_buf(),
        guest_path: "/data".into(),
        writable: false,
        quota_bytes: None,
        quota_files: None,
    });
    let input = json!({
        "strict": false,
        "read": ["/data/notes.txt"],
        "write": ["/data/new.txt", "/data/notes.txt"],
        "list": ["/data"],
    });
    let out = call("hostile-snoop", input, &policy).await.result.unwrap();
    assert_eq!(out["read"]["/data/notes.txt"], "granted text");
    assert!(
        out["write"]["/data/new.txt"]
            .as_str()
            .unwrap()
            .starts_with("error:")
    );
    assert!(
        out["write"]["/data/notes.txt"]
            .as_str()
            .unwrap()
            .starts_with("error:")
    );
    assert!(!dir.path().join("new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "granted text"
    );
    assert_eq!(out["list"]["/data"], json!(["notes.txt"]));
}

#[tokio::test]
async fn granted_writable_directory_can_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = SandboxPolicy::default();
    policy.grants.dirs.push(DirGrant {
        host_path: dir.path().to_path_buf(),
        guest_path: "/out".into(),
        writable: true,
        quota_bytes: None,
        quota_files: None,
    });
    let out = call(
        "hostile-snoop",
        json!({"strict": false, "write": ["/out/result.txt"]}),
        &policy,
    )
    .await
    .result
    .unwrap();
    assert_eq!(out["write"]["/out/result.txt"], "written");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("result.txt")).unwrap(),
        "written by hostile-snoop"
    );
}

#[tokio::test]
async fn granted_env_var_is_the_only_one_visible() {
    let mut policy = SandboxPolicy::default();
    policy.grants.env = vec!["GREETING".into()];
    policy.env_values.insert("GREETING".into(), "hi".into());
    let out = call(
        "hostile-snoop",
        json!({"strict": false, "env": ["GREETING", "PATH"]}),
        &policy,
    )
    .await
    .result
    .unwrap();
    assert_eq!(out["env"]["GREETING"], "hi");
    assert!(out["env"]["PATH"].is_null());
    assert_eq!(out["allEnv"], json!(["GREETING"]));
}

#[tokio::test]
async fn secrets_are_readable_only_when_granted_and_refusals_are_recorded() {
    let mut policy = SandboxPolicy::default();
    policy.grants.secrets = vec!["api-key".into(), "unset".into()];
    policy
        .secret_values
        .insert("api-key".into(), SecretValue::new("s3cr3t"));
    let outcome = call(
        "hostile-snoop",
        json!({"strict": false, "secrets": ["api-key", "unset", "other"]}),
        &policy,
    )
    .await;
    let out = outcome.result.unwrap();
    assert_eq!(out["secrets"]["api-key"], "read");
    assert!(
        out["secrets"]["unset"]
            .as_str()
            .unwrap()
            .contains("no value")
    );
    assert!(
        out["secrets"]["other"]
            .as_str()
            .unwrap()
            .contains("not granted")
    );
    assert_eq!(outcome.denials.len(), 1);
    assert_eq!(outcome.denials[0].capability, Capability::Secret);
    assert_eq!(outcome.denials[0].target, "other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_mode_answers_from_fixtures_and_records_unhandled_requests() {
    let fixtures = HttpFixtures::new(
        serde_json::from_value(json!([{
            "request": { "url": "https://api.github.com/repos/o/r" },
            "response": { "status": 200, "body": "recorded" }
        }]))
        .unwrap(),
    );
    let mut policy = hosts(&["api.github.com".to_string()]);
    policy.http_fixtures = Some(fixtures.clone());

    let outcome = call(
        "hostile-fetch",
        json!({ "url": "https://api.github.com/repos/o/r" }),
        &policy,
    )
    .await;
    assert_eq!(
        outcome.result.unwrap(),
        json!({ "status": 200, "body": "recorded" })
    );

    let outcome = call(
        "hostile-fetch",
        json!({ "url": "https://api.github.com/repos/o/other" }),
        &policy,
    )
    .await;
    assert!(outcome.result.is_err());
    assert_eq!(
        fixtures.unhandled()[0].to_string(),
        "GET https://api.github.com/repos/o/other"
    );

    // The allowlist still comes first: fixtures never widen a grant.
    let outcome = call(
        "hostile-fetch",
        json!({ "url": "https://example.com/" }),
        &policy,
    )
    .await;
    assert_eq!(
        outcome.result.unwrap_err().code(),
        ErrorCode::CapabilityDenied
    );
    assert_eq!(fixtures.unhandled().len(), 1);
}
