//! `orchestr8 run`, `validate`, `inspect` and `schema`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use orchestr8_host::engine::{ExecutionEvent, ExecutionResult, ExecutionStatus, StepStatus};
use orchestr8_host::journal::JournalUpdate;
use orchestr8_host::orchestrator::Orchestrator;
use orchestr8_host::project::Project;
use orchestr8_host::record::{Note, Record};
use orchestr8_host::resilience::ResilienceEvent;
use orchestr8_host::runtime::cancel_on_interrupt;
use orchestr8_host::sandbox::{HttpFixtures, Sandbox, SandboxConfig};
use orchestr8_host::store::{JournalEntry, StoreError};
use orchestr8_host::workflow::{self, Plan, Workflow, WorkflowError};
use orchestr8_host::{Coded, ErrorCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::{Failure, Outcome, exit, report};
use crate::input::json_arg;
use crate::output;
use crate::project::{self, ProjectArgs};
use crate::testing;

#[derive(Args)]
pub struct RunArgs {
    /// The workflow document.
    workflow: PathBuf,
    /// Variables for the run, merged over the workflow's: a JSON object, @file or @-.
    #[arg(long, short)]
    input: Option<String>,
    #[command(flatten)]
    project: ProjectArgs,
    /// Print progress as JSON lines (one journal entry each) on stderr and
    /// the execution result as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Do not print progress.
    #[arg(long, short)]
    quiet: bool,
    /// Answer the agents' outbound HTTP from the recorded fixtures in FILE
    /// instead of the network (as `orchestr8 test` does); repeatable. A
    /// request no fixture matches is refused and printed.
    #[arg(long, value_name = "FILE")]
    fixtures: Vec<PathBuf>,
}

impl RunArgs {
    /// Whether progress goes to stderr as JSON lines.
    pub fn streams_json_progress(&self) -> bool {
        self.json && !self.quiet
    }
}

#[derive(Args)]
pub struct ValidateArgs {
    /// The workflow document.
    workflow: PathBuf,
    /// Check agent ids against the components in DIR instead of the
    /// project's agents; repeatable.
    #[arg(long = "agents-dir", value_name = "DIR")]
    agents_dirs: Vec<PathBuf>,
    /// Print the problems as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SchemaArgs {
    /// Print only the schema's SHA-256 (the value of a document's `schemaHash`).
    #[arg(long)]
    hash: bool,
    /// Print the JSON Schema of eval suite files (`orchestr8 eval`) instead.
    #[arg(long, conflicts_with = "hash")]
    eval_suite: bool,
}

fn read_workflow(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        report(
            ErrorCode::NotFound,
            &format!("cannot read workflow `{}`: {e}", path.display()),
            exit::USAGE,
        )
    })
}

/// An invalid workflow: its problems as JSON on stdout (with --json, and
/// exit 2), or as the failure `main` shows.
fn invalid(path: &Path, e: &WorkflowError, json: bool) -> Outcome {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&e.to_body()).unwrap_or_default()
        );
        return Ok(exit::USAGE);
    }
    Err(report(
        e.code(),
        &format!("{} is {e}", path.display()),
        exit::USAGE,
    ))
}

pub fn schema(args: SchemaArgs) -> Outcome {
    if args.hash {
        println!("{}", workflow::schema_hash());
    } else if args.eval_suite {
        println!(
            "{}",
            serde_json::to_string_pretty(&orchestr8_host::eval::suite::json_schema())
                .unwrap_or_default()
        );
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&workflow::json_schema()).unwrap_or_default()
        );
    }
    Ok(exit::OK)
}

