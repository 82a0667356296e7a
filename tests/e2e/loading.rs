//! Loading agents: clear errors for everything that is not an agent, and
//! the agent's own description for everything that is.

use orchestr8_host::sandbox::{InvokeError, LoadError, SandboxPolicy};
use orchestr8_host::{Coded, ErrorCode};
use serde_json::json;

use crate::support::{call, load, sandbox};

#[tokio::test]
async fn demo_agent_describes_itself() {
    let agent = load("text-stats").await;
    let info = agent.info();
    assert_eq!(info.id, "@orchestr8/text-stats");
    assert_eq!(info.version, "0.1.0");
    assert!(!info.description.is_empty());
    assert!(info.input_schema["properties"]["text"].is_object());
    assert!(info.output_schema["properties"]["words"].is_object());
    assert_eq!(agent.digest().len(), 64);
}

#[tokio::test]
async fn demo_agent_computes_text_statistics() {
    let text = "The cat sat. The cat ran!\nA dog watched?";
    let outcome = call(
        "text-stats",
        json!({"text": text, "top": 1}),
        &SandboxPolicy::default(),
    )
    .await;
    let out = outcome.result.unwrap();
    assert_eq!(out["words"], 9);
    assert_eq!(out["lines"], 2);
    assert_eq!(out["sentences"], 3);
    assert_eq!(out["topWords"], json!([{"word": "cat", "count": 2}]));
    assert_eq!(outcome.logs.len(), 1);
    assert_eq!(outcome.logs[0].message, "analysed 9 words");
}

#[tokio::test]
async fn input_that_does_not_match_the_schema_is_invalid_input() {
    let outcome = call(
        "text-stats",
        json!({"txet": "typo"}),
        &SandboxPolicy::default(),
    )
    .await;
    let error = outcome.result.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidInput);
    assert!(error.to_string().contains("text"), "{error}");
}

