//! The `orchestr8` binary, run as a real process against real agents.
//!
//! The agents must be built first (`scripts/test` does it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use rstest::rstest;

fn agent(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../agents/target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test",
        path.display()
    );
    path
}

fn orchestr8(args: &[&str]) -> Output {
    let cache = std::env::temp_dir().join("orchestr8-cli-tests-cache");
    Command::new(env!("CARGO_BIN_EXE_orchestr8"))
        .args(args)
        .env("ORCHESTR8_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `orchestr8 agent call <agent> <extra…>`.
fn call(name: &str, extra: &[&str]) -> Output {
    let path = agent(name);
    let mut args = vec!["agent", "call", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    orchestr8(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn call_prints_the_output_and_exits_zero() {
    let out = call("text-stats", &["--input", r#"{"text":"one two three"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let output: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["words"], 3);
    assert!(stderr(&out).contains("[agent info] analysed 3 words"));
}

#[test]
fn call_reads_input_from_a_file_and_prints_json_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"text":"a b"}"#).unwrap();
    let out = call(
        "text-stats",
        &["--input", &format!("@{}", input.display()), "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["ok"], true);
    assert_eq!(outcome["output"]["words"], 2);
    let attempt = &outcome["attempts"][0];
    assert_eq!(attempt["logs"][0]["message"], "analysed 2 words");
    assert!(attempt["stats"]["fuelConsumed"].as_u64().unwrap() > 0);
}

#[test]
fn info_describes_the_agent() {
    let path = agent("text-stats");
    let out = orchestr8(&["agent", "info", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["id"], "@orchestr8/text-stats");
    assert!(info["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(info["inputSchema"]["properties"]["text"].is_object());
}

#[rstest]
#[case::loop_out_of_fuel("hostile-loop", &["--fuel", "50000000"], "FUEL_EXHAUSTED", "ran out of fuel")]
#[case::loop_past_deadline("hostile-loop", &["--fuel", "100000000000000", "--timeout-ms", "300"], "TIMEOUT", "300 ms deadline")]
#[case::memory_bomb("hostile-memory", &["--memory-mb", "32"], "MEMORY_LIMIT", "memory limit of 33554432 bytes")]
#[case::recursion("hostile-recursion", &[], "TRAP", "stack overflow")]
#[case::panic("hostile-panic", &[], "TRAP", "hostile agent gave up on purpose")]
#[case::snoop("hostile-snoop", &[], "CAPABILITY_DENIED", "api-key")]
#[case::fetch("hostile-fetch", &["--input", r#"{"url":"https://example.com/"}"#], "CAPABILITY_DENIED", "not on the agent's allowlist")]
#[case::huge_output("hostile-output", &["--memory-mb", "512"], "OUTPUT_TOO_LARGE", "exceeds the 8388608-byte output limit")]
#[case::log_flood("hostile-logs", &["--fuel", "200000000"], "FUEL_EXHAUSTED", "ran out of fuel")]
#[case::sleeper("hostile-sleep", &["--timeout-ms", "300"], "TIMEOUT", "300 ms deadline")]
#[case::liar("hostile-liar", &["--input", r#"{"count":"three"}"#], "INVALID_OUTPUT", "/count")]
fn hostile_agents_exit_non_zero_with_their_code(
    #[case] name: &str,
    #[case] extra: &[&str],
    #[case] code: &str,
    #[case] message: &str,
) {
    let out = call(name, extra);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert!(err.contains(&format!("error[{code}]")), "{name}: {err}");
    assert!(err.contains(message), "{name}: {err}");
}

#[test]
fn retries_carry_a_flaky_agent_to_success() {
    let out = call(
        "flaky",
        &[
            "--input",
            r#"{"failures":2}"#,
            "--max-attempts",
            "3",
            "--retry-base-ms",
            "10",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let output: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["attempt"], 3);
    assert_eq!(stderr(&out).matches("[retry] RETRYABLE").count(), 2);
}

#[test]
fn exhausted_retries_say_so() {
    let out = call(
        "flaky",
        &[
            "--input",
            r#"{"failures":9}"#,
            "--max-attempts",
            "2",
            "--retry-base-ms",
            "10",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["error"]["code"], "RETRYABLE");
    assert_eq!(outcome["error"]["details"]["attempts"], 2);
    assert!(
        outcome["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gave up after 2 attempts")
    );
    assert_eq!(outcome["attempts"].as_array().unwrap().len(), 2);
}

#[test]
fn a_missing_agent_exits_three() {
    let out = orchestr8(&["agent", "call", "/no/such.wasm"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("error[AGENT_NOT_FOUND]"));
}

#[test]
fn a_file_that_is_not_an_agent_exits_three() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.wasm");
    std::fs::write(&file, "just text").unwrap();
    let out = orchestr8(&["agent", "info", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("error[INVALID_AGENT]"));
    assert!(stderr(&out).contains("not a WebAssembly file"));
}

#[rstest]
#[case::malformed_json(&["--input", "{not json"], "not valid JSON")]
#[case::bad_host(&["--allow-host", "ftp://x"], "only http:// and https://")]
#[case::bad_dir(&["--dir", "nocolon"], "HOST_PATH:GUEST_PATH")]
#[case::zero_timeout(&["--timeout-ms", "0"], "timeoutMs")]
#[case::too_many_attempts(&["--max-attempts", "11"], "maxAttempts")]
fn bad_command_lines_exit_two(#[case] extra: &[&str], #[case] message: &str) {
    let out = call("text-stats", extra);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(message), "{}", stderr(&out));
}

#[rstest]
#[case::workflow(&[][..], "workflow.schema.json")]
#[case::eval_suite(&["--eval-suite"][..], "eval-suite.schema.json")]
fn the_published_schemas_are_current(#[case] extra: &[&str], #[case] file: &str) {
    let mut args = vec!["schema"];
    args.extend_from_slice(extra);
    let out = orchestr8(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let published = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src")
        .join(file);
    let current = String::from_utf8(out.stdout).unwrap();
    if std::fs::read_to_string(&published).ok().as_deref() != Some(current.as_str()) {
        panic!(
            "docs/src/{file} is stale: run `orchestr8 {}> docs/src/{file}`",
            args.iter().map(|a| format!("{a} ")).collect::<String>()
        );
    }
}
