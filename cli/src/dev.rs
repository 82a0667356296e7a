//! `orchestr8 dev`: build, serve and watch. The project's agents are built
//! (those never built or changed since), the REST API is served as
//! `orchestr8 serve` serves it, and the project is looked at again every
//! `--poll-ms`: an agent whose sources changed, or one new in
//! `orchestr8.toml`, is rebuilt, and the server swaps the new build in
//! (calls in flight finish on the build they started with). A build that
//! fails is shown and the last good build keeps serving until the sources
//! change again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use orchestr8_host::ErrorCode;
use orchestr8_host::project::Project;
use orchestr8_host::registry::AgentRegistry;
use orchestr8_host::runtime::Runtime;
use orchestr8_host::sandbox::{Sandbox, SandboxConfig};

use crate::build;
use crate::error::{Failure, Outcome, exit, report};
use crate::output;
use crate::project::{StateArgs, require_project};
use crate::serve::{self, ServerArgs};

#[derive(Args)]
pub struct DevArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    state: StateArgs,
    /// How often the project's sources and orchestr8.toml are looked at for
    /// changes, in milliseconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    poll_ms: u64,
}

/// What the watcher remembers between looks.
#[derive(Default)]
struct Watch {
    /// Per agent, when its sources had last changed at its last build
    /// attempt: a failed build is not tried again until they change.
    tried: HashMap<String, Option<SystemTime>>,
    /// The last problem shown, so a lasting one is said once.
    problem: Option<String>,
}

impl Watch {
    fn say_once(&mut self, problem: String) {
        if self.problem.as_ref() != Some(&problem) {
            output::notice(&problem);
            self.problem = Some(problem);
        }
    }
}

pub async fn dev(args: DevArgs, config: SandboxConfig) -> Outcome {
    let project = require_project()?;
    let root = project.root.clone();
    let (listener, http) = serve::listen(args.server.listen()).await?;
    let mut watch = Watch::default();
    build_due(&root, &config, &mut watch).await;
    let sandbox = Sandbox::new(config.clone()).map_err(|e| Failure::of(&e, exit::LOAD))?;
    let place = orchestr8_host::runtime::Place {
        state_dir: args.state.given(),
        ..orchestr8_host::runtime::Place::at(&root)
    };
    let runtime = Runtime::open_live(sandbox, place)
        .await
        .map_err(|e| Failure::of(&e, exit::LOAD))?;
    let registry = runtime.registry().clone();
    let every = Duration::from_millis(args.poll_ms);
    output::notice(&format!(
        "watching {} for changes to its agents and orchestr8.toml (Ctrl-C stops)",
        root.display()
    ));
    let watcher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            build_due(&root, &config, &mut watch).await;
            reload(&registry, &mut watch).await;
        }
    });
    let served = serve::serve_api(listener, http, runtime, &args.server).await;
    watcher.abort();
    served
}

/// Builds the agents that are due: built from sources, and never built or
/// changed since their last build (or last failed attempt).
async fn build_due(root: &std::path::Path, config: &SandboxConfig, watch: &mut Watch) {
    let project = match Project::load(root) {
        Ok(p) => p,
        Err(e) => {
            watch.say_once(format!("orchestr8.toml cannot be used: {e}"));
            return;
        }
    };
    let stale: HashSet<String> = project
        .stale_agents()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let due: Vec<(String, Option<SystemTime>)> = project
        .agents
        .values()
        .filter(|spec| spec.source.is_built())
        .filter(|spec| stale.contains(&spec.id) || !project.component_path(spec).is_file())
        .map(|spec| (spec.id.clone(), project.sources_changed(spec)))
        .filter(|(id, changed)| watch.tried.get(id) != Some(changed))
        .collect();
    // One at a time: one agent that does not build must not hold back the others.
    for (id, changed) in due {
        watch.tried.insert(id.clone(), changed);
        output::notice(&format!("building {id}…"));
        let started = Instant::now();
        match build_in_background(project.clone(), id.clone(), config.clone()).await {
            Ok(built) => {
                watch.problem = None;
                for b in built {
                    output::notice(&format!(
                        "built {} {} (sha256:{}) in {:.1} s",
                        b.id,
                        b.version,
                        &b.digest[..12.min(b.digest.len())],
                        started.elapsed().as_secs_f64()
                    ));
                }
            }
            Err(f) => watch.say_once(format!(
                "{}\nthe last good build of {id} keeps serving; save a fix to rebuild",
                f.message
            )),
        }
    }
}

/// Runs the build off the async workers: cargo and the toolchains block
/// for seconds, and the server must keep answering meanwhile.
async fn build_in_background(
    project: Project,
    id: String,
    config: SandboxConfig,
) -> Result<Vec<build::Built>, Failure> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let specs: Vec<_> = project.agents.get(&id).into_iter().collect();
        handle.block_on(build::build_agents(&project, &specs, None, config))
    })
    .await
    .unwrap_or_else(|e| {
        Err(report(
            ErrorCode::Internal,
            &format!("the build was interrupted: {e}"),
            exit::FAILED,
        ))
    })
}

/// Swaps in what changed and says what the server runs now.
async fn reload(registry: &Arc<AgentRegistry>, watch: &mut Watch) {
    let before = registry.current();
    match registry.refreshed().await {
        Ok(now) => {
            for id in now.changed_since(&before) {
                match now.get(&id) {
                    Some(a) => output::notice(&format!(
                        "serving {id} {} (sha256:{})",
                        a.agent.info().version,
                        &a.agent.digest()[..12]
                    )),
                    None => output::notice(&format!("{id} is no longer served")),
                }
            }
            for (id, why) in now.broken() {
                if before.broken().get(id) != Some(why) {
                    output::warning(&format!("agent `{id}` is not loaded: {why}"));
                }
            }
        }
        Err(e) => watch.say_once(format!("the agents cannot be reloaded: {e}")),
    }
}
