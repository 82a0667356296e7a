//! The store's connections. The driver is async (`tokio-postgres`); each
//! connection lives on a thread of its own with a small runtime of its own,
//! so that callers (async tasks among them) hand it jobs without blocking
//! their runtime, and a client is never made inside someone else's.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, mpsc};

use futures_util::future::join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use super::super::StoreError;

/// Statement parameters, owned: a commit builds all of its statements
/// before it sends them together.
pub(super) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Borrows owned parameters as the driver takes them.
pub(super) fn borrowed(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// A statement's text and parameters, for [`Conn::pipeline`].
pub(super) type Sent<'a> = (&'a str, Vec<&'a (dyn ToSql + Sync)>);

pub(super) type Job = Box<dyn FnOnce(&mut Conn) + Send>;

pub(super) fn db(e: tokio_postgres::Error) -> StoreError {
    // The server's own message says more than the driver's summary.
    match e.as_db_error() {
        Some(d) => StoreError::Database(format!("{}: {}", d.code().code(), d.message())),
        None => StoreError::Database(e.to_string()),
    }
}

/// A runtime for one thread's connection.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Database(format!("cannot start a database runtime: {e}")))
}

pub(super) fn cannot_connect(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(format!("cannot connect to PostgreSQL: {}", db(e)))
}

/// A connection and its statements, each prepared once by its text: the
/// server parses and plans it once per connection, and each use is then
/// one round trip instead of two.
pub(super) struct Conn {
    runtime: tokio::runtime::Runtime,
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl Conn {
    pub(super) fn open(config: &Config) -> Result<Conn, StoreError> {
        let runtime = runtime()?;
        let (client, connection) = runtime
            .block_on(config.connect(NoTls))
            .map_err(cannot_connect)?;
        // Driven while this thread waits on the client (`block_on`).
        runtime.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a database connection ended");
            }
        });
        Ok(Conn {
            runtime,
            client,
            prepared: HashMap::new(),
        })
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The prepared statements for `sqls`, preparing those this connection
    /// has not seen yet (together, in one round trip).
    fn statements(&mut self, sqls: &[&str]) -> Result<Vec<Statement>, StoreError> {
        let mut missing: Vec<&str> = sqls
            .iter()
            .copied()
            .filter(|s| !self.prepared.contains_key(*s))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let client = &self.client;
            let prepared = self
                .runtime
                .block_on(join_all(missing.iter().map(|sql| client.prepare(sql))));
            for (sql, statement) in missing.into_iter().zip(prepared) {
                self.prepared
                    .insert(sql.to_string(), statement.map_err(db)?);
            }
        }
        sqls.iter()
            .map(|sql| {
                self.prepared
                    .get(*sql)
                    .cloned()
                    .ok_or_else(|| StoreError::Database(format!("statement not prepared: {sql}")))
            })
            .collect()
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let mut answers = self.pipeline(&[(sql, params.to_vec())])?;
        answers.pop().unwrap_or_else(|| Ok(Vec::new())).map_err(db)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs `sql`, statements without parameters, as a simple query:
    /// transaction control and migrations.
    pub(super) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .map_err(db)
    }

    /// Runs `statements` in order, sent together so that all of them cost
    /// one round trip (the server still runs them one after the other).
    /// Each answers for itself: inside a transaction, once one fails the
    /// ones after it fail too, and a `COMMIT` among them rolls back.
    pub(super) fn pipeline(
        &mut self,
        statements: &[Sent<'_>],
    ) -> Result<Vec<Result<Vec<Row>, tokio_postgres::Error>>, StoreError> {
        let sqls: Vec<&str> = statements.iter().map(|(sql, _)| *sql).collect();
        let prepared = self.statements(&sqls)?;
        let client = &self.client;
        Ok(self.runtime.block_on(join_all(
            prepared
                .iter()
                .zip(statements)
                .map(|(statement, (_, params))| client.query(statement, params)),
        )))
    }
}

/// A connection's thread: runs jobs until the store is dropped,
/// connecting at its first job, and again when the connection broke.
pub(super) fn serve_jobs(config: &Config, jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut conn: Option<Conn> = None;
    loop {
        let job = match jobs.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if conn.as_ref().is_none_or(Conn::is_closed) {
            conn = match Conn::open(config) {
                Ok(conn) => Some(conn),
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
