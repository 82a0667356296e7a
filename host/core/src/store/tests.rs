//! Both stores behave the same.

use serde_json::json;

use super::*;
use crate::record::Record;

fn record(id: &str) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        workflow_id: "wf".into(),
        workflow_name: "test".into(),
        status: ExecutionStatus::Running,
        started_at: now(),
        finished_at: None,
        input: json!({"x": 1}),
        result: None,
        owner_pid: 4242,
        workflow: None,
        idempotency_key: None,
        request_hash: None,
    }
}

fn entry(kind: &str) -> NewEntry {
    NewEntry::now(Record::Unknown(json!({"type": kind})))
}

/// What makes the owner of execution "a" (pid 4242) dead, and has `store`
/// find its executions interrupted; returns their ids.
type Kill<'a> = &'a dyn Fn(&dyn Store) -> Vec<String>;

/// An owner told apart by its process: 4242 is gone.
fn kill_pid(store: &dyn Store) -> Vec<String> {
    store.mark_interrupted(&now(), &|pid| pid != 4242).unwrap()
}

fn exercise(store: &dyn Store, kill: Kill<'_>) {
    store.create_execution(&record("a")).unwrap();
    store.create_execution(&record("b")).unwrap();
    assert_eq!(
        store.append("a", &[entry("one"), entry("two")]).unwrap(),
        vec![1, 2]
    );
    assert_eq!(store.append("a", &[entry("three")]).unwrap(), vec![3]);
    assert_eq!(store.append("b", &[entry("other")]).unwrap(), vec![1]);
    let page = store.journal("a", 1, 1).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!((page[0].seq, page[0].kind()), (2, "two"));
    assert_eq!(store.journal("a", 0, 100).unwrap().len(), 3);
    assert_eq!(store.last_execution().unwrap().as_deref(), Some("b"));

    store
        .finish_execution(
            "b",
            ExecutionStatus::Succeeded,
            &now(),
            &json!({"ok": true}),
        )
        .unwrap();
    assert!(
        store
            .mark_interrupted(&now(), &|_| true)
            .unwrap()
            .is_empty(),
        "live owners keep theirs"
    );
    let interrupted = kill(store);
    assert_eq!(interrupted, vec!["a".to_string()]);
    let a = store.execution("a").unwrap().unwrap();
    assert_eq!(a.status, ExecutionStatus::Interrupted);
    let journal = store.journal("a", 0, 100).unwrap();
    assert_eq!(journal.len(), 4, "nothing recorded before is lost");
    assert_eq!(journal[3].kind(), "execution-interrupted");
    assert_eq!(
        store.execution("b").unwrap().unwrap().status,
        ExecutionStatus::Succeeded
    );
    assert!(store.execution("zzz").unwrap().is_none());
    assert!(matches!(
        store.finish_execution("zzz", ExecutionStatus::Failed, &now(), &json!(null)),
        Err(StoreError::UnknownExecution(_))
    ));
}