#[tokio::test]
async fn agent_reported_invalid_input_keeps_its_message() {
    let outcome = call(
        "text-stats",
        json!({"text": "x", "top": 1000}),
        &SandboxPolicy::default(),
    )
    .await;
    match outcome.result.unwrap_err() {
        InvokeError::InvalidInput(f) => assert_eq!(f.message, "`top` must be at most 100"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_policy_beyond_the_engine_ceiling_is_invalid_config() {
    let mut policy = SandboxPolicy::default();
    policy.limits.memory_bytes = 64 << 30;
    let outcome = call("text-stats", json!({"text": "x"}), &policy).await;
    assert_eq!(outcome.result.unwrap_err().code(), ErrorCode::InvalidConfig);
}

#[tokio::test]
async fn a_missing_file_is_agent_not_found() {
    let err = sandbox().load("/no/such/agent.wasm").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::AgentNotFound);
    assert!(err.to_string().contains("/no/such/agent.wasm"));
}

async fn load_bytes(bytes: &[u8]) -> LoadError {
    sandbox()
        .load_bytes(bytes.to_vec(), "test.wasm".into())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn text_is_not_a_wasm_file() {
    let err = load_bytes(b"#!/bin/sh\necho hi\n").await;
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");
    assert_eq!(err.code(), ErrorCode::InvalidAgent);
}

#[tokio::test]
async fn a_core_module_is_not_a_component() {
    let err = load_bytes(b"\0asm\x01\0\0\0").await;
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"));
}

#[tokio::test]
async fn a_component_without_the_handler_export_is_not_an_agent() {
    // The smallest valid component: it exports nothing.
    let err = load_bytes(b"\0asm\x0d\0\x01\0").await;
    match &err {
        LoadError::MissingExport { missing, found, .. } => {
            assert_eq!(missing, "orchestr8:agent/handler@0.1.0");
            assert!(found.is_empty());
        }
        other => panic!("unexpected {other}"),
    }
    assert!(
        err.to_string()
            .contains("does not implement orchestr8:agent")
    );
}

#[tokio::test]
async fn a_truncated_component_is_invalid() {
    let bytes = std::fs::read(crate::support::agent_path("text-stats")).unwrap();
    let err = load_bytes(&bytes[..bytes.len() / 2]).await;
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
}

#[tokio::test]
async fn compiled_agents_are_cached_on_disk_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox_caching_in(dir.path());
    let path = crate::support::agent_path("text-stats");
    let first = sandbox.load(&path).await.unwrap();
    let entries = compiled_components(dir.path());
    assert_eq!(entries.len(), 1, "one compiled entry");
    let name = entries[0].file_name().unwrap();
    assert!(name.to_string_lossy().starts_with(first.digest()));
    let second = sandbox.load(&path).await.unwrap();
    assert_eq!(first.digest(), second.digest());
    // A corrupt entry is ignored and recompiled.
    std::fs::write(&entries[0], b"garbage").unwrap();
    let third = sandbox.load(&path).await.unwrap();
    assert_eq!(third.info().id, "@orchestr8/text-stats");
}

#[tokio::test]
async fn a_rebuilt_component_reuses_the_functions_it_shares_with_the_last_build() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox_caching_in(dir.path());
    let bytes = std::fs::read(crate::support::agent_path("text-stats")).unwrap();
    let first = load_into(&sandbox, &bytes).await;
    let functions = compiled_functions(&dir.path().join("functions"));
    assert!(!functions.is_empty(), "its functions are cached one by one");

    // The same code with a byte changed outside it (a custom section, as a
    // non-reproducible toolchain's rebuild might add): a new digest, so the
    // whole-component cache misses, and its functions are found.
    let mut rebuilt = bytes.clone();
    rebuilt.extend_from_slice(&[0, 7, 5, b'b', b'u', b'i', b'l', b'd', 1]);
    let second = load_into(&sandbox, &rebuilt).await;
    assert_ne!(first.digest(), second.digest());
    assert_eq!(compiled_components(dir.path()).len(), 2);
    // wasmtime 48 keys about one function in eight differently on each
    // compile of the same code; the rest must be found.
    let again = compiled_functions(&dir.path().join("functions")).len() - functions.len();
    assert!(
        again * 4 < functions.len(),
        "{again} of {} functions compiled again",
        functions.len()
    );
    let outcome = sandbox
        .invoke(
            &second,
            &SandboxPolicy::default(),
            orchestr8_host::sandbox::InvocationRequest::new(json!({"text": "same code"})),
            &tokio_util::sync::CancellationToken::new(),
        )
        .await;
    assert_eq!(outcome.result.unwrap()["words"], 2);
}

#[test]
fn a_cache_directory_that_cannot_be_made_is_a_clear_setup_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = orchestr8_host::sandbox::Sandbox::new(orchestr8_host::sandbox::SandboxConfig {
        max_instances: 4,
        cache_dir: Some(file.path().join("cache")),
        ..Default::default()
    })
    .err()
    .expect("a file stands where the cache directory would go");
    assert!(
        matches!(err, orchestr8_host::sandbox::SetupError::Cache { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("cannot use the compile cache at `"),
        "{message}"
    );
    assert!(
        message.contains(&file.path().display().to_string()),
        "{message}"
    );
}

fn sandbox_caching_in(dir: &std::path::Path) -> orchestr8_host::sandbox::Sandbox {
    orchestr8_host::sandbox::Sandbox::new(orchestr8_host::sandbox::SandboxConfig {
        max_instances: 4,
        cache_dir: Some(dir.to_path_buf()),
        ..Default::default()
    })
    .unwrap()
}

async fn load_into(
    sandbox: &orchestr8_host::sandbox::Sandbox,
    bytes: &[u8],
) -> orchestr8_host::sandbox::LoadedAgent {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    sandbox.load(file.path()).await.unwrap()
}

fn compiled_components(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect()
}

/// Every compiled-function entry, sorted.
fn compiled_functions(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    all
}