/// The project's agents by id; those the workflow names and that are
/// already built with their input schemas (read from the compile cache),
/// the others with none (`true`, which accepts any input): an agent the
/// workflow does not use is never loaded.
async fn built_input_schemas(
    project: &Project,
    named: &HashSet<String>,
    config: SandboxConfig,
) -> HashMap<String, Value> {
    let sandbox = Sandbox::new(config).ok();
    let mut catalog = HashMap::new();
    for spec in project.agents.values() {
        let path = project.component_path(spec);
        let schema = match &sandbox {
            Some(sandbox) if named.contains(&spec.id) && path.is_file() => sandbox
                .load(&path)
                .await
                .map_or(Value::Bool(true), |a| a.info().input_schema.clone()),
            _ => Value::Bool(true),
        };
        catalog.insert(spec.id.clone(), schema);
    }
    catalog
}

pub async fn validate(args: ValidateArgs, config: SandboxConfig) -> Outcome {
    let text = read_workflow(&args.workflow)?;
    let result = if !args.agents_dirs.is_empty() {
        let dirs = ProjectArgs {
            agents_dirs: args.agents_dirs.clone(),
            ..ProjectArgs::default()
        };
        let runtime = dirs.open(config, None, None).await?;
        workflow::load(&text, runtime.agents().as_ref())
    } else {
        match project::current_project()? {
            Some(p) => {
                let named: HashSet<String> = workflow::parse(&text)
                    .map(|wf| wf.steps.iter().map(|s| s.agent.id.clone()).collect())
                    .unwrap_or_default();
                workflow::load(&text, &built_input_schemas(&p, &named, config).await)
            }
            None => workflow::load(&text, &()),
        }
    };
    match result {
        Ok(wf) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "steps": wf.steps.len()})
                );
            } else {
                println!(
                    "{} is valid ({} steps)",
                    args.workflow.display(),
                    wf.steps.len()
                );
            }
            Ok(exit::OK)
        }
        Err(e) => invalid(&args.workflow, &e, args.json),
    }
}

pub async fn run(args: RunArgs, config: SandboxConfig) -> Outcome {
    let text = read_workflow(&args.workflow)?;
    let variables: BTreeMap<String, Value> = match args.input.as_deref().map(json_arg).transpose() {
        Ok(None) => BTreeMap::new(),
        Ok(Some(Value::Object(map))) => map.into_iter().collect(),
        Ok(Some(_)) => {
            return Err(report(
                ErrorCode::InvalidInput,
                "--input must be a JSON object of variables",
                exit::USAGE,
            ));
        }
        Err(e) => {
            return Err(report(
                ErrorCode::InvalidInput,
                &format!("{e:#}"),
                exit::USAGE,
            ));
        }
    };
    let fixtures = if args.fixtures.is_empty() {
        None
    } else {
        let mut all = Vec::new();
        for path in &args.fixtures {
            match testing::read_fixtures(path) {
                Ok(list) => all.extend(list),
                Err(message) => return Err(report(ErrorCode::InvalidInput, &message, exit::USAGE)),
            }
        }
        Some(HttpFixtures::new(all))
    };
    // Only the agents the workflow names: one the workflow does not use
    // (unbuilt, broken) must not stop it. A document that does not parse
    // is reported by the validation below.
    let needed = workflow::parse(&text)
        .ok()
        .map(|wf| wf.steps.iter().map(|s| s.agent.id.clone()).collect());
    let runtime = args.project.open(config, fixtures.clone(), needed).await?;
    let wf: Plan = match workflow::load(&text, runtime.agents().as_ref()) {
        Ok(wf) => wf,
        Err(e) => return invalid(&args.workflow, &e, false),
    };
    // A misspelt variable would otherwise run silently with its default.
    for key in variables.keys().filter(|k| !wf.reads_variable(k)) {
        output::warning(&format!(
            "--input key `{key}` is not read by the workflow (no `${{variables.{key}}}` in its mappings, no condition names it)"
        ));
    }
    let orchestrator = runtime
        .orchestrator()
        .map_err(|e| Failure::of(&e, exit::LOAD))?;
    let cancel = CancellationToken::new();
    let style = Progress::chosen(args.quiet, args.json);
    let running = orchestrator.run(&wf, variables, cancel.clone());
    watch(
        &orchestrator,
        running,
        cancel,
        style,
        fixtures.as_ref(),
        &wf,
        args.json,
    )
    .await
}

