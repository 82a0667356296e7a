//! `orchestr8 replay`: runs a recorded execution's steps again, each with
//! the input its journal recorded and the HTTP responses its last attempt
//! received served back from the journal (no network), and says per step
//! whether the output is identical or where it diverges.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Args;
use orchestr8_host::call::{AgentCall, RegisteredAgent};
use orchestr8_host::engine::ExecutionEvent;
use orchestr8_host::ids::{ExecutionId, StepId};
use orchestr8_host::journal::MAX_ENTRIES;
use orchestr8_host::record::{JournalEntry, NewEntry, Note, Record};
use orchestr8_host::resilience::{ResilienceEvent, ignore_events};
use orchestr8_host::sandbox::{HttpFixture, HttpFixtures, RecordedInputs, SandboxConfig};
use orchestr8_host::{Coded, ErrorCode};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Failure, Outcome, exit, report};
use crate::executions;
use crate::project::ProjectArgs;

#[derive(Args)]
pub struct ReplayArgs {
    /// The execution to replay.
    execution: String,
    /// Replay only this step.
    #[arg(long)]
    step: Option<String>,
    /// Run this component instead of the recorded agent: for the --step
    /// given, or else for every step whose agent has the id it reports.
    #[arg(long, value_name = "FILE.wasm")]
    agent: Option<PathBuf>,
    #[command(flatten)]
    project: ProjectArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// What the journal says one step did, as far as a replay needs it.
struct Recorded {
    step_id: String,
    agent_id: String,
    config: Value,
    input: Value,
    attempt: u32,
    exchanges: Vec<HttpFixture>,
    inputs: Option<RecordedInputs>,
    /// Why it cannot be replayed exactly, if it cannot.
    unrecorded: Option<String>,
    ended: Result<Value, (String, String)>,
}

/// How the replay of one step came out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    step_id: String,
    /// `identical`, `diverged` or `not-replayable`.
    verdict: &'static str,
    /// What differs, or why it cannot be replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

pub async fn replay(args: ReplayArgs, config: SandboxConfig) -> Outcome {
    let store = executions::open(&args.project.state)?;
    let id = args.execution.clone();
    let record = store
        .execution(&id)
        .map_err(|e| Failure::of(&e, exit::FAILED))?
        .ok_or_else(|| {
            report(
                ErrorCode::NotFound,
                &format!("unknown execution `{id}` (orchestr8 executions lists them)"),
                exit::USAGE,
            )
        })?;
    let document = record.workflow.ok_or_else(|| {
        report(
            ErrorCode::Conflict,
            &format!("execution `{id}` was recorded without its workflow (by an older orchestr8): it cannot be replayed"),
            exit::FAILED,
        )
    })?;
    let journal = store
        .journal(&id, 0, MAX_ENTRIES as usize)
        .map_err(|e| Failure::of(&e, exit::FAILED))?;
    drop(store);
    let mut steps = recorded_steps(&document, &journal);
    if let Some(only) = &args.step {
        steps.retain(|s| &s.step_id == only);
        if steps.is_empty() {
            return Err(report(
                ErrorCode::NotFound,
                &format!("execution `{id}` has no ended step `{only}` to replay"),
                exit::USAGE,
            ));
        }
    }
    let needed: BTreeSet<String> = steps.iter().map(|s| s.agent_id.clone()).collect();
    let runtime = args.project.open(config, None, Some(needed)).await?;
    let replacement = match &args.agent {
        Some(path) => Some(
            runtime
                .sandbox()
                .load(path)
                .await
                .map_err(|e| Failure::of(&e, exit::LOAD))?,
        ),
        None => None,
    };
    let invoker = runtime.isolated_invoker();
    let mut verdicts = Vec::new();
    for step in &steps {
        let Some(mut agent) = runtime.agent(&step.agent_id) else {
            verdicts.push(not_replayable(
                step,
                format!("agent `{}` is not in this project", step.agent_id),
            ));
            continue;
        };
        if let Some(component) = &replacement
            && (args.step.is_some() || component.info().id == step.agent_id)
        {
            agent = RegisteredAgent {
                agent: component.clone(),
                ..agent
            };
        }
        if let Some(why) = &step.unrecorded {
            verdicts.push(not_replayable(step, why.clone()));
            continue;
        }
        verdicts.push(replay_step(&invoker, agent, step, &id).await);
    }
    let diverged = verdicts.iter().filter(|v| v.verdict != "identical").count();
    // The journal says it was replayed and how that went: `inspect` shows it.
    let not_identical: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.verdict != "identical")
        .map(|v| v.step_id.as_str())
        .collect();
    let reason = format!(
        "{} identical, {} not{}{}",
        verdicts.len() - diverged,
        diverged,
        if not_identical.is_empty() { "" } else { ": " },
        not_identical.join(", ")
    );
    let note = NewEntry::now(Record::Note(Note::ExecutionReplayed {
        reason,
        steps: serde_json::to_value(&verdicts).unwrap_or(Value::Null),
    }));
    executions::open(&args.project.state)?
        .append(&id, &[note])
        .map_err(|e| Failure::of(&e, exit::FAILED))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdicts).unwrap_or_default()
        );
    } else {
        for v in &verdicts {
            let detail = v
                .detail
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            println!("{:<24} {}{detail}", v.step_id, v.verdict);
        }
        println!(
            "{} step(s) replayed: {} identical, {} not",
            verdicts.len(),
            verdicts.len() - diverged,
            diverged
        );
    }
    Ok(if diverged == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn not_replayable(step: &Recorded, why: String) -> Verdict {
    Verdict {
        step_id: step.step_id.clone(),
        verdict: "not-replayable",
        detail: Some(why),
    }
}

/// Runs one step again on its recorded input and responses, offline.
async fn replay_step(
    invoker: &orchestr8_host::call::Invoker,
    mut agent: RegisteredAgent,
    step: &Recorded,
    id: &str,
) -> Verdict {
    let fixtures = HttpFixtures::once_each(step.exchanges.clone());
    agent.policy.http_fixtures = Some(fixtures.clone());
    agent.policy.replay_inputs = step.inputs.clone();
    let mut call = AgentCall::new(&agent, step.input.clone());
    call.execution_id = ExecutionId::from(id);
    call.step_id = StepId::from(step.step_id.as_str());
    call.config = step.config.clone();
    call.attempts_before = step.attempt.saturating_sub(1);
    let outcome = invoker.call(&agent, call, &ignore_events).await;
    let now = outcome.result.map_err(|e| {
        let body = e.to_body();
        (body.code.as_str().to_string(), body.message)
    });
    let unanswered: Vec<String> = fixtures
        .unhandled()
        .iter()
        .map(ToString::to_string)
        .collect();
    let detail = match (&step.ended, &now) {
        _ if !unanswered.is_empty() => Some(format!(
            "made requests the recording does not have: {}",
            unanswered.join(", ")
        )),
        (Ok(before), Ok(after)) => first_difference(before, after, "$"),
        (Err((code, _)), Err((now_code, _))) if code == now_code => None,
        (Err((code, _)), Ok(_)) => Some(format!("failed with {code} before, succeeds now")),
        (Ok(_), Err((code, message))) => Some(format!("fails now: {code} {message}")),
        (Err((code, _)), Err((now_code, message))) => Some(format!(
            "failed with {code} before, with {now_code} now: {message}"
        )),
    };
    Verdict {
        step_id: step.step_id.clone(),
        verdict: if detail.is_none() {
            "identical"
        } else {
            "diverged"
        },
        detail,
    }
}

/// Where `after` first differs from `before`, as a JSON path with both
/// values; `None` when they are equal.
fn first_difference(before: &Value, after: &Value, path: &str) -> Option<String> {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => a
            .keys()
            .chain(b.keys().filter(|k| !a.contains_key(*k)))
            .find_map(|k| {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                first_difference(x, y, &format!("{path}.{k}"))
            }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]"))),
        _ if before == after => None,
        _ => Some(format!("{path}: recorded {before}, now {after}")),
    }
}

