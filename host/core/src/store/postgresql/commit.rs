//! A commit: a batch of changes in one transaction, its statements sent
//! together so that the whole commit costs one round trip (`BEGIN`, the
//! lease fence, a statement per change, the notification and `COMMIT`).
//!
//! Each change's statement is written not to fail on the cases a change
//! may meet (a duplicate key, a takeover, an unknown execution): it
//! changes nothing and says so by the rows it returns, so one change never
//! aborts the others. Only the fence fails on purpose, aborting the
//! transaction, when this node's lease has expired.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tokio_postgres::Row;

use super::super::{Applied, Change, NewEntry, StoreError};
use super::JOURNAL_CHANNEL;
use super::conn::{Conn, Params, Sent, borrowed, db};

/// The SQLSTATE `orchestr8_fence` raises when the node's lease has expired
/// (see the schema's second migration).
pub(super) const FENCED: &str = "O8L01";

/// Holds this node's row until the transaction ends, and fails unless the
/// lease is live: a sweep cannot declare the node dead while its writes are
/// on their way, and a node declared dead writes nothing.
const FENCE: &str = "SELECT orchestr8_fence($1)";

const NOTIFY: &str = "SELECT pg_notify($1, $2 || ' ' || id) FROM unnest($3::text[]) AS id";

/// The statement that appends entries to an execution's journal: the next
/// numbers after its last, only while the writer holds the execution
/// (owner `$2`, generation `$3`) or unfenced (`$2` null); no row when
/// refused.
pub(super) const APPEND: &str = "WITH held AS (
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
     RETURNING seq";

/// [`APPEND`]'s parameters for `entries` of execution `id`, fenced by
/// (node, generation) when given.
pub(super) fn append(id: &str, entries: &[NewEntry], fence: Option<(&str, i64)>) -> Params {
    let mut at = Vec::with_capacity(entries.len());
    let mut kind = Vec::with_capacity(entries.len());
    let mut step = Vec::with_capacity(entries.len());
    let mut attempt = Vec::with_capacity(entries.len());
    let mut duration = Vec::with_capacity(entries.len());
    let mut code = Vec::with_capacity(entries.len());
    let mut data = Vec::with_capacity(entries.len());
    for e in entries {
        let r = &e.record;
        at.push(e.at.clone());
        kind.push(r.kind().to_string());
        step.push(r.step_id().map(str::to_string));
        attempt.push(r.attempt().map(i64::from));
        duration.push(r.duration_ms());
        code.push(r.code());
        data.push(r.to_value().to_string());
    }
    let (node, generation) = fence.unzip();
    vec![
        Box::new(id.to_string()),
        Box::new(node.map(str::to_string)),
        Box::new(generation),
        Box::new(at),
        Box::new(kind),
        Box::new(step),
        Box::new(attempt),
        Box::new(duration),
        Box::new(code),
        Box::new(data),
    ]
}

/// The journal numbers [`APPEND`] returned, in order.
pub(super) fn seqs(rows: &[Row]) -> Vec<u64> {
    let mut seqs: Vec<u64> = rows
        .iter()
        .map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
        .collect();
    seqs.sort_unstable();
    seqs
}

/// How to read what a change's statement returned.
enum Expect {
    Created { id: String, key: Option<String> },
    Running,
    Resumed { id: String },
    Appended,
    Finished { id: String },
}

/// A change's statement, or its outcome when it needs none.
enum Plan {
    Send {
        sql: &'static str,
        params: Params,
        expect: Expect,
    },
    Done(Applied),
    /// This node does not hold the execution: whether it exists is looked
    /// up after the commit, to say why.
    Refused,
}

/// An execution this node now holds under a generation, or no longer
/// (`None`: it finished).
pub(super) type Hold = (String, Option<i64>);

/// What a commit did: each change's outcome, in order, and what this node
/// now holds (`None`: no longer, once finished).
pub(super) struct Committed {
    pub(super) outcomes: Vec<Applied>,
    pub(super) holds: Vec<Hold>,
}