/// Five executions of two workflows, listed a page at a time and filtered.
fn list(store: &dyn Store) {
    let at = |minute: u32| format!("2026-12-03T10:{minute:02}:00.000Z");
    for (i, (workflow, status)) in [
        ("alpha", ExecutionStatus::Succeeded),
        ("beta", ExecutionStatus::Failed),
        ("alpha", ExecutionStatus::Succeeded),
        ("alpha", ExecutionStatus::Running),
        ("beta", ExecutionStatus::Succeeded),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = record(&format!("e{i}"));
        r.workflow_name = workflow.into();
        r.started_at = at(i as u32);
        store.create_execution(&r).unwrap();
        if status.is_final() {
            let result = json!({"durationMs": 10 * i});
            store
                .finish_execution(&r.id, status, &at(i as u32 + 1), &result)
                .unwrap();
        }
    }
    let ids = |page: &ExecutionPage| -> Vec<String> {
        page.executions
            .iter()
            .map(|e| e.execution_id.to_string())
            .collect()
    };
    let query = |f: &dyn Fn(&mut ExecutionQuery)| {
        let mut q = ExecutionQuery {
            limit: 2,
            ..ExecutionQuery::default()
        };
        f(&mut q);
        store.list_executions(&q).unwrap()
    };

    let first = query(&|_| {});
    assert_eq!(ids(&first), ["e4", "e3"], "newest first");
    let second = query(&|q| q.before = first.next);
    assert_eq!(ids(&second), ["e2", "e1"]);
    let last = query(&|q| q.before = second.next);
    assert_eq!((ids(&last), last.next), (vec!["e0".to_string()], None));
    assert_eq!(last.executions[0].duration_ms, Some(0));
    assert_eq!(first.executions[1].duration_ms, None, "still running");

    let alpha_done = query(&|q| {
        q.workflow = Some("alpha".into());
        q.status = Some(ExecutionStatus::Succeeded);
        q.limit = 10;
    });
    assert_eq!(ids(&alpha_done), ["e2", "e0"]);
    let window = query(&|q| {
        q.since = Some(at(1));
        q.until = Some(at(3));
        q.limit = 10;
    });
    assert_eq!(ids(&window), ["e2", "e1"]);
    assert!(
        query(&|q| q.workflow = Some("gamma".into()))
            .executions
            .is_empty()
    );
}

/// Cancellation requests: recorded for executions still going, found by
/// their owner only, and never for one that ended.
fn cancel_requests(store: &dyn Store) {
    store.create_execution(&record("a")).unwrap();
    store.create_execution(&record("b")).unwrap();
    store.create_execution(&record("done")).unwrap();
    store
        .finish_execution("done", ExecutionStatus::Succeeded, &now(), &json!({}))
        .unwrap();
    assert!(store.cancel_requests(4242).unwrap().is_empty());
    let a = store.request_cancel("a", &now()).unwrap().unwrap();
    assert_eq!(a.status, ExecutionStatus::Running);
    let done = store.request_cancel("done", &now()).unwrap().unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert!(store.request_cancel("nope", &now()).unwrap().is_none());
    assert_eq!(store.cancel_requests(4242).unwrap(), vec!["a".to_string()]);
    assert!(
        store.cancel_requests(1).unwrap().is_empty(),
        "another owner's"
    );
    store
        .finish_execution("a", ExecutionStatus::Cancelled, &now(), &json!({}))
        .unwrap();
    assert!(store.cancel_requests(4242).unwrap().is_empty());
}

/// One commit of changes that depend on each other and changes that fail:
/// each change has its own outcome, in order, and the failures change
/// nothing of the rest.
fn one_commit(store: &dyn Store) {
    let mut keyed = record("k");
    keyed.idempotency_key = Some("key".into());
    store.create_execution(&keyed).unwrap();
    let mut again = record("k2");
    again.idempotency_key = Some("key".into());
    let append = |id: &str, kinds: &[&str]| Change::Append {
        execution_id: id.into(),
        entries: kinds.iter().map(|k| entry(k)).collect(),
    };
    let outcomes = store
        .commit(&[
            Change::Create(Box::new(record("c"))),
            append("c", &["one", "two"]),
            Change::Create(Box::new(again)),
            append("nope", &["lost"]),
            append("c", &["three"]),
            Change::Finish {
                execution_id: "c".into(),
                status: ExecutionStatus::Succeeded,
                finished_at: now(),
                result: json!({"durationMs": 5}),
            },
        ])
        .unwrap();
    assert_eq!(outcomes.len(), 6);
    assert!(outcomes[0].as_ref().is_ok_and(Vec::is_empty));
    assert_eq!(outcomes[1].as_ref().unwrap(), &vec![1, 2]);
    assert!(
        matches!(outcomes[2], Err(StoreError::DuplicateKey(_))),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], Err(StoreError::UnknownExecution(_))),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(outcomes[4].as_ref().unwrap(), &vec![3]);
    assert!(outcomes[5].is_ok(), "{:?}", outcomes[5]);
    let c = store.execution("c").unwrap().unwrap();
    assert_eq!(c.status, ExecutionStatus::Succeeded);
    let kinds: Vec<String> = store
        .journal("c", 0, 100)
        .unwrap()
        .iter()
        .map(|e| e.kind().to_string())
        .collect();
    assert_eq!(kinds, ["one", "two", "three"]);
    assert!(store.execution("k2").unwrap().is_none());
    assert!(store.execution("nope").unwrap().is_none());
}

