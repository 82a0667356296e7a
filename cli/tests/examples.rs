//! Every example in `examples/` builds, passes its own test cases, and (when
//! it needs no outside service) runs, as the README of each says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rstest::rstest;

fn orchestr8(example: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orchestr8"))
        .arg("-C")
        .arg(example)
        .args(args)
        .env(
            "ORCHESTR8_CACHE_DIR",
            std::env::temp_dir().join("orchestr8-cli-tests-cache"),
        )
        .env("ORCHESTR8_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[track_caller]
fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[rstest]
#[case::fan_out_and_join("text-pipeline", true)]
#[case::sequential_over_real_apis("repo-brief", false)]
#[case::resilience("resilience", true)]
#[case::sandbox_limits("sandbox-limits", true)]
fn example_builds_passes_its_tests_and_runs(#[case] name: &str, #[case] runs_offline: bool) {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let state = tempfile::tempdir().unwrap();
    ok(&orchestr8(&example, state.path(), &["build"]));
    let out = ok(&orchestr8(&example, state.path(), &["test"]));
    assert!(out.trim_end().ends_with(" 0 failed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    if runs_offline {
        let out = ok(&orchestr8(
            &example,
            state.path(),
            &["run", "workflow.json", "--quiet"],
        ));
        assert!(out.contains("succeeded"), "{out}");
    }
}
