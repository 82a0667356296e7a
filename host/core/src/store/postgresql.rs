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
//! the lease is live; the sweep's `DELETE` of an expired row waits for that
//! lock, so a node's writes either commit before it is
//! declared dead or are refused after. Each write to an execution also
//! names the owner and the generation this node holds it under, so two
//! nodes can never both record a step's result: a refused write is
//! [`StoreError::LeaseLost`].
//!
//! The driver is `postgres`, the blocking face of `tokio-postgres`; it runs
//! its own runtime, so its connections live on threads of their own and
//! callers (async tasks among them) hand them jobs.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement};
use serde_json::Value;

use super::{
    Applied, Bound, Change, ExecutionPage, ExecutionQuery, ExecutionRecord, ExecutionSummary,
    JournalEntry, NewEntry, Store, StoreError, interrupted_entry, page,
};
use crate::execution::ExecutionStatus;
use crate::record::Record;
use orchestr8_types::ExecutionId;

/// The schema, one migration per version, applied in order at start (or by
/// `orchestr8 db migrate`) and recorded in `orchestr8_migrations`. A
/// migration, once released, never changes: add the next one.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        pid BIGINT NOT NULL,
        host TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        lease_until TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE executions (
        id TEXT PRIMARY KEY,
        created BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        workflow_id TEXT NOT NULL,
        workflow_name TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        input TEXT NOT NULL,
        result TEXT,
        duration_ms BIGINT,
        owner_pid BIGINT NOT NULL,
        owner_node TEXT NOT NULL,
        generation BIGINT NOT NULL DEFAULT 1,
        cancel_requested TEXT,
        workflow TEXT,
        idempotency_key TEXT UNIQUE,
        request_hash TEXT
    );
    CREATE INDEX executions_status ON executions (status, created);
    CREATE INDEX executions_owner ON executions (owner_node) WHERE status IN ('pending', 'running');
    CREATE TABLE journal (
        execution_id TEXT NOT NULL REFERENCES executions (id),
        seq BIGINT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        step_id TEXT,
        attempt BIGINT,
        duration_ms DOUBLE PRECISION,
        code TEXT,
        data TEXT NOT NULL,
        PRIMARY KEY (execution_id, seq)
    );",
)];

/// The channel a commit that appended to journals notifies, with `NODE
/// EXECUTION` for each execution, for live event streams on other nodes.
const JOURNAL_CHANNEL: &str = "orchestr8_journal";

/// The key of the advisory lock that migrations run under, so nodes
/// starting together apply each one once.
const MIGRATION_LOCK: i64 = 0x6f72_6368_6573_7438;

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

type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// A connection and its statements, each prepared once by its text: the
/// server parses and plans it once per connection, and each use is then
/// one round trip instead of two.
struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl Conn {
    fn session(&mut self) -> Session<'_, Client> {
        Session {
            client: &mut self.client,
            prepared: &mut self.prepared,
        }
    }
}

/// A connection, or a transaction on one, with its prepared statements.
struct Session<'a, C> {
    client: &'a mut C,
    prepared: &'a mut HashMap<String, Statement>,
}

impl<C: GenericClient> Session<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(db)?;
        self.prepared.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params).map_err(db)
    }

    fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params).map_err(db)
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params).map_err(db)
    }
}

/// Executions and journals in a PostgreSQL database, shared with other
/// nodes.
pub struct PostgresStore {
    config: postgres::Config,
    jobs: mpsc::Sender<Job>,
    node: Arc<Mutex<Node>>,
    /// Dropping it stops the lease thread, which then gives the lease up
    /// and says so on the receiver (see [`Store::leave`]).
    lease: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

fn db(e: postgres::Error) -> StoreError {
    // The server's own message says more than the driver's summary.
    match e.as_db_error() {
        Some(d) => StoreError::Database(format!("{}: {}", d.code().code(), d.message())),
        None => StoreError::Database(e.to_string()),
    }
}

/// Connects to `url` (a `postgres://` URL or `key=value` settings).
fn connect(config: &postgres::Config) -> Result<Client, StoreError> {
    config
        .connect(NoTls)
        .map_err(|e| StoreError::Database(format!("cannot connect to PostgreSQL: {}", db(e))))
}

fn parse(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config = postgres::Config::from_str(url)
        .map_err(|e| StoreError::Database(format!("not a PostgreSQL URL: {e}")))?;
    if config.get_application_name().is_none() {
        config.application_name("orchestr8");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(config)
}

/// Applies the migrations `client`'s database lacks; returns the versions
/// applied.
fn migrate(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    let mut tx = client.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS orchestr8_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .map_err(db)?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM orchestr8_migrations",
            &[],
        )
        .map_err(db)?
        .get(0);
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).map_err(db)?;
        tx.execute(
            "INSERT INTO orchestr8_migrations (version) VALUES ($1)",
            &[version],
        )
        .map_err(db)?;
        applied.push(*version);
    }
    tx.commit().map_err(db)?;
    Ok(applied)
}