/// Runs `execution` (a run or a resume by `orchestrator`) to its end,
/// showing its journal as `style` says, Ctrl-C cancelling it through
/// `cancel`; then prints its result (as JSON with `json`) and answers the
/// exit code: 0 when it succeeded.
pub async fn watch(
    orchestrator: &Orchestrator,
    execution: impl Future<Output = Result<ExecutionResult, StoreError>>,
    cancel: CancellationToken,
    style: Progress,
    fixtures: Option<&HttpFixtures>,
    wf: &Workflow,
    json: bool,
) -> Outcome {
    let mut progress = orchestrator.subscribe(65_536);
    let on_ctrl_c = cancel_on_interrupt(cancel, || {
        output::notice("cancelling (running steps get the grace period to stop)…")
    });
    let show = |u: &JournalUpdate| style.show(&u.entry, &u.execution_id);
    tokio::pin!(execution);
    let outcome = loop {
        tokio::select! {
            done = &mut execution => {
                while let Some(u) = progress.try_recv() {
                    show(&u);
                }
                break done;
            }
            Some(u) = progress.recv() => show(&u),
        }
    };
    on_ctrl_c.abort();
    for request in fixtures.into_iter().flat_map(HttpFixtures::unhandled) {
        output::line(
            "ERROR",
            "orchestr8",
            &format!("error: no fixture answers {request}"),
            serde_json::Map::new(),
        );
    }
    let result = outcome.map_err(|e| Failure::of(&e, exit::FAILED))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
    } else {
        print_result(wf, &result);
    }
    if result.status == ExecutionStatus::Succeeded {
        Ok(exit::OK)
    } else {
        Ok(exit::FAILED)
    }
}

/// Outputs of the steps nothing depends on: what the workflow produced.
fn print_result(wf: &Workflow, result: &ExecutionResult) {
    let used: HashSet<&str> = wf
        .steps
        .iter()
        .flat_map(|s| s.dependencies.iter().map(String::as_str))
        .collect();
    for step in wf.steps.iter().filter(|s| !used.contains(s.id.as_str())) {
        if let Some(r) = result.steps.get(&step.id)
            && r.status == StepStatus::Succeeded
            && let Some(output) = &r.output
        {
            println!("{}:", step.id);
            println!(
                "{}",
                serde_json::to_string_pretty(output).unwrap_or_default()
            );
        }
    }
    println!(
        "execution {} {}",
        result.execution_id,
        result.status.as_str()
    );
    if let Some(e) = &result.error {
        output::error(e.code, &e.message);
        if let Some(hint) = e.details.as_ref().and_then(grant_hint) {
            output::notice(&hint);
        }
    }
}

