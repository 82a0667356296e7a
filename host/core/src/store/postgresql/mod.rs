//! A store shared by several nodes: one PostgreSQL database.
//!
//! The tables and guarantees are the SQLite store's (a change is
//! acknowledged once its transaction commits; the journal writer's batch is
//! one transaction, a group commit), plus what several nodes need to share
//! the work without a protocol of their own: the database is the
//! coordination point.
//!
//! **Leases.** Each store is a node incarnation: a row in `nodes` with a
//! random id and a lease (`lease_until`, on the database's clock, so node
//! clocks do not matter) that a thread of its own renews every third of
//! [`PostgresOptions::lease`]. Every execution has an owner (a node id) and
//! a generation, bumped by each takeover. A node whose lease expires is
//! dead for good: [`Store::mark_interrupted`], run by any node, deletes its
//! row and marks its pending and running executions `interrupted` (their
//! rows locked `FOR UPDATE SKIP LOCKED`, so nodes sweeping together split
//! them), and a [`Change::Resume`] on another node takes one over:
//! `running`, owned by that node, generation + 1. A node that finds its own
//! lease expired (it was paused, or cut off from the database) says so in
//! its log and starts over as a new incarnation; what the old one ran is
//! handed back through [`Store::lost`].
//!
//! **Fencing.** Every commit first locks its node's row (`FOR KEY SHARE`,
//! which the lease renewal's `UPDATE` does not wait for), and only while
//! the lease is live, else it aborts the transaction; the sweep's `DELETE`
//! of an expired row waits for that lock, so a node's writes either commit
//! before it is declared dead or are refused after. Each write to an
//! execution also names the owner and the generation this node holds it
//! under, so two nodes can never both record a step's result: a refused
//! write is [`StoreError::LeaseLost`].
//!
//! A commit's statements go out together, pipelined (see [`commit`]); the
//! connections live on threads of their own (see [`conn`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, Row};

use super::{
    Applied, Bound, Change, ExecutionPage, ExecutionQuery, ExecutionRecord, ExecutionSummary,
    JournalEntry, Store, StoreError, interrupted_entry, page,
};
use crate::execution::ExecutionStatus;
use crate::record::Record;
use conn::{Conn, Job, Params, borrowed, serve_jobs};
use orchestr8_types::ExecutionId;

mod commit;
mod conn;
mod lease;
mod schema;

/// The channel a commit that appended to journals notifies, with `NODE
/// EXECUTION` for each execution, for live event streams on other nodes.
const JOURNAL_CHANNEL: &str = "orchestr8_journal";

/// How a node uses the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// How long a node's lease lasts without renewal: after it, other
    /// nodes take over its executions. Renewed every third of it.
    pub lease: Duration,
    /// Connections for reads and writes (one more renews the lease).
    pub connections: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            lease: Duration::from_secs(3),
            connections: 4,
        }
    }
}

/// Whose writes this store makes: the node incarnation, and the executions
/// it holds, each under its generation.
struct Node {
    id: String,
    owned: HashMap<String, i64>,
    /// Executions an expired incarnation of this node held, not yet handed
    /// to [`Store::lost`].
    lost: Vec<String>,
    /// Whether other nodes were alive at the last renewal: a node alone
    /// notifies no one of its commits.
    peers: bool,
}

/// Executions and journals in a PostgreSQL database, shared with other
/// nodes.
pub struct PostgresStore {
    config: Config,
    jobs: mpsc::Sender<Job>,
    node: Arc<Mutex<Node>>,
    /// Dropping it stops the lease thread, which then gives the lease up
    /// and says so on the receiver (see [`Store::leave`]).
    lease: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

/// `url`: a `postgres://` URL or `key=value` settings.
fn parse(url: &str) -> Result<Config, StoreError> {
    let mut config = Config::from_str(url)
        .map_err(|e| StoreError::Database(format!("not a PostgreSQL URL: {e}")))?;
    if config.get_application_name().is_none() {
        config.application_name("orchestr8");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(config)
}

/// Applies the schema's migrations to the database at `url`, without
/// starting a node: what `orchestr8 db migrate` does. Returns the versions
/// applied (empty when it was up to date) and the current one.
pub fn migrate_database(url: &str) -> Result<(Vec<i32>, i32), StoreError> {
    schema::migrate_database(parse(url)?)
}

impl PostgresStore {
    /// Connects to the database at `url`, applies missing migrations and
    /// registers this process as a node with a lease.
    pub fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let config = parse(url)?;
        let node = Arc::new(Mutex::new(Node {
            id: String::new(),
            owned: HashMap::new(),
            lost: Vec::new(),
            peers: true,
        }));
        // The lease thread connects, migrates and registers the node first.
        let lease = lease::keep_lease(config.clone(), node.clone(), options.lease)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..options.connections.max(1) {
            let rx = rx.clone();
            let config = config.clone();
            std::thread::Builder::new()
                .name(format!("orchestr8-postgres-{n}"))
                .spawn(move || serve_jobs(&config, &rx))
                .map_err(|e| {
                    StoreError::Database(format!("cannot start a database thread: {e}"))
                })?;
        }
        Ok(PostgresStore {
            config,
            jobs,
            node,
            lease: Mutex::new(Some(lease)),
        })
    }

    /// This node's id (its current incarnation).
    pub fn node_id(&self) -> String {
        self.node().id.clone()
    }

    fn node(&self) -> std::sync::MutexGuard<'_, Node> {
        self.node.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `job` on a connection and waits for its answer.
    fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |conn| {
                let _ = tx.send(job(conn));
            }))
            .map_err(|_| StoreError::Database("the database threads have stopped".into()))?;
        rx.recv().map_err(|_| {
            StoreError::Database("the database is unreachable (the log says why)".into())
        })?
    }
}