fn plan(change: &Change, node: &str, owned: &HashMap<String, i64>) -> Plan {
    let id = change.execution_id();
    let held = owned.get(id).map(|generation| (node, *generation));
    match change {
        Change::Create(r) => {
            let duration = r
                .result
                .as_ref()
                .and_then(|v| v.get("durationMs"))
                .and_then(Value::as_i64);
            Plan::Send {
                sql: "INSERT INTO executions (id, workflow_id, workflow_name, status, started_at,
                        finished_at, input, result, duration_ms, owner_pid, owner_node, workflow,
                        idempotency_key, request_hash)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                      ON CONFLICT DO NOTHING RETURNING 1",
                params: vec![
                    Box::new(r.id.to_string()),
                    Box::new(r.workflow_id.clone()),
                    Box::new(r.workflow_name.clone()),
                    Box::new(r.status.as_str()),
                    Box::new(r.started_at.clone()),
                    Box::new(r.finished_at.clone()),
                    Box::new(r.input.to_string()),
                    Box::new(r.result.as_ref().map(Value::to_string)),
                    Box::new(duration),
                    Box::new(i64::from(r.owner_pid)),
                    Box::new(node.to_string()),
                    Box::new(r.workflow.as_ref().map(Value::to_string)),
                    Box::new(r.idempotency_key.clone()),
                    Box::new(r.request_hash.clone()),
                ],
                expect: Expect::Created {
                    id: id.to_string(),
                    key: r.idempotency_key.clone(),
                },
            }
        }
        Change::Running(_) => match held {
            Some((node, generation)) => Plan::Send {
                sql: "UPDATE executions SET status = 'running'
                      WHERE id = $1 AND status = 'pending' AND owner_node = $2 AND generation = $3",
                params: vec![
                    Box::new(id.to_string()),
                    Box::new(node.to_string()),
                    Box::new(generation),
                ],
                expect: Expect::Running,
            },
            None => Plan::Refused,
        },
        Change::Resume { owner_pid, .. } => Plan::Send {
            // The status is read from the snapshot before the update: it
            // says why a resume that took nothing was refused.
            sql: "WITH taken AS (
                    UPDATE executions SET status = 'running', owner_pid = $2, owner_node = $3,
                        generation = generation + 1, finished_at = NULL, result = NULL,
                        duration_ms = NULL, cancel_requested = NULL
                    WHERE id = $1 AND status = 'interrupted'
                    RETURNING generation
                  )
                  SELECT (SELECT generation FROM taken),
                         (SELECT status FROM executions WHERE id = $1)",
            params: vec![
                Box::new(id.to_string()),
                Box::new(i64::from(*owner_pid)),
                Box::new(node.to_string()),
            ],
            expect: Expect::Resumed { id: id.to_string() },
        },
        Change::Append { entries, .. } => match held {
            Some(_) if entries.is_empty() => Plan::Done(Ok(Vec::new())),
            Some(fence) => Plan::Send {
                sql: APPEND,
                params: append(id, entries, Some(fence)),
                expect: Expect::Appended,
            },
            None => Plan::Refused,
        },
        Change::Finish {
            status,
            finished_at,
            result,
            ..
        } => match held {
            Some((node, generation)) => Plan::Send {
                sql: "UPDATE executions SET status = $2, finished_at = $3, result = $4,
                        duration_ms = $5
                      WHERE id = $1 AND owner_node = $6 AND generation = $7
                      RETURNING 1",
                params: vec![
                    Box::new(id.to_string()),
                    Box::new(status.as_str()),
                    Box::new(finished_at.clone()),
                    Box::new(result.to_string()),
                    Box::new(result.get("durationMs").and_then(Value::as_i64)),
                    Box::new(node.to_string()),
                    Box::new(generation),
                ],
                expect: Expect::Finished { id: id.to_string() },
            },
            None => Plan::Refused,
        },
    }
}

/// A change's outcome from its statement's rows: `None` when it was
/// refused; with the hold it gives this node.
fn read(expect: Expect, rows: &[Row]) -> Option<(Applied, Option<Hold>)> {
    match expect {
        Expect::Created { id, key } => Some(if rows.is_empty() {
            let e = match key {
                Some(key) => StoreError::DuplicateKey(key),
                None => StoreError::Database(format!("execution `{id}` exists")),
            };
            (Err(e), None)
        } else {
            (Ok(Vec::new()), Some((id, Some(1))))
        }),
        Expect::Running => Some((Ok(Vec::new()), None)),
        Expect::Resumed { id } => {
            let row = rows.first()?;
            Some(
                match (
                    row.get::<_, Option<i64>>(0),
                    row.get::<_, Option<String>>(1),
                ) {
                    (Some(generation), _) => (Ok(Vec::new()), Some((id, Some(generation)))),
                    (None, None) => (Err(StoreError::UnknownExecution(id)), None),
                    (None, Some(status)) => (Err(StoreError::NotResumable { id, status }), None),
                },
            )
        }
        Expect::Appended if rows.is_empty() => None,
        Expect::Appended => Some((Ok(seqs(rows)), None)),
        Expect::Finished { .. } if rows.is_empty() => None,
        Expect::Finished { id } => Some((Ok(Vec::new()), Some((id, None)))),
    }
}