/// For a refusal that one grant would have let through, the lines to add
/// to `orchestr8.toml`, from the denials in an execution error's details.
fn grant_hint(details: &Value) -> Option<String> {
    let agent = details.get("agentId")?.as_str()?;
    // The denials of the step's last attempt, under the chain's `cause`.
    let denials = details
        .pointer("/cause/details/denials")
        .or_else(|| details.get("denials"))?
        .as_array()?;
    let mut hosts: Vec<&str> = Vec::new();
    let mut secrets: Vec<&str> = Vec::new();
    for d in denials {
        let (Some(grant), Some(capability)) = (
            d.get("grant").and_then(Value::as_str),
            d.get("capability").and_then(Value::as_str),
        ) else {
            continue;
        };
        let list = if capability == "secret" {
            &mut secrets
        } else {
            &mut hosts
        };
        if !list.contains(&grant) {
            list.push(grant);
        }
    }
    if hosts.is_empty() && secrets.is_empty() {
        return None;
    }
    let quoted = |items: &[&str]| {
        items
            .iter()
            .map(|i| serde_json::to_string(i).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut hint =
        format!("hint: to grant it, add to orchestr8.toml:\n  [agents.\"{agent}\".grants]");
    if !hosts.is_empty() {
        hint.push_str(&format!("\n  allowed_hosts = [{}]", quoted(&hosts)));
    }
    if !secrets.is_empty() {
        hint.push_str(&format!("\n  secrets = [{}]", quoted(&secrets)));
    }
    Some(hint)
}

/// How `run` shows progress.
#[derive(Clone, Copy)]
pub enum Progress {
    /// Nothing.
    Quiet,
    /// One JSON object per journal entry (for scripts).
    Json,
    /// One timeline line per journal entry (not a terminal: logs, CI).
    Lines,
    /// A JSON log line per journal entry (`--log-format json`).
    Log,
    /// What a person wants to see: steps starting, finishing, retrying.
    People,
}

impl Progress {
    /// What `--quiet` and `--json` ask for, else what suits where stderr
    /// goes.
    pub fn chosen(quiet: bool, json: bool) -> Self {
        if quiet {
            Progress::Quiet
        } else if json {
            Progress::Json
        } else if output::json() {
            Progress::Log
        } else if std::io::stderr().is_terminal() {
            Progress::People
        } else {
            Progress::Lines
        }
    }

    /// Prints one entry. A closed stderr (`run … 2>&1 | head`) must not
    /// stop the execution, so write errors are ignored rather than panicking
    /// as `eprintln!` would.
    fn show(self, e: &JournalEntry, execution_id: &str) {
        let line = match self {
            Progress::Quiet => None,
            Progress::Json => Some(serde_json::to_string(e).unwrap_or_default()),
            Progress::Lines => Some(timeline_line(e)),
            Progress::People => person_line(e),
            Progress::Log => {
                let mut fields = serde_json::Map::new();
                fields.insert("execution_id".into(), execution_id.into());
                fields.insert("seq".into(), e.seq.into());
                fields.insert("kind".into(), e.kind().into());
                if let Some(step) = e.step_id() {
                    fields.insert("step_id".into(), step.into());
                }
                if let Some(code) = e.code() {
                    fields.insert("code".into(), code.into());
                }
                output::line("INFO", "orchestr8::journal", &timeline_line(e), fields);
                None
            }
        };
        if let Some(line) = line {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

/// How long something took, for people: whole milliseconds, or a
/// fraction below ten.
fn took(duration_ms: Option<f64>) -> String {
    match duration_ms {
        Some(ms) if ms < 10.0 => format!(" ({ms:.2} ms)"),
        Some(ms) => format!(" ({} ms)", ms.round()),
        None => String::new(),
    }
}

/// The entries a person follows, in words; `None` for the rest.
fn person_line(e: &JournalEntry) -> Option<String> {
    let Record::Event(event) = &e.record else {
        return None;
    };
    let took = took(e.duration_ms());
    Some(match event {
        ExecutionEvent::ExecutionStarted { workflow_name, .. } => format!("▶ {workflow_name}"),
        ExecutionEvent::ExecutionResumed {
            restored, rerun, ..
        } => format!(
            "▶ resumed: {} step(s) done before, {} to run again",
            restored.len(),
            rerun.len()
        ),
        ExecutionEvent::StepStarted {
            step_id, agent_id, ..
        } => format!("  … {step_id} ({agent_id})"),
        ExecutionEvent::StepSucceeded { step_id, .. } => format!("  ✔ {step_id}{took}"),
        ExecutionEvent::StepFailed { step_id, error, .. } => {
            format!("  ✘ {step_id} [{}] {}", error.code, error.message)
        }
        ExecutionEvent::StepSkipped { step_id, reason } => {
            format!("  – {step_id} skipped: {reason}")
        }
        ExecutionEvent::StepCancelled { step_id, .. } => format!("  ■ {step_id} cancelled"),
        ExecutionEvent::Resilience {
            step_id,
            event:
                ResilienceEvent::RetryScheduled {
                    attempt,
                    delay_ms,
                    reason,
                },
        } => format!("  ↻ {step_id} [{reason}] retry {attempt} in {delay_ms} ms"),
        ExecutionEvent::ExecutionFinished { status, .. } => format!(
            "{} {}{took}",
            if *status == ExecutionStatus::Succeeded {
                "✔"
            } else {
                "✘"
            },
            status.as_str()
        ),
        _ => return None,
    })
}

/// What one entry says beyond its kind, step, attempt and code.
fn detail(record: &Record) -> String {
    let Record::Event(event) = record else {
        return match record {
            Record::Note(
                Note::JournalTruncated { reason }
                | Note::ExecutionInterrupted { reason }
                | Note::ExecutionReplayed { reason, .. },
            ) => {
                format!(": {reason}")
            }
            Record::Oversized(o) => format!(": dropped, {} bytes", o.original_bytes),
            _ => String::new(),
        };
    };
    match event {
        ExecutionEvent::StepFailed { error, .. } => format!(": {}", error.message),
        ExecutionEvent::ExecutionFinished { error, .. } => error
            .as_ref()
            .map(|e| format!(": {}", e.message))
            .unwrap_or_default(),
        ExecutionEvent::StepSkipped { reason, .. }
        | ExecutionEvent::StepCancelled { reason, .. } => {
            format!(": {reason}")
        }
        ExecutionEvent::Resilience { event, .. } => match event {
            ResilienceEvent::AttemptFailed { message, .. } => format!(": {message}"),
            ResilienceEvent::RetryScheduled { delay_ms, .. } => format!(" in {delay_ms} ms"),
            ResilienceEvent::BreakerStateChanged { key, from, to } => {
                format!(": {key} {} -> {}", from.as_str(), to.as_str())
            }
            _ => String::new(),
        },
        ExecutionEvent::AgentLog { line, .. } => format!(": {}", line.message),
        ExecutionEvent::HttpRecorded {
            exchange, complete, ..
        } => format!(
            ": {} {} -> {}{}",
            exchange["request"]["method"].as_str().unwrap_or("?"),
            exchange["request"]["url"].as_str().unwrap_or("?"),
            exchange["response"]["status"],
            if *complete {
                ""
            } else {
                " (body not recorded)"
            }
        ),
        ExecutionEvent::AgentEvent { event, .. } => format!(": {} {}", event.kind, event.payload),
        ExecutionEvent::ExecutionStarted { workflow_name, .. } => format!(": {workflow_name}"),
        ExecutionEvent::ExecutionResumed {
            restored,
            rerun,
            ran_ms,
            down_ms,
            owner_pid,
        } => format!(
            ": by process {owner_pid}; done before: [{}]; run again: [{}]; ran {ran_ms} ms, down {down_ms} ms",
            restored.join(", "),
            rerun.join(", ")
        ),
        _ => String::new(),
    }
}

/// One readable line per journal entry.
pub fn timeline_line(e: &JournalEntry) -> String {
    let time = e.at.get(11..23).unwrap_or(&e.at);
    let step = e.step_id().map(|s| format!(" {s}")).unwrap_or_default();
    let attempt = e.attempt().map(|a| format!(" #{a}")).unwrap_or_default();
    let code = e.code().map(|c| format!(" [{c}]")).unwrap_or_default();
    let status = match &e.record {
        Record::Event(ExecutionEvent::ExecutionFinished { status, .. }) => {
            format!(" {}", status.as_str())
        }
        _ => String::new(),
    };
    format!(
        "{time} #{:<4} {}{step}{attempt}{status}{code}{}{}",
        e.seq,
        e.kind(),
        took(e.duration_ms()),
        detail(&e.record)
    )
}
