//! The embedded default store: one SQLite file, WAL mode.
//!
//! `synchronous = NORMAL` with WAL: a committed transaction survives the
//! process being killed (the guarantee the journal gives); only a power
//! loss can take the last commits with it.
//!
//! Checkpoints (copying the WAL back into the database) run on a thread of
//! their own with its own connection, in PASSIVE mode every
//! [`CHECKPOINT_EVERY`] (four times as often while the WAL is filling),
//! instead of inside whichever commit crosses the automatic threshold: that
//! commit used to stall for milliseconds, and every execution waiting on it
//! with it.
//!
//! A PASSIVE checkpoint never resets the WAL while commits keep coming (it
//! copies the frames that existed when it began; the log restarts only once
//! every frame is copied), so under sustained load the file grew without
//! bound. The bound is kept by construction, not by the thread's timing: a
//! WAL hook sees, after every commit, how many frames the WAL holds, and
//! past [`WAL_CHECKPOINT_AT`] it runs a RESTART checkpoint right there,
//! before the next commit, so the next one starts the log over. The WAL
//! file is therefore never larger than that threshold plus one group commit
//! (see [`WAL_BOUND`]). That forced checkpoint stalls commits while it copies
//! and syncs (about 10 ms here), so the background thread normally gets
//! there first: once the WAL holds an eighth of that, it follows its PASSIVE
//! checkpoint (which copied most frames without blocking anyone) with a
//! RESTART that has little left to copy (about 1-2 ms). When nothing has been written since its last tick and
//! everything is copied, it truncates the file, so the WAL also shrinks
//! after a load ends.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::Bound;
use super::{
    Applied, Change, ExecutionPage, ExecutionQuery, ExecutionRecord, ExecutionSummary,
    JournalEntry, NewEntry, Store, StoreError, interrupted_entry, page,
};
use crate::execution::ExecutionStatus;
use crate::record::Record;
use orchestr8_types::ExecutionId;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    input TEXT NOT NULL,
    result TEXT,
    owner_pid INTEGER NOT NULL,
    created INTEGER NOT NULL,
    cancel_requested TEXT,
    workflow TEXT,
    idempotency_key TEXT,
    request_hash TEXT
);
CREATE INDEX IF NOT EXISTS executions_created ON executions(created);
CREATE INDEX IF NOT EXISTS executions_status ON executions(status, created);
CREATE TABLE IF NOT EXISTS journal (
    execution_id TEXT NOT NULL REFERENCES executions(id),
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    step_id TEXT,
    attempt INTEGER,
    duration_ms INTEGER,
    code TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
";

/// How often the WAL is checkpointed (a quarter of it while it fills).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL size past which the committing connection restarts the log itself.
pub const WAL_CHECKPOINT_AT: u64 = 16 * 1024 * 1024;

/// The most the WAL can hold: the threshold plus one group commit (the
/// journal writer stops adding to one at 8 MiB of entries, and the entry
/// that crosses it is at most 16 MiB, a step's output, so a group commit
/// stays under 25 MiB even in the worst case). The soak benchmark and the
/// serve test check it under load.
pub const WAL_BOUND: u64 = 64 * 1024 * 1024;

/// The database page size (SQLite's default, set explicitly so frame
/// counts convert to bytes).
const PAGE_BYTES: u64 = 4096;

/// Held by whoever checkpoints. SQLite runs one checkpoint at a time and
/// answers a second one "busy" at once, without waiting; the writer's
/// forced checkpoint must not lose that race to the background thread, or
/// the WAL would grow past its bound, so both take turns here (shared by
/// every store of the process: checkpoints are short).
static CHECKPOINTING: Mutex<()> = Mutex::new(());

/// Executions and journals in a SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Dropping it stops the checkpoint thread.
    _checkpoints: mpsc::Sender<()>,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "page_size", PAGE_BYTES as i64)
            .map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        // Checkpoints run on their own thread, or through the hook past the
        // bound (see the module comment); the hook also replaces SQLite's
        // own automatic checkpoint, which is a WAL hook too.
        conn.wal_hook(Some(bound_wal));
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        migrate(&conn).map_err(db)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            _checkpoints: start_checkpoints(path)?,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Brings a database made by an earlier version up to the schema: columns
/// added since are added (empty) to tables that lack them.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    for column in [
        "cancel_requested",
        "workflow",
        "idempotency_key",
        "request_hash",
    ] {
        let has: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('executions') WHERE name = ?1")?
            .exists([column])?;
        if !has {
            conn.execute_batch(&format!("ALTER TABLE executions ADD COLUMN {column} TEXT"))?;
        }
    }
    conn.execute_batch(
        "CREATE UNIQUE INDEX IF NOT EXISTS executions_idempotency
           ON executions(idempotency_key) WHERE idempotency_key IS NOT NULL",
    )
}

