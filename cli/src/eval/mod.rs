//! `orchestr8 eval SUITE`: runs every case of an evaluation suite N times
//! per variant, each run in a fresh sandbox under the project's limits and
//! grants, grades the outputs, and reports pass rates with their intervals
//! and, between variants, whether the difference is real.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde_json::Value;
use tokio::sync::Semaphore;

use orchestr8_host::call::AgentCall;
use orchestr8_host::engine::RegisteredAgent;
use orchestr8_host::eval::grader::{Grader, at};
use orchestr8_host::eval::report::{
    Comparison, GradeRecord, Graded, Outcome, Prices, Run, VariantReport, by_variant, compare,
    variant_report,
};
use orchestr8_host::eval::suite::{Case, Suite, Variant};
use orchestr8_host::runtime::{Place, Runtime};
use orchestr8_host::sandbox::{HttpFixture, HttpFixtures, Sandbox, SandboxConfig};
use orchestr8_host::store::now;
use orchestr8_host::{Coded, ErrorCode};

mod render;

use crate::error::{Failure, Outcome as Exit, exit, report};
use crate::project::{BuildCheck, require_project};
use crate::testing::{read_fixtures, with_fixtures};

#[derive(Args)]
pub struct EvalArgs {
    /// The suite file (such as evals/brief.json).
    suite: PathBuf,
    /// Run only these variants, the first as the baseline the others are
    /// compared with [default: every variant of the suite].
    #[arg(long = "variant", value_name = "NAME")]
    variants: Vec<String>,
    /// Runs of each case per variant [default: the suite's `trials`].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    trials: Option<u32>,
    /// Runs at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Also write the report to this file: a page of HTML when the name
    /// ends in .html or .htm, Markdown otherwise.
    #[arg(long, value_name = "FILE.md|FILE.html")]
    report: Option<PathBuf>,
    /// Exit 1 when a variant's pass rate is below this (0 to 1).
    #[arg(long, value_name = "RATE")]
    min_pass_rate: Option<f64>,
    /// A report saved before (`--json`, or the one in .orchestr8/evals/):
    /// exit 1 when a variant of the same name is now significantly worse.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Print the report as JSON (with every run).
    #[arg(long)]
    json: bool,
    /// Where the runs are recorded, in evals/ [default: the project's
    /// .orchestr8/]
    #[arg(long, value_name = "DIR", env = "ORCHESTR8_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    build: BuildCheck,
}

/// One run to make.
struct Planned {
    variant: String,
    agent: String,
    case: usize,
    trial: u32,
}

/// The whole report, as printed with `--json` and saved.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    suite: String,
    agent: String,
    trials: u32,
    cases: usize,
    at: String,
    #[serde(default, skip_deserializing)]
    variants: Vec<VariantReport>,
    #[serde(default, skip_deserializing)]
    comparisons: Vec<Comparison>,
    #[serde(default, skip_deserializing)]
    regressions: Vec<Comparison>,
    runs: Vec<Run>,
}

