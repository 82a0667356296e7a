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

/// A workflow of one step: `agent` with `mapping`, named `name`.
fn one_step(state: &Path, name: &str, agent: &str, mapping: Value) -> PathBuf {
    let wf = json!({
        "version": "1.0.0",
        "schemaVersion": "1.0.0",
        "metadata": {"id": "6f9619ff-8b86-4d11-b42d-00c04fc964ff", "name": name},
        "steps": [{"id": "only", "name": "only", "agent": {"id": agent}, "input": {"mapping": mapping}}]
    });
    let file = state.join(format!("{name}.json"));
    std::fs::write(&file, wf.to_string()).unwrap();
    file
}

fn listed(state: &Path, args: &[&str]) -> Value {
    let mut all = vec!["executions", "--json"];
    all.extend_from_slice(args);
    let out = run(state, &all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids(page: &Value) -> Vec<&str> {
    page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["executionId"].as_str().unwrap())
        .collect()
}

#[test]
fn executions_are_listed_newest_first_filtered_and_paged() {
    let state = tempfile::tempdir().unwrap();
    let agents = agents_dir();
    let fine = one_step(
        state.path(),
        "fine",
        "@orchestr8/text-stats",
        json!({"text": "a b"}),
    );
    let broken = one_step(state.path(), "broken", "@hostile/panic", json!({}));
    let mut started = Vec::new();
    for file in [&fine, &broken, &fine] {
        let out = run(
            state.path(),
            &[
                "run",
                file.to_str().unwrap(),
                "--agents-dir",
                &agents,
                "--json",
            ],
        );
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        started.push(result["executionId"].as_str().unwrap().to_string());
    }
    started.reverse();

    let all = listed(state.path(), &[]);
    assert_eq!(ids(&all), started, "newest first");
    assert_eq!(all["executions"][0]["status"], "succeeded");
    assert!(all["executions"][0]["durationMs"].is_u64());
    assert!(all.get("nextCursor").is_none());

    let failed = listed(state.path(), &["--status", "failed"]);
    assert_eq!(ids(&failed), [started[1].as_str()]);
    assert_eq!(ids(&listed(state.path(), &["--workflow", "fine"])).len(), 2);
    assert_eq!(ids(&listed(state.path(), &["--since", "1h"])).len(), 3);
    assert!(ids(&listed(state.path(), &["--until", "2000-01-01T00:00:00Z"])).is_empty());

    let first = listed(state.path(), &["--limit", "2"]);
    assert_eq!(ids(&first), started[..2]);
    let cursor = first["nextCursor"].as_str().unwrap();
    let rest = listed(state.path(), &["--limit", "2", "--cursor", cursor]);
    assert_eq!(ids(&rest), started[2..]);

    let table = run(state.path(), &["executions", "--status", "failed"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("STATUS") && text.contains(&started[1]) && text.contains("broken"),
        "{text}"
    );

    for (args, message) in [
        (
            &["executions", "--since", "last tuesday"][..],
            "neither an RFC 3339 time",
        ),
        (&["executions", "--status", "done"][..], "is not a status"),
        (&["executions", "--limit", "0"][..], "0 is not in 1..=1000"),
    ] {
        let out = run(state.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn inspect_follow_prints_an_execution_live_until_it_ends() {
    let state = tempfile::tempdir().unwrap();
    let slow = one_step(
        state.path(),
        "slow",
        "@hostile/sleep",
        json!({"seconds": 2}),
    );
    let mut running = orchestr8(state.path())
        .args(["run", slow.to_str().unwrap(), "--agents-dir", &agents_dir()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = loop {
        if state.path().join("orchestr8.db").is_file() {
            let page = listed(state.path(), &["--status", "running"]);
            if let Some(id) = ids(&page).first() {
                break id.to_string();
            }
        }
        assert!(
            running.try_wait().unwrap().is_none(),
            "the run ended too soon"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = run(state.path(), &["inspect", &id, "--follow", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let entries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"step-succeeded"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"execution-finished"), "{kinds:?}");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "each entry once, in order"
    );
    assert!(running.wait().unwrap().success());
}

#[test]
fn a_refused_grant_is_named_with_its_step_and_the_line_to_add() {
    let state = tempfile::tempdir().unwrap();
    let fetch = one_step(
        state.path(),
        "fetching",
        "@hostile/fetch",
        json!({"url": "http://127.0.0.1:9/x"}),
    );
    let out = run(
        state.path(),
        &[
            "run",
            fetch.to_str().unwrap(),
            "--agents-dir",
            &agents_dir(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error[CAPABILITY_DENIED]: step `only` (@hostile/fetch): capability denied: GET http://127.0.0.1:9/x (host is not on the agent's allowlist: grant `127.0.0.1:9` in allowed_hosts)"),
        "{err}"
    );
    assert!(
        err.contains("[agents.\"@hostile/fetch\".grants]\n  allowed_hosts = [\"127.0.0.1:9\"]"),
        "{err}"
    );
}

#[test]
fn an_input_key_the_workflow_never_reads_is_warned_about_in_json_too() {
    let state = tempfile::tempdir().unwrap();
    let file = one_step(
        state.path(),
        "defaults",
        "@orchestr8/text-stats",
        json!({"text": "${variables.text ?? \"a default\"}"}),
    );
    let agents = agents_dir();
    let stderr_of = |extra: &[&str]| {
        let mut args = vec![
            "run",
            file.to_str().unwrap(),
            "--agents-dir",
            &agents,
            "--input",
            r#"{"txt": "misspelt", "text": "read"}"#,
        ];
        args.extend_from_slice(extra);
        let out = run(state.path(), &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stderr(&out)
    };
    let warned =
        |line: &str| line.starts_with("warning: --input key `txt` is not read by the workflow");

    let err = stderr_of(&[]);
    assert!(err.lines().any(warned), "{err}");
    assert!(!err.contains("key `text`"), "{err}");

    // With --json, all of stderr is JSON lines, the warning among them, so
    // that a program reading the progress is not broken by one.
    let err = stderr_of(&["--json"]);
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "WARN" && warned(l["fields"]["message"].as_str().unwrap_or(""))),
        "{err}"
    );
    assert!(
        lines.iter().any(|l| l["kind"] == "execution-finished"),
        "{err}"
    );

    // Unless pretty log lines are asked for.
    let err = stderr_of(&["--json", "--log-format", "pretty"]);
    assert!(err.lines().any(warned), "{err}");
}

#[test]
fn validate_checks_each_steps_mapping_against_its_agents_input_schema() {
    let state = tempfile::tempdir().unwrap();
    let wf = json!({
        "version": "1.0.0",
        "schemaVersion": "1.0.0",
        "metadata": {"id": "6f9619ff-8b86-4d11-b42d-00c04fc964ff", "name": "inputs"},
        "steps": [
            {"id": "a", "name": "a", "agent": {"id": "@orchestr8/text-stats"}, "input": {"mapping": {"txt": "hello"}}},
            {"id": "b", "name": "b", "agent": {"id": "@orchestr8/text-stats"}, "input": {"mapping": {"text": 42}}},
            {"id": "c", "name": "c", "agent": {"id": "@orchestr8/text-stats"}, "input": {"mapping": {"text": "${variables.x ?? \"ok\"}"}}}
        ]
    });
    let file = state.path().join("inputs.json");
    std::fs::write(&file, wf.to_string()).unwrap();
    let out = run(
        state.path(),
        &[
            "validate",
            file.to_str().unwrap(),
            "--agents-dir",
            &agents_dir(),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let issues: Vec<(String, String)> = report["details"]["issues"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().to_string(),
                i["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(issues.len(), 3, "{issues:?}");
    assert!(
        issues[0].1.contains("requires the input `text`"),
        "{issues:?}"
    );
    assert_eq!(issues[1].0, "$.steps[0].input.mapping.txt");
    assert_eq!(issues[2].0, "$.steps[1].input.mapping.text");
    assert!(
        issues[2].1.contains("is not of type \"string\""),
        "{issues:?}"
    );
}

/// The id of the one execution running in `state`, once it runs.
fn running_id(state: &Path, run: &mut std::process::Child) -> String {
    loop {
        if state.join("orchestr8.db").is_file() {
            let page = listed(state, &["--status", "running"]);
            if let Some(id) = ids(&page).first() {
                return id.to_string();
            }
        }
        assert!(run.try_wait().unwrap().is_none(), "the run ended too soon");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `orchestr8 cancel` stops an execution that another process (`run`)
/// runs: the run ends cancelled, its journal says so; cancelling it again,
/// or an unknown id, is refused with the reason.
#[test]
fn cancel_stops_an_execution_another_process_runs() {
    let state = tempfile::tempdir().unwrap();
    let slow = one_step(
        state.path(),
        "slow",
        "@hostile/sleep",
        json!({"seconds": 60}),
    );
    let mut running = orchestr8(state.path())
        .args(["run", slow.to_str().unwrap(), "--agents-dir", &agents_dir()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = running_id(state.path(), &mut running);
    let out = run(state.path(), &["cancel", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("cancellation of {id} requested")),
        "{said}"
    );
    assert!(said.contains(&format!("{id} ended: cancelled")), "{said}");
    let ended = running.wait_with_output().unwrap();
    assert_eq!(ended.status.code(), Some(1), "{}", stderr(&ended));
    assert!(stderr(&ended).contains("CANCELLED"), "{}", stderr(&ended));

    let out = run(state.path(), &["inspect", &id]);
    let timeline = String::from_utf8_lossy(&out.stdout);
    assert!(
        timeline.contains("execution-finished cancelled"),
        "{timeline}"
    );

    let out = run(state.path(), &["cancel", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already ended: cancelled"),
        "{}",
        stderr(&out)
    );
    let out = run(
        state.path(),
        &["cancel", "0f8e4c52-6d1b-4e0a-9a3f-5b7c2d1e8f90"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown execution"),
        "{}",
        stderr(&out)
    );
}

/// `orchestr8` run inside the project at `dir`, with its own state folder.
fn in_project(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orchestr8"));
    command
        .args(args)
        .current_dir(dir)
        .env(
            "ORCHESTR8_CACHE_DIR",
            std::env::temp_dir().join("orchestr8-cli-tests-cache"),
        )
        .env("NO_COLOR", "1")
        .env_remove("ORCHESTR8_STATE_DIR");
    command
}

/// A project running the `tally` agent (granted `marks/` to leave a marker
/// per attempt) with a workflow of parallel branches, a retried step and a
/// fallback; returns the workflow file and the marks directory.
fn tally_project(dir: &Path) -> (PathBuf, PathBuf) {
    let marks = dir.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let component = root().join("agents/target/wasm32-wasip2/release/tally.wasm");
    assert!(component.is_file(), "build the agents first: scripts/test");
    std::fs::write(
        dir.join("orchestr8.toml"),
        format!(
            "[project]\nname = \"crash\"\n\n[agents.\"@test/tally\"]\ncomponent = \"{}\"\n\n[agents.\"@test/tally\".grants]\ndirs = [{{ host = \"marks\", guest = \"/marks\", writable = true }}]\n",
            component.display()
        ),
    )
    .unwrap();
    let step = |id: &str, deps: &[&str], mapping: Value| json!({"id": id, "name": id, "agent": {"id": "@test/tally"}, "dependencies": deps, "input": {"mapping": mapping}});
    let mut retried = step(
        "b",
        &["a"],
        json!({"parts": ["${steps.a.output.value}", "b"], "ms": 120, "failures": 1}),
    );
    retried["policies"] = json!({"retry": {"maxAttempts": 3, "baseDelayMs": 100}});
    let mut failing = step(
        "c",
        &["a"],
        json!({"parts": ["${steps.a.output.value}", "c"], "ms": 80, "fail": true}),
    );
    failing["onError"] = json!("fallback");
    failing["fallbackStepId"] = json!("d");
    let wf = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "6f9619ff-8b86-4d11-b42d-00c04fc964f1", "name": "crash"},
        "policies": {"concurrency": {"maxConcurrentSteps": 2}},
        "steps": [
            step("a", &[], json!({"parts": ["a"], "ms": 150})),
            retried,
            failing,
            step("d", &[], json!({"parts": ["d"], "ms": 100})),
            step("e", &["b", "c"], json!({"parts": ["${steps.b.output.value}", "${steps.c.output.value}", "e"], "ms": 100})),
        ]
    });
    let file = dir.join("crash.json");
    std::fs::write(&file, wf.to_string()).unwrap();
    (file, marks)
}

/// Markers left in `marks` by step `step` of execution `id`.
fn marks_of(marks: &Path, id: &str, step: &str) -> usize {
    std::fs::read_dir(marks)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with(&format!("{id}:{step}."))
        })
        .count()
}

fn outputs(result: &Value) -> Value {
    let steps = result["steps"].as_object().unwrap();
    steps
        .iter()
        .map(|(id, s)| (id.clone(), json!([s["status"], s["output"]])))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Killed (SIGKILL) anywhere in a workflow with parallel branches, a retry
/// and a fallback, then resumed: the outputs are those of a run never
/// interrupted, and no step recorded as succeeded ran again (counted by
/// the markers the agent leaves from inside its sandbox).
#[test]
fn an_execution_killed_anywhere_resumes_to_the_same_outputs_without_rerunning_what_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let (file, marks) = tally_project(dir.path());
    let file = file.to_str().unwrap();
    let project = |args: &[&str]| in_project(dir.path(), args);
    let out = project(&["run", file, "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = outputs(&serde_json::from_slice(&out.stdout).unwrap());
    assert_eq!(expected["e"][1]["value"], "a+b+a+c+e", "{expected}");
    assert_eq!(expected["c"][0], "succeeded", "the fallback stands in");

    let mut resumed = 0;
    for kill_after_ms in [60, 200, 330, 420, 520, 640] {
        let mut running = project(&["run", file, "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the execution to exist, then let it run a while.
        let state = dir.path().join(".orchestr8");
        let id = running_id(&state, &mut running);
        std::thread::sleep(std::time::Duration::from_millis(kill_after_ms));
        running.kill().unwrap();
        running.wait().unwrap();

        // What had succeeded, and how often it had run, before the crash.
        let out = project(&["inspect", &id, "--json"]).output().unwrap();
        let before: Value = serde_json::from_slice(&out.stdout).unwrap();
        let succeeded: Vec<String> = before["journal"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "step-succeeded")
            .map(|e| e["stepId"].as_str().unwrap().to_string())
            .collect();
        let ran_before: Vec<usize> = succeeded.iter().map(|s| marks_of(&marks, &id, s)).collect();
        if before["execution"]["status"] == "succeeded" {
            continue;
        }
        resumed += 1;

        let out = project(&["resume", &id, "--json", "--quiet"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "killed after {kill_after_ms} ms: {}",
            stderr(&out)
        );
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            outputs(&result),
            expected,
            "killed after {kill_after_ms} ms"
        );
        let ran_after: Vec<usize> = succeeded.iter().map(|s| marks_of(&marks, &id, s)).collect();
        assert_eq!(
            ran_before, ran_after,
            "killed after {kill_after_ms} ms: {succeeded:?} ran again"
        );
        let out = project(&["inspect", &id]).output().unwrap();
        let timeline = String::from_utf8_lossy(&out.stdout);
        assert!(timeline.contains("execution-resumed"), "{timeline}");
        assert!(
            timeline.contains("execution-finished succeeded"),
            "{timeline}"
        );
    }
    assert!(resumed >= 4, "only {resumed} kills landed before the end");
}

/// `policies.idleTimeoutMs`: an agent that keeps sending progress events
/// runs past it (up to its deadline); one that goes silent is stopped with
/// TIMEOUT, saying so, long before its deadline.
#[test]
fn an_idle_timeout_stops_a_silent_agent_but_not_a_chatty_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _marks) = tally_project(dir.path());
    let step = |id: &str, input: Value| {
        json!({"id": id, "name": id, "agent": {"id": "@test/tally"}, "onError": "continue",
               "policies": {"idleTimeoutMs": 300, "retry": {"maxAttempts": 1}},
               "input": {"mapping": input}})
    };
    let wf = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "6f9619ff-8b86-4d11-b42d-00c04fc964f2", "name": "idle"},
        "steps": [
            step("chatty", json!({"parts": ["ok"], "ms": 900, "beat_ms": 100})),
            step("silent", json!({"parts": ["never"], "ms": 5000})),
        ]
    });
    let file = dir.path().join("idle.json");
    std::fs::write(&file, wf.to_string()).unwrap();
    let out = in_project(
        dir.path(),
        &["run", file.to_str().unwrap(), "--json", "--quiet"],
    )
    .output()
    .unwrap();
    let result: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    assert_eq!(result["steps"]["chatty"]["status"], "succeeded", "{result}");
    assert_eq!(result["steps"]["chatty"]["output"]["value"], "ok");
    let silent = &result["steps"]["silent"];
    assert_eq!(silent["status"], "failed", "{result}");
    assert_eq!(silent["error"]["code"], "TIMEOUT", "{result}");
    let message = silent["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("went silent") && message.contains("300 ms"),
        "{message}"
    );
}

/// An HTTP server on loopback answering every request with JSON that
/// counts the requests; stopped (its port closed) by `stop`.
struct Upstream {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start() -> Upstream {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => seen.extend_from_slice(&buf[..k]),
                    }
                }
                let body = format!("{{\"answer\": {}, \"note\": \"from upstream\"}}", n + 1);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Upstream {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// `resume` and `replay` refuse what they cannot do, saying why: an
/// unknown execution (usage error, 2), one that ended (1), a step the
/// execution does not have (2).
#[test]
fn resume_and_replay_refuse_unknown_and_ended_executions_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _marks) = tally_project(dir.path());
    let project = |args: &[&str]| in_project(dir.path(), args).output().unwrap();
    let out = project(&["run", file.to_str().unwrap(), "--json", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = result["executionId"].as_str().unwrap();
    let unknown = "01a23ea4-d447-7244-9ff8-b90db1979716";
    for (args, code, says) in [
        (
            vec!["resume", unknown],
            2,
            format!("unknown execution `{unknown}`"),
        ),
        (
            vec!["resume", id],
            1,
            format!("execution `{id}` is succeeded: only an execution whose process died"),
        ),
        (
            vec!["replay", unknown],
            2,
            format!("unknown execution `{unknown}`"),
        ),
        (
            vec!["replay", id, "--step", "nope"],
            2,
            format!("execution `{id}` has no ended step `nope`"),
        ),
    ] {
        let out = project(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&says), "{args:?}: {}", stderr(&out));
    }
    // Nothing was added to the execution's journal by the refusals.
    let out = project(&["inspect", id, "--json"]);
    let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = inspected["journal"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "execution-finished", "{last}");
}

/// A step's output far past the 64 KiB entry cap (1 MiB), and a step input
/// past it (180 KiB), are journaled whole: killed while the second step
/// runs, the execution resumes without running the first again and ends
/// with its output intact; a replay compares both steps on them.
#[test]
fn a_large_step_output_is_restored_on_resume_and_replayed() {
    const PAD: usize = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let (_, marks) = tally_project(dir.path());
    let wf = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "6f9619ff-8b86-4d11-b42d-00c04fc964f5", "name": "large"},
        "steps": [
            {"id": "big", "name": "big", "agent": {"id": "@test/tally"},
             "input": {"mapping": {"parts": ["big"], "pad": PAD}}},
            {"id": "then", "name": "then", "agent": {"id": "@test/tally"}, "dependencies": ["big"],
             "input": {"mapping": {"parts": ["${steps.big.output.value}", "${variables.chunk}", "${variables.chunk}", "${variables.chunk}"], "ms": 2000}}}
        ]
    });
    let file = dir.path().join("large.json");
    std::fs::write(&file, wf.to_string()).unwrap();
    // Each expression may expand to 64 KiB at most: three make a larger input.
    let chunk = "c".repeat(60 * 1024);
    let input = json!({ "chunk": chunk }).to_string();
    let mut running = in_project(
        dir.path(),
        &["run", file.to_str().unwrap(), "--quiet", "--input", &input],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let id = running_id(&dir.path().join(".orchestr8"), &mut running);
    // Kill once `then` has started: `big` has succeeded by then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while marks_of(&marks, &id, "then") == 0 {
        assert!(std::time::Instant::now() < deadline, "`then` never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    running.kill().unwrap();
    running.wait().unwrap();

    // The journal holds both steps' data whole, not as size markers.
    let out = in_project(dir.path(), &["inspect", &id, "--json"])
        .output()
        .unwrap();
    let before: Value = serde_json::from_slice(&out.stdout).unwrap();
    let journal = before["journal"].as_array().unwrap();
    let succeeded = journal
        .iter()
        .find(|e| e["kind"] == "step-succeeded")
        .unwrap();
    assert_eq!(
        succeeded["data"]["output"]["pad"].as_str().unwrap().len(),
        PAD
    );
    let started = journal
        .iter()
        .find(|e| e["kind"] == "step-started" && e["stepId"] == "then")
        .unwrap();
    assert_eq!(started["data"]["input"]["parts"][3], chunk.as_str());

    let out = in_project(dir.path(), &["resume", &id, "--json", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(marks_of(&marks, &id, "big"), 1, "`big` ran again");
    assert_eq!(
        result["steps"]["big"]["output"]["pad"]
            .as_str()
            .unwrap()
            .len(),
        PAD
    );
    let then = result["steps"]["then"]["output"]["value"].as_str().unwrap();
    assert_eq!(then, format!("big+{chunk}+{chunk}+{chunk}"));

    let out = in_project(dir.path(), &["replay", &id, "--json"])
        .output()
        .unwrap();
    let verdicts: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    assert_eq!(out.status.code(), Some(0), "{verdicts}");
    assert_eq!(verdicts.as_array().unwrap().len(), 2, "{verdicts}");
}

/// A recorded execution whose steps called an HTTP API replays offline
/// (its upstream stopped) to the same outputs, step by step; a changed
/// agent for a step is reported as diverged.
#[test]
fn a_recorded_execution_replays_offline_and_a_changed_agent_diverges() {
    let dir = tempfile::tempdir().unwrap();
    let mut upstream = Upstream::start();
    let release = root().join("agents/target/wasm32-wasip2/release");
    std::fs::write(
        dir.path().join("orchestr8.toml"),
        format!(
            "[project]\nname = \"replay\"\n\n[agents.\"@hostile/fetch\"]\ncomponent = \"{}\"\n\n[agents.\"@hostile/fetch\".grants]\nallowed_hosts = [\"127.0.0.1:{}\"]\n",
            release.join("hostile_fetch.wasm").display(),
            upstream.port
        ),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/quote", upstream.port);
    let fetch = |id: &str, deps: &[&str]| {
        json!({"id": id, "name": id, "agent": {"id": "@hostile/fetch"}, "dependencies": deps,
               "input": {"mapping": {"url": url}}})
    };
    let wf = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "6f9619ff-8b86-4d11-b42d-00c04fc964f3", "name": "replay"},
        "steps": [fetch("first", &[]), fetch("second", &["first"])]
    });
    let file = dir.path().join("replay.json");
    std::fs::write(&file, wf.to_string()).unwrap();
    let project = |args: &[&str]| in_project(dir.path(), args).output().unwrap();
    let out = project(&["run", file.to_str().unwrap(), "--json", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = result["executionId"].as_str().unwrap().to_string();
    let second = result["steps"]["second"]["output"]["body"]
        .as_str()
        .unwrap();
    assert!(second.contains("\"answer\": 2"), "{second}");
    upstream.stop();

    let out = project(&["inspect", &id]);
    let timeline = String::from_utf8_lossy(&out.stdout);
    assert!(
        timeline.contains(&format!("http-recorded second #1: GET {url} -> 200")),
        "{timeline}"
    );

    let out = project(&["replay", &id]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", stderr(&out));
    assert!(
        report.contains("first") && report.contains("second"),
        "{report}"
    );
    assert!(
        report.contains("2 step(s) replayed: 2 identical, 0 not"),
        "{report}"
    );
    let out = project(&["inspect", &id]);
    let timeline = String::from_utf8_lossy(&out.stdout);
    assert!(
        timeline.contains("execution-replayed: 2 identical, 0 not"),
        "{timeline}"
    );

    // Another agent in the second step's place answers otherwise.
    let echo = release.join("echo.wasm");
    let out = project(&[
        "replay",
        &id,
        "--step",
        "second",
        "--agent",
        echo.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let verdicts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdicts[0]["stepId"], "second");
    assert_eq!(verdicts[0]["verdict"], "diverged", "{verdicts}");
}

/// With `record = "all"` an agent's clock readings and random numbers are
/// recorded too, and a replay hands them back: its output is identical.
/// Without them recorded, the same replay diverges.
#[test]
fn clock_and_random_readings_replay_when_recorded_and_diverge_when_not() {
    for (record, identical) in [("all", true), ("http", false)] {
        let dir = tempfile::tempdir().unwrap();
        let (_, _marks) = tally_project(dir.path());
        let toml = std::fs::read_to_string(dir.path().join("orchestr8.toml")).unwrap();
        std::fs::write(
            dir.path().join("orchestr8.toml"),
            toml.replace(
                "[project]\n",
                &format!("[project]\nrecord = \"{record}\"\n"),
            ),
        )
        .unwrap();
        let wf = json!({
            "version": "1.0.0", "schemaVersion": "1.0.0",
            "metadata": {"id": "6f9619ff-8b86-4d11-b42d-00c04fc964f4", "name": "stamp"},
            "steps": [{"id": "stamp", "name": "stamp", "agent": {"id": "@test/tally"},
                       "input": {"mapping": {"parts": ["x"], "stamp": true}}}]
        });
        let file = dir.path().join("stamp.json");
        std::fs::write(&file, wf.to_string()).unwrap();
        let project = |args: &[&str]| in_project(dir.path(), args).output().unwrap();
        let out = project(&["run", file.to_str().unwrap(), "--json", "--quiet"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            result["steps"]["stamp"]["output"]["stamp"].is_array(),
            "{result}"
        );
        let id = result["executionId"].as_str().unwrap();
        let out = project(&["replay", id, "--json"]);
        let verdicts: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
        let verdict = &verdicts[0]["verdict"];
        if identical {
            assert_eq!(verdict, "identical", "record = {record}: {verdicts}");
            assert_eq!(out.status.code(), Some(0));
        } else {
            assert_eq!(verdict, "diverged", "record = {record}: {verdicts}");
            let detail = verdicts[0]["detail"].as_str().unwrap();
            assert!(detail.contains("$.stamp"), "{detail}");
        }
    }
}