/// The steps the journal saw end (not through a fallback), each with what
/// its last attempt received.
fn recorded_steps(document: &Value, journal: &[JournalEntry]) -> Vec<Recorded> {
    let mut steps: Vec<Recorded> = Vec::new();
    let defs = document["steps"].as_array().cloned().unwrap_or_default();
    for def in &defs {
        let Some(step_id) = def["id"].as_str() else {
            continue;
        };
        let mut input = None;
        let mut attempt = 0;
        let mut exchanges: Vec<(u32, Option<HttpFixture>, bool)> = Vec::new();
        let mut inputs: Vec<(u32, Option<RecordedInputs>)> = Vec::new();
        let mut ended = None;
        // A step-started or step-succeeded entry too large to journal.
        let mut too_large = None;
        for entry in journal.iter().filter(|e| e.step_id() == Some(step_id)) {
            let event = match &entry.record {
                Record::Event(event) => event,
                Record::Oversized(o) if o.kind == "step-started" || o.kind == "step-succeeded" => {
                    too_large = Some(format!(
                        "its {} ({} bytes) was too large to journal",
                        if o.kind == "step-started" {
                            "input"
                        } else {
                            "output"
                        },
                        o.original_bytes
                    ));
                    if o.kind == "step-started" {
                        input = Some(Value::Null);
                    } else {
                        ended = Some(Ok(Value::Null));
                    }
                    continue;
                }
                _ => continue,
            };
            match event {
                ExecutionEvent::StepStarted { input: i, .. } => input = Some(i.clone()),
                ExecutionEvent::Resilience {
                    event: ResilienceEvent::AttemptStarted { attempt: a, .. },
                    ..
                } => attempt = *a,
                ExecutionEvent::HttpRecorded {
                    attempt: a,
                    exchange,
                    complete,
                    ..
                } => exchanges.push((
                    *a,
                    serde_json::from_value::<HttpFixture>(exchange.clone()).ok(),
                    *complete,
                )),
                ExecutionEvent::InputsRecorded {
                    attempt: a,
                    inputs: recorded,
                    ..
                } => inputs.push((*a, serde_json::from_value(recorded.clone()).ok())),
                ExecutionEvent::StepSucceeded {
                    output,
                    via_fallback: None,
                    ..
                } => ended = Some(Ok(output.clone())),
                ExecutionEvent::StepFailed {
                    error,
                    continued: false,
                    ..
                } => {
                    ended = Some(Err((
                        error.code.as_str().to_string(),
                        error.message.clone(),
                    )))
                }
                _ => {}
            }
        }
        let (Some(input), Some(ended)) = (input, ended) else {
            continue;
        };
        let last: Vec<(Option<HttpFixture>, bool)> = exchanges
            .into_iter()
            .filter(|(a, _, _)| *a == attempt)
            .map(|(_, f, c)| (f, c))
            .collect();
        let taped: Vec<Option<RecordedInputs>> = inputs
            .into_iter()
            .filter(|(a, _)| *a == attempt)
            .map(|(_, i)| i)
            .collect();
        let tape_complete = taped.iter().all(|i| i.as_ref().is_some_and(|i| i.complete));
        let http_complete = last.iter().all(|(f, c)| *c && f.is_some());
        let unrecorded = too_large.or_else(|| {
            (!(http_complete && tape_complete)).then(|| {
                "what it received was not recorded whole (a response too large, not text, or not read to its end; or too many clock readings or random bytes)".to_string()
            })
        });
        steps.push(Recorded {
            step_id: step_id.to_string(),
            agent_id: def["agent"]["id"].as_str().unwrap_or_default().to_string(),
            config: def["agent"]["config"].clone(),
            input,
            attempt,
            unrecorded,
            inputs: taped.into_iter().flatten().next(),
            exchanges: last.into_iter().filter_map(|(f, _)| f).collect(),
            ended,
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestr8_host::record::Oversized;
    use serde_json::json;

    fn stored(records: Vec<Record>) -> Vec<JournalEntry> {
        records
            .into_iter()
            .zip(1..)
            .map(|(r, seq)| NewEntry::now(r).stored(seq))
            .collect()
    }

    #[test]
    fn a_step_whose_output_was_too_large_to_journal_is_not_replayable() {
        let document = json!({"steps": [{"id": "s", "agent": {"id": "@a/b"}}]});
        let journal = stored(vec![
            Record::Event(ExecutionEvent::StepStarted {
                step_id: "s".into(),
                agent_id: "@a/b".into(),
                input: json!({}),
            }),
            Record::Oversized(Oversized {
                kind: "step-succeeded".into(),
                truncated: true,
                original_bytes: 20_000_000,
                step_id: Some("s".into()),
            }),
        ]);
        let steps = recorded_steps(&document, &journal);
        assert_eq!(steps.len(), 1);
        assert_eq!(
            steps[0].unrecorded.as_deref(),
            Some("its output (20000000 bytes) was too large to journal")
        );
    }
}