/// Commits `changes` as `node`, which holds the executions in `owned`
/// (under their generations); `peers`: whether other nodes listen for
/// journal appends.
///
/// A change to an execution that a create or resume earlier in the batch
/// makes this node hold waits for that one's answer: the statements go in
/// rounds, one per such dependency, all in the one transaction.
pub(super) fn commit(
    conn: &mut Conn,
    node: &str,
    mut owned: HashMap<String, i64>,
    peers: bool,
    changes: &[Change],
) -> Result<Committed, StoreError> {
    let mut outcomes: Vec<Option<Applied>> = changes.iter().map(|_| None).collect();
    let mut holds = Vec::new();
    let mut refused = Vec::new();
    let appended: Vec<String> = changes
        .iter()
        .filter(|c| matches!(c, Change::Append { entries, .. } if !entries.is_empty()))
        .map(|c| c.execution_id().to_string())
        .collect();
    let node_param = node.to_string();
    let mut start = 0;
    loop {
        let mut awaited = HashSet::new();
        let mut end = start;
        while let Some(change) = changes.get(end) {
            let id = change.execution_id();
            if awaited.contains(id) {
                break;
            }
            if matches!(change, Change::Create(_) | Change::Resume { .. }) {
                awaited.insert(id);
            }
            end += 1;
        }
        let (first, last) = (start == 0, end == changes.len());
        let plans: Vec<Plan> = changes[start..end]
            .iter()
            .map(|c| plan(c, node, &owned))
            .collect();
        let params: Vec<Vec<_>> = plans
            .iter()
            .map(|p| match p {
                Plan::Send { params, .. } => borrowed(params),
                _ => Vec::new(),
            })
            .collect();
        let mut sent: Vec<Sent<'_>> = Vec::new();
        if first {
            sent.push(("BEGIN", Vec::new()));
            sent.push((FENCE, vec![&node_param]));
        }
        for (p, params) in plans.iter().zip(&params) {
            if let Plan::Send { sql, .. } = p {
                sent.push((sql, params.clone()));
            }
        }
        if last && peers && !appended.is_empty() {
            // Delivered to listening nodes when (and only if) this
            // transaction commits. An append that turns out refused
            // wakes them for nothing, which is harmless.
            sent.push((NOTIFY, vec![&JOURNAL_CHANNEL, &node_param, &appended]));
        }
        if last {
            sent.push(("COMMIT", Vec::new()));
        }
        let answers = conn.pipeline(&sent)?;
        drop(sent);
        // Stops the transaction after a failure, unless the pipelined
        // COMMIT already rolled it back.
        let fail = |conn: &mut Conn, e: StoreError| {
            if !last {
                let _ = conn.batch("ROLLBACK");
            }
            Err(e)
        };
        let mut answers = answers.into_iter();
        if first {
            if let Some(Err(e)) = answers.next() {
                return fail(conn, db(e));
            }
            if let Some(Err(e)) = answers.next() {
                if e.code().is_some_and(|c| c.code() == FENCED) {
                    // Nothing was written: every change is refused.
                    if !last {
                        let _ = conn.batch("ROLLBACK");
                    }
                    refused = (0..changes.len()).collect();
                    holds.clear();
                    break;
                }
                return fail(conn, db(e));
            }
        }
        let mut read_back = Vec::new();
        for (index, p) in (start..end).zip(plans) {
            match p {
                Plan::Done(applied) => outcomes[index] = Some(applied),
                Plan::Refused => refused.push(index),
                Plan::Send { expect, .. } => match answers.next() {
                    Some(Ok(rows)) => read_back.push((index, expect, rows)),
                    Some(Err(e)) => return fail(conn, db(e)),
                    None => return fail(conn, StoreError::Database("no answer".into())),
                },
            }
        }
        // The notification and COMMIT.
        for answer in answers {
            if let Err(e) = answer {
                return fail(conn, db(e));
            }
        }
        for (index, expect, rows) in read_back {
            match read(expect, &rows) {
                Some((applied, hold)) => {
                    if let Some((id, generation)) = hold {
                        match generation {
                            Some(generation) => owned.insert(id.clone(), generation),
                            None => owned.remove(&id),
                        };
                        holds.push((id, generation));
                    }
                    outcomes[index] = Some(applied);
                }
                None => refused.push(index),
            }
        }
        if last {
            break;
        }
        start = end;
    }
    if !refused.is_empty() {
        // Why: no such execution, or another node holds it now.
        let ids: Vec<String> = refused
            .iter()
            .map(|i| changes[*i].execution_id().to_string())
            .collect();
        let known: HashSet<String> = conn
            .query("SELECT id FROM executions WHERE id = ANY($1)", &[&ids])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (index, id) in refused.into_iter().zip(ids) {
            outcomes[index] = Some(Err(if known.contains(&id) {
                StoreError::LeaseLost(id)
            } else {
                StoreError::UnknownExecution(id)
            }));
        }
    }
    Ok(Committed {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(StoreError::Database("no outcome".into()))))
            .collect(),
        holds,
    })
}