pub async fn eval(args: EvalArgs, config: SandboxConfig) -> Exit {
    let project = require_project()?;
    let usage = |message: String| report(ErrorCode::InvalidInput, &message, exit::USAGE);
    if let Some(rate) = args.min_pass_rate
        && !(0.0..=1.0).contains(&rate)
    {
        return Err(usage(format!(
            "--min-pass-rate must be between 0 and 1, not {rate}"
        )));
    }
    let text = std::fs::read_to_string(&args.suite)
        .map_err(|e| usage(format!("cannot read `{}`: {e}", args.suite.display())))?;
    let suite = Suite::parse(&text).map_err(|problems| {
        usage(format!(
            "`{}` is not a valid suite:\n  {}",
            args.suite.display(),
            problems.join("\n  ")
        ))
    })?;
    let variants = suite.variants(&args.variants).map_err(usage)?;
    let baseline = match &args.baseline {
        Some(file) => Some(read_baseline(file).map_err(usage)?),
        None => None,
    };
    let trials = args.trials.unwrap_or(suite.trials);
    let base = args.suite.parent().unwrap_or(Path::new("."));
    let fixtures = suite_fixtures(base, &suite).map_err(usage)?;

    // The agents the runs use: each variant's, and the judges.
    let mut needed: BTreeSet<String> = variants
        .iter()
        .map(|(_, v)| v.agent.clone().unwrap_or_else(|| suite.agent.clone()))
        .collect();
    for case in &suite.cases {
        for g in suite.graders(case) {
            if let Grader::Judge { agent, .. } = g {
                needed.insert(agent.clone());
            }
        }
    }
    for id in &needed {
        if project.agent(id).is_none() {
            return Err(usage(format!(
                "the suite runs `{id}`, which orchestr8.toml does not name"
            )));
        }
    }
    args.build.apply(&project, &config, Some(&needed)).await?;
    let sandbox = Sandbox::new(config).map_err(|e| Failure::of(&e, exit::LOAD))?;
    let place = Place {
        only: Some(needed),
        ..Place::at(&project.root)
    };
    let runtime = Arc::new(
        Runtime::open_quietly(sandbox, place)
            .await
            .map_err(|e| Failure::of(&e, exit::LOAD))?,
    );

    let plan: Vec<Planned> = variants
        .iter()
        .flat_map(|(name, variant)| {
            let agent = variant.agent.clone().unwrap_or_else(|| suite.agent.clone());
            (0..suite.cases.len()).flat_map(move |case| {
                let (name, agent) = (name.clone(), agent.clone());
                (1..=trials).map(move |trial| Planned {
                    variant: name.clone(),
                    agent: agent.clone(),
                    case,
                    trial,
                })
            })
        })
        .collect();
    let total = plan.len();
    let suite = Arc::new(suite);
    let variants_by_name: Arc<BTreeMap<String, Variant>> =
        Arc::new(variants.iter().cloned().collect());
    let permits = Arc::new(Semaphore::new(args.concurrency as usize));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, planned) in plan.into_iter().enumerate() {
        let (runtime, suite, variants, fixtures, permits) = (
            runtime.clone(),
            suite.clone(),
            variants_by_name.clone(),
            fixtures.clone(),
            permits.clone(),
        );
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let variant = variants.get(&planned.variant).cloned().unwrap_or_default();
            let run = run_once(&runtime, &suite, &variant, &planned, &fixtures).await;
            (index, run)
        });
    }
    let mut runs: Vec<Option<Run>> = (0..total).map(|_| None).collect();
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let Ok((index, run)) = joined else {
            continue;
        };
        done += 1;
        if !args.json {
            eprintln!(
                "[{done}/{total}] {} · {} · trial {}: {}{}",
                run.variant,
                run.case,
                run.trial,
                outcome_word(run.outcome),
                run.agent_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
        runs[index] = Some(run);
    }
    let runs: Vec<Run> = runs.into_iter().flatten().collect();

    let names: Vec<String> = variants.iter().map(|(n, _)| n.clone()).collect();
    let grouped = by_variant(&runs, &names);
    let prices = suite.usage.as_ref().map(|u| Prices {
        input: u.input_price_per_million,
        output: u.output_price_per_million,
    });
    let reports: Vec<VariantReport> = names
        .iter()
        .map(|n| variant_report(n, grouped.get(n).map_or(&[][..], Vec::as_slice), prices))
        .collect();
    let comparisons: Vec<Comparison> = match names.split_first() {
        Some((first, rest)) => rest
            .iter()
            .map(|n| {
                compare(
                    (first, grouped.get(first).map_or(&[][..], Vec::as_slice)),
                    (n, grouped.get(n).map_or(&[][..], Vec::as_slice)),
                    suite.cases.len(),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let regressions: Vec<Comparison> = match &baseline {
        Some(before) => names
            .iter()
            .filter_map(|n| {
                let then: Vec<&Run> = before.iter().filter(|r| &r.variant == n).collect();
                if then.is_empty() {
                    return None;
                }
                let label = format!("{n} (baseline)");
                Some(compare(
                    (&label, &then),
                    (n, grouped.get(n).map_or(&[][..], Vec::as_slice)),
                    suite.cases.len(),
                ))
            })
            .collect(),
        None => Vec::new(),
    };

    let saved = Saved {
        suite: args.suite.display().to_string(),
        agent: suite.agent.clone(),
        trials,
        cases: suite.cases.len(),
        at: now(),
        variants: reports,
        comparisons,
        regressions,
        runs,
    };
    let json = serde_json::to_string_pretty(&saved).unwrap_or_default();
    let state = args
        .state_dir
        .clone()
        .unwrap_or_else(|| project.root.join(".orchestr8"));
    let kept = keep(&state, &args.suite, &json);
    if let Some(file) = &args.report {
        let is_html = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
        let page = if is_html {
            render::html(&saved)
        } else {
            render::markdown(&saved)
        };
        std::fs::write(file, page).map_err(|e| {
            report(
                ErrorCode::Internal,
                &format!("cannot write `{}`: {e}", file.display()),
                exit::FAILED,
            )
        })?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", render::terminal(&saved));
        if let Some(kept) = kept {
            println!("runs recorded in {}", kept.display());
        }
    }

    let mut failing = Vec::new();
    if let Some(min) = args.min_pass_rate {
        for v in &saved.variants {
            if v.overall.pass_rate.is_none_or(|r| r < min) {
                failing.push(format!(
                    "{} passes {} of runs, under --min-pass-rate {min}",
                    v.overall.name,
                    render::percent(v.overall.pass_rate)
                ));
            }
        }
    }
    for r in &saved.regressions {
        if r.significant && r.difference < 0.0 {
            failing.push(format!("regression: {}", r.verdict));
        }
    }
    if failing.is_empty() {
        Ok(exit::OK)
    } else {
        for f in &failing {
            eprintln!("FAILED {f}");
        }
        Ok(exit::FAILED)
    }
}

/// Each case's fixtures (the suite's, then its own), or `None` when it has
/// none (its runs reach the hosts the agent is granted).
fn suite_fixtures(
    base: &Path,
    suite: &Suite,
) -> Result<Arc<Vec<Option<Vec<HttpFixture>>>>, String> {
    let mut all = Vec::with_capacity(suite.cases.len());
    for case in &suite.cases {
        let files: Vec<&String> = suite.fixtures.iter().chain(&case.fixtures).collect();
        if files.is_empty() {
            all.push(None);
            continue;
        }
        let mut fixtures = Vec::new();
        for file in files {
            fixtures.extend(read_fixtures(&base.join(file))?);
        }
        all.push(Some(fixtures));
    }
    Ok(Arc::new(all))
}

/// One run: the agent in a fresh sandbox, then every grader.
async fn run_once(
    runtime: &Runtime,
    suite: &Suite,
    variant: &Variant,
    planned: &Planned,
    fixtures: &[Option<Vec<HttpFixture>>],
) -> Run {
    // `planned.case` was made from the cases' indices.
    let case: &Case = &suite.cases[planned.case];
    // Fixtures of its own: the requests they did not answer are this run's.
    let fixtures = fixtures
        .get(planned.case)
        .cloned()
        .flatten()
        .map(HttpFixtures::new);
    let agents = with_fixtures(runtime, fixtures.as_ref(), &suite.secrets);
    let mut run = Run {
        variant: planned.variant.clone(),
        case: case.name.clone(),
        trial: planned.trial,
        outcome: Outcome::Failed,
        duration_ms: 0.0,
        agent_error: None,
        output: None,
        grades: Vec::new(),
        input_tokens: None,
        output_tokens: None,
    };
    let Some(registered) = agents.get(&planned.agent) else {
        run.agent_error = Some(format!("NOT_FOUND: no agent `{}`", planned.agent));
        return run;
    };
    let started = Instant::now();
    let output = call(
        runtime,
        registered,
        case.input.clone(),
        suite.config(variant, case),
    )
    .await;
    run.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            run.agent_error = Some(e);
            return run;
        }
    };
    if let Some(unhandled) = fixtures.as_ref().map(HttpFixtures::unhandled)
        && !unhandled.is_empty()
    {
        let requests: Vec<String> = unhandled.iter().map(ToString::to_string).collect();
        run.agent_error = Some(format!(
            "unhandled outbound request: {} (add a fixture for it)",
            requests.join(", ")
        ));
        return run;
    }
    if let Some(usage) = &suite.usage {
        let count = |path: &str| at(path, &output).ok().and_then(|v| v.as_u64());
        run.input_tokens = count(&usage.input_tokens);
        run.output_tokens = count(&usage.output_tokens);
    }
    let schema = registered.agent.info().output_schema.clone();
    for grader in suite.graders(case) {
        let grade = match grader {
            Grader::Judge { agent, rubric, .. } => match agents.get(agent) {
                Some(judge) => {
                    let asked = Grader::judge_input(rubric, &case.input, &output);
                    let answer = call(runtime, judge, asked, Value::Null).await;
                    grader.judged(answer.as_ref().map_err(String::as_str))
                }
                None => grader.judged(Err("not loaded")),
            },
            other => other.grade(&case.input, &output, &schema),
        };
        run.grades.push(Graded {
            grader: grader.label(),
            grade: GradeRecord::from(grade),
        });
    }
    run.outcome = Run::outcome_of(None, &run.grades);
    run.output = Some(output);
    run
}

/// Calls `agent` once, in a fresh sandbox, with circuits of its own.
async fn call(
    runtime: &Runtime,
    agent: &RegisteredAgent,
    input: Value,
    config: Value,
) -> Result<Value, String> {
    let mut call = AgentCall::new(agent, input);
    call.config = config;
    let outcome = runtime.isolated_invoker().call(agent, call, &|_| {}).await;
    outcome.result.map_err(|e| {
        let body = e.to_body();
        format!("{}: {}", body.code.as_str(), body.message)
    })
}

/// The runs of a report saved before.
fn read_baseline(file: &Path) -> Result<Vec<Run>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the baseline `{}`: {e}", file.display()))?;
    let saved: Saved = serde_json::from_str(&text).map_err(|e| {
        format!(
            "`{}` is not an eval report (`orchestr8 eval --json`): {e}",
            file.display()
        )
    })?;
    Ok(saved.runs)
}

/// Saves the report with every run in the state folder's `evals/`; where,
/// if it could.
fn keep(state: &Path, suite: &Path, json: &str) -> Option<PathBuf> {
    let dir = state.join("evals");
    let stem = suite.file_stem()?.to_string_lossy().to_string();
    let stamp = now().replace([':', '.'], "-");
    let file = dir.join(format!("{stem}-{stamp}.json"));
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(&file, json).ok()?;
    Some(file)
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Error => "grader error",
    }
}
