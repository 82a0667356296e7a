//! Every example in `examples/` builds, passes its own test cases, and (when
//! it needs no outside service) runs, as the README of each says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rstest::rstest;
use support::{ok, orchestr8};

fn run(example: &Path, state: &Path, args: &[&str]) -> Output {
    orchestr8()
        .arg("-C")
        .arg(example)
        .args(args)
        .env("ORCHESTR8_STATE_DIR", state)
        .output()
        .unwrap()
}

#[rstest]
#[case::fan_out_and_join("text-pipeline", Some(&[][..]))]
#[case::sequential_over_real_apis("repo-brief", None)]
#[case::resilience("resilience", Some(&[][..]))]
#[case::sandbox_limits("sandbox-limits", Some(&[][..]))]
#[case::three_languages("polyglot", Some(&[][..]))]
#[case::research_on_recorded_context7("research", Some(&["--fixtures", "../../fixtures/context7.json"][..]))]
fn example_builds_passes_its_tests_and_runs(
    #[case] name: &str,
    #[case] offline_run: Option<&[&str]>,
) {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let state = tempfile::tempdir().unwrap();
    ok(&run(&example, state.path(), &["build"]));
    let out = ok(&run(&example, state.path(), &["test"]));
    assert!(out.trim_end().ends_with(" 0 failed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    if let Some(extra) = offline_run {
        let mut args = vec!["run", "workflow.json", "--quiet"];
        args.extend_from_slice(extra);
        let out = ok(&run(&example, state.path(), &args));
        assert!(out.contains("succeeded"), "{out}");
    }
}

#[test]
fn the_research_example_runs_on_fixtures_without_a_key_and_says_so() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/research");
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(example.join("run"))
        .env("ORCHESTR8", env!("CARGO_BIN_EXE_orchestr8"))
        .env(
            "CARGO_TARGET_DIR",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/scaffolded-agents"),
        )
        .env_remove("CONTEXT7_API_KEY")
        .env(
            "ORCHESTR8_CACHE_DIR",
            std::env::temp_dir().join("orchestr8-cli-tests-cache"),
        )
        .env("ORCHESTR8_STATE_DIR", state.path())
        .env("NO_COLOR", "1")
        .args(["--quiet"])
        .output()
        .unwrap();
    let stdout = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("against recorded fixtures"), "{stderr}");
    assert!(
        stdout.contains("\"library\": \"/tokio-rs/axum\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"library\": \"/actix/actix-web\""),
        "{stdout}"
    );
}

#[test]
fn a_run_on_fixtures_names_the_request_no_fixture_answers() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/research");
    let state = tempfile::tempdir().unwrap();
    ok(&run(&example, state.path(), &["build"]));
    let empty = state.path().join("none.json");
    std::fs::write(&empty, "[]").unwrap();
    let out = run(
        &example,
        state.path(),
        &[
            "run",
            "workflow.json",
            "--quiet",
            "--fixtures",
            empty.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "no fixture answers GET https://context7.com/api/v2/libs/search?libraryName=axum"
        ),
        "{stderr}"
    );
}

/// The eval example measures the research agent's two synthesis prompts on
/// recorded answers and verdicts: a fresh run gives the committed report
/// (apart from the time it ran and its latencies), verdict included.
#[test]
fn the_eval_example_gives_its_committed_report() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/eval");
    let state = tempfile::tempdir().unwrap();
    ok(&run(&example, state.path(), &["build"]));
    let fresh = state.path().join("report.md");
    let out = run(
        &example,
        state.path(),
        &[
            "eval",
            "evals/synthesis.json",
            "--report",
            fresh.to_str().unwrap(),
        ],
    );
    let terminal = ok(&out);
    assert!(
        terminal.contains("cited is better than research: +60 points"),
        "{terminal}"
    );
    let varying = regex::Regex::new(r"\d+ ms|\d{4}-\d\d-\d\dT[0-9:.]+Z").unwrap();
    let stable = |text: &str| varying.replace_all(text, "…").to_string();
    let committed = std::fs::read_to_string(example.join("report.md")).unwrap();
    let fresh = std::fs::read_to_string(&fresh).unwrap();
    assert_eq!(
        stable(&fresh),
        stable(&committed),
        "examples/eval/report.md is stale: run `orchestr8 -C examples/eval eval evals/synthesis.json --report report.md`"
    );
}
