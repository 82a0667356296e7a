//! `orchestr8 run`, `validate`, `inspect` as real processes, real agents and
//! a real SQLite file — including a process killed mid-execution.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn agents_dir() -> String {
    let dir = root().join("agents/target/wasm32-wasip2/release");
    assert!(
        dir.join("text_stats.wasm").is_file(),
        "build the agents first: scripts/test"
    );
    dir.to_string_lossy().into_owned()
}

fn orchestr8(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orchestr8"));
    cmd.env(
        "ORCHESTR8_CACHE_DIR",
        std::env::temp_dir().join("orchestr8-cli-tests-cache"),
    )
    .env("ORCHESTR8_STATE_DIR", state)
    .env("NO_COLOR", "1");
    cmd
}

fn run(state: &Path, args: &[&str]) -> Output {
    orchestr8(state).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn example() -> String {
    root()
        .join("examples/text-pipeline/workflow.json")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_example_workflow_runs_and_its_journal_reads_back() {
    let state = tempfile::tempdir().unwrap();
    let agents = agents_dir();
    let out = run(
        state.path(),
        &["run", &example(), "--agents-dir", &agents, "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "succeeded");
    let steps = &result["steps"];
    for id in [
        "stats_title",
        "stats_body",
        "enrich",
        "summary",
        "long_read",
    ] {
        assert_eq!(steps[id]["status"], "succeeded", "{id}: {}", steps[id]);
    }
    assert_eq!(
        steps["enrich"]["attempts"], 2,
        "the flaky step needed its retry"
    );
    assert_eq!(steps["stats_body"]["captured"]["mostFrequent"], json!("no"));
    // With --json, progress is one JSON journal entry per line.
    let progress: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        progress.iter().any(|e| e["kind"] == "retry-scheduled"
            && e["stepId"] == "enrich"
            && e["attempt"] == 2)
    );

    let inspected = run(state.path(), &["inspect", "--last", "--json"]);
    assert_eq!(inspected.status.code(), Some(0), "{}", stderr(&inspected));
    let record: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(record["execution"]["id"], result["executionId"]);
    assert_eq!(record["execution"]["status"], "succeeded");
    let journal = record["journal"].as_array().unwrap();
    assert_eq!(journal.first().unwrap()["kind"], "execution-started");
    assert_eq!(journal.last().unwrap()["kind"], "execution-finished");
    for (i, entry) in journal.iter().enumerate() {
        assert_eq!(
            entry["seq"],
            i as u64 + 1,
            "entries are numbered without gaps"
        );
    }
    let text = run(
        state.path(),
        &["inspect", result["executionId"].as_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&text.stdout).contains("step-succeeded summary"));
}

#[test]
fn validate_prints_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    doc["steps"][0]["dependencies"] = json!(["summary"]);
    doc["steps"][1]["agent"]["id"] = json!("@orchestr8/missing");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = run(
        dir.path(),
        &[
            "validate",
            file.to_str().unwrap(),
            "--agents-dir",
            &agents_dir(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("error[VALIDATION]"), "{err}");
    assert!(
        err.contains("$.steps: dependency cycle: stats_title -> summary -> stats_title"),
        "{err}"
    );
    assert!(
        err.contains("$.steps[1].agent.id: unknown agent `@orchestr8/missing`"),
        "{err}"
    );
}

#[test]
fn malformed_documents_and_inputs_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(&file, "{\"version\": ").unwrap();
    let out = run(dir.path(), &["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not valid JSON"));

    let out = run(
        dir.path(),
        &[
            "run",
            &example(),
            "--agents-dir",
            &agents_dir(),
            "--input",
            "[1]",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must be a JSON object"));
    assert!(
        !dir.path().join("orchestr8.db").exists(),
        "nothing was recorded"
    );
}

#[test]
fn inspecting_an_unknown_execution_says_so() {
    let state = tempfile::tempdir().unwrap();
    let agents = agents_dir();
    let first = run(
        state.path(),
        &["run", &example(), "--agents-dir", &agents, "--quiet"],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let out = run(state.path(), &["inspect", "no-such-id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error[NOT_FOUND]"));
}

#[test]
fn a_killed_run_keeps_every_acknowledged_entry_and_reads_back_interrupted() {
    let state = tempfile::tempdir().unwrap();
    let wf = json!({
        "version": "1.0.0",
        "schemaVersion": "1.0.0",
        "metadata": {"id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "name": "crash"},
        "steps": [
            {"id": "quick", "name": "quick", "agent": {"id": "@orchestr8/text-stats"},
             "input": {"mapping": {"text": "before the crash"}}},
            {"id": "slow", "name": "slow", "agent": {"id": "@hostile/sleep"},
             "dependencies": ["quick"], "input": {"mapping": {"seconds": 3600}}}
        ]
    });
    let file = state.path().join("crash.json");
    std::fs::write(&file, wf.to_string()).unwrap();
    let mut child = orchestr8(state.path())
        .args(["run", file.to_str().unwrap(), "--agents-dir", &agents_dir()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Every progress line is an entry already committed to the store.
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let mut words = line.split_whitespace().skip(1);
        if let (Some(seq), Some(kind)) = (words.next(), words.next())
            && let Some(seq) = seq.strip_prefix('#').and_then(|s| s.parse().ok())
        {
            acknowledged.push((seq, kind.trim_end_matches(':').to_string()));
        }
        if line.contains("attempt-started slow") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(acknowledged.len() >= 5, "{acknowledged:?}");

    let out = run(state.path(), &["inspect", "--last", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["execution"]["status"], "interrupted");
    let journal = record["journal"].as_array().unwrap();
    for (seq, kind) in &acknowledged {
        let stored = &journal[(*seq - 1) as usize];
        assert_eq!(stored["seq"], *seq);
        assert_eq!(stored["kind"], kind.as_str());
    }
    assert_eq!(journal.last().unwrap()["kind"], "execution-interrupted");
}
