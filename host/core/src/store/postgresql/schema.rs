//! The schema: versioned migrations, and a node's registration.

use std::time::Duration;

use tokio_postgres::Config;

use super::super::StoreError;
use super::conn::Conn;

/// The schema, one migration per version, applied in order at start (or by
/// `orchestr8 db migrate`) and recorded in `orchestr8_migrations`. A
/// migration, once released, never changes: add the next one.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[
    (
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
    ),
    (
        2,
        // The lease fence of every commit (see `commit`): holds the node's
        // row until the transaction ends, and fails, aborting it, unless
        // the lease is live.
        "CREATE FUNCTION orchestr8_fence(node TEXT) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM nodes WHERE id = node AND lease_until > now() FOR KEY SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'the lease of node % has expired', node USING ERRCODE = 'O8L01';
            END IF;
        END
        $$;",
    ),
];

/// The key of the advisory lock that migrations run under, so nodes
/// starting together apply each one once.
const MIGRATION_LOCK: i64 = 0x6f72_6368_6573_7438;

/// Applies the migrations `conn`'s database lacks; returns the versions
/// applied.
pub(super) fn migrate(conn: &mut Conn) -> Result<Vec<i32>, StoreError> {
    conn.batch("BEGIN")?;
    let applied = (|| {
        conn.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        conn.batch(
            "CREATE TABLE IF NOT EXISTS orchestr8_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )?;
        let current: i32 = conn
            .query_opt(
                "SELECT COALESCE(MAX(version), 0) FROM orchestr8_migrations",
                &[],
            )?
            .map_or(0, |row| row.get(0));
        let mut applied = Vec::new();
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            conn.batch(sql)?;
            conn.query(
                "INSERT INTO orchestr8_migrations (version) VALUES ($1)",
                &[version],
            )?;
            applied.push(*version);
        }
        Ok(applied)
    })();
    match applied {
        Ok(applied) => conn.batch("COMMIT").map(|()| applied),
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Applies the schema's migrations to the database `config` names,
/// without starting a node: what `orchestr8 db migrate` does. Returns the
/// versions applied (empty when it was up to date) and the current one.
pub(super) fn migrate_database(config: Config) -> Result<(Vec<i32>, i32), StoreError> {
    // On a thread of its own, as every connection (see `conn`).
    let applied = std::thread::spawn(move || migrate(&mut Conn::open(&config)?))
        .join()
        .map_err(|_| StoreError::Database("the migration thread panicked".into()))??;
    Ok((applied, MIGRATIONS.last().map_or(0, |(v, _)| *v)))
}

/// Registers a new node incarnation with a fresh lease; returns its id.
pub(super) fn register(conn: &mut Conn, lease: Duration) -> Result<String, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    conn.query(
        "INSERT INTO nodes (id, pid, host, lease_until)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        &[
            &id,
            &i64::from(std::process::id()),
            &host,
            &lease.as_secs_f64(),
        ],
    )?;
    Ok(id)
}