/// The columns [`record`] reads, in its order.
const RECORD_COLUMNS: &str =
    "SELECT id, workflow_id, workflow_name, status, started_at, finished_at,
    input, result, owner_pid, workflow, idempotency_key, request_hash FROM executions";

fn status(text: &str) -> ExecutionStatus {
    ExecutionStatus::parse(text).unwrap_or(ExecutionStatus::Interrupted)
}

fn json(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn record(row: &Row) -> ExecutionRecord {
    ExecutionRecord {
        id: ExecutionId::from(row.get::<_, String>(0)),
        workflow_id: row.get(1),
        workflow_name: row.get(2),
        status: status(row.get(3)),
        started_at: row.get(4),
        finished_at: row.get(5),
        input: json(row.get(6)).unwrap_or(Value::Null),
        result: json(row.get(7)),
        owner_pid: u32::try_from(row.get::<_, i64>(8)).unwrap_or(0),
        workflow: json(row.get(9)),
        idempotency_key: row.get(10),
        request_hash: row.get(11),
    }
}

impl Store for PostgresStore {
    fn commit(&self, changes: &[Change]) -> Result<Vec<Applied>, StoreError> {
        let changes = changes.to_vec();
        let node = self.node.clone();
        self.run(move |conn| {
            let (me, owned, peers) = {
                let node = node.lock().unwrap_or_else(PoisonError::into_inner);
                let owned: HashMap<String, i64> = changes
                    .iter()
                    .filter_map(|c| {
                        let id = c.execution_id();
                        node.owned.get(id).map(|g| (id.to_string(), *g))
                    })
                    .collect();
                (node.id.clone(), owned, node.peers)
            };
            let committed = commit::commit(conn, &me, owned, peers, &changes)?;
            let mut node = node.lock().unwrap_or_else(PoisonError::into_inner);
            // What this incarnation now holds; an incarnation that expired
            // meanwhile holds nothing.
            if node.id == me {
                for (id, generation) in committed.holds {
                    match generation {
                        Some(generation) => node.owned.insert(id, generation),
                        None => node.owned.remove(&id),
                    };
                }
            }
            Ok(committed.outcomes)
        })
    }

    fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let id = id.to_string();
        self.run(move |conn| {
            conn.query_opt(&format!("{RECORD_COLUMNS} WHERE id = $1"), &[&id])
                .map(|row| row.as_ref().map(record))
        })
    }

    fn journal(&self, id: &str, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let id = id.to_string();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let rows = conn.query(
                "SELECT seq, at, data FROM journal
                     WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&id, &after, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|row| JournalEntry {
                    seq: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
                    at: row.get(1),
                    record: Record::from_value(json(row.get(2)).unwrap_or(Value::Null)),
                })
                .collect())
        })
    }

    fn last_execution(&self) -> Result<Option<String>, StoreError> {
        self.run(|conn| {
            conn.query_opt(
                "SELECT id FROM executions ORDER BY created DESC LIMIT 1",
                &[],
            )
            .map(|row| row.map(|r| r.get(0)))
        })
    }

    fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        let (filters, bounds) = super::listing_filters(query, '$');
        let limit = query.limit;
        self.run(move |conn| {
            let values: Vec<Box<dyn ToSql + Sync + Send>> = bounds
                .into_iter()
                .map(|b| -> Box<dyn ToSql + Sync + Send> {
                    match b {
                        Bound::Text(t) => Box::new(t),
                        Bound::Int(i) => Box::new(i),
                    }
                })
                .collect();
            let params: Vec<&(dyn ToSql + Sync)> = values
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let sql = format!(
                "SELECT id, workflow_id, workflow_name, status, started_at, finished_at,
                   duration_ms, created
                 FROM executions {filters} ORDER BY created DESC LIMIT ${}",
                params.len()
            );
            let rows = conn.query(&sql, &params)?;
            let found = rows
                .iter()
                .map(|row| {
                    (
                        ExecutionSummary {
                            execution_id: ExecutionId::from(row.get::<_, String>(0)),
                            workflow_id: row.get(1),
                            workflow_name: row.get(2),
                            status: status(row.get(3)),
                            started_at: row.get(4),
                            finished_at: row.get(5),
                            duration_ms: row
                                .get::<_, Option<i64>>(6)
                                .map(|d| u64::try_from(d).unwrap_or(0)),
                        },
                        u64::try_from(row.get::<_, i64>(7)).unwrap_or(0),
                    )
                })
                .collect();
            Ok(page(found, limit))
        })
    }

    fn execution_by_key(&self, key: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let key = key.to_string();
        self.run(move |conn| {
            conn.query_opt(
                &format!("{RECORD_COLUMNS} WHERE idempotency_key = $1"),
                &[&key],
            )
            .map(|row| row.as_ref().map(record))
        })
    }

    fn release_key(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |conn| {
            conn.query(
                "UPDATE executions SET idempotency_key = NULL WHERE id = $1",
                &[&id],
            )
            .map(drop)
        })
    }

    fn request_cancel(&self, id: &str, at: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let (id, at) = (id.to_string(), at.to_string());
        self.run(move |conn| {
            conn.query(
                    "UPDATE executions SET cancel_requested = $2
                     WHERE id = $1 AND status IN ('pending', 'running') AND cancel_requested IS NULL",
                    &[&id, &at],
                )?;
            conn.query_opt(&format!("{RECORD_COLUMNS} WHERE id = $1"), &[&id])
                .map(|row| row.as_ref().map(record))
        })
    }

    /// The executions this node holds, run by process `owner_pid`, whose
    /// cancellation was requested (from any node).
    fn cancel_requests(&self, owner_pid: u32) -> Result<Vec<String>, StoreError> {
        let node = self.node_id();
        self.run(move |conn| {
            let rows = conn.query(
                "SELECT id FROM executions WHERE status IN ('pending', 'running')
                     AND owner_node = $1 AND owner_pid = $2 AND cancel_requested IS NOT NULL",
                &[&node, &i64::from(owner_pid)],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Marks the executions of nodes whose lease expired as interrupted.
    /// Liveness here is the lease, whichever machine a node runs on, so
    /// `alive` (about processes of this machine) is not asked.
    fn mark_interrupted(
        &self,
        at: &str,
        _alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let at = at.to_string();
        self.run(move |conn| {
            conn.batch("BEGIN")?;
            match sweep(conn, &at) {
                Ok(orphans) => conn.batch("COMMIT").map(|()| orphans),
                Err(e) => {
                    let _ = conn.batch("ROLLBACK");
                    Err(e)
                }
            }
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn watch_commits(&self, committed: Box<dyn Fn(&str) + Send + Sync>) -> Result<(), StoreError> {
        let node = Arc::downgrade(&self.node);
        let config = self.config.clone();
        std::thread::Builder::new()
            .name("orchestr8-listen".into())
            .spawn(move || lease::listen(&config, &node, committed.as_ref()))
            .map(drop)
            .map_err(|e| StoreError::Database(format!("cannot start the listener thread: {e}")))
    }

    fn lost(&self) -> Vec<String> {
        std::mem::take(&mut self.node().lost)
    }

    fn leave(&self) {
        let lease = self
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((stop, left)) = lease {
            drop(stop);
            if left.recv_timeout(Duration::from_secs(5)).is_err() {
                tracing::warn!(
                    "could not give this node's lease up: its executions wait for it to expire"
                );
            }
        }
    }
}

/// Inside a transaction: deletes the nodes whose lease expired and marks
/// the pending and running executions no live node owns interrupted (rows
/// other nodes sweeping at once have locked are theirs to mark); returns
/// those it marked.
fn sweep(conn: &mut Conn, at: &str) -> Result<Vec<String>, StoreError> {
    let dead = conn.query(
        "DELETE FROM nodes WHERE lease_until <= now() RETURNING id",
        &[],
    )?;
    for row in &dead {
        tracing::warn!(node = %row.get::<_, String>(0), "a node's lease expired: its executions are marked interrupted for other nodes to take over");
    }
    let orphans: Vec<String> = conn
        .query(
            "SELECT id FROM executions e WHERE status IN ('pending', 'running')
             AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = e.owner_node)
             ORDER BY created FOR UPDATE SKIP LOCKED",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let interrupted = [interrupted_entry(at)];
    let params: Vec<(Params, Params)> = orphans
        .iter()
        .map(|id| -> (Params, Params) {
            (
                commit::append(id, &interrupted, None),
                vec![Box::new(id.clone()), Box::new(at.to_string())],
            )
        })
        .collect();
    let mut sent = Vec::with_capacity(orphans.len() * 2);
    for (append, mark) in &params {
        sent.push((commit::APPEND, borrowed(append)));
        sent.push((
            "UPDATE executions SET status = 'interrupted', finished_at = $2 WHERE id = $1",
            borrowed(mark),
        ));
    }
    for answer in conn.pipeline(&sent)? {
        answer.map_err(conn::db)?;
    }
    Ok(orphans)
}