/// Applies the schema's migrations to the database at `url`, without
/// starting a node: what `orchestr8 db migrate` does. Returns the versions
/// applied (empty when it was up to date) and the current one.
pub fn migrate_database(url: &str) -> Result<(Vec<i32>, i32), StoreError> {
    let config = parse(url)?;
    // On a thread of its own, as every connection (see `serve_jobs`).
    let applied = std::thread::spawn(move || migrate(&mut connect(&config)?))
        .join()
        .map_err(|_| StoreError::Database("the migration thread panicked".into()))??;
    Ok((applied, MIGRATIONS.last().map_or(0, |(v, _)| *v)))
}

/// Registers a new node incarnation with a fresh lease; returns its id.
fn register(client: &mut Client, lease: Duration) -> Result<String, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    client
        .execute(
            "INSERT INTO nodes (id, pid, host, lease_until)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            &[
                &id,
                &i64::from(std::process::id()),
                &host,
                &lease.as_secs_f64(),
            ],
        )
        .map_err(db)?;
    Ok(id)
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
        let lease = keep_lease(config.clone(), node.clone(), options.lease)?;
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
            .send(Box::new(move |client| {
                let _ = tx.send(job(client));
            }))
            .map_err(|_| StoreError::Database("the database threads have stopped".into()))?;
        rx.recv().map_err(|_| {
            StoreError::Database("the database is unreachable (the log says why)".into())
        })?
    }
}

/// A connection's thread: runs jobs until the store is dropped,
/// connecting at its first job, and again when the connection broke. (A
/// client is made, used and dropped on its thread only: the driver runs
/// its own runtime, which must not start inside a caller's.)
fn serve_jobs(config: &postgres::Config, jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut conn: Option<Conn> = None;
    loop {
        let job = match jobs.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = match connect(config) {
                Ok(client) => Some(Conn {
                    client,
                    prepared: HashMap::new(),
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "no database connection");
                    // Dropping the job answers its caller with an error.
                    drop(job);
                    continue;
                }
            };
        }
        if let Some(conn) = conn.as_mut() {
            job(conn);
        }
    }
}