/// The WAL hook: after a commit that leaves `frames` in the WAL past the
/// threshold, a RESTART checkpoint on the committing connection, so the
/// next commit starts the log over. It waits its turn behind the
/// background checkpoint. One that still cannot finish (a reader or a
/// checkpoint in another process) is logged and tried again after the next
/// commit; the commit itself has happened either way.
fn bound_wal(wal: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    let bytes = u64::try_from(frames).unwrap_or(0) * PAGE_BYTES;
    if bytes > WAL_CHECKPOINT_AT {
        let _turn = CHECKPOINTING.lock().unwrap_or_else(PoisonError::into_inner);
        match wal.checkpoint_v2(rusqlite::hooks::CheckpointMode::RESTART) {
            Ok(_) => tracing::debug!(wal_bytes = bytes, "WAL restarted past its bound"),
            Err(e) => tracing::warn!(wal_bytes = bytes, error = %e, "WAL checkpoint blocked"),
        }
    }
    Ok(())
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// What a checkpoint found: frames in the WAL, and how many of them are
/// copied into the database (both -1 when it was blocked).
fn checkpoint(conn: &Connection, mode: &str) -> Result<(i64, i64), rusqlite::Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

/// Starts the checkpoint thread; it ends when the sender is dropped.
fn start_checkpoints(path: &Path) -> Result<mpsc::Sender<()>, StoreError> {
    let conn = Connection::open(path).map_err(db)?;
    // Never wait: a checkpoint that finds a writer or a reader in its way
    // gives up and tries again at the next tick, rather than holding the
    // write lock while it waits and stalling every commit behind it.
    conn.busy_timeout(Duration::ZERO).map_err(db)?;
    let wal = wal_path(path);
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("orchestr8-checkpoint".into())
        .spawn(move || {
            let mut last_frames = -1;
            let mut tick = CHECKPOINT_EVERY;
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(tick) {
                let _turn = CHECKPOINTING.lock().unwrap_or_else(PoisonError::into_inner);
                let (frames, copied) = match checkpoint(&conn, "PASSIVE") {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                        continue;
                    }
                };
                let bytes = u64::try_from(frames).unwrap_or(0) * PAGE_BYTES;
                // Under load, look again soon: the sooner the log restarts,
                // the less the writer's own forced checkpoint is needed.
                tick = if bytes >= WAL_CHECKPOINT_AT / 8 {
                    CHECKPOINT_EVERY / 4
                } else {
                    CHECKPOINT_EVERY
                };
                let idle = frames == last_frames;
                last_frames = frames;
                let mode = if idle && frames == copied {
                    // Nothing written since the last tick, all copied: give
                    // the disk space back.
                    if std::fs::metadata(&wal).is_ok_and(|m| m.len() == 0) {
                        continue;
                    }
                    "TRUNCATE"
                } else if bytes >= WAL_CHECKPOINT_AT / 8 {
                    // Most frames are copied now: restarting the log costs
                    // little, and spares the writer the forced checkpoint.
                    "RESTART"
                } else {
                    continue;
                };
                if let Err(e) = checkpoint(&conn, mode) {
                    tracing::warn!(error = %e, mode, "WAL checkpoint failed");
                }
            }
        })
        .map_err(|e| StoreError::Database(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(tx)
}

/// The query for a page of executions, and its values (see
/// [`super::listing_filters`]).
pub(super) fn listing(query: &ExecutionQuery) -> (String, Vec<rusqlite::types::Value>) {
    let (filters, bounds) = super::listing_filters(query, '?');
    let values: Vec<rusqlite::types::Value> = bounds
        .into_iter()
        .map(|b| match b {
            Bound::Text(t) => t.into(),
            Bound::Int(i) => i.into(),
        })
        .collect();
    let sql = format!(
        "SELECT id, workflow_id, workflow_name, status, started_at, finished_at,
            json_extract(result, '$.durationMs'), created
         FROM executions {filters} ORDER BY created DESC LIMIT ?{}",
        values.len()
    );
    (sql, values)
}

/// The columns [`record`] reads, in its order.
const RECORD_COLUMNS: &str =
    "SELECT id, workflow_id, workflow_name, status, started_at, finished_at,
    input, result, owner_pid, workflow, idempotency_key, request_hash FROM executions";

/// An execution record from a row of [`RECORD_COLUMNS`].
fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        id: ExecutionId::from(row.get::<_, String>(0)?),
        workflow_id: row.get(1)?,
        workflow_name: row.get(2)?,
        status: status(&row.get::<_, String>(3)?),
        started_at: row.get(4)?,
        finished_at: row.get(5)?,
        input: json(row.get(6)?).unwrap_or(Value::Null),
        result: json(row.get(7)?),
        owner_pid: row.get(8)?,
        workflow: json(row.get(9)?),
        idempotency_key: row.get(10)?,
        request_hash: row.get(11)?,
    })
}

/// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`),
/// waiting for it through the busy handler. A deferred one would read
/// first and then ask to write, and SQLite answers that upgrade with an
/// immediate "database is locked" when a checkpoint holds the lock.
fn write_transaction(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)
}

fn status(text: &str) -> ExecutionStatus {
    ExecutionStatus::parse(text).unwrap_or(ExecutionStatus::Interrupted)
}

fn json(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// Runs a statement without parameters, prepared once per connection.
fn run(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(db)
}

fn append_in(conn: &Connection, id: &str, entries: &[NewEntry]) -> Result<Vec<u64>, StoreError> {
    let last: u64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM journal WHERE execution_id = ?1")
        .and_then(|mut stmt| stmt.query_row(params![id], |r| r.get(0)))
        .map_err(db)?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO journal (execution_id, seq, at, kind, step_id, attempt, duration_ms, code, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(db)?;
    let mut seqs = Vec::with_capacity(entries.len());
    for (n, e) in entries.iter().enumerate() {
        let seq = last + n as u64 + 1;
        let r = &e.record;
        stmt.execute(params![
            id,
            seq,
            e.at,
            r.kind(),
            r.step_id(),
            r.attempt(),
            r.duration_ms(),
            r.code(),
            r.to_value().to_string()
        ])
        .map_err(|e| match e.sqlite_error() {
            // The journal's execution must exist (and exists for the
            // rest once the first entry went in).
            Some(f) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                StoreError::UnknownExecution(id.to_string())
            }
            _ => db(e),
        })?;
        seqs.push(seq);
    }
    Ok(seqs)
}

fn apply(conn: &Connection, change: &Change) -> Result<Vec<u64>, StoreError> {
    match change {
        Change::Create(r) => {
            let created: i64 = conn
                .prepare_cached("SELECT COALESCE(MAX(created), 0) + 1 FROM executions")
                .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
                .map_err(db)?;
            conn.prepare_cached(
                "INSERT INTO executions (id, workflow_id, workflow_name, status, started_at, finished_at, input, result, owner_pid, created, workflow, idempotency_key, request_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    r.id.as_str(),
                    r.workflow_id,
                    r.workflow_name,
                    r.status.as_str(),
                    r.started_at,
                    r.finished_at,
                    r.input.to_string(),
                    r.result.as_ref().map(Value::to_string),
                    r.owner_pid,
                    created,
                    r.workflow.as_ref().map(Value::to_string),
                    r.idempotency_key,
                    r.request_hash
                ])
            })
            .map_err(|e| match &r.idempotency_key {
                Some(key) if is_unique_violation(&e) => StoreError::DuplicateKey(key.clone()),
                _ => db(e),
            })?;
            Ok(Vec::new())
        }
        Change::Running(id) => {
            conn.prepare_cached(
                "UPDATE executions SET status = 'running' WHERE id = ?1 AND status = 'pending'",
            )
            .and_then(|mut stmt| stmt.execute(params![id.as_str()]))
            .map_err(db)?;
            Ok(Vec::new())
        }
        Change::Resume {
            execution_id,
            owner_pid,
        } => {
            let changed = conn
                .prepare_cached(
                    "UPDATE executions SET status = 'running', owner_pid = ?2, finished_at = NULL,
                       result = NULL, cancel_requested = NULL
                     WHERE id = ?1 AND status = 'interrupted'",
                )
                .and_then(|mut stmt| stmt.execute(params![execution_id.as_str(), owner_pid]))
                .map_err(db)?;
            if changed == 0 {
                let status: Option<String> = conn
                    .prepare_cached("SELECT status FROM executions WHERE id = ?1")
                    .and_then(|mut stmt| {
                        stmt.query_row(params![execution_id.as_str()], |r| r.get(0))
                            .optional()
                    })
                    .map_err(db)?;
                return Err(match status {
                    None => StoreError::UnknownExecution(execution_id.to_string()),
                    Some(status) => StoreError::NotResumable {
                        id: execution_id.to_string(),
                        status,
                    },
                });
            }
            Ok(Vec::new())
        }
        Change::Append {
            execution_id,
            entries,
        } => append_in(conn, execution_id, entries),
        Change::Finish {
            execution_id,
            status,
            finished_at,
            result,
        } => {
            let changed = conn
                .prepare_cached(
                    "UPDATE executions SET status = ?2, finished_at = ?3, result = ?4 WHERE id = ?1",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        execution_id.as_str(),
                        status.as_str(),
                        finished_at,
                        result.to_string()
                    ])
                })
                .map_err(db)?;
            if changed == 0 {
                return Err(StoreError::UnknownExecution(execution_id.to_string()));
            }
            Ok(Vec::new())
        }
    }
}

