//! The agents a runtime runs, as they are now.
//!
//! One-shot commands (`run`, `test`, `agent call`) load their agents once: a
//! fixed set. A server (`orchestr8 serve`, `orchestr8 dev`) keeps a live one:
//! before it accepts an execution it compares the sizes and modification
//! times of `orchestr8.toml`, the secrets file and every component with those
//! it loaded, and on any change loads the project again (components whose
//! files did not change are kept as compiled) and swaps the new set in
//! whole. A call takes the set as it is when the call starts (an `Arc`), so
//! calls in flight finish on the version they started with; the journal
//! records each attempt's component digest. An agent that cannot load is
//! set aside with the reason: it fails only the workflows that use it.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use serde_json::Value;

use crate::call::RegisteredAgent;
use crate::project::Project;
use crate::runtime::{Place, RuntimeError, load_component, register, scan_dirs};
use crate::sandbox::{LoadedAgent, Sandbox};
use crate::workflow::AgentCatalog;

/// The agents at one moment, by id, with those that could not load.
#[derive(Clone, Default)]
pub struct AgentSet {
    agents: HashMap<String, RegisteredAgent>,
    broken: BTreeMap<String, String>,
}

impl AgentSet {
    /// These agents, none broken.
    pub fn new(agents: HashMap<String, RegisteredAgent>) -> Self {
        AgentSet {
            agents,
            broken: BTreeMap::new(),
        }
    }

    /// The agents the project names that could not be loaded, with why.
    pub fn broken(&self) -> &BTreeMap<String, String> {
        &self.broken
    }

    /// The agents, taken out.
    pub fn into_agents(self) -> HashMap<String, RegisteredAgent> {
        self.agents
    }

