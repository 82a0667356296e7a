//! `orchestr8 test`: runs the project's test cases (`tests/*.json`) against
//! the real agents in the real sandbox, with outbound HTTP answered from
//! recorded fixtures; a request no fixture matches fails the case.
//!
//! A case file holds one case or an array of them:
//!
//! ```json
//! { "name": "looks up a repository",
//!   "agent": "@demo/repo",                 // or "workflow": "workflows/x.json"
//!   "input": { "repo": "rust-lang/rust" },  // for a workflow: its variables
//!   "fixtures": ["fixtures/github.json"],   // files (relative to the case file) or inline
//!   "secrets": { "github-token": "test" },  // values for granted secrets
//!   "expect": { "outputMatches": { "stars": 104000 } } }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anstyle::{AnsiColor, Style};
use clap::Args;
use orchestr8_host::call::AgentCall;
use orchestr8_host::engine::{ExecutionStatus, RegisteredAgent, StepStatus};
use orchestr8_host::error::ErrorBody;
use orchestr8_host::project::Project;
use orchestr8_host::registry::AgentRegistry;
use orchestr8_host::runtime::{Place, Runtime};
use orchestr8_host::sandbox::{
    HttpFixture, HttpFixtures, Sandbox, SandboxConfig, SecretValue, json_contains,
};
use orchestr8_host::store::MemoryStore;
use orchestr8_host::workflow;
use orchestr8_host::{Coded, ErrorCode};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::{Failure, Outcome, exit, report};
use crate::project::{BuildCheck, require_project};

#[derive(Args)]
pub struct TestArgs {
    /// Case files to run [default: the project's tests/*.json]
    files: Vec<PathBuf>,
    /// Run only the cases whose name contains this text.
    #[arg(long, short)]
    filter: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    build: BuildCheck,
}

/// One test case as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    workflow: Option<PathBuf>,
    /// The agent's input [default: `{}`], or the workflow's variables.
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    fixtures: Vec<Value>,
    expect: Expect,
}

/// What must happen.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expect {
    /// The output, exactly.
    #[serde(default)]
    output: Option<Value>,
    /// Every key given (recursively) has this value in the output.
    #[serde(default)]
    output_matches: Option<Value>,
    /// The call fails with this code.
    #[serde(default)]
    error: Option<ErrorCode>,
    /// A workflow ends with this status (`succeeded`, `failed`, …).
    #[serde(default)]
    status: Option<String>,
}

/// A case ready to run, or the reason its file cannot be used.
struct Loaded {
    name: String,
    file: PathBuf,
    case: Result<Case, String>,
}

/// What became of one case.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    name: String,
    file: PathBuf,
    passed: bool,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
}