#[test]
fn a_commit_gives_each_change_its_own_outcome_in_every_store() {
    one_commit(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    one_commit(&SqliteStore::open(&dir.path().join("orchestr8.db")).unwrap());
}

#[test]
fn both_stores_record_cancellation_requests_for_the_owner_to_find() {
    cancel_requests(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    cancel_requests(&SqliteStore::open(&dir.path().join("orchestr8.db")).unwrap());
}

#[test]
fn a_database_from_before_cancellation_requests_is_brought_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orchestr8.db");
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE executions (id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL,
           workflow_name TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL,
           finished_at TEXT, input TEXT NOT NULL, result TEXT, owner_pid INTEGER NOT NULL,
           created INTEGER NOT NULL);
         INSERT INTO executions VALUES ('old', 'wf', 'test', 'succeeded', '2026-01-01T00:00:00Z',
           NULL, '{}', NULL, 1, 1);",
    )
    .unwrap();
    drop(old);
    let store = SqliteStore::open(&path).unwrap();
    let old = store.execution("old").unwrap().unwrap();
    assert_eq!(old.status, ExecutionStatus::Succeeded);
    cancel_requests(&store);
}

#[test]
fn both_stores_list_executions_newest_first_with_filters_and_cursors() {
    list(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    list(&SqliteStore::open(&dir.path().join("orchestr8.db")).unwrap());
}

#[test]
fn the_memory_store_keeps_executions_and_journals() {
    exercise(&MemoryStore::new(), &kill_pid);
}

#[test]
fn the_sqlite_store_keeps_executions_and_journals_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("orchestr8.db");
    exercise(&SqliteStore::open(&path).unwrap(), &kill_pid);
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.journal("a", 0, 100).unwrap().len(), 4);
    assert_eq!(reopened.last_execution().unwrap().as_deref(), Some("b"));
}

#[test]
fn the_wal_stays_bounded_however_fast_commits_come() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orchestr8.db");
    let store = SqliteStore::open(&path).unwrap();
    store.create_execution(&record("a")).unwrap();
    let big = NewEntry::now(Record::Unknown(
        json!({"type": "big", "blob": "x".repeat(60_000)}),
    ));
    let wal = dir.path().join("orchestr8.db-wal");
    let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    // About 60 MB through the WAL with no pause between commits: the
    // background checkpoint alone would let it grow with every commit.
    let mut largest = 0;
    for _ in 0..1_000 {
        store.append("a", std::slice::from_ref(&big)).unwrap();
        largest = largest.max(size());
        // The threshold, plus the one commit that crossed it.
        assert!(
            size() <= sqlite::WAL_CHECKPOINT_AT + 1024 * 1024,
            "after a commit the WAL holds {} bytes",
            size()
        );
    }
    assert!(largest > 0);
    assert_eq!(store.journal("a", 0, 5000).unwrap().len(), 1_000);
    // Once the writes stop, the background checkpoint empties the file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while size() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(sqlite::CHECKPOINT_EVERY);
    }
    assert_eq!(size(), 0, "the WAL is truncated once the load ends");
}

/// A page deep behind a cursor, or of one status, is found by seeking its
/// index, never by walking the executions above it (what the list
/// benchmark measured before: 1.3 ms halfway down 100,000, 47 µs now).
#[test]
fn listing_seeks_the_cursor_and_the_status_in_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orchestr8.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan = |query: ExecutionQuery| -> String {
        let (sql, values) = sqlite::listing(&query);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values.iter()), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    let deep = plan(ExecutionQuery {
        before: Some(50_000),
        limit: 50,
        ..ExecutionQuery::default()
    });
    assert!(
        deep.contains("SEARCH executions USING INDEX executions_created (created<?)"),
        "{deep}"
    );
    let failed = plan(ExecutionQuery {
        status: Some(ExecutionStatus::Failed),
        before: Some(50_000),
        limit: 50,
        ..ExecutionQuery::default()
    });
    assert!(
        failed.contains("SEARCH executions USING INDEX executions_status (status=? AND created<?)"),
        "{failed}"
    );
}