/// Starts the thread that joins the database as a node (connecting,
/// applying migrations, registering `node` with a lease) and then renews
/// the lease every third of `lease`; returns once the node is registered.
/// The thread ends when the sender is dropped, giving the lease up.
fn keep_lease(
    config: postgres::Config,
    node: Arc<Mutex<Node>>,
    lease: Duration,
) -> Result<(mpsc::Sender<()>, mpsc::Receiver<()>), StoreError> {
    let (tx, rx) = mpsc::channel::<()>();
    let (left_tx, left) = mpsc::sync_channel::<()>(1);
    let (joined_tx, joined) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("orchestr8-lease".into())
        .spawn(move || {
            let setup = connect(&config).and_then(|mut client| {
                migrate(&mut client)?;
                let id = register(&mut client, lease)?;
                Ok((client, id))
            });
            let mut client = match setup {
                Ok((client, id)) => {
                    tracing::info!(node = %id, lease_ms = lease.as_millis() as u64, "joined as a node");
                    node.lock().unwrap_or_else(PoisonError::into_inner).id = id;
                    let _ = joined_tx.send(Ok(()));
                    client
                }
                Err(e) => {
                    let _ = joined_tx.send(Err(e));
                    return;
                }
            };
            let lock = || node.lock().unwrap_or_else(PoisonError::into_inner);
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(lease / 3) {
                if client.is_closed() {
                    match connect(&config) {
                        Ok(c) => client = c,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot renew this node's lease");
                            continue;
                        }
                    }
                }
                let id = lock().id.clone();
                // Renewed, with how many other nodes are alive.
                let renewed = client.query_opt(
                    "UPDATE nodes SET lease_until = now() + make_interval(secs => $2)
                     WHERE id = $1 AND lease_until > now()
                     RETURNING (SELECT count(*) FROM nodes WHERE id <> $1 AND lease_until > now())",
                    &[&id, &lease.as_secs_f64()],
                );
                match renewed {
                    Ok(Some(row)) => lock().peers = row.get::<_, i64>(0) > 0,
                    Ok(None) => {
                        let fresh = match register(&mut client, lease) {
                            Ok(fresh) => fresh,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot join again as a node");
                                continue;
                            }
                        };
                        let mut node = lock();
                        let lost: Vec<String> = node.owned.drain().map(|(id, _)| id).collect();
                        tracing::error!(
                            node = %id,
                            new_node = %fresh,
                            lease_ms = lease.as_millis() as u64,
                            lost = ?lost,
                            "this node's lease expired (it was paused or cut off from the database longer than its lease): its executions are taken over by other nodes and its writes to them are refused; it goes on as a new node"
                        );
                        node.lost.extend(lost);
                        node.id = fresh;
                    }
                    Err(e) => tracing::warn!(error = %db(e), "cannot renew this node's lease"),
                }
            }
            // Leaving: give the lease up, so other nodes take over whatever
            // is left at once rather than when it would have expired.
            let id = lock().id.clone();
            if let Err(e) = client.execute("DELETE FROM nodes WHERE id = $1", &[&id]) {
                tracing::debug!(error = %db(e), "could not give the lease up");
            }
            let _ = left_tx.send(());
        })
        .map_err(|e| StoreError::Database(format!("cannot start the lease thread: {e}")))?;
    joined
        .recv()
        .map_err(|_| StoreError::Database("the lease thread stopped".into()))??;
    Ok((tx, left))
}

/// The listener's thread: on a connection of its own, `LISTEN`s to the
/// journal channel and calls `committed` for each execution another node
/// appended to, until the store (its `node`) is gone; reconnects when the
/// connection breaks.
fn listen(
    config: &postgres::Config,
    node: &std::sync::Weak<Mutex<Node>>,
    committed: &dyn Fn(&str),
) {
    let mut client: Option<Client> = None;
    while let Some(me) = node
        .upgrade()
        .map(|n| n.lock().unwrap_or_else(PoisonError::into_inner).id.clone())
    {
        let Some(c) = client.as_mut().filter(|c| !c.is_closed()) else {
            client = match connect(config).and_then(|mut c| {
                c.batch_execute(&format!("LISTEN {JOURNAL_CHANNEL}"))
                    .map_err(db)?;
                Ok(c)
            }) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other nodes' commits");
                    std::thread::sleep(Duration::from_secs(1));
                    None
                }
            };
            continue;
        };
        let mut notifications = c.notifications();
        let mut batch = notifications.timeout_iter(Duration::from_millis(500));
        loop {
            match batch.next() {
                Ok(Some(n)) => match n.payload().split_once(' ') {
                    Some((from, id)) if from != me => committed(id),
                    _ => {}
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %db(e), "lost the listening connection");
                    break;
                }
            }
        }
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

/// Who writes: this node, and the generation it holds each execution under.
struct Writer<'a> {
    node: &'a str,
    owned: &'a HashMap<String, i64>,
}

/// Why a write to execution `id` under (`node`, its generation) changed
/// nothing: no such execution, or this node does not hold it.
fn refused(tx: &mut Session<'_, impl GenericClient>, id: &str) -> StoreError {
    match tx.query_opt("SELECT 1 FROM executions WHERE id = $1", &[&id]) {
        Ok(None) => StoreError::UnknownExecution(id.to_string()),
        Ok(Some(_)) => StoreError::LeaseLost(id.to_string()),
        Err(e) => e,
    }
}

/// The node and generation `writer` holds execution `id` under.
fn held<'a>(
    tx: &mut Session<'_, impl GenericClient>,
    writer: &Writer<'a>,
    id: &str,
) -> Result<(&'a str, i64), StoreError> {
    match writer.owned.get(id) {
        Some(generation) => Ok((writer.node, *generation)),
        None => Err(refused(tx, id)),
    }
}

