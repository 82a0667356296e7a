//! The web console in a real browser: Debian's headless Chromium, driven
//! over WebDriver (its chromedriver), against real `serve` processes
//! running real agents. `scripts/setup-tests` installs both. Screenshots of
//! the main pages land in `target/console-screenshots/` (and, with
//! `ORCHESTR8_UPDATE_SCREENSHOTS=1`, in the guide's `docs/src/console/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use orchestr8_host::engine::ExecutionStatus;
use orchestr8_host::store::{Change, ExecutionRecord, SqliteStore, Store};
use support::api::{agents_dir, call, get, post};
use support::{Server, orchestr8};

/// How long the browser waits for what a step of a test expects.
const PATIENCE: Duration = Duration::from_secs(30);

/// chromedriver and the browser session it drives, quit when dropped.
struct Browser {
    driver: Child,
    client: Option<Client>,
}

impl Browser {
    async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        // A process group of its own: the browser it starts goes with it,
        // even when a failed test never closes the session.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver is missing: run scripts/setup-tests (it installs Debian's chromium and chromium-driver)");
        let caps = json!({
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--hide-scrollbars", "--lang=en-US"]
            }
        });
        let caps = caps.as_object().cloned().unwrap();
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no browser session: {e}"),
            }
        };
        Browser {
            driver,
            client: Some(client),
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Waits until the element `css` is there.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("`{css}` never appeared: {e}"))
    }

    /// Waits until the text of `css` contains `text`.
    async fn text_of(&self, css: &str, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(element) = self.client().find(Locator::Css(css)).await
                && let Ok(found) = element.text().await
                && found.contains(text)
            {
                return found;
            }
            assert!(Instant::now() < deadline, "`{css}` never said `{text}`");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn script(&self, code: &str) -> Value {
        self.client().execute(code, vec![]).await.unwrap()
    }

    /// Form controls without a label and buttons without a name: what a
    /// screen reader could not announce.
    async fn unlabelled(&self) -> Value {
        self.script(
            "return [...document.querySelectorAll('input, select, textarea, button')]
               .filter((e) => e.offsetParent !== null || e.closest('dialog[open]'))
               .filter((e) => e.tagName === 'BUTTON'
                 ? !e.textContent.trim() && !e.getAttribute('aria-label')
                 : !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
               .map((e) => e.outerHTML)",
        )
        .await
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client().screenshot().await.unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = root.join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), &png).unwrap();
        if std::env::var_os("ORCHESTR8_UPDATE_SCREENSHOTS").is_some() {
            std::fs::write(root.join("docs/src/console").join(name), &png).unwrap();
        }
    }

    async fn quit(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A project with the test agents and two workflows: `nap.json` (a nap of
/// `seconds`, then a word count of `text`) and `resilience.json` (the
/// resilience example: retries, an open circuit, a fallback).
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut toml = String::from("[project]\nname = \"console\"\n");
    for (id, file) in [
        ("@hostile/sleep", "hostile_sleep.wasm"),
        ("@orchestr8/text-stats", "text_stats.wasm"),
        ("@orchestr8/flaky", "flaky.wasm"),
        ("@orchestr8/echo", "echo.wasm"),
    ] {
        std::fs::copy(agents_dir().join(file), root.join(file)).unwrap();
        toml.push_str(&format!("\n[agents.\"{id}\"]\ncomponent = \"{file}\"\n"));
    }
    std::fs::write(root.join("orchestr8.toml"), toml).unwrap();
    std::fs::create_dir(root.join("workflows")).unwrap();
    let nap = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": { "id": "6d1f0a3e-2b4c-4e8f-9a1b-3c5d7e9f1a2b", "name": "nap then count",
                      "description": "Sleeps, then counts the words of a text." },
        "context": { "variables": { "seconds": 1, "text": "one two three" } },
        "steps": [
            { "id": "nap", "name": "Nap", "agent": { "id": "@hostile/sleep" },
              "input": { "mapping": { "seconds": "${variables.seconds}" } } },
            { "id": "count", "name": "Count words", "agent": { "id": "@orchestr8/text-stats" },
              "dependencies": ["nap"], "input": { "mapping": { "text": "${variables.text}" } } }
        ]
    });
    std::fs::write(root.join("workflows/nap.json"), nap.to_string()).unwrap();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/resilience/workflow.json");
    std::fs::copy(example, root.join("workflows/resilience.json")).unwrap();
    dir
}