/// A database of its own in a throwaway cluster, and a store (a node) on it.
fn postgres(cluster: &orchestr8_test_postgres::Cluster, name: &str) -> (String, PostgresStore) {
    let url = cluster.database(name).unwrap();
    let store = PostgresStore::connect(&url, PostgresOptions::default()).unwrap();
    (url, store)
}

/// A node dies (its lease is ended in the database, as expiry would) and
/// another node's sweep finds its executions.
fn kill_node<'a>(
    cluster: &'a orchestr8_test_postgres::Cluster,
    name: &'a str,
    url: &'a str,
) -> impl Fn(&dyn Store) -> Vec<String> + 'a {
    move |_| {
        cluster
            .sql(
                name,
                "UPDATE nodes SET lease_until = now() - interval '1 second'",
            )
            .unwrap();
        let other = PostgresStore::connect(url, PostgresOptions::default()).unwrap();
        other.mark_interrupted(&now(), &|_| true).unwrap()
    }
}

#[test]
fn the_postgres_store_passes_the_same_suite() {
    let cluster = orchestr8_test_postgres::Cluster::start().unwrap();
    let (url, store) = postgres(&cluster, "exercise");
    exercise(&store, &kill_node(&cluster, "exercise", &url));
    let (_, store) = postgres(&cluster, "list");
    list(&store);
    let (_, store) = postgres(&cluster, "cancel");
    cancel_requests(&store);
    let (_, store) = postgres(&cluster, "commit");
    one_commit(&store);
}