/// Appends `entries` to `id`'s journal, fenced by the writer's hold on it
/// when given (the sweep marking a dead node's execution writes unfenced).
fn append_in(
    tx: &mut Session<'_, impl GenericClient>,
    id: &str,
    entries: &[NewEntry],
    fence: Option<(&str, i64)>,
) -> Result<Vec<u64>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut at = Vec::with_capacity(entries.len());
    let mut kind = Vec::with_capacity(entries.len());
    let mut step = Vec::with_capacity(entries.len());
    let mut attempt = Vec::with_capacity(entries.len());
    let mut duration = Vec::with_capacity(entries.len());
    let mut code = Vec::with_capacity(entries.len());
    let mut data = Vec::with_capacity(entries.len());
    for e in entries {
        let r = &e.record;
        at.push(e.at.as_str());
        kind.push(r.kind().to_string());
        step.push(r.step_id().map(str::to_string));
        attempt.push(r.attempt().map(i64::from));
        duration.push(r.duration_ms());
        code.push(r.code());
        data.push(r.to_value().to_string());
    }
    let (node, generation) = fence.unzip();
    // One statement, one round trip: the next numbers after the journal's
    // last, only while the writer holds the execution (or unfenced).
    let rows = tx
        .query(
            "WITH held AS (
                SELECT 1 FROM executions WHERE id = $1
                  AND ($2::text IS NULL OR (owner_node = $2 AND generation = $3))
             ), last AS (
                SELECT COALESCE(MAX(seq), 0) AS seq FROM journal WHERE execution_id = $1
             )
             INSERT INTO journal (execution_id, seq, at, kind, step_id, attempt, duration_ms, code, data)
             SELECT $1, last.seq + e.n, e.at, e.kind, e.step_id, e.attempt, e.duration_ms, e.code, e.data
             FROM held, last,
                  unnest($4::text[], $5::text[], $6::text[], $7::int8[], $8::float8[], $9::text[], $10::text[])
                    WITH ORDINALITY AS e(at, kind, step_id, attempt, duration_ms, code, data, n)
             RETURNING seq",
            &[
                &id, &node, &generation, &at, &kind, &step, &attempt, &duration, &code, &data,
            ],
        )?;
    if rows.is_empty() {
        return Err(refused(tx, id));
    }
    let mut seqs: Vec<u64> = rows
        .iter()
        .map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Applies one change; its statements are written not to fail on the