pub async fn test(args: TestArgs, config: SandboxConfig) -> Outcome {
    let project = require_project()?;
    let files = if args.files.is_empty() {
        case_files(&project.root.join("tests"))?
    } else {
        args.files.clone()
    };
    let mut cases: Vec<Loaded> = files.iter().flat_map(|f| load_file(f)).collect();
    if let Some(filter) = &args.filter {
        cases.retain(|c| c.name.contains(filter.as_str()));
    }
    if cases.is_empty() {
        return Err(report(
            ErrorCode::NotFound,
            &match &args.filter {
                Some(f) => format!("no test case name contains `{f}`"),
                None => {
                    "no test cases found: add tests/<name>.json (see `orchestr8 create`)".into()
                }
            },
            exit::FAILED,
        ));
    }
    // Only the agents the chosen cases use: an unbuilt or broken one that
    // none of them needs must not stop the others.
    let needed = agents_used(&project, &cases);
    args.build.apply(&project, &config, Some(&needed)).await?;
    let sandbox = Sandbox::new(config).map_err(|e| Failure::of(&e, exit::LOAD))?;
    let place = Place {
        only: Some(needed),
        ..Place::at(&project.root)
    };
    // Cases give their own secret values: a missing one is no reason to warn.
    let runtime = Runtime::open_quietly(sandbox, place)
        .await
        .map_err(|e| Failure::of(&e, exit::LOAD))?;
    let mut verdicts = Vec::new();
    for loaded in cases {
        let started = Instant::now();
        let failure = match &loaded.case {
            Err(reason) => Some(reason.clone()),
            Ok(case) => run_case(&project, &runtime, &loaded.file, case).await.err(),
        };
        let verdict = Verdict {
            name: loaded.name,
            file: loaded.file,
            passed: failure.is_none(),
            duration_ms: started.elapsed().as_millis() as u64,
            failure,
        };
        if !args.json {
            print_verdict(&verdict);
        }
        verdicts.push(verdict);
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    let passed = verdicts.len() - failed;
    if args.json {
        let value = serde_json::json!({ "passed": passed, "failed": failed, "cases": verdicts });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}

fn print_verdict(v: &Verdict) {
    let (style, word) = if v.passed {
        (
            Style::new().fg_color(Some(AnsiColor::Green.into())).bold(),
            "PASS",
        )
    } else {
        (
            Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
            "FAIL",
        )
    };
    let mut out = anstream::stdout();
    let _ = writeln!(
        out,
        "{style}{word}{style:#} {} ({} ms)",
        v.name, v.duration_ms
    );
    if let Some(failure) = &v.failure {
        for line in failure.lines() {
            let _ = writeln!(out, "     {line}");
        }
    }
}

/// `dir/*.json`, sorted; fixtures live in subfolders.
fn case_files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        report(
            ErrorCode::NotFound,
            &format!(
                "cannot read `{}`: {e}; test cases live in tests/*.json",
                dir.display()
            ),
            exit::FAILED,
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// The cases of one file; a file that cannot be read or parsed is one
/// failing case naming the problem.
fn load_file(file: &Path) -> Vec<Loaded> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let broken = |reason: String| {
        vec![Loaded {
            name: stem.clone(),
            file: file.to_path_buf(),
            case: Err(reason),
        }]
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return broken(format!("cannot read `{}`: {e}", file.display())),
    };
    let parsed: Result<Vec<Case>, String> = if text.trim_start().starts_with('[') {
        parse(&text)
    } else {
        parse::<Case>(&text).map(|c| vec![c])
    };
    match parsed {
        Err(e) => broken(format!(
            "`{}` is not a valid test file: {e}",
            file.display()
        )),
        Ok(cases) => {
            let many = cases.len() > 1;
            cases
                .into_iter()
                .enumerate()
                .map(|(i, case)| Loaded {
                    name: case.name.clone().unwrap_or_else(|| {
                        if many {
                            format!("{stem}[{i}]")
                        } else {
                            stem.clone()
                        }
                    }),
                    file: file.to_path_buf(),
                    case: Ok(case),
                })
                .collect()
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("at `{path}`: {}", e.inner())
        }
    })
}

/// The fixtures of a case: inline objects, or files relative to the case
/// file holding one fixture or an array.
fn fixtures(case_file: &Path, refs: &[Value]) -> Result<Vec<HttpFixture>, String> {
    let base = case_file.parent().unwrap_or(Path::new("."));
    let mut all = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        match r {
            Value::String(rel) => all.extend(read_fixtures(&base.join(rel))?),
            inline => all.extend(parse_fixtures(inline.clone(), &format!("fixtures[{i}]"))?),
        }
    }
    Ok(all)
}

/// The fixtures in a file: one fixture or an array of them.
pub fn read_fixtures(path: &Path) -> Result<Vec<HttpFixture>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read fixture file `{}`: {e}", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("fixture file `{}` is not JSON: {e}", path.display()))?;
    parse_fixtures(value, &format!("fixture file `{}`", path.display()))
}

fn parse_fixtures(value: Value, origin: &str) -> Result<Vec<HttpFixture>, String> {
    let list = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    list.into_iter()
        .enumerate()
        .map(|(j, item)| {
            serde_json::from_value(item)
                .map_err(|e| format!("{origin}, entry {j}, is not a fixture: {e}"))
        })
        .collect()
}