/// Two nodes on one database: once a node's lease expires, another takes
/// its execution over, and the first node's writes to it are refused, so
/// the journal has one writer at a time; the first node learns it lost the
/// execution and goes on as a new node.
#[test]
fn a_node_whose_lease_expired_cannot_write_to_what_another_took_over() {
    let cluster = orchestr8_test_postgres::Cluster::start().unwrap();
    let url = cluster.database("fence").unwrap();
    let lease = PostgresOptions {
        lease: std::time::Duration::from_millis(600),
        ..PostgresOptions::default()
    };
    let a = PostgresStore::connect(&url, lease.clone()).unwrap();
    let b = PostgresStore::connect(&url, lease).unwrap();
    a.create_execution(&record("x")).unwrap();
    assert_eq!(a.append("x", &[entry("one")]).unwrap(), vec![1]);
    assert!(
        b.append("x", &[entry("intruder")])
            .is_err_and(|e| matches!(e, StoreError::LeaseLost(_)))
    );
    assert!(
        b.mark_interrupted(&now(), &|_| true).unwrap().is_empty(),
        "a's lease is live"
    );

    // A stops renewing (as if paused) past its lease.
    let a_node = a.node_id();
    cluster
        .sql(
            "fence",
            &format!("UPDATE nodes SET lease_until = now() WHERE id = '{a_node}'"),
        )
        .unwrap();
    assert_eq!(
        b.mark_interrupted(&now(), &|_| true).unwrap(),
        vec!["x".to_string()]
    );
    b.commit(&[Change::Resume {
        execution_id: "x".into(),
        owner_pid: 7,
    }])
    .unwrap()
    .pop()
    .unwrap()
    .unwrap();
    let refused = a.append("x", &[entry("stale")]).unwrap_err();
    assert!(matches!(refused, StoreError::LeaseLost(_)), "{refused}");
    assert!(matches!(
        a.finish_execution("x", ExecutionStatus::Succeeded, &now(), &json!({})),
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(b.append("x", &[entry("two")]).unwrap(), vec![3]);
    let kinds: Vec<String> = b
        .journal("x", 0, 100)
        .unwrap()
        .iter()
        .map(|e| e.kind().to_string())
        .collect();
    assert_eq!(kinds, ["one", "execution-interrupted", "two"]);
    let x = b.execution("x").unwrap().unwrap();
    assert_eq!((x.status, x.owner_pid), (ExecutionStatus::Running, 7));

    // A finds out at its next renewal: it hands the execution back as lost
    // and goes on as a new node, whose new work is its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut lost = Vec::new();
    while lost.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        lost = a.lost();
    }
    assert_eq!(lost, vec!["x".to_string()]);
    assert_ne!(a.node_id(), a_node);
    a.create_execution(&record("y")).unwrap();
    assert_eq!(a.append("y", &[entry("fresh")]).unwrap(), vec![1]);
    assert!(matches!(
        a.append("x", &[entry("stale")]),
        Err(StoreError::LeaseLost(_))
    ));
}

/// Nodes sweeping at once split a dead node's executions: each is marked
/// interrupted once, and taken over by one node only.
#[test]
fn nodes_sweeping_together_interrupt_and_take_over_each_execution_once() {
    let cluster = orchestr8_test_postgres::Cluster::start().unwrap();
    let url = cluster.database("sweep").unwrap();
    let dead = PostgresStore::connect(&url, PostgresOptions::default()).unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("e{i:02}")).collect();
    for id in &ids {
        dead.create_execution(&record(id)).unwrap();
    }
    cluster
        .sql("sweep", "UPDATE nodes SET lease_until = now()")
        .unwrap();
    let nodes: Vec<PostgresStore> = (0..3)
        .map(|_| PostgresStore::connect(&url, PostgresOptions::default()).unwrap())
        .collect();
    let (interrupted, taken): (Vec<Vec<String>>, Vec<Vec<String>>) = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|node| {
                s.spawn(|| {
                    let interrupted = node.mark_interrupted(&now(), &|_| true).unwrap();
                    let taken: Vec<String> = ids
                        .iter()
                        .filter(|id| {
                            node.commit(&[Change::Resume {
                                execution_id: id.as_str().into(),
                                owner_pid: 1,
                            }])
                            .unwrap()
                            .pop()
                            .unwrap()
                            .is_ok()
                        })
                        .cloned()
                        .collect();
                    (interrupted, taken)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).unzip()
    });
    let mut all: Vec<String> = interrupted.concat();
    all.sort();
    assert_eq!(all, ids, "each marked once");
    let mut all: Vec<String> = taken.concat();
    all.sort();
    assert_eq!(all, ids, "each taken over once");
    for id in &ids {
        let journal = nodes[0].journal(id, 0, 10).unwrap();
        assert_eq!(journal.len(), 1, "{id}: {journal:?}");
    }
}

/// A node hears of the commits other nodes make to journals (what wakes
/// its live event streams), and not of its own.
#[test]
fn a_node_hears_when_another_node_appends_to_a_journal() {
    let cluster = orchestr8_test_postgres::Cluster::start().unwrap();
    let url = cluster.database("listen").unwrap();
    let a = PostgresStore::connect(&url, PostgresOptions::default()).unwrap();
    let b = PostgresStore::connect(&url, PostgresOptions::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx = std::sync::Mutex::new(tx);
    a.watch_commits(Box::new(move |id| {
        let _ = tx.lock().unwrap().send(id.to_string());
    }))
    .unwrap();
    // The listener connects on its own thread: wait until it hears.
    a.create_execution(&record("mine")).unwrap();
    b.create_execution(&record("theirs")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let heard = loop {
        a.append("mine", &[entry("own")]).unwrap();
        b.append("theirs", &[entry("other")]).unwrap();
        if let Ok(id) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            break id;
        }
        assert!(std::time::Instant::now() < deadline, "never heard");
    };
    assert_eq!(heard, "theirs");
    while let Ok(id) = rx.recv_timeout(std::time::Duration::from_millis(300)) {
        assert_eq!(id, "theirs", "its own commits are not signalled");
    }
}
