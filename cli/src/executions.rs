//! Recorded executions: `orchestr8 executions` lists them, newest first,
//! with filters and paging; `orchestr8 inspect` prints one as a timeline,
//! and with `--follow` keeps printing its journal as it is written (by a
//! `run` or a `serve` in another process) until it ends.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use orchestr8_host::ErrorCode;
use orchestr8_host::engine::ExecutionStatus;
use orchestr8_host::runtime::{database, open_store};
use orchestr8_host::store::{ExecutionQuery, SqliteStore, Store, now, process_alive, stored_time};

use crate::error::{Failure, Outcome, exit, report};
use crate::project::StateArgs;
use crate::workflow::timeline_line;

/// How often `inspect --follow` looks for new journal entries.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

#[derive(Args)]
pub struct ListArgs {
    /// Only executions with this status: pending, running, succeeded,
    /// failed, cancelled, timed-out or interrupted.
    #[arg(long, value_parser = parse_status)]
    status: Option<ExecutionStatus>,
    /// Only executions of this workflow (its metadata.id or its name).
    #[arg(long)]
    workflow: Option<String>,
    /// Only executions started since: an RFC 3339 time
    /// (2026-12-03T10:00:00Z) or an age (30m, 2h, 7d).
    #[arg(long, value_name = "TIME|AGE")]
    since: Option<String>,
    /// Only executions started before: an RFC 3339 time or an age.
    #[arg(long, value_name = "TIME|AGE")]
    until: Option<String>,
    /// At most this many (1–1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    /// Continue where a previous page stopped (the cursor it printed).
    #[arg(long)]
    cursor: Option<u64>,
    #[command(flatten)]
    state: StateArgs,
    /// Print the page as JSON, as `GET /executions` answers it.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The execution id.
    #[arg(required_unless_present = "last")]
    execution: Option<String>,
    /// The most recent execution.
    #[arg(long, conflicts_with = "execution")]
    last: bool,
    /// Keep printing journal entries as they are recorded until the
    /// execution ends (with --json: one entry per line).
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    state: StateArgs,
    /// Print the record and journal as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CancelArgs {
    /// The execution id.
    execution: String,
    /// Wait until it has stopped, and print how it ended.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    state: StateArgs,
}

fn parse_status(text: &str) -> Result<ExecutionStatus, String> {
    ExecutionStatus::parse(text).ok_or_else(|| {
        format!(
            "`{text}` is not a status: use pending, running, succeeded, failed, cancelled, timed-out or interrupted"
        )
    })
}

/// An RFC 3339 time, or an age counted back from now, as the store keeps
/// times.
fn parse_time(flag: &str, text: &str) -> Result<String, Failure> {
    if let Some(time) = stored_time(text) {
        return Ok(time);
    }
    let age = humantime::parse_duration(text.trim()).map_err(|_| {
        report(
            ErrorCode::InvalidInput,
            &format!("--{flag} `{text}` is neither an RFC 3339 time (2026-12-03T10:00:00Z) nor an age (30m, 2h, 7d)"),
            exit::USAGE,
        )
    })?;
    let then = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(humantime::format_rfc3339_millis(then).to_string())
}

/// The store `state` names (the shared database, else the state
/// directory's), with executions whose process died marked so.
pub fn open(state: &StateArgs) -> Result<Arc<dyn Store>, Failure> {
    let state_dir = state.dir();
    let store = match state.database() {
        Some(url) => {
            open_store(&state_dir, Some(url)).map_err(|e| Failure::of(&e, exit::FAILED))?
        }
        None => open_local(&state_dir)?,
    };
    store
        .mark_interrupted(&now(), &process_alive)
        .map_err(|e| Failure::of(&e, exit::FAILED))?;
    Ok(store)
}

/// The state directory's store, which must exist.
fn open_local(state_dir: &Path) -> Result<Arc<dyn Store>, Failure> {
    let path = database(state_dir);
    if !path.is_file() {
        return Err(report(
            ErrorCode::NotFound,
            &format!(
                "no executions recorded in `{}` (run a workflow first, or point at a project with -C DIR)",
                state_dir.display()
            ),
            exit::FAILED,
        ));
    }
    let store = SqliteStore::open(&path).map_err(|e| Failure::of(&e, exit::FAILED))?;
    Ok(Arc::new(store))
}