    /// The ids whose component is new, gone or another build than in
    /// `before` (sorted).
    pub fn changed_since(&self, before: &AgentSet) -> Vec<String> {
        let digest = |set: &AgentSet, id: &str| set.get(id).map(|a| a.agent.digest().to_string());
        let mut ids: Vec<String> = self
            .keys()
            .chain(before.keys())
            .filter(|id| digest(self, id) != digest(before, id))
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

impl Deref for AgentSet {
    type Target = HashMap<String, RegisteredAgent>;

    fn deref(&self) -> &Self::Target {
        &self.agents
    }
}

impl AgentCatalog for AgentSet {
    fn contains(&self, id: &str) -> bool {
        self.agents.contains_key(id)
    }

    fn input_schema(&self, id: &str) -> Option<&Value> {
        self.agents.get(id).map(|a| &a.agent.info().input_schema)
    }

    fn unknown_hint(&self, id: &str) -> Option<String> {
        if let Some(why) = self.broken.get(id) {
            return Some(format!("it cannot be loaded: {why}"));
        }
        let mut known: Vec<&str> = self.agents.keys().map(String::as_str).collect();
        known.sort_unstable();
        Some(if known.is_empty() {
            "no agent is loaded; add one with `orchestr8 create` or `orchestr8 install`".into()
        } else {
            format!(
                "the agents here are {}; add others with `orchestr8 create` or `orchestr8 install`",
                known.join(", ")
            )
        })
    }
}

/// A file's size and modification time: what says it changed.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// What was loaded, to tell when to load again.
#[derive(Default)]
struct Loaded {
    /// Every file the set depends on, with its stamp when read.
    files: Vec<(PathBuf, Stamp)>,
    /// Components by file, with the stamp they were loaded at.
    components: HashMap<PathBuf, (Stamp, LoadedAgent)>,
}

impl Loaded {
    fn unchanged(&self) -> bool {
        self.files.iter().all(|(path, was)| stamp(path) == *was)
    }
}

struct Live {
    sandbox: Sandbox,
    place: Place,
    /// Held while loading, so one reload runs at a time.
    loaded: tokio::sync::Mutex<Loaded>,
}

/// The agents a runtime runs: fixed, or live (reloaded on change).
pub struct AgentRegistry {
    current: RwLock<Arc<AgentSet>>,
    live: Option<Live>,
}

impl AgentRegistry {
    /// A set that never changes.
    pub fn fixed(agents: HashMap<String, RegisteredAgent>) -> Self {
        AgentRegistry {
            current: RwLock::new(Arc::new(AgentSet::new(agents))),
            live: None,
        }
    }

    /// The agents at `place`, loaded now and again whenever their files
    /// change. Only a project that cannot be read fails; an agent that
    /// cannot load is set aside with why (and logged).
    pub async fn live(sandbox: Sandbox, place: Place) -> Result<Self, RuntimeError> {
        let mut loaded = Loaded::default();
        let set = load(&sandbox, &place, &mut loaded).await?;
        Ok(AgentRegistry {
            current: RwLock::new(Arc::new(set)),
            live: Some(Live {
                sandbox,
                place,
                loaded: tokio::sync::Mutex::new(loaded),
            }),
        })
    }

    /// The set as it is now.
    pub fn current(&self) -> Arc<AgentSet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The set, loaded again first if a file it depends on changed. When
    /// the project can no longer be read (a typo saved in
    /// `orchestr8.toml`), that is the error and the set in use stays.
    pub async fn refreshed(&self) -> Result<Arc<AgentSet>, RuntimeError> {
        let Some(live) = &self.live else {
            return Ok(self.current());
        };
        let mut loaded = live.loaded.lock().await;
        if loaded.unchanged() {
            return Ok(self.current());
        }
        let mut next = Loaded {
            components: std::mem::take(&mut loaded.components),
            ..Loaded::default()
        };
        let result = load(&live.sandbox, &live.place, &mut next).await;
        // Compiled components stay for the next try even when this one fails.
        loaded.components = std::mem::take(&mut next.components);
        let set = Arc::new(result?);
        loaded.files = next.files;
        let before = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            set.clone(),
        );
        let changed = set.changed_since(&before);
        if !changed.is_empty() || set.broken != before.broken {
            tracing::info!(?changed, broken = ?set.broken.keys().collect::<Vec<_>>(), "agents reloaded");
        }
        Ok(set)
    }
}

/// Loads the agents at `place`, reusing `loaded`'s components whose files
/// did not change, and records in it what the set depends on.
async fn load(
    sandbox: &Sandbox,
    place: &Place,
    loaded: &mut Loaded,
) -> Result<AgentSet, RuntimeError> {
    if !place.agents_dirs.is_empty() {
        // Components found by scanning: any file added, changed or removed
        // in the directories counts.
        let agents = scan_dirs(sandbox, &place.agents_dirs).await?;
        loaded.files = place
            .agents_dirs
            .iter()
            .map(|d| (d.clone(), stamp(d)))
            .chain(agents.values().map(|a| {
                let path = PathBuf::from(a.agent.origin());
                let s = stamp(&path);
                (path, s)
            }))
            .collect();
        return Ok(AgentSet::new(agents));
    }
    let root = Project::find(&place.dir).ok_or(RuntimeError::NoProject(place.dir.clone()))?;
    let manifest = root.join(crate::project::MANIFEST_FILE);
    let project = Project::load(&root)?;
    let secrets_file = project.state_dir().join(crate::project::SECRETS_FILE);
    let secrets = project.secrets()?;
    let mut files = vec![
        (manifest.clone(), stamp(&manifest)),
        (secrets_file.clone(), stamp(&secrets_file)),
    ];
    let mut set = AgentSet::default();
    let mut components = HashMap::new();
    for spec in project.agents.values() {
        let path = project.component_path(spec);
        let now = stamp(&path);
        files.push((path.clone(), now));
        let agent = match loaded.components.get(&path) {
            Some((was, agent)) if *was == now && now.is_some() => Ok(agent.clone()),
            _ => load_component(sandbox, &project, spec).await,
        };
        match agent {
            Ok(agent) => {
                components.insert(path, (now, agent.clone()));
                let registered = register(&project, spec, &secrets, place, agent, true);
                set.agents.insert(spec.id.clone(), registered);
            }
            Err(e) => {
                tracing::warn!(agent = %spec.id, "agent not loaded: {e}");
                set.broken.insert(spec.id.clone(), e.to_string());
            }
        }
    }
    loaded.files = files;
    loaded.components = components;
    Ok(set)
}
