//! `orchestr8 resume`: goes on with executions whose process died, from
//! their journals, in this process (same execution, same journal).

use std::collections::BTreeSet;

use clap::Args;
use orchestr8_host::engine::{ExecutionStatus, ResumeError};
use orchestr8_host::sandbox::SandboxConfig;
use orchestr8_host::store::ExecutionQuery;
use tokio_util::sync::CancellationToken;

use crate::error::{Failure, Outcome, exit};
use crate::executions;
use crate::project::ProjectArgs;
use crate::workflow::{Progress, watch};

#[derive(Args)]
pub struct ResumeArgs {
    /// The execution to go on with: one whose process died
    /// (`orchestr8 executions --status interrupted` lists them).
    #[arg(required_unless_present = "all")]
    execution: Option<String>,
    /// Every interrupted execution, oldest first, one after another.
    #[arg(long, conflicts_with = "execution")]
    all: bool,
    #[command(flatten)]
    project: ProjectArgs,
    /// Print progress as JSON lines on stderr and each result as JSON on
    /// stdout.
    #[arg(long)]
    json: bool,
    /// Do not print progress.
    #[arg(long, short)]
    quiet: bool,
}

impl ResumeArgs {
    /// Whether progress goes to stderr as JSON lines.
    pub fn streams_json_progress(&self) -> bool {
        self.json && !self.quiet
    }
}

pub async fn resume(args: ResumeArgs, config: SandboxConfig) -> Outcome {
    let store = executions::open(&args.project.state)?;
    let ids: Vec<String> = match &args.execution {
        Some(id) => vec![id.clone()],
        None => {
            let query = ExecutionQuery {
                status: Some(ExecutionStatus::Interrupted),
                limit: 1000,
                ..ExecutionQuery::default()
            };
            let page = store
                .list_executions(&query)
                .map_err(|e| Failure::of(&e, exit::FAILED))?;
            page.executions
                .into_iter()
                .rev()
                .map(|e| e.execution_id.to_string())
                .collect()
        }
    };
    if ids.is_empty() {
        println!("no interrupted executions to resume");
        return Ok(exit::OK);
    }
    // Only the agents their workflows use.
    let mut needed = BTreeSet::new();
    for id in &ids {
        let document = store
            .execution(id)
            .map_err(|e| Failure::of(&e, exit::FAILED))?
            .and_then(|r| r.workflow);
        let agents = document
            .as_ref()
            .and_then(|d| d.get("steps"))
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .filter_map(|step| step.pointer("/agent/id").and_then(|a| a.as_str()));
        needed.extend(agents.map(str::to_string));
    }
    drop(store);
    let runtime = args.project.open(config, None, Some(needed)).await?;
    let orchestrator = runtime
        .orchestrator()
        .map_err(|e| Failure::of(&e, exit::LOAD))?;
    let mut code = exit::OK;
    for id in ids {
        let resumable = orchestrator
            .prepare_resume(&id, runtime.agents().as_ref())
            .map_err(|e| {
                let code = match e {
                    ResumeError::Unknown(_) => exit::USAGE,
                    _ => exit::FAILED,
                };
                Failure::of(&e, code)
            })?;
        let wf = resumable.plan().workflow().clone();
        let cancel = CancellationToken::new();
        let style = Progress::chosen(args.quiet, args.json);
        let going = {
            let (orchestrator, cancel) = (&orchestrator, cancel.clone());
            async move {
                let claimed = orchestrator.claim(resumable).await?;
                orchestrator.resume(claimed, cancel).await
            }
        };
        if watch(&orchestrator, going, cancel, style, None, &wf, args.json).await? != exit::OK {
            code = exit::FAILED;
        }
    }
    Ok(code)
}
