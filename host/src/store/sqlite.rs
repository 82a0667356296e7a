//! The embedded default store: one SQLite file, WAL mode.
//!
//! `synchronous = NORMAL` with WAL: a committed transaction survives the
//! process being killed (the guarantee the journal gives); only a power
//! loss can take the last commits with it.
//!
//! Checkpoints (copying the WAL back into the database) run on a thread of
//! their own with its own connection, in PASSIVE mode every
//! [`CHECKPOINT_EVERY`], instead of inside whichever commit crosses the
//! automatic threshold: that commit used to stall for milliseconds, and
//! every execution waiting on it with it.
//!
//! A PASSIVE checkpoint never resets the WAL while commits keep coming (it
//! copies the frames that existed when it began; the log restarts only once
//! every frame is copied), so under sustained load the file grew without
//! bound. The bound is kept by construction, not by the thread's timing:
//! after every commit that leaves the WAL past [`WAL_CHECKPOINT_AT`], the
//! committing connection itself runs a TRUNCATE checkpoint before it takes
//! the next commit. The WAL is therefore never larger than that threshold
//! plus one group commit (see [`WAL_BOUND`]). When the writer is idle and
//! the background checkpoint has copied everything, it truncates the file,
//! so the WAL also shrinks after a load ends.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{
    Applied, Change, ExecutionRecord, JournalEntry, NewEntry, Store, StoreError, interrupted_entry,
};
use crate::engine::ExecutionStatus;

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
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_created ON executions(created);
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

/// How often the WAL is checkpointed.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// WAL size past which a commit is followed by a TRUNCATE checkpoint.
pub const WAL_CHECKPOINT_AT: u64 = 16 * 1024 * 1024;

/// The most the WAL can hold: the threshold plus one group commit (at most
/// 512 changes; journal entries are capped at 64 KiB, so a group commit of
/// entries stays under 40 MiB even in the worst case). The soak benchmark
/// and the serve test check it under load.
pub const WAL_BOUND: u64 = 64 * 1024 * 1024;

/// Executions and journals in a SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The WAL file beside the database.
    wal: PathBuf,
    /// Dropping it stops the checkpoint thread.
    _checkpoints: mpsc::Sender<()>,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
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
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        // Checkpoints run on their own thread (see the module comment).
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(db)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            wal: wal_path(path),
            _checkpoints: start_checkpoints(path)?,
        })
    }

    /// Checkpoints and truncates the WAL once it has passed
    /// [`WAL_CHECKPOINT_AT`]; called after each commit, with the connection
    /// held so no other commit can come in between.
    fn bound_wal(&self, conn: &Connection) {
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if size <= WAL_CHECKPOINT_AT {
            return;
        }
        match checkpoint(conn, "TRUNCATE") {
            Ok(true) => tracing::debug!(wal_bytes = size, "WAL checkpointed and truncated"),
            // A reader in another process (say `orchestr8 inspect`) holds
            // an old snapshot for longer than the busy timeout; the next
            // commit tries again.
            Ok(false) => tracing::warn!(wal_bytes = size, "WAL checkpoint blocked by a reader"),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Runs a checkpoint in `mode`; whether it copied every frame of the WAL
/// (for TRUNCATE: and emptied the file).
fn checkpoint(conn: &Connection, mode: &str) -> Result<bool, rusqlite::Error> {
    let (busy, log, copied): (i64, i64, i64) =
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(busy == 0 && log == copied)
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
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(CHECKPOINT_EVERY) {
                match checkpoint(&conn, "PASSIVE") {
                    // Everything is copied: nobody is writing, so emptying
                    // the file costs nothing and gives the disk space back.
                    Ok(true) if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) => {
                        if let Err(e) = checkpoint(&conn, "TRUNCATE") {
                            tracing::warn!(error = %e, "WAL truncation failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                }
            }
        })
        .map_err(|e| StoreError::Database(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(tx)
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
        stmt.execute(params![
            id,
            seq,
            e.at,
            e.kind,
            e.step_id,
            e.attempt,
            e.duration_ms,
            e.code,
            e.data.to_string()
        ])
        .map_err(db)?;
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
                "INSERT INTO executions (id, workflow_id, workflow_name, status, started_at, finished_at, input, result, owner_pid, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    r.id,
                    r.workflow_id,
                    r.workflow_name,
                    r.status.as_str(),
                    r.started_at,
                    r.finished_at,
                    r.input.to_string(),
                    r.result.as_ref().map(Value::to_string),
                    r.owner_pid,
                    created
                ])
            })
            .map_err(db)?;
            Ok(Vec::new())
        }
        Change::Running(id) => {
            conn.prepare_cached(
                "UPDATE executions SET status = 'running' WHERE id = ?1 AND status = 'pending'",
            )
            .and_then(|mut stmt| stmt.execute(params![id]))
            .map_err(db)?;
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
                        execution_id,
                        status.as_str(),
                        finished_at,
                        result.to_string()
                    ])
                })
                .map_err(db)?;
            if changed == 0 {
                return Err(StoreError::UnknownExecution(execution_id.clone()));
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
        self.bound_wal(&conn);
        Ok(outcomes)
    }

    fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.conn()
            .query_row(
                "SELECT id, workflow_id, workflow_name, status, started_at, finished_at, input, result, owner_pid
                 FROM executions WHERE id = ?1",
                params![id],
                |row| {
                    Ok(ExecutionRecord {
                        id: row.get(0)?,
                        workflow_id: row.get(1)?,
                        workflow_name: row.get(2)?,
                        status: status(&row.get::<_, String>(3)?),
                        started_at: row.get(4)?,
                        finished_at: row.get(5)?,
                        input: json(row.get(6)?).unwrap_or(Value::Null),
                        result: json(row.get(7)?),
                        owner_pid: row.get(8)?,
                    })
                },
            )
            .optional()
            .map_err(db)
    }

    fn journal(&self, id: &str, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, at, kind, step_id, attempt, duration_ms, code, data FROM journal
                 WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![id, after, limit as i64], |row| {
                Ok(JournalEntry {
                    seq: row.get(0)?,
                    at: row.get(1)?,
                    kind: row.get(2)?,
                    step_id: row.get(3)?,
                    attempt: row.get(4)?,
                    duration_ms: row.get(5)?,
                    code: row.get(6)?,
                    data: json(row.get(7)?).unwrap_or(Value::Null),
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