/// cases a change may meet (a duplicate key, a takeover, an unknown
/// execution), so one change never aborts the batch's transaction.
fn apply(
    tx: &mut Session<'_, impl GenericClient>,
    writer: &Writer<'_>,
    change: &Change,
) -> Result<(Vec<u64>, Option<i64>), StoreError> {
    let id = change.execution_id();
    match change {
        Change::Create(r) => {
            let duration = r
                .result
                .as_ref()
                .and_then(|v| v.get("durationMs"))
                .and_then(Value::as_i64);
            let inserted = tx.execute(
                "INSERT INTO executions (id, workflow_id, workflow_name, status, started_at,
                       finished_at, input, result, duration_ms, owner_pid, owner_node, workflow,
                       idempotency_key, request_hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                     ON CONFLICT DO NOTHING",
                &[
                    &r.id.as_str(),
                    &r.workflow_id,
                    &r.workflow_name,
                    &r.status.as_str(),
                    &r.started_at,
                    &r.finished_at,
                    &r.input.to_string(),
                    &r.result.as_ref().map(Value::to_string),
                    &duration,
                    &i64::from(r.owner_pid),
                    &writer.node,
                    &r.workflow.as_ref().map(Value::to_string),
                    &r.idempotency_key,
                    &r.request_hash,
                ],
            )?;
            if inserted == 0 {
                return Err(match &r.idempotency_key {
                    Some(key) => StoreError::DuplicateKey(key.clone()),
                    None => StoreError::Database(format!("execution `{}` exists", r.id)),
                });
            }
            Ok((Vec::new(), Some(1)))
        }
        Change::Running(_) => {
            let (node, generation) = held(tx, writer, id)?;
            tx.execute(
                "UPDATE executions SET status = 'running'
                 WHERE id = $1 AND status = 'pending' AND owner_node = $2 AND generation = $3",
                &[&id, &node, &generation],
            )?;
            Ok((Vec::new(), None))
        }
        Change::Resume {
            execution_id,
            owner_pid,
        } => {
            let taken = tx.query_opt(
                "UPDATE executions SET status = 'running', owner_pid = $2, owner_node = $3,
                       generation = generation + 1, finished_at = NULL, result = NULL,
                       duration_ms = NULL, cancel_requested = NULL
                     WHERE id = $1 AND status = 'interrupted'
                     RETURNING generation",
                &[&execution_id.as_str(), &i64::from(*owner_pid), &writer.node],
            )?;
            match taken {
                Some(row) => Ok((Vec::new(), Some(row.get(0)))),
                None => {
                    let found = tx.query_opt(
                        "SELECT status FROM executions WHERE id = $1",
                        &[&execution_id.as_str()],
                    )?;
                    Err(match found {
                        None => StoreError::UnknownExecution(execution_id.to_string()),
                        Some(row) => StoreError::NotResumable {
                            id: execution_id.to_string(),
                            status: row.get(0),
                        },
                    })
                }
            }
        }
        Change::Append { entries, .. } => {
            let fence = held(tx, writer, id)?;
            Ok((append_in(tx, id, entries, Some(fence))?, None))
        }
        Change::Finish {
            status,
            finished_at,
            result,
            ..
        } => {
            let (node, generation) = held(tx, writer, id)?;
            let duration = result.get("durationMs").and_then(Value::as_i64);
            let changed = tx.execute(
                "UPDATE executions SET status = $2, finished_at = $3, result = $4,
                       duration_ms = $5
                     WHERE id = $1 AND owner_node = $6 AND generation = $7",
                &[
                    &id,
                    &status.as_str(),
                    finished_at,
                    &result.to_string(),
                    &duration,
                    &node,
                    &generation,
                ],
            )?;
            if changed == 0 {
                return Err(refused(tx, id));
            }
            Ok((Vec::new(), None))
        }
    }
}

impl Store for PostgresStore {
    fn commit(&self, changes: &[Change]) -> Result<Vec<Applied>, StoreError> {
        let changes = changes.to_vec();
        let node = self.node.clone();
        self.run(move |client| {
            let (me, mut owned, peers) = {
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
            let Conn { client, prepared } = client;
            // BEGIN and the lease check in one round trip. The check's row
            // lock is held until the commit: a sweep cannot declare this
            // node dead while its writes are on their way (see the module
            // comment). The node id is a UUID this store made, so it is
            // safe as a literal.
            if uuid::Uuid::parse_str(&me).is_err() {
                return Err(StoreError::Database(format!("not a node id: {me}")));
            }
            let begun = client.simple_query(&format!(
                "BEGIN; SELECT 1 FROM nodes WHERE id = '{me}' AND lease_until > now() FOR KEY SHARE"
            ));
            let live = match begun {
                Ok(messages) => messages
                    .iter()
                    .any(|m| matches!(m, postgres::SimpleQueryMessage::Row(_))),
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK");
                    return Err(db(e));
                }
            };
            let mut tx = Session { client, prepared };
            let applied = (|| -> Result<_, StoreError> {
                let mut outcomes = Vec::with_capacity(changes.len());
                let mut holds: Vec<(String, Option<i64>)> = Vec::new();
                let mut appended: Vec<&str> = Vec::new();
                for change in &changes {
                    let id = change.execution_id().to_string();
                    let outcome = if live {
                        let writer = Writer {
                            node: &me,
                            owned: &owned,
                        };
                        apply(&mut tx, &writer, change)
                    } else {
                        Err(refused(&mut tx, &id))
                    };
                    if matches!(change, Change::Append { .. })
                        && outcome.as_ref().is_ok_and(|(seqs, _)| !seqs.is_empty())
                    {
                        appended.push(change.execution_id());
                    }
                    outcomes.push(outcome.map(|(seqs, generation)| {
                        if let Some(generation) = generation {
                            owned.insert(id.clone(), generation);
                            holds.push((id.clone(), Some(generation)));
                        } else if matches!(change, Change::Finish { .. }) {
                            holds.push((id.clone(), None));
                        }
                        seqs
                    }));
                }
                if peers && !appended.is_empty() {
                    // Delivered to listening nodes when (and only if) this
                    // transaction commits.
                    tx.execute(
                        "SELECT pg_notify($1, $2 || ' ' || id) FROM unnest($3::text[]) AS id",
                        &[&JOURNAL_CHANNEL, &me, &appended],
                    )?;
                }
                tx.client.batch_execute("COMMIT").map_err(db)?;
                Ok((outcomes, holds))
            })();
            let (outcomes, holds) = match applied {
                Ok(done) => done,
                Err(e) => {
                    let _ = tx.client.batch_execute("ROLLBACK");
                    return Err(e);
                }
            };
            let mut node = node.lock().unwrap_or_else(PoisonError::into_inner);
            // What this incarnation now holds; an incarnation that expired
            // meanwhile holds nothing.
            if node.id == me {
                for (id, generation) in holds {
                    match generation {
                        Some(generation) => node.owned.insert(id, generation),
                        None => node.owned.remove(&id),
                    };
                }
            }
            Ok(outcomes)
        })
    }

    fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let id = id.to_string();
        self.run(move |client| {
            client
                .session()
                .query_opt(&format!("{RECORD_COLUMNS} WHERE id = $1"), &[&id])
                .map(|row| row.as_ref().map(record))
        })
    }

    fn journal(&self, id: &str, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let id = id.to_string();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |client| {
            let rows = client.session().query(
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
        self.run(|client| {
            client
                .session()
                .query_opt(
                    "SELECT id FROM executions ORDER BY created DESC LIMIT 1",
                    &[],
                )
                .map(|row| row.map(|r| r.get(0)))
        })
    }

    fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        let (filters, bounds) = super::listing_filters(query, '$');
        let limit = query.limit;
        self.run(move |client| {
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
            let rows = client.session().query(&sql, &params)?;
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
        self.run(move |client| {
            client
                .session()
                .query_opt(
                    &format!("{RECORD_COLUMNS} WHERE idempotency_key = $1"),
                    &[&key],
                )
                .map(|row| row.as_ref().map(record))
        })
    }

    fn release_key(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |client| {
            client
                .session()
                .execute(
                    "UPDATE executions SET idempotency_key = NULL WHERE id = $1",
                    &[&id],
                )
                .map(drop)
        })
    }

    fn request_cancel(&self, id: &str, at: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let (id, at) = (id.to_string(), at.to_string());
        self.run(move |client| {
            client
                .session()
                .execute(
                    "UPDATE executions SET cancel_requested = $2
                     WHERE id = $1 AND status IN ('pending', 'running') AND cancel_requested IS NULL",
                    &[&id, &at],
                )?;
            client
                .session()
                .query_opt(&format!("{RECORD_COLUMNS} WHERE id = $1"), &[&id])
                .map(|row| row.as_ref().map(record))
        })
    }

    /// The executions this node holds, run by process `owner_pid`, whose
    /// cancellation was requested (from any node).
    fn cancel_requests(&self, owner_pid: u32) -> Result<Vec<String>, StoreError> {
        let node = self.node_id();
        self.run(move |client| {
            let rows = client.session().query(
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
        self.run(move |client| {
            let Conn { client, prepared } = client;
            let mut transaction = client.transaction().map_err(db)?;
            let mut tx = Session {
                client: &mut transaction,
                prepared,
            };
            let dead = tx
                .query(
                    "DELETE FROM nodes WHERE lease_until <= now() RETURNING id",
                    &[],
                )?;
            for row in &dead {
                tracing::warn!(node = %row.get::<_, String>(0), "a node's lease expired: its executions are marked interrupted for other nodes to take over");
            }
            let orphans: Vec<String> = tx
                .query(
                    "SELECT id FROM executions e WHERE status IN ('pending', 'running')
                     AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = e.owner_node)
                     ORDER BY created FOR UPDATE SKIP LOCKED",
                    &[],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for id in &orphans {
                append_in(&mut tx, id, &[interrupted_entry(&at)], None)?;
                tx.execute(
                    "UPDATE executions SET status = 'interrupted', finished_at = $2 WHERE id = $1",
                    &[id, &at],
                )?;
            }
            transaction.commit().map_err(db)?;
            Ok(orphans)
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
            .spawn(move || listen(&config, &node, committed.as_ref()))
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
