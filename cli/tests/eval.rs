//! `orchestr8 eval` end to end: the real summarize agent in the real
//! sandbox, asking a fake language model on loopback whose answers are
//! built so that one variant is better than another, or both equal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use support::api::agents_dir;
use support::fake::FakeServer;
use support::{failed, ok, orchestr8};

/// A Messages API where `good-model` always mentions the sandbox, and
/// `weak-model` only when the text to summarize says "easy"; asked as a
/// judge (the judge agent's template has a `<rubric>`), it scores an
/// output that names the sandbox 0.9 and others 0.2, and cannot judge an
/// output that says "murky".
struct Model;

impl Respond for Model {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let asked = body["messages"].to_string();
        let text = if asked.contains("<rubric>") {
            let judged = asked.split("<agent_output>").nth(1).unwrap_or_default();
            if judged.contains("murky") {
                "I would rather not say."
            } else if judged.contains("sandbox") {
                r#"{"score": 0.9, "reason": "It names the sandbox."}"#
            } else {
                r#"{"score": 0.2, "reason": "No sandbox."}"#
            }
        } else if body["model"] == "good-model" || asked.contains("easy") {
            "Agents run in a sandbox with limits."
        } else if asked.contains("murky") {
            "Agents run, murky."
        } else {
            "Agents run."
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 120, "output_tokens": 8}
        }))
    }
}

/// The fake model, answering as [`Model`] does.
fn model() -> FakeServer {
    let fake = FakeServer::start();
    fake.mount(
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(Model),
    );
    fake
}

/// A project with the summarize agent allowed to reach `fake`, and a
/// suite over five texts (one of them "easy") with `variants`.
fn project(fake: &FakeServer, variants: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::copy(
        agents_dir().join("summarize.wasm"),
        root.join("summarize.wasm"),
    )
    .unwrap();
    let port = fake.port();
    std::fs::write(
        root.join("orchestr8.toml"),
        format!(
            "[project]\nname = \"eval\"\n\n[agents.\"@orchestr8/summarize\"]\ncomponent = \"summarize.wasm\"\n\
             grants = {{ allowed_hosts = [\"127.0.0.1:{port}\"], secrets = [\"anthropic-api-key\"] }}\n"
        ),
    )
    .unwrap();
    std::fs::create_dir(root.join("evals")).unwrap();
    let cases: Vec<Value> = [
        "an easy text",
        "a hard text",
        "a long text",
        "a dry text",
        "a new text",
    ]
    .iter()
    .map(|t| json!({ "name": t, "input": { "text": format!("{t} about agents") } }))
    .collect();
    let suite = json!({
        "agent": "@orchestr8/summarize",
        "trials": 4,
        "config": { "provider": "anthropic", "model": "weak-model", "baseUrl": fake.uri() },
        "secrets": { "anthropic-api-key": "sk-test" },
        "graders": [
            { "type": "schema" },
            { "type": "contains", "path": "summary", "value": "sandbox", "ignoreCase": true }
        ],
        "usage": { "inputTokens": "completion.inputTokens", "outputTokens": "completion.outputTokens",
                   "inputPricePerMillion": 3, "outputPricePerMillion": 15 },
        "variants": variants,
        "cases": cases
    });
    std::fs::write(root.join("evals/summary.json"), suite.to_string()).unwrap();
    dir
}

fn eval(root: &Path, args: &[&str]) -> std::process::Output {
    orchestr8()
        .arg("eval")
        .arg("evals/summary.json")
        .args(args)
        .current_dir(root)
        .output()
        .unwrap()
}