impl Store for SqliteStore {
    fn commit(&self, changes: &[Change]) -> Result<Vec<Applied>, StoreError> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            // A savepoint per change, so a failed one is undone alone. The
            // statements are cached: parsing them per change showed up in
            // profiles of the journal writer.
            run(&tx, "SAVEPOINT change")?;
            let outcome = apply(&tx, change);
            match outcome {
                Ok(_) => run(&tx, "RELEASE change")?,
                Err(_) => {
                    run(&tx, "ROLLBACK TO change")?;
                    run(&tx, "RELEASE change")?;
                }
            }
            outcomes.push(outcome);
        }
        tx.commit().map_err(db)?;
        Ok(outcomes)
    }

    fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.conn()
            .query_row(
                &format!("{RECORD_COLUMNS} WHERE id = ?1"),
                params![id],
                record,
            )
            .optional()
            .map_err(db)
    }

    fn execution_by_key(&self, key: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.conn()
            .query_row(
                &format!("{RECORD_COLUMNS} WHERE idempotency_key = ?1"),
                params![key],
                record,
            )
            .optional()
            .map_err(db)
    }

    fn release_key(&self, id: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE executions SET idempotency_key = NULL WHERE id = ?1",
                params![id],
            )
            .map(drop)
            .map_err(db)
    }

    fn request_cancel(&self, id: &str, at: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.conn()
            .prepare_cached(
                "UPDATE executions SET cancel_requested = ?2
                 WHERE id = ?1 AND status IN ('pending', 'running') AND cancel_requested IS NULL",
            )
            .and_then(|mut stmt| stmt.execute(params![id, at]))
            .map_err(db)?;
        self.execution(id)
    }

    fn cancel_requests(&self, owner_pid: u32) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id FROM executions WHERE status IN ('pending', 'running')
                 AND owner_pid = ?1 AND cancel_requested IS NOT NULL",
            )
            .map_err(db)?;
        stmt.query_map(params![owner_pid], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(db)
    }

    fn journal(&self, id: &str, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, at, data FROM journal
                 WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![id, after, limit as i64], |row| {
                Ok(JournalEntry {
                    seq: row.get(0)?,
                    at: row.get(1)?,
                    record: Record::from_value(json(row.get(2)?).unwrap_or(Value::Null)),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn last_execution(&self) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row(
                "SELECT id FROM executions ORDER BY created DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(db)
    }

    fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        let (sql, values) = listing(query);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values.iter()), |row| {
                Ok((
                    ExecutionSummary {
                        execution_id: ExecutionId::from(row.get::<_, String>(0)?),
                        workflow_id: row.get(1)?,
                        workflow_name: row.get(2)?,
                        status: status(&row.get::<_, String>(3)?),
                        started_at: row.get(4)?,
                        finished_at: row.get(5)?,
                        duration_ms: row.get::<_, Option<i64>>(6)?.map(|d| d.max(0) as u64),
                    },
                    row.get::<_, i64>(7)? as u64,
                ))
            })
            .map_err(db)?;
        let found: Vec<(ExecutionSummary, u64)> = rows.collect::<Result<_, _>>().map_err(db)?;
        Ok(page(found, query.limit))
    }

    fn mark_interrupted(
        &self,
        at: &str,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        let candidates: Vec<(String, u32)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, owner_pid FROM executions WHERE status IN ('running', 'pending')",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)?
        };
        let ids: Vec<String> = candidates
            .into_iter()
            .filter(|(_, pid)| !alive(*pid))
            .map(|(id, _)| id)
            .collect();
        for id in &ids {
            append_in(&tx, id, &[interrupted_entry(at)])?;
            tx.execute(
                "UPDATE executions SET status = 'interrupted', finished_at = ?2 WHERE id = ?1",
                params![id, at],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(ids)
    }
}