/// The runtime's agents for one case (or eval run): each answers HTTP
/// from `fixtures` (when given) and sees the `secrets` it is granted.
pub fn with_fixtures(
    runtime: &Runtime,
    fixtures: Option<&HttpFixtures>,
    secrets: &BTreeMap<String, String>,
) -> HashMap<String, RegisteredAgent> {
    runtime
        .agents()
        .iter()
        .map(|(id, registered)| {
            let mut registered = registered.clone();
            if let Some(fixtures) = fixtures {
                registered.policy.http_fixtures = Some(fixtures.clone());
            }
            for (name, value) in secrets {
                if registered.policy.grants.secrets.contains(name) {
                    registered
                        .policy
                        .secret_values
                        .insert(name.clone(), SecretValue::new(value.clone()));
                }
            }
            (id.clone(), registered)
        })
        .collect()
}

/// Runs one case; `Err` says why it failed.
async fn run_case(
    project: &Project,
    runtime: &Runtime,
    file: &Path,
    case: &Case,
) -> Result<(), String> {
    let fixtures = HttpFixtures::new(fixtures(file, &case.fixtures)?);
    let agents = with_fixtures(runtime, Some(&fixtures), &case.secrets);
    let (actual, status) = match (&case.agent, &case.workflow) {
        (Some(id), None) => (run_agent(runtime, &agents, id, case).await?, None),
        (None, Some(wf)) => {
            let (actual, status) = run_workflow(project, runtime, agents, wf, case).await?;
            (actual, Some(status))
        }
        _ => return Err("give either `agent` (an agent id) or `workflow` (a file)".into()),
    };
    let mut problems = check(&case.expect, &actual, status.as_deref());
    for request in fixtures.unhandled() {
        problems.push(format!(
            "unhandled outbound request: {request} (add a fixture for it)"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

async fn run_agent(
    runtime: &Runtime,
    agents: &HashMap<String, RegisteredAgent>,
    id: &str,
    case: &Case,
) -> Result<Result<Value, ErrorBody>, String> {
    let registered = agents
        .get(id)
        .ok_or_else(|| format!("no agent `{id}` in orchestr8.toml"))?;
    let input = case
        .input
        .clone()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let mut call = AgentCall::new(registered, input);
    // One attempt (AgentCall's default): a case sees exactly what the agent does.
    call.config = case.config.clone().unwrap_or(Value::Null);
    // Circuits of its own: a case must not inherit another's open breaker.
    let outcome = runtime
        .isolated_invoker()
        .call(registered, call, &|_| {})
        .await;
    Ok(outcome.result.map_err(|e| e.to_body()))
}

/// The project's agents `cases` call: their own agent, or the agents of
/// their workflow's steps.
fn agents_used(project: &Project, cases: &[Loaded]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for case in cases.iter().filter_map(|c| c.case.as_ref().ok()) {
        if let Some(spec) = case.agent.as_deref().and_then(|a| project.agent(a)) {
            used.insert(spec.id.clone());
        }
        let doc = case
            .workflow
            .as_ref()
            .and_then(|f| std::fs::read_to_string(project.root.join(f)).ok())
            .and_then(|text| workflow::parse(&text).ok());
        if let Some(doc) = doc {
            used.extend(doc.steps.iter().map(|s| s.agent.id.clone()));
        }
    }
    used
}

/// Runs a workflow case; its output is `{step id: output}` of the steps
/// that succeeded.
async fn run_workflow(
    project: &Project,
    runtime: &Runtime,
    agents: HashMap<String, RegisteredAgent>,
    file: &Path,
    case: &Case,
) -> Result<(Result<Value, ErrorBody>, String), String> {
    let path = project.root.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read workflow `{}`: {e}", path.display()))?;
    let ids: HashSet<String> = agents.keys().cloned().collect();
    let wf = workflow::load(&text, &ids).map_err(|e| format!("{} is {e}", path.display()))?;
    let variables: BTreeMap<String, Value> = match &case.input {
        None => BTreeMap::new(),
        Some(Value::Object(map)) => map.clone().into_iter().collect(),
        _ => return Err("a workflow case's `input` must be an object of variables".into()),
    };
    let orchestrator = runtime
        .orchestrator_with(
            runtime.isolated_invoker(),
            Arc::new(AgentRegistry::fixed(agents)),
            Arc::new(MemoryStore::new()),
        )
        .map_err(|e| e.to_string())?;
    let result = orchestrator
        .run(&wf, variables, CancellationToken::new())
        .await
        .map_err(|e| e.to_string())?;
    let status = result.status.as_str().to_string();
    let outputs: serde_json::Map<String, Value> = result
        .steps
        .iter()
        .filter(|(_, s)| s.status == StepStatus::Succeeded)
        .filter_map(|(id, s)| s.output.clone().map(|o| (id.clone(), o)))
        .collect();
    let actual = match (result.status, result.error) {
        (ExecutionStatus::Succeeded, _) | (_, None) => Ok(Value::Object(outputs)),
        (_, Some(error)) => Err(error),
    };
    Ok((actual, status))
}

/// Everything that differs from what the case expects.
fn check(expect: &Expect, actual: &Result<Value, ErrorBody>, status: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    let show = |v: &Value| {
        let text = v.to_string();
        if text.len() > 600 {
            format!("{}…", text.chars().take(600).collect::<String>())
        } else {
            text
        }
    };
    if let (Some(want), Some(got)) = (&expect.status, status)
        && want != got
    {
        problems.push(format!("expected status {want}, got {got}"));
    }
    match (actual, &expect.error) {
        (Err(e), Some(code)) if e.code == *code => {}
        (Err(e), Some(code)) => problems.push(format!(
            "expected error {code}, got error {}: {}",
            e.code, e.message
        )),
        (Ok(output), Some(code)) => problems.push(format!(
            "expected error {code}, got output {}",
            show(output)
        )),
        (Err(e), None) if expect.status.is_none() => {
            problems.push(format!("failed with {}: {}", e.code, e.message))
        }
        (Err(_), None) => {}
        (Ok(output), None) => {
            if let Some(want) = &expect.output
                && want != output
            {
                problems.push(format!(
                    "expected output {}\n got output {}",
                    show(want),
                    show(output)
                ));
            }
            if let Some(want) = &expect.output_matches
                && !json_contains(output, want)
            {
                problems.push(format!(
                    "expected output containing {}\n got output {}",
                    show(want),
                    show(output)
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expect(v: Value) -> Expect {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn outputs_are_compared_exactly_or_by_subset() {
        let got = Ok(json!({"a": 1, "b": 2}));
        assert!(check(&expect(json!({"output": {"a": 1, "b": 2}})), &got, None).is_empty());
        assert!(!check(&expect(json!({"output": {"a": 1}})), &got, None).is_empty());
        assert!(check(&expect(json!({"outputMatches": {"a": 1}})), &got, None).is_empty());
        assert!(!check(&expect(json!({"outputMatches": {"a": 2}})), &got, None).is_empty());
    }

    #[test]
    fn errors_must_be_the_expected_code() {
        let failed = Err(ErrorBody {
            code: ErrorCode::InvalidInput,
            message: "bad".into(),
            details: None,
        });
        assert!(check(&expect(json!({"error": "INVALID_INPUT"})), &failed, None).is_empty());
        let p = check(&expect(json!({"error": "FATAL"})), &failed, None);
        assert!(p[0].contains("expected error FATAL, got error INVALID_INPUT"));
        let p = check(&expect(json!({"output": {}})), &failed, None);
        assert!(p[0].contains("failed with INVALID_INPUT"));
        let p = check(&expect(json!({"error": "FATAL"})), &Ok(json!(1)), None);
        assert!(p[0].contains("got output 1"));
    }

    #[test]
    fn a_broken_case_file_is_one_failing_case_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        std::fs::write(&file, r#"{"agent": "@a/b", "expect": {"outptu": 1}}"#).unwrap();
        let loaded = load_file(&file);
        assert_eq!(loaded.len(), 1);
        let reason = loaded[0].case.as_ref().unwrap_err();
        assert!(
            reason.contains("expect") && reason.contains("outptu"),
            "{reason}"
        );
    }
}
