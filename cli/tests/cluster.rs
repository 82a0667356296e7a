//! Several `orchestr8 serve` nodes sharing one PostgreSQL database, as real
//! processes on loopback, with a throwaway cluster: any node answers for
//! any execution, a cancel reaches the node running it, and when a node
//! dies (SIGKILL) or stalls past its lease (SIGSTOP) the others take its
//! executions over, with no step's result recorded twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orchestr8_test_postgres::Cluster;
use serde_json::{Value, json};
use support::api::{agents_dir, get, post, read_events, workflow};
use support::{Server, failed, ok, orchestr8};

/// A node on `url`, its log written to `log`.
fn node(url: &str, state: &Path, log: &Path) -> Server {
    node_with(url, state, log, &[])
}

/// A node on `url` with `serve`'s `extra` arguments.
fn node_with(url: &str, state: &Path, log: &Path, extra: &[&str]) -> Server {
    let agents = agents_dir();
    let mut command = orchestr8();
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--agents-dir"])
        .arg(agents)
        .args(extra)
        .env("ORCHESTR8_STATE_DIR", state)
        .env("ORCHESTR8_DATABASE_URL", url)
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    Server::start(command)
}

fn signal(server: &Server, name: &str) {
    let sent = Command::new("kill")
        .args([name, &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Stats, a one-second nap, stats again: long enough to be caught running.
fn napping_workflow() -> Value {
    workflow(json!([
        { "id": "stats", "name": "stats", "agent": { "id": "@orchestr8/text-stats" }, "input": { "mapping": { "text": "one two" } } },
        { "id": "nap", "name": "nap", "agent": { "id": "@hostile/sleep" }, "dependencies": ["stats"], "input": { "mapping": { "seconds": 1 } } },
        { "id": "after", "name": "after", "agent": { "id": "@orchestr8/text-stats" }, "dependencies": ["nap"],
          "input": { "mapping": { "text": "${steps.stats.output.words} words" } } }
    ]))
}

fn submit(base: &str, body: &Value) -> Option<String> {
    let (status, accepted) = post(&format!("{base}/workflows/execute"), &body.to_string());
    (status == 202).then(|| accepted["executionId"].as_str().unwrap().to_string())
}

/// Waits until every execution of `ids` has ended, asking `base`; returns
/// their views.
fn wait_all(base: &str, ids: &[String], within: Duration) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + within;
    let mut done = BTreeMap::new();
    while done.len() < ids.len() {
        let waiting: Vec<&String> = ids.iter().filter(|id| !done.contains_key(*id)).collect();
        for id in waiting {
            let (status, view) = get(&format!("{base}/executions/{id}"));
            assert_eq!(status, 200, "{view}");
            if !["pending", "running", "interrupted"].contains(&view["status"].as_str().unwrap()) {
                done.insert(id.clone(), view);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} executions never finished",
            ids.len() - done.len(),
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    done
}

/// The journal's entries, whole, from `base`.
fn journal(base: &str, id: &str) -> Vec<Value> {
    let (status, page) = get(&format!("{base}/executions/{id}/journal?limit=1000"));
    assert_eq!(status, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

/// Checks an execution's journal: numbered 1, 2, … without a gap, started
/// once, and each step's result recorded once. Returns whether it was taken
/// over (interrupted, then resumed).
fn check_journal(id: &str, entries: &[Value]) -> bool {
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for (n, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], n as u64 + 1, "{id}: a gap in {kinds:?}");
    }
    let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count("execution-started"), 1, "{id}: {kinds:?}");
    assert_eq!(count("execution-finished"), 1, "{id}: {kinds:?}");
    let mut succeeded = BTreeSet::new();
    for e in entries.iter().filter(|e| e["kind"] == "step-succeeded") {
        let step = e["stepId"].as_str().unwrap();
        assert!(
            succeeded.insert(step),
            "{id}: step {step} recorded twice: {kinds:?}"
        );
    }
    assert_eq!(succeeded.len(), 3, "{id}: {kinds:?}");
    let interrupted = count("execution-interrupted");
    assert_eq!(interrupted, count("execution-resumed"), "{id}: {kinds:?}");
    interrupted > 0
}

#[test]
fn three_nodes_share_the_work_and_finish_what_a_killed_node_was_running() {
    let cluster = Cluster::start().unwrap();
    let url = cluster.database("nodes").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Server> = (0..3)
        .map(|n| {
            node(
                &url,
                &dir.path().join(format!("state{n}")),
                &dir.path().join(format!("node{n}.log")),
            )
        })
        .collect();
    let body = json!({ "workflow": napping_workflow() });
    let mut ids = Vec::new();
    let mut by_node: Vec<Vec<String>> = vec![Vec::new(); 3];
    for n in 0..100 {
        let id = submit(&nodes[n % 3].base, &body).expect("accepted");
        by_node[n % 3].push(id.clone());
        ids.push(id);
    }
    // Mid-load: node 1 has executions running when it is killed.
    let victim = by_node[1].last().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{}/executions/{victim}", nodes[0].base)).1["status"] != "running" {
        assert!(Instant::now() < deadline, "node 1's executions never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_at = Instant::now();
    nodes[1].child.kill().unwrap();
    nodes[1].child.wait().unwrap();
    let killed = nodes.remove(1);
    // The rest go round-robin to the nodes still up.
    for n in 100..200 {
        ids.push(submit(&nodes[n % 2].base, &body).expect("accepted"));
    }
    let views = wait_all(&nodes[0].base, &ids, Duration::from_secs(120));
    let took_over = killed_at.elapsed();
    let mut taken_over = 0;
    for (id, view) in &views {
        assert_eq!(view["status"], "succeeded", "{id}: {view}");
        // Any node answers for any execution, and they agree.
        let there = get(&format!("{}/executions/{id}", nodes[1].base)).1;
        assert_eq!(there["status"], "succeeded");
        if check_journal(id, &journal(&nodes[1].base, id)) {
            taken_over += 1;
            assert!(by_node[1].contains(id), "{id} was not the killed node's");
        }
    }
    // Any node lists them all, whichever node ran them.
    let (status, page) = get(&format!("{}/executions?limit=1000", nodes[1].base));
    assert_eq!(status, 200, "{page}");
    let listed: BTreeSet<&str> = page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["executionId"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| listed.contains(id.as_str())));
    let unfinished_on_death = by_node[1]
        .iter()
        .filter(|id| views[*id]["status"] == "succeeded")
        .count();
    assert!(taken_over > 0, "nothing of the killed node's was running?");
    assert!(taken_over <= unfinished_on_death);
    let logs: String = (0..3)
        .filter(|n| *n != 1)
        .map(|n| std::fs::read_to_string(dir.path().join(format!("node{n}.log"))).unwrap())
        .collect();
    assert!(logs.contains("taking over"), "{logs}");
    drop(killed);
    eprintln!("{taken_over} executions taken over; all done {took_over:?} after the kill");
}

#[test]
fn a_node_takes_over_no_more_than_it_would_admit_and_the_rest_later() {
    let cluster = Cluster::start().unwrap();
    let url = cluster.database("room").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut dying = node(&url, &dir.path().join("a"), &dir.path().join("a.log"));
    let one_at_a_time = node_with(
        &url,
        &dir.path().join("b"),
        &dir.path().join("b.log"),
        &["--max-running", "1", "--queue", "0"],
    );
    let napping = json!({ "workflow": workflow(json!([
        { "id": "nap", "name": "nap", "agent": { "id": "@hostile/sleep" }, "input": { "mapping": { "seconds": 2 } } }
    ])) });
    let ids: Vec<String> = (0..3)
        .map(|_| submit(&dying.base, &napping).unwrap())
        .collect();
    let status_of = |id: &str| {
        get(&format!("{}/executions/{id}", one_at_a_time.base)).1["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ids.iter().all(|id| status_of(id) == "running") {
        assert!(Instant::now() < deadline, "the naps never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    dying.child.kill().unwrap();
    dying.child.wait().unwrap();
    // All three are marked interrupted in one sweep; the surviving node,
    // with room for one, takes one and leaves two for later.
    let deadline = Instant::now() + Duration::from_secs(30);
    let marked = |id: &String| {
        journal(&one_at_a_time.base, id)
            .iter()
            .any(|e| e["kind"] == "execution-interrupted")
    };
    while !ids.iter().all(marked) {
        assert!(Instant::now() < deadline, "never marked interrupted");
        std::thread::sleep(Duration::from_millis(20));
    }
    let statuses = loop {
        let statuses: Vec<String> = ids.iter().map(|id| status_of(id)).collect();
        if statuses.iter().any(|s| s != "interrupted") {
            break statuses;
        }
        assert!(Instant::now() < deadline, "never taken over");
        std::thread::sleep(Duration::from_millis(20));
    };
    let count = |want: &str| statuses.iter().filter(|s| *s == want).count();
    assert_eq!(
        (count("running"), count("interrupted")),
        (1, 2),
        "{statuses:?}"
    );
    let views = wait_all(&one_at_a_time.base, &ids, Duration::from_secs(60));
    for (id, view) in &views {
        assert_eq!(view["status"], "succeeded", "{id}: {view}");
    }
}

#[test]
fn a_node_paused_past_its_lease_has_its_writes_refused_and_says_so() {
    let cluster = Cluster::start().unwrap();
    let url = cluster.database("pause").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paused_log = dir.path().join("paused.log");
    let paused = node(&url, &dir.path().join("a"), &paused_log);
    let other = node(&url, &dir.path().join("b"), &dir.path().join("other.log"));
    let id = submit(&paused.base, &json!({ "workflow": napping_workflow() })).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{}/executions/{id}", other.base)).1["steps"]["nap"]["status"] != "running" {
        assert!(Instant::now() < deadline, "the nap never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&paused, "-STOP");
    // The other node takes the execution over once the lease has expired,
    // and runs it to its end while the paused node sleeps.
    let views = wait_all(
        &other.base,
        std::slice::from_ref(&id),
        Duration::from_secs(30),
    );
    signal(&paused, "-CONT");
    assert_eq!(views[&id]["status"], "succeeded", "{}", views[&id]);
    // Woken, the paused node finds its lease gone: it says so, and what it
    // still had to write about the execution is refused.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = std::fs::read_to_string(&paused_log).unwrap();
        if log.contains("lease expired") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the paused node never said: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let entries = journal(&other.base, &id);
    assert!(check_journal(&id, &entries), "it was taken over");
    assert_eq!(
        get(&format!("{}/executions/{id}", paused.base)).1["status"],
        "succeeded"
    );
    // It goes on as a new node: new work is its own.
    let fresh = submit(&paused.base, &json!({ "workflow": napping_workflow() })).unwrap();
    let views = wait_all(
        &paused.base,
        std::slice::from_ref(&fresh),
        Duration::from_secs(30),
    );
    assert_eq!(views[&fresh]["status"], "succeeded");
    assert!(!check_journal(&fresh, &journal(&paused.base, &fresh)));
}

/// A cancel sent to a node that does not run the execution reaches the
/// node that does, and that node's entries stream live from the other.
#[test]
fn a_cancel_sent_to_any_node_reaches_the_node_running_the_execution() {
    let cluster = Cluster::start().unwrap();
    let url = cluster.database("cancel").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runner = node(&url, &dir.path().join("a"), &dir.path().join("a.log"));
    let other = node(&url, &dir.path().join("b"), &dir.path().join("b.log"));
    let slow = workflow(json!([
        { "id": "nap", "name": "nap", "agent": { "id": "@hostile/sleep" }, "input": { "mapping": { "seconds": 30 } } }
    ]));
    let id = submit(&runner.base, &json!({ "workflow": slow })).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{}/executions/{id}", other.base)).1["steps"]["nap"]["status"] != "running" {
        assert!(Instant::now() < deadline, "the nap never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Its events, streamed by the node that does not run it, as they
    // commit on the other.
    let streaming = {
        let (base, id) = (other.base.clone(), id.clone());
        std::thread::spawn(move || read_events(&base, &id, None, usize::MAX))
    };
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = post(&format!("{}/executions/{id}/cancel", other.base), "");
    assert_eq!(status, 202, "{body}");
    let views = wait_all(
        &other.base,
        std::slice::from_ref(&id),
        Duration::from_secs(20),
    );
    assert_eq!(views[&id]["status"], "cancelled", "{}", views[&id]);
    let (status, body) = post(&format!("{}/executions/{id}/cancel", runner.base), "");
    assert_eq!(status, 409, "{body}");
    let events = streaming.join().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"execution-started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"execution-finished"), "{kinds:?}");
    assert!(
        kinds.contains(&"step-cancelled") || kinds.contains(&"step-failed"),
        "{kinds:?}"
    );
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e.id, n as u64 + 1, "{kinds:?}");
    }
    let last = &events.last().unwrap().data;
    assert_eq!(last["data"]["status"], "cancelled", "{last}");
    // A node stopped with SIGTERM gives its lease up as it leaves.
    let nodes = || cluster.sql("cancel", "SELECT count(*) FROM nodes").unwrap();
    assert_eq!(nodes(), "2");
    let mut runner = runner;
    assert_eq!(runner.terminate(Duration::from_secs(10)), Some(0));
    assert_eq!(nodes(), "1");
}

/// `orchestr8 db migrate` brings a database up to date once and says so;
/// a `--store` that is not a PostgreSQL URL, or a database that is not
/// there, is refused with what to do.
#[test]
fn db_migrate_applies_the_schema_once_and_bad_stores_are_refused() {
    let cluster = Cluster::start().unwrap();
    let url = cluster.database("fresh").unwrap();
    let migrate = |url: &str| {
        orchestr8()
            .args(["db", "migrate", "--json", "--store", url])
            .output()
            .unwrap()
    };
    let first: Value = serde_json::from_str(&ok(&migrate(&url))).unwrap();
    assert_eq!(first, json!({ "applied": [1, 2], "version": 2 }));
    let again: Value = serde_json::from_str(&ok(&migrate(&url))).unwrap();
    assert_eq!(again, json!({ "applied": [], "version": 2 }));
    assert_eq!(
        cluster
            .sql("fresh", "SELECT count(*) FROM orchestr8_migrations")
            .unwrap(),
        "2"
    );

    let not_postgres = orchestr8()
        .args(["executions", "--store", "sqlite:/tmp/x.db"])
        .output()
        .unwrap();
    let stderr = failed(&not_postgres, 2);
    assert!(stderr.contains("give a PostgreSQL URL"), "{stderr}");

    let missing = cluster.url("nowhere");
    let stderr = failed(&migrate(&missing), 1);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");
}