pub fn list(args: ListArgs) -> Outcome {
    let store = open(&args.state)?;
    let query = ExecutionQuery {
        status: args.status,
        workflow: args.workflow,
        since: args.since.map(|t| parse_time("since", &t)).transpose()?,
        until: args.until.map(|t| parse_time("until", &t)).transpose()?,
        before: args.cursor,
        limit: usize::from(args.limit),
    };
    let page = store
        .list_executions(&query)
        .map_err(|e| Failure::of(&e, exit::FAILED))?;
    if args.json {
        let mut value = serde_json::json!({ "executions": page.executions });
        if let Some(next) = page.next {
            value["nextCursor"] = next.to_string().into();
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    if page.executions.is_empty() {
        println!("no executions match");
        return Ok(exit::OK);
    }
    println!(
        "{:<36}  {:<11}  {:<24}  {:<24}  {:>10}",
        "ID", "STATUS", "WORKFLOW", "STARTED", "DURATION"
    );
    for e in &page.executions {
        let took = e
            .duration_ms
            .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"));
        println!(
            "{:<36}  {:<11}  {:<24}  {:<24}  {:>10}",
            e.execution_id,
            e.status.as_str(),
            e.workflow_name,
            e.started_at,
            took
        );
    }
    if let Some(next) = page.next {
        println!("more: orchestr8 executions --cursor {next} (with the same filters)");
    }
    Ok(exit::OK)
}

pub async fn inspect(args: InspectArgs) -> Outcome {
    let store = open(&args.state)?;
    let id = match args.execution {
        Some(id) => id,
        None => store
            .last_execution()
            .map_err(|e| Failure::of(&e, exit::FAILED))?
            .ok_or_else(|| {
                report(
                    ErrorCode::NotFound,
                    "no executions recorded yet",
                    exit::FAILED,
                )
            })?,
    };
    let record = |store: &Arc<dyn Store>| match store.execution(&id) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(report(
            ErrorCode::NotFound,
            &format!("unknown execution `{id}` (orchestr8 executions lists them)"),
            exit::FAILED,
        )),
        Err(e) => Err(Failure::of(&e, exit::FAILED)),
    };
    let first = record(&store)?;
    let journal = |after: u64| {
        store
            .journal(&id, after, usize::MAX >> 1)
            .map_err(|e| Failure::of(&e, exit::FAILED))
    };
    if !args.follow {
        let entries = journal(0)?;
        if args.json {
            let value = serde_json::json!({ "execution": first, "journal": entries });
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            print_header(&first);
            for entry in &entries {
                println!("{}", timeline_line(entry));
            }
        }
        return Ok(exit::OK);
    }
    if !args.json {
        print_header(&first);
    }
    let mut seen = 0;
    loop {
        // Read the status before the entries: an execution that ended in
        // between has all its entries written by the time it is final.
        let now_record = record(&store)?;
        if !now_record.status.is_final() && !process_alive(now_record.owner_pid) {
            // Its process died: record it as interrupted, then print that.
            store
                .mark_interrupted(&now(), &process_alive)
                .map_err(|e| Failure::of(&e, exit::FAILED))?;
            continue;
        }
        let ended = now_record.status.is_final();
        for entry in journal(seen)? {
            seen = entry.seq;
            if args.json {
                println!("{}", serde_json::to_string(&entry).unwrap_or_default());
            } else {
                println!("{}", timeline_line(&entry));
            }
        }
        if ended {
            return Ok(exit::OK);
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Records a cancellation request that the process running the execution
/// (a `run`, a `serve`) picks up within a moment; the steps running then
/// get their grace period to stop, as with Ctrl-C.
pub async fn cancel(args: CancelArgs) -> Outcome {
    let store = open(&args.state)?;
    let id = args.execution;
    let record = store
        .request_cancel(&id, &now())
        .map_err(|e| Failure::of(&e, exit::FAILED))?
        .ok_or_else(|| {
            report(
                ErrorCode::NotFound,
                &format!("unknown execution `{id}` (orchestr8 executions lists them)"),
                exit::USAGE,
            )
        })?;
    if record.status.is_final() {
        return Err(report(
            ErrorCode::Conflict,
            &format!("execution `{id}` already ended: {}", record.status.as_str()),
            exit::FAILED,
        ));
    }
    println!(
        "cancellation of {id} requested; process {} stops it within a moment",
        record.owner_pid
    );
    if !args.wait {
        return Ok(exit::OK);
    }
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let now_record = store
            .execution(&id)
            .map_err(|e| Failure::of(&e, exit::FAILED))?;
        match now_record {
            Some(r) if r.status.is_final() => {
                println!("{id} ended: {}", r.status.as_str());
                return Ok(exit::OK);
            }
            Some(r) if !process_alive(r.owner_pid) => {
                store
                    .mark_interrupted(&now(), &process_alive)
                    .map_err(|e| Failure::of(&e, exit::FAILED))?;
            }
            _ => {}
        }
    }
}

fn print_header(record: &orchestr8_host::store::ExecutionRecord) {
    println!(
        "execution {} of {} ({}): {}",
        record.id,
        record.workflow_name,
        record.started_at,
        record.status.as_str()
    );
}