fn serve(project: &Path, state: &Path, token: Option<&str>) -> Server {
    let mut command = orchestr8();
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(project)
        .env("ORCHESTR8_STATE_DIR", state);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    Server::start(command)
}

/// `POST` with the bearer `token`.
fn post_with_token(base: &str, path: &str, body: &Value, token: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, value, _) = call(
        "POST",
        &format!("{base}{path}"),
        Some(&body.to_string()),
        &[("Authorization", &auth)],
    );
    (status, value)
}

/// With a token, the console asks for it (and again when it is wrong);
/// then a workflow started from its form shows in the graph, its steps
/// turning from running to succeeded without a reload, with the journal,
/// the timeline and each step's input and output.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_asks_for_the_token_starts_a_workflow_and_follows_it_live() {
    let project = project();
    let state = tempfile::tempdir().unwrap();
    let token = "console-token";
    let server = serve(project.path(), state.path(), Some(token));
    let base = server.base.clone();
    // Something in every page: a finished run of the resilience example.
    let (status, done) = post_with_token(
        &base,
        "/workflows/execute?wait=true",
        &json!({ "workflowFile": "workflows/resilience.json" }),
        token,
    );
    assert_eq!(status, 200, "{done}");
    let browser = Browser::start().await;

    browser
        .client()
        .goto(&format!("{base}/#/workflows"))
        .await
        .unwrap();
    browser
        .element("#token-input")
        .await
        .send_keys("not-the-token")
        .await
        .unwrap();
    browser
        .element("#token-form button")
        .await
        .click()
        .await
        .unwrap();
    browser.text_of("#token-error", "not accepted").await;
    let input = browser.element("#token-input").await;
    input.clear().await.unwrap();
    input.send_keys(token).await.unwrap();
    browser
        .element("#token-form button")
        .await
        .click()
        .await
        .unwrap();

    let card = r#"article[data-file="workflows/nap.json"]"#;
    browser.text_of(card, "valid").await;
    assert_eq!(browser.unlabelled().await, json!([]));
    browser.screenshot("workflows.png").await;
    let seconds = browser
        .element(&format!("{card} input[name=seconds]"))
        .await;
    seconds.clear().await.unwrap();
    seconds.send_keys("2").await.unwrap();
    let text = browser.element(&format!("{card} input[name=text]")).await;
    text.clear().await.unwrap();
    text.send_keys("the console counts these five")
        .await
        .unwrap();
    // Set in this document: still there at the end means no reload.
    browser.script("window.sameDocument = true").await;
    browser
        .element(&format!("{card} button[type=submit]"))
        .await
        .click()
        .await
        .unwrap();

    browser
        .element(r#"#graph [data-step="nap"][data-status="running"]"#)
        .await;
    browser
        .element(r#"#graph [data-step="count"][data-status="pending"]"#)
        .await;
    browser
        .element(r#"#graph [data-step="nap"][data-status="succeeded"]"#)
        .await;
    browser
        .element(r#"#graph [data-step="count"][data-status="succeeded"]"#)
        .await;
    browser.text_of("#execution-status", "succeeded").await;
    assert_eq!(
        browser.script("return window.sameDocument === true").await,
        json!(true),
        "the page was reloaded"
    );
    browser
        .element(r#"#timeline rect[data-step="nap"][data-attempt="1"]"#)
        .await;
    browser.text_of("#journal-body", "execution-finished").await;
    assert_eq!(browser.unlabelled().await, json!([]));

    // A step's input and output, from the graph, by keyboard.
    let node = browser.element(r#"#graph [data-step="count"]"#).await;
    node.send_keys("\u{E007}").await.unwrap();
    let details = browser.text_of("#step-details", "\"words\": 5").await;
    assert!(
        details.contains("the console counts these five"),
        "{details}"
    );

    // How long entries took to reach the page: from each entry's time
    // (taken before its commit) to its arrival, for the entries that
    // committed while the page was open.
    let delays = browser
        .script(
            "const rows = [...document.querySelectorAll('#journal-body tr')];
             const first = Math.min(...rows.map((r) => Number(r.dataset.received)));
             return rows.map((r) => [Date.parse(r.dataset.at), Number(r.dataset.received)])
               .filter(([at]) => at > first).map(([at, got]) => got - at);",
        )
        .await;
    let mut delays: Vec<f64> = delays
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(!delays.is_empty(), "no entry arrived live");
    delays.sort_by(f64::total_cmp);
    eprintln!(
        "journal entry to the page: {} live entries, median {} ms, max {} ms",
        delays.len(),
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    browser.screenshot("execution.png").await;

    // The resilience run: its retries, backoff waits and fallback.
    let id = done["executionId"].as_str().unwrap();
    browser
        .client()
        .goto(&format!("{base}/#/executions/{id}"))
        .await
        .unwrap();
    browser.text_of("#journal-body", "execution-finished").await;
    browser.element(r#"#timeline rect.bar.backoff"#).await;
    browser
        .element(r#"#graph [data-step="inventory_cache"][data-status="succeeded"]"#)
        .await;
    browser.screenshot("resilience.png").await;

    browser
        .client()
        .goto(&format!("{base}/#/agents"))
        .await
        .unwrap();
    let flaky = browser
        .text_of(r#"#agents tr[data-agent="@orchestr8/flaky"]"#, "open")
        .await;
    assert!(flaky.contains("0.1.0"), "{flaky}");
    browser.screenshot("agents.png").await;
    browser
        .client()
        .goto(&format!("{base}/#/executions"))
        .await
        .unwrap();
    browser.text_of("#executions-body", "nap then count").await;
    assert_eq!(browser.unlabelled().await, json!([]));
    browser.screenshot("executions.png").await;
    browser.quit().await;
}

/// A running execution is cancelled from its page: the status and the
/// step turn `cancelled`, live.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_execution_is_cancelled_from_its_page() {
    let project = project();
    let state = tempfile::tempdir().unwrap();
    let server = serve(project.path(), state.path(), None);
    let base = server.base.clone();
    let (status, accepted) = post(
        &format!("{base}/workflows/execute"),
        &json!({ "workflowFile": "workflows/nap.json", "input": { "seconds": 60 } }).to_string(),
    );
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["executionId"].as_str().unwrap();
    let browser = Browser::start().await;
    browser
        .client()
        .goto(&format!("{base}/#/executions/{id}"))
        .await
        .unwrap();
    browser
        .element(r#"#graph [data-step="nap"][data-status="running"]"#)
        .await;
    browser.element("#cancel").await.click().await.unwrap();
    browser.text_of("#execution-status", "cancelled").await;
    browser
        .element(r#"#graph [data-step="nap"][data-status="cancelled"]"#)
        .await;
    browser
        .element(r#"#graph [data-step="count"][data-status="skipped"]"#)
        .await;
    let (status, view) = get(&format!("{base}/executions/{id}"));
    assert_eq!((status, view["status"].as_str()), (200, Some("cancelled")));
    browser.quit().await;
}

/// 100,000 executions in the store: the newest 10,000 paged through in
/// the browser a thousand at a time, each once, newest first; and back.
/// Prints how long the list's requests took, as the browser timed them.
#[tokio::test(flavor = "multi_thread")]
async fn the_executions_list_pages_through_ten_thousand_of_a_hundred_thousand_executions() {
    const STORED: usize = 100_000;
    const PAGE: usize = 1000;
    const PAGES: usize = 10;
    let project = project();
    let state = tempfile::tempdir().unwrap();
    seed(&state.path().join("orchestr8.db"), STORED);
    let server = serve(project.path(), state.path(), None);
    let base = server.base.clone();
    let browser = Browser::start().await;
    browser
        .client()
        .goto(&format!("{base}/#/executions?limit={PAGE}"))
        .await
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    for page in 1..=PAGES {
        browser
            .text_of("#page-number", &format!("page {page}"))
            .await;
        let first = format!("e{:06}", STORED - (page - 1) * PAGE - 1);
        browser
            .element(&format!(r#"#executions-body tr[data-id="{first}"]"#))
            .await;
        let ids = browser
            .script("return [...document.querySelectorAll('#executions-body tr')].map((r) => r.dataset.id)")
            .await;
        seen.extend(
            ids.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string()),
        );
        browser.element("#page-older").await.click().await.unwrap();
    }
    let expected: Vec<String> = (STORED - PAGES * PAGE..STORED)
        .rev()
        .map(|i| format!("e{i:06}"))
        .collect();
    assert_eq!(seen.len(), PAGES * PAGE);
    assert!(seen == expected, "each execution once, newest first");
    browser
        .text_of("#page-number", &format!("page {}", PAGES + 1))
        .await;
    browser.element("#page-newer").await.click().await.unwrap();
    browser
        .text_of("#page-number", &format!("page {PAGES}"))
        .await;
    let last_of_page = format!("e{:06}", STORED - PAGES * PAGE);
    browser
        .element(&format!(r#"#executions-body tr[data-id="{last_of_page}"]"#))
        .await;
    let timings = browser
        .script(
            "return performance.getEntriesByType('resource')
               .filter((e) => e.name.includes('/executions?')).map((e) => e.duration)",
        )
        .await;
    let mut timings: Vec<f64> = timings
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    timings.sort_by(f64::total_cmp);
    eprintln!(
        "GET /executions?limit={PAGE} with {STORED} stored, as the browser timed {} requests: median {:.1} ms, max {:.1} ms",
        timings.len(),
        timings[timings.len() / 2],
        timings[timings.len() - 1]
    );
    browser.quit().await;
}

/// Writes `n` finished executions, `e000000` (oldest) to `e{n-1}`, into the
/// SQLite store at `path`.
fn seed(path: &Path, n: usize) {
    let store = SqliteStore::open(path).unwrap();
    let changes: Vec<Change> = (0..n)
        .map(|i| {
            let at = format!(
                "2026-12-01T{:02}:{:02}:{:02}.000Z",
                i / 3600,
                i / 60 % 60,
                i % 60
            );
            Change::Create(Box::new(ExecutionRecord {
                id: format!("e{i:06}").into(),
                workflow_id: "6d1f0a3e-2b4c-4e8f-9a1b-3c5d7e9f1a2b".into(),
                workflow_name: "seeded".into(),
                status: ExecutionStatus::Succeeded,
                started_at: at.clone(),
                finished_at: Some(at),
                input: json!({}),
                result: Some(json!({ "durationMs": 3 })),
                owner_pid: 1,
                workflow: None,
                idempotency_key: None,
                request_hash: None,
            }))
        })
        .collect();
    for batch in changes.chunks(1000) {
        for outcome in store.commit(batch).unwrap() {
            outcome.unwrap();
        }
    }
}

/// What the console reads, over plain HTTP: the agents with their circuit
/// states, the project's workflows (a broken one listed with why, other
/// JSON at the root left out), validation without running, and the
/// console's page served without the token while the data needs it.
#[test]
fn the_console_endpoints_answer_and_refuse_bad_requests() {
    let project = project();
    let root = project.path();
    std::fs::write(root.join("workflows/broken.json"), r#"{"steps": 1}"#).unwrap();
    std::fs::write(root.join("workflows/typo.json"), "{ not json").unwrap();
    std::fs::write(root.join("package.json"), r#"{"name": "not a workflow"}"#).unwrap();
    let state = tempfile::tempdir().unwrap();
    let token = "console-token";
    let server = serve(root, state.path(), Some(token));
    let base = server.base.as_str();
    let auth = format!("Bearer {token}");
    let authorized = [("Authorization", auth.as_str())];
    let get_with_token = |path: &str| {
        let (status, value, _) = call("GET", &format!("{base}{path}"), None, &authorized);
        (status, value)
    };

    // The page and its assets need no token; the data does.
    for path in ["/", "/console/app.js", "/console/app.css"] {
        let response = support::api::agent()
            .get(&format!("{base}{path}"))
            .call()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let csp = response.headers().get("content-security-policy").unwrap();
        assert!(
            csp.to_str().unwrap().contains("script-src 'self'"),
            "{path}"
        );
    }
    assert_eq!(get(&format!("{base}/agents")).0, 401);
    assert_eq!(get(&format!("{base}/workflows")).0, 401);

    let (status, done) = post_with_token(
        base,
        "/workflows/execute?wait=true",
        &json!({ "workflowFile": "workflows/resilience.json" }),
        token,
    );
    assert_eq!(status, 200, "{done}");
    let (status, agents) = get_with_token("/agents");
    assert_eq!(status, 200, "{agents}");
    let ids: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "@hostile/sleep",
            "@orchestr8/echo",
            "@orchestr8/flaky",
            "@orchestr8/text-stats"
        ]
    );
    let flaky = &agents["agents"][2];
    assert_eq!(flaky["breaker"], "open", "{flaky}");
    assert_eq!(flaky["circuits"][0]["key"], "cb:@orchestr8/flaky");
    assert_eq!(flaky["limits"]["timeoutMs"], 30000);
    assert_eq!(flaky["grants"]["allowedHosts"], json!([]));
    assert_eq!(agents["agents"][3]["breaker"], "closed");
    assert_eq!(agents["unavailable"], json!([]));

    let (status, listed) = get_with_token("/workflows");
    assert_eq!(status, 200, "{listed}");
    let files: Vec<&str> = listed["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "workflows/broken.json",
            "workflows/nap.json",
            "workflows/resilience.json",
            "workflows/typo.json"
        ]
    );
    let nap = &listed["workflows"][1];
    assert_eq!(nap["valid"], true);
    assert_eq!(
        nap["inputSchema"]["properties"],
        json!({ "seconds": { "type": "integer", "default": 1 },
                "text": { "type": "string", "default": "one two three" } })
    );
    for broken in [&listed["workflows"][0], &listed["workflows"][3]] {
        assert_eq!(broken["valid"], false, "{broken}");
        assert!(!broken["issues"].as_array().unwrap().is_empty(), "{broken}");
    }

    let validate = |body: &str| {
        let (status, value, _) = call(
            "POST",
            &format!("{base}/workflows/validate"),
            Some(body),
            &authorized,
        );
        (status, value)
    };
    let (status, valid) = validate(r#"{"workflowFile": "workflows/nap.json"}"#);
    assert_eq!(
        (status, &valid),
        (200, &json!({ "valid": true, "issues": [] }))
    );
    let mut unknown_agent = nap_document(root);
    unknown_agent["steps"][0]["agent"]["id"] = json!("@nobody/here");
    let (status, invalid) = validate(&json!({ "workflow": unknown_agent }).to_string());
    assert_eq!(status, 200, "{invalid}");
    assert_eq!(invalid["valid"], false);
    assert_eq!(
        invalid["issues"][0]["path"], "$.steps[0].agent.id",
        "{invalid}"
    );
    for (body, expected, code) in [
        (
            r#"{"workflowFile": "workflows/none.json"}"#,
            404,
            "NOT_FOUND",
        ),
        (
            r#"{"workflowFile": "../outside.json"}"#,
            400,
            "INVALID_INPUT",
        ),
        ("{}", 400, "INVALID_INPUT"),
        (
            r#"{"workflowFile": "workflows/nap.json", "extra": 1}"#,
            400,
            "INVALID_INPUT",
        ),
        ("{ not json", 400, "INVALID_INPUT"),
    ] {
        let (status, error) = validate(body);
        assert_eq!(status, expected, "{body}: {error}");
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
    }
    // Nothing was started by validating.
    let (_, page) = get_with_token("/executions");
    assert_eq!(page["executions"].as_array().unwrap().len(), 1);
}

fn nap_document(project: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(project.join("workflows/nap.json")).unwrap())
        .unwrap()
}