/// B is built to be better (it passes every case; A only the easy one):
/// the report says so, with the numbers behind it, in the terminal, as
/// JSON and as Markdown; every run is recorded.
#[test]
fn a_better_variant_is_reported_better() {
    let fake = model();
    let project = project(
        &fake,
        json!({ "a": { "description": "the weak model" }, "b": { "config": { "model": "good-model" } } }),
    );
    let root = project.path();
    let out = eval(root, &["--report", "report.md", "--concurrency", "4"]);
    let text = ok(&out);
    assert!(
        text.contains("b is better than a: +80 points"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("a: 20% passed (4 of 20), 95% CI [8%, 42%]"),
        "{text}"
    );
    assert!(
        text.contains("b: 100% passed (20 of 20), 95% CI [84%, 100%]"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("[40/40]"));
    assert_eq!(fake.requests().len(), 40, "every run asked the model once");
    let markdown = std::fs::read_to_string(root.join("report.md")).unwrap();
    assert!(
        markdown.contains("| b | 100% | [84%, 100%] | 20 | 0 | 0 |"),
        "{markdown}"
    );
    assert!(markdown.contains("**b is better than a"), "{markdown}");

    let out = eval(
        root,
        &[
            "--json",
            "--trials",
            "2",
            "--variant",
            "b",
            "--variant",
            "a",
        ],
    );
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["runs"].as_array().unwrap().len(), 20);
    assert!(
        report["runs"][0]["output"]["summary"].is_string(),
        "every run keeps the agent's output: {}",
        report["runs"][0]
    );
    assert_eq!(report["variants"][0]["name"], "b");
    assert_eq!(report["variants"][0]["inputTokens"], 10 * 120);
    let cost = report["variants"][0]["costUsd"].as_f64().unwrap();
    assert!(
        (cost - (1200.0 * 3.0 + 80.0 * 15.0) / 1e6).abs() < 1e-9,
        "{cost}"
    );
    let comparison = &report["comparisons"][0];
    assert_eq!(
        (
            comparison["baseline"].as_str(),
            comparison["variant"].as_str()
        ),
        (Some("b"), Some("a"))
    );
    assert_eq!(comparison["onlyBaseline"], 8);
    assert_eq!(comparison["significant"], true);
    let graders: Vec<&str> = report["variants"][1]["graders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(graders, ["schema (the agent's)", "contains summary"]);
    let kept: Vec<_> = std::fs::read_dir(root.join(".orchestr8/evals"))
        .unwrap()
        .collect();
    assert_eq!(kept.len(), 2, "each eval's runs are recorded");

    // Gating: a pass rate below the minimum, and a regression against a
    // baseline where `a` did better, exit 1.
    let out = eval(
        root,
        &["--variant", "a", "--trials", "2", "--min-pass-rate", "0.5"],
    );
    let stderr = failed(&out, 1);
    assert!(
        stderr.contains("a passes 20% of runs, under --min-pass-rate 0.5"),
        "{stderr}"
    );
    let mut better = report.clone();
    for run in better["runs"].as_array_mut().unwrap() {
        if run["variant"] == "a" {
            run["outcome"] = json!("passed");
        }
    }
    std::fs::write(root.join("before.json"), better.to_string()).unwrap();
    let out = eval(
        root,
        &[
            "--variant",
            "a",
            "--trials",
            "2",
            "--baseline",
            "before.json",
        ],
    );
    let stderr = failed(&out, 1);
    assert!(
        stderr.contains("regression: a (baseline) is better than a"),
        "{stderr}"
    );
}

/// Two variants that answer alike: no significant difference, with how
/// many more trials would settle one.
#[test]
fn equal_variants_are_reported_as_no_significant_difference() {
    let fake = model();
    // A name with markup: the HTML report shows it as text.
    let project = project(
        &fake,
        json!({ "weak": {}, "<i>same</i>|x": { "config": { "maxTokens": 512 } } }),
    );
    let state = tempfile::tempdir().unwrap();
    let out = eval(
        project.path(),
        &[
            "--trials",
            "3",
            "--report",
            "report.html",
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
    );
    let text = ok(&out);
    assert!(
        text.contains(
            "no significant difference between <i>same</i>|x and weak at this sample size (+0 points"
        ),
        "{text}"
    );
    assert!(text.contains("more trials per case"), "{text}");
    let page = std::fs::read_to_string(project.path().join("report.html")).unwrap();
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(
        page.contains("<title>Evaluation: evals/summary.json</title>"),
        "{page}"
    );
    assert!(
        page.contains("<table>") && page.contains("<th>pass rate</th>"),
        "{page}"
    );
    assert!(
        page.contains("<td>&lt;i&gt;same&lt;/i&gt;|x</td>"),
        "{page}"
    );
    assert!(!page.contains("<i>"), "{page}");
    assert!(page.contains("no significant difference"), "{page}");
    assert_eq!(
        std::fs::read_dir(state.path().join("evals"))
            .unwrap()
            .count(),
        1,
        "the runs are recorded in the state folder given"
    );
    assert!(!project.path().join(".orchestr8/evals").exists());
}

/// A grader that cannot decide is reported as an error, apart from
/// failures; a suite with problems is refused whole before anything runs.
#[test]
fn grader_errors_and_bad_suites_are_reported_as_such() {
    let fake = model();
    let project = project(&fake, json!({}));
    let root = project.path();
    let mut suite: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("evals/summary.json")).unwrap())
            .unwrap();
    suite["graders"] = json!([{ "type": "cites", "path": "summary", "sourcesFrom": "input.text" }]);
    suite["trials"] = json!(1);
    std::fs::write(root.join("evals/summary.json"), suite.to_string()).unwrap();
    let out = eval(root, &["--json"]);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    let default = &report["variants"][0];
    assert_eq!(default["name"], "default");
    assert_eq!(
        (default["failed"].as_u64(), default["errors"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(default["passRate"], 0.0);
    let grade = &report["runs"][0]["grades"][0];
    assert_eq!(grade["grade"], "fail", "the text is not cited: {grade}");
    let stderr = failed(&eval(root, &["--variant", "nope"]), 2);
    assert!(stderr.contains("no variants"), "{stderr}");

    suite["graders"] = json!([{ "type": "cites", "path": "summary", "sourcesFrom": "input" }]);
    std::fs::write(root.join("evals/summary.json"), suite.to_string()).unwrap();
    let report: Value = serde_json::from_str(&ok(&eval(root, &["--json"]))).unwrap();
    let grade = &report["runs"][0]["grades"][0];
    assert_eq!(grade["grade"], "error", "{grade}");
    assert_eq!(report["runs"][0]["outcome"], "error");
    assert_eq!(report["variants"][0]["errors"], 5);
    assert!(report["variants"][0].get("passRate").is_none());

    suite["graders"] = json!([{ "type": "regex", "path": "summary", "pattern": "(" }]);
    suite["cases"][1]["name"] = suite["cases"][0]["name"].clone();
    std::fs::write(root.join("evals/summary.json"), suite.to_string()).unwrap();
    let calls = fake.requests().len();
    let stderr = failed(&eval(root, &[]), 2);
    assert!(stderr.contains("pattern"), "{stderr}");
    assert!(stderr.contains("used twice"), "{stderr}");
    assert_eq!(fake.requests().len(), calls, "nothing ran");
}

/// The judge grader calls the judge agent, sandboxed like any agent, which
/// asks the model: its scores decide the runs, and a judge that cannot
/// answer is a grader error, not a failed run.
#[test]
fn a_judge_agent_grades_the_runs() {
    let fake = model();
    let project = project(
        &fake,
        json!({ "a": {}, "b": { "config": { "model": "good-model" } } }),
    );
    let root = project.path();
    std::fs::copy(agents_dir().join("judge.wasm"), root.join("judge.wasm")).unwrap();
    let port = fake.port();
    let mut manifest = std::fs::read_to_string(root.join("orchestr8.toml")).unwrap();
    manifest.push_str(&format!(
        "\n[agents.\"@orchestr8/judge\"]\ncomponent = \"judge.wasm\"\n\
         grants = {{ allowed_hosts = [\"127.0.0.1:{port}\"], secrets = [\"anthropic-api-key\"] }}\n\
         config = {{ provider = \"anthropic\", model = \"judge-model\", baseUrl = \"{}\" }}\n",
        fake.uri()
    ));
    std::fs::write(root.join("orchestr8.toml"), manifest).unwrap();
    let mut suite: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("evals/summary.json")).unwrap())
            .unwrap();
    suite["graders"] = json!([{ "type": "judge", "agent": "@orchestr8/judge",
                                "rubric": "The summary names the sandbox.", "threshold": 0.5 }]);
    suite["trials"] = json!(2);
    suite["cases"][4] =
        json!({ "name": "murky", "input": { "text": "a murky text about agents" } });
    std::fs::write(root.join("evals/summary.json"), suite.to_string()).unwrap();

    let out = eval(root, &["--json"]);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    let a = &report["variants"][0];
    let b = &report["variants"][1];
    // a: only the easy case names the sandbox; its murky case stumps the judge.
    assert_eq!(
        (
            a["passed"].as_u64(),
            a["failed"].as_u64(),
            a["errors"].as_u64()
        ),
        (Some(2), Some(6), Some(2)),
        "{a}"
    );
    assert_eq!(
        (
            b["passed"].as_u64(),
            b["failed"].as_u64(),
            b["errors"].as_u64()
        ),
        (Some(10), Some(0), Some(0)),
        "{b}"
    );
    let murky = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["variant"] == "a" && r["case"] == "murky")
        .unwrap();
    assert_eq!(murky["outcome"], "error", "{murky}");
    let reason = murky["grades"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the judge `@orchestr8/judge` failed"),
        "{reason}"
    );
    assert_eq!(murky["grades"][0]["grader"], "judge @orchestr8/judge");
    // 20 runs of the agent and 20 of the judge.
    assert_eq!(fake.requests().len(), 40);
}

/// `orchestr8 prompts check` passes the templates this repository's agents
/// ship, and names each problem of a broken one: not well-formed, a
/// placeholder the code never fills, a value not escaped.
#[test]
fn prompts_check_passes_the_shipped_templates_and_names_broken_ones() {
    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agents");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut manifest = String::from("[project]\nname = \"prompts\"\n");
    for (id, name) in [
        ("@orchestr8/context7", "context7"),
        ("@orchestr8/judge", "judge"),
    ] {
        manifest.push_str(&format!(
            "\n[agents.\"{id}\"]\ncrate = \"{}\"\n",
            agents.join(name).display()
        ));
    }
    std::fs::write(root.join("orchestr8.toml"), &manifest).unwrap();
    let check = |args: &[&str]| {
        orchestr8()
            .args(["prompts", "check"])
            .args(args)
            .current_dir(root)
            .output()
            .unwrap()
    };
    let text = ok(&check(&[]));
    assert!(text.contains("ok   @orchestr8/judge"), "{text}");
    assert!(text.contains("4 templates, 0 with problems"), "{text}");

    let broken = root.join("agents/broken");
    std::fs::create_dir_all(broken.join("prompts")).unwrap();
    std::fs::create_dir_all(broken.join("src")).unwrap();
    std::fs::write(
        broken.join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(
        broken.join("src/lib.rs"),
        "let values = [(\"question\", input.question.clone())];\n",
    )
    .unwrap();
    std::fs::write(
        broken.join("prompts/ask.xml"),
        "<task>Answer</tsk>\n<q>{{question}}</q>\n<c>{{context}}</c>\n",
    )
    .unwrap();
    manifest.push_str("\n[agents.\"@prompts/broken\"]\ncrate = \"agents/broken\"\n");
    std::fs::write(root.join("orchestr8.toml"), &manifest).unwrap();
    let out = check(&["@prompts/broken", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems: Vec<&str> = report["templates"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].starts_with("not well-formed XML at line 1"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("`{{question}}`") && problems[1].contains("prompt::escape"),
        "{problems:?}"
    );
    assert!(
        problems[2].contains("`{{context}}` is never given a value"),
        "{problems:?}"
    );
    let stderr = failed(&check(&["@nobody/here"]), 2);
    assert!(stderr.contains("no agent `@nobody/here`"), "{stderr}");
}
