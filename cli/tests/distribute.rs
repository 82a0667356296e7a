//! Agent distribution end to end, with real processes: an agent packaged in
//! one project and installed into others from a file, from a loopback HTTP
//! server and from a real OCI registry (Debian's `docker-registry`, started
//! here on loopback), then run in a workflow; and every way an install must
//! fail, each leaving the project unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake::FakeServer;
use support::{failed, ok, orchestr8};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(dir: &Path, args: &[&str]) -> Output {
    orchestr8()
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("ORCHESTR8_STATE_DIR", dir.join(".state"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The project that makes the research agent, with its grants and config.
fn source_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cache")).unwrap();
    let component = repo().join("agents/target/wasm32-wasip2/release/context7.wasm");
    assert!(component.is_file(), "build the agents first: scripts/test");
    std::fs::write(
        dir.path().join("orchestr8.toml"),
        format!(
            r#"[project]
name = "maker"

[agents."@orchestr8/context7"]
component = "{}"
limits = {{ timeout_ms = 15000, memory_mb = 48 }}
grants = {{ allowed_hosts = ["context7.com"], secrets = ["context7-api-key"], dirs = [{{ host = "cache", guest = "/cache", writable = true }}] }}

[agents."@orchestr8/context7".config]
baseUrl = "https://context7.com/api"
"#,
            component.display()
        ),
    )
    .unwrap();
    dir
}

/// An empty consumer project.
fn consumer() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orchestr8.toml"),
        "[project]\nname = \"user\"\n",
    )
    .unwrap();
    dir
}

/// The packaged agent's files: (manifest, component).
fn package(source: &Path) -> (PathBuf, PathBuf) {
    let out = ok(&run(source, &["package", "context7", "--out", "dist"]));
    assert!(
        out.contains("packaged @orchestr8/context7 0.1.0 (sha256:"),
        "{out}"
    );
    let dist = source.join("dist");
    (
        dist.join("orchestr8.context7-0.1.0.agent.json"),
        dist.join("orchestr8.context7-0.1.0.wasm"),
    )
}

/// Runs a research step with the recorded Context7 answers: the installed
/// agent works, under `id`.
#[track_caller]
fn runs_in_a_workflow(project: &Path, id: &str) {
    let workflow = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "name": "installed"},
        "steps": [{
            "id": "research", "name": "research", "agent": {"id": id},
            "input": {"mapping": {
                "query": "How do I add middleware that logs every request?",
                "library": "axum", "topic": "middleware", "tokens": 2000
            }}
        }]
    });
    std::fs::write(project.join("workflow.json"), workflow.to_string()).unwrap();
    let fixtures = repo().join("fixtures/context7.json");
    let out = ok(&run(
        project,
        &[
            "run",
            "workflow.json",
            "--quiet",
            "--json",
            "--fixtures",
            fixtures.to_str().unwrap(),
        ],
    ));
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(
        result["steps"]["research"]["output"]["library"]["id"],
        "/tokio-rs/axum"
    );
}

/// What an install may change: orchestr8.toml, the lockfile, the components.
fn snapshot(project: &Path) -> (String, Option<String>, bool) {
    (
        std::fs::read_to_string(project.join("orchestr8.toml")).unwrap(),
        std::fs::read_to_string(project.join("orchestr8.lock")).ok(),
        project.join(".orchestr8/installed").exists(),
    )
}

#[track_caller]
fn refused_and_unchanged(project: &Path, args: &[&str], code: i32) -> String {
    let before = snapshot(project);
    let stderr = failed(&run(project, args), code);
    assert_eq!(snapshot(project), before, "the project changed: {stderr}");
    stderr
}

#[test]
fn a_package_installs_from_a_file_pins_its_digest_and_runs() {
    let source = source_project();
    let (manifest, component) = package(source.path());
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m["format"], "orchestr8-agent/1");
    assert_eq!(m["world"], "orchestr8:agent/agent@0.1.0");
    assert_eq!(m["grants"]["allowedHosts"], json!(["context7.com"]));
    assert_eq!(m["grants"]["secrets"], json!(["context7-api-key"]));
    assert_eq!(
        m["grants"]["dirs"],
        json!([{"guest": "/cache", "writable": true}]),
        "directories are asked for by guest path only"
    );
    assert_eq!(
        m["limits"],
        json!({"timeoutMs": 15000, "fuel": m["limits"]["fuel"], "memoryMb": 48})
    );
    assert_eq!(m["config"], json!({"baseUrl": "https://context7.com/api"}));
    assert_eq!(m["inputSchema"]["required"], json!(["query"]));
    let size = std::fs::metadata(&component).unwrap().len();
    assert_eq!(m["component"]["size"], size);

    let project = consumer();
    let out = ok(&run(
        project.path(),
        &["install", manifest.to_str().unwrap(), "--yes"],
    ));
    assert!(out.contains("outbound HTTP to context7.com"), "{out}");
    assert!(out.contains("the secret context7-api-key"), "{out}");
    assert!(
        out.contains("read-write access to a directory mounted at /cache"),
        "{out}"
    );
    let toml = std::fs::read_to_string(project.path().join("orchestr8.toml")).unwrap();
    assert!(toml.contains("[agents.\"@orchestr8/context7\"]"), "{toml}");
    assert!(
        toml.contains("component = \".orchestr8/installed/orchestr8.context7-0.1.0.wasm\""),
        "{toml}"
    );
    assert!(
        toml.contains("allowed_hosts = [\"context7.com\"]"),
        "{toml}"
    );
    assert!(
        toml.contains("baseUrl = \"https://context7.com/api\""),
        "{toml}"
    );
    assert!(
        toml.contains("{ host = \"data/context7/cache\", guest = \"/cache\", writable = true }"),
        "{toml}"
    );
    assert!(project.path().join("data/context7/cache").is_dir());
    let lock = std::fs::read_to_string(project.path().join("orchestr8.lock")).unwrap();
    assert!(
        lock.contains(&format!(
            "digest = \"{}\"",
            m["component"]["digest"].as_str().unwrap()
        )),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("source = \"{}\"", manifest.display())),
        "{lock}"
    );
    runs_in_a_workflow(project.path(), "@orchestr8/context7");

    let list = ok(&run(project.path(), &["agents", "list", "--json"]));
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], "@orchestr8/context7");
    assert_eq!(list[0]["version"], "0.1.0");
    assert_eq!(list[0]["digest"], m["component"]["digest"]);
    assert_eq!(list[0]["matchesLock"], true);
    assert!(
        list[0]["from"]
            .as_str()
            .unwrap()
            .starts_with("installed from ")
    );
    assert_eq!(
        list[0]["grants"],
        json!(["host context7.com", "dir /cache", "secret context7-api-key"])
    );

    // The lockfile restores a fresh checkout, verified against the pin.
    std::fs::remove_dir_all(project.path().join(".orchestr8")).unwrap();
    let out = ok(&run(project.path(), &["install"]));
    assert!(out.contains("restored @orchestr8/context7 0.1.0"), "{out}");
    runs_in_a_workflow(project.path(), "@orchestr8/context7");

    let out = ok(&run(project.path(), &["uninstall", "context7"]));
    assert!(out.contains("uninstalled @orchestr8/context7"), "{out}");
    let toml = std::fs::read_to_string(project.path().join("orchestr8.toml")).unwrap();
    assert!(!toml.contains("context7"), "{toml}");
    assert!(
        !project
            .path()
            .join(".orchestr8/installed/orchestr8.context7-0.1.0.wasm")
            .exists()
    );
    let lock = std::fs::read_to_string(project.path().join("orchestr8.lock")).unwrap();
    assert!(!lock.contains("context7"), "{lock}");
}

#[test]
fn a_package_installs_from_a_loopback_http_server_under_another_id() {
    let source = source_project();
    let (manifest, component) = package(source.path());
    let server = FakeServer::start();
    for file in [&manifest, &component] {
        let name = file.file_name().unwrap().to_str().unwrap();
        server.mount(
            Mock::given(method("GET"))
                .and(path(format!("/agents/{name}")))
                .respond_with(
                    ResponseTemplate::new(200).set_body_bytes(std::fs::read(file).unwrap()),
                ),
        );
    }
    let url = format!(
        "{}/agents/{}",
        server.uri(),
        manifest.file_name().unwrap().to_str().unwrap()
    );
    let project = consumer();
    ok(&run(
        project.path(),
        &["install", &url, "--as", "@user/research", "--yes"],
    ));
    let toml = std::fs::read_to_string(project.path().join("orchestr8.toml")).unwrap();
    assert!(toml.contains("[agents.\"@user/research\"]"), "{toml}");
    assert!(toml.contains("package = \"@orchestr8/context7\""), "{toml}");
    let lock = std::fs::read_to_string(project.path().join("orchestr8.lock")).unwrap();
    assert!(lock.contains(&format!("source = \"{url}\"")), "{lock}");
    runs_in_a_workflow(project.path(), "@user/research");

    // Unreachable: a path the server does not have, and no server at all.
    let missing = format!("{}/agents/nope.agent.json", server.uri());
    let stderr = refused_and_unchanged(project.path(), &["install", &missing, "--yes"], 1);
    assert!(
        stderr.contains("cannot fetch the package from") && stderr.contains("404"),
        "{stderr}"
    );
    let closed = format!("http://127.0.0.1:{}/x.agent.json", free_port());
    let stderr = refused_and_unchanged(project.path(), &["install", &closed, "--yes"], 1);
    assert!(stderr.contains("cannot fetch the package from"), "{stderr}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's docker-registry on a loopback port, stopped when dropped.
struct Registry {
    child: Child,
    address: String,
    _storage: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start() -> Registry {
        let binary = Path::new("/usr/bin/docker-registry");
        assert!(
            binary.is_file(),
            "this test needs an OCI registry: apt-get install docker-registry (.ci/run does)"
        );
        let storage = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .new_agent();
        let started = Instant::now();
        while agent.get(&format!("http://{address}/v2/")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the registry did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry {
            child,
            address,
            _storage: storage,
        }
    }
}

#[test]
fn a_package_published_to_an_oci_registry_installs_and_restores_from_it() {
    let registry = Registry::start();
    let source = source_project();
    let reference = format!("oci://{}/agents/context7:0.1.0", registry.address);
    let out = ok(&run(source.path(), &["publish", "context7", &reference]));
    assert!(
        out.contains("published @orchestr8/context7 0.1.0 (sha256:"),
        "{out}"
    );

    let project = consumer();
    ok(&run(project.path(), &["install", &reference, "--yes"]));
    let lock = std::fs::read_to_string(project.path().join("orchestr8.lock")).unwrap();
    assert!(
        lock.contains(&format!("source = \"{reference}\"")),
        "{lock}"
    );
    runs_in_a_workflow(project.path(), "@orchestr8/context7");

    std::fs::remove_dir_all(project.path().join(".orchestr8")).unwrap();
    let out = ok(&run(project.path(), &["install"]));
    assert!(out.contains(&format!("from {reference}")), "{out}");
    runs_in_a_workflow(project.path(), "@orchestr8/context7");

    // A pin that no longer matches what the registry serves is a hard error.
    let locked = std::fs::read_to_string(project.path().join("orchestr8.lock")).unwrap();
    let pinned = locked
        .lines()
        .find_map(|l| l.strip_prefix("digest = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let forged = format!("sha256:{}", "0".repeat(64));
    std::fs::write(
        project.path().join("orchestr8.lock"),
        locked.replace(&pinned, &forged),
    )
    .unwrap();
    std::fs::remove_dir_all(project.path().join(".orchestr8")).unwrap();
    let stderr = refused_and_unchanged(project.path(), &["install"], 3);
    assert!(
        stderr.contains(&format!("expected {forged}, got {pinned}")),
        "{stderr}"
    );

    let missing = format!("oci://{}/agents/nope:1.0.0", registry.address);
    let stderr = refused_and_unchanged(project.path(), &["install", &missing, "--yes"], 1);
    assert!(
        stderr.contains("cannot fetch the package from oci://"),
        "{stderr}"
    );
}

/// Runs a text-stats step: the installed plain component works, as `id`.
#[track_caller]
fn counts_words(project: &Path, id: &str) {
    let workflow = json!({
        "version": "1.0.0", "schemaVersion": "1.0.0",
        "metadata": {"id": "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "name": "plain"},
        "steps": [{"id": "count", "name": "count", "agent": {"id": id},
                   "input": {"mapping": {"text": "one two three"}}}]
    });
    std::fs::write(project.join("workflow.json"), workflow.to_string()).unwrap();
    let out = ok(&run(
        project,
        &["run", "workflow.json", "--quiet", "--json"],
    ));
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["steps"]["count"]["output"]["words"], 3, "{result}");
}

fn text_stats_component() -> PathBuf {
    repo().join("agents/target/wasm32-wasip2/release/text_stats.wasm")
}

#[test]
fn a_component_file_installs_with_the_manifest_beside_it_or_as_a_plain_component() {
    // The .wasm that `orchestr8 package` wrote, given instead of its
    // manifest: the manifest beside it that names it is used.
    let source = source_project();
    let (_, component) = package(source.path());
    let project = consumer();
    let out = ok(&run(
        project.path(),
        &["install", component.to_str().unwrap(), "--yes"],
    ));
    assert!(out.contains("outbound HTTP to context7.com"), "{out}");
    runs_in_a_workflow(project.path(), "@orchestr8/context7");

    // A component alone: it is what its own info says, asking for nothing.
    let lone = tempfile::tempdir().unwrap();
    let copy = lone.path().join("text_stats.wasm");
    std::fs::copy(text_stats_component(), &copy).unwrap();
    let project = consumer();
    let out = ok(&run(project.path(), &["install", copy.to_str().unwrap()]));
    assert!(out.contains("a plain component"), "{out}");
    assert!(out.contains("installed @orchestr8/text-stats"), "{out}");
    let toml = std::fs::read_to_string(project.path().join("orchestr8.toml")).unwrap();
    assert!(!toml.contains("grants"), "{toml}");
    counts_words(project.path(), "@orchestr8/text-stats");

    // Anything else is named for what it is not, with the files to give.
    let notes = lone.path().join("notes.txt");
    std::fs::write(&notes, "not an agent").unwrap();
    let stderr = refused_and_unchanged(
        project.path(),
        &["install", notes.to_str().unwrap(), "--yes"],
        2,
    );
    assert!(stderr.contains("error[INVALID_INPUT]"), "{stderr}");
    assert!(
        stderr.contains("neither a package manifest (*.agent.json) nor a WebAssembly component"),
        "{stderr}"
    );
}

/// Pushes an artifact with the plain OCI distribution API (not orchestr8's
/// client): a config blob of `config_type`, then one layer per
/// `(media type, bytes)`, then the manifest under `name:tag`.
fn push_artifact(
    registry: &str,
    name: &str,
    tag: &str,
    config_type: &str,
    layers: &[(&str, &[u8])],
) {
    use sha2::{Digest, Sha256};
    let http = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let digest = |bytes: &[u8]| {
        let hash = Sha256::digest(bytes);
        format!(
            "sha256:{}",
            hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    };
    let upload = |bytes: &[u8]| {
        let started = http
            .post(&format!("http://{registry}/v2/{name}/blobs/uploads/"))
            .send_empty()
            .unwrap();
        let location = started.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("http://{registry}{location}")
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        http.put(&format!("{location}{separator}digest={}", digest(bytes)))
            .header("content-type", "application/octet-stream")
            .send(bytes)
            .unwrap();
        json!({"mediaType": "", "digest": digest(bytes), "size": bytes.len()})
    };
    let config = json!({"architecture": "wasm", "os": "wasip2", "layerDigests": []}).to_string();
    let mut config_descriptor = upload(config.as_bytes());
    config_descriptor["mediaType"] = json!(config_type);
    let layers: Vec<Value> = layers
        .iter()
        .map(|(media_type, bytes)| {
            let mut d = upload(bytes);
            d["mediaType"] = json!(media_type);
            d
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_descriptor,
        "layers": layers,
    });
    http.put(&format!("http://{registry}/v2/{name}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .send(manifest.to_string().as_bytes())
        .unwrap();
}

#[test]
fn a_plain_wasm_artifact_installs_from_an_oci_registry() {
    let registry = Registry::start();
    let component = std::fs::read(text_stats_component()).unwrap();
    // As wkg publishes a component: the wasm config, one application/wasm layer.
    push_artifact(
        &registry.address,
        "plain/text-stats",
        "0.1.0",
        "application/vnd.wasm.config.v0+json",
        &[("application/wasm", &component)],
    );
    let reference = format!("oci://{}/plain/text-stats:0.1.0", registry.address);
    let project = consumer();
    let out = ok(&run(project.path(), &["install", &reference]));
    assert!(out.contains("a plain component"), "{out}");
    assert!(out.contains(&format!("from {reference}")), "{out}");
    counts_words(project.path(), "@orchestr8/text-stats");
    // The lockfile restores it like any package.
    std::fs::remove_dir_all(project.path().join(".orchestr8")).unwrap();
    let out = ok(&run(project.path(), &["install"]));
    assert!(out.contains("restored @orchestr8/text-stats"), "{out}");
    counts_words(project.path(), "@orchestr8/text-stats");

    // A container image is not an agent: INVALID_INPUT, not NOT_FOUND.
    push_artifact(
        &registry.address,
        "images/busybox",
        "1",
        "application/vnd.oci.image.config.v1+json",
        &[(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            b"not a tarball",
        )],
    );
    let image = format!("oci://{}/images/busybox:1", registry.address);
    let stderr = refused_and_unchanged(project.path(), &["install", &image, "--yes"], 2);
    assert!(stderr.contains("error[INVALID_INPUT]"), "{stderr}");
    assert!(
        stderr.contains("no `application/wasm` layer") && stderr.contains("tar+gzip"),
        "{stderr}"
    );
}

/// A copy of the package in a fresh directory, for tampering with.
fn copy_package(manifest: &Path, component: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join(manifest.file_name().unwrap());
    let c = dir.path().join(component.file_name().unwrap());
    std::fs::copy(manifest, &m).unwrap();
    std::fs::copy(component, &c).unwrap();
    (dir, m, c)
}

#[test]
fn an_install_that_cannot_be_trusted_fails_and_changes_nothing() {
    let source = source_project();
    let (manifest, component) = package(source.path());
    let project = consumer();
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let digest = original["component"]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // A tampered component: its digest is no longer the manifest's.
    let (_dir, m, c) = copy_package(&manifest, &component);
    let mut bytes = std::fs::read(&c).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&c, &bytes).unwrap();
    let stderr = refused_and_unchanged(
        project.path(),
        &["install", m.to_str().unwrap(), "--yes"],
        3,
    );
    assert!(
        stderr.contains(&format!(
            "digest mismatch for @orchestr8/context7 0.1.0: expected {digest}, got sha256:"
        )),
        "{stderr}"
    );

    // A manifest naming another digest.
    let (_dir, m, _) = copy_package(&manifest, &component);
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let mut edited = original.clone();
    edited["component"]["digest"] = json!(wrong);
    std::fs::write(&m, edited.to_string()).unwrap();
    let stderr = refused_and_unchanged(
        project.path(),
        &["install", m.to_str().unwrap(), "--yes"],
        3,
    );
    assert!(
        stderr.contains(&format!("expected {wrong}, got {digest}")),
        "{stderr}"
    );

    // A manifest that lies about the component (right digest, wrong version).
    let (_dir, m, _) = copy_package(&manifest, &component);
    let mut lying = original.clone();
    lying["version"] = json!("9.9.9");
    std::fs::write(&m, lying.to_string()).unwrap();
    let stderr = refused_and_unchanged(
        project.path(),
        &["install", m.to_str().unwrap(), "--yes"],
        3,
    );
    assert!(
        stderr.contains("it says version is \"9.9.9\", the component says \"0.1.0\""),
        "{stderr}"
    );

    // Grants asked for without consent (no --yes, no terminal to ask on).
    let stderr = refused_and_unchanged(project.path(), &["install", manifest.to_str().unwrap()], 2);
    assert!(stderr.contains("asks for grants, pass --yes"), "{stderr}");

    // No such file; a manifest that is not one.
    let stderr = refused_and_unchanged(
        project.path(),
        &["install", "no/such.agent.json", "--yes"],
        1,
    );
    assert!(
        stderr.contains("cannot fetch the package from no/such.agent.json"),
        "{stderr}"
    );
    let (_dir, m, _) = copy_package(&manifest, &component);
    std::fs::write(&m, "{\"format\": \"something-else\"}").unwrap();
    let stderr = refused_and_unchanged(
        project.path(),
        &["install", m.to_str().unwrap(), "--yes"],
        3,
    );
    assert!(stderr.contains("invalid package manifest"), "{stderr}");

    // An id the project already uses for its own agent.
    std::fs::write(
        project.path().join("orchestr8.toml"),
        "[project]\nname = \"user\"\n\n[agents.\"@orchestr8/context7\"]\ncomponent = \"mine.wasm\"\n",
    )
    .unwrap();
    let stderr = refused_and_unchanged(
        project.path(),
        &["install", manifest.to_str().unwrap(), "--yes"],
        2,
    );
    assert!(
        stderr.contains("already an agent of this project"),
        "{stderr}"
    );
    let stderr = refused_and_unchanged(project.path(), &["uninstall", "context7"], 2);
    assert!(stderr.contains("was not installed"), "{stderr}");
}

#[test]
fn packaging_and_publishing_refuse_bad_requests_clearly() {
    let source = source_project();
    let stderr = failed(&run(source.path(), &["package", "nope"]), 2);
    assert!(
        stderr.contains("no agent `nope` in orchestr8.toml"),
        "{stderr}"
    );
    let stderr = failed(
        &run(source.path(), &["publish", "context7", "ghcr.io/acme/x:1"]),
        2,
    );
    assert!(
        stderr.contains("is not an OCI reference: write oci://host/repo:tag"),
        "{stderr}"
    );
    let stderr = failed(
        &run(
            source.path(),
            &["publish", "context7", "oci://not a reference"],
        ),
        1,
    );
    assert!(stderr.contains("not an OCI reference such as"), "{stderr}");

    // An agent that is not built yet cannot be packaged.
    let unbuilt = consumer();
    std::fs::write(
        unbuilt.path().join("orchestr8.toml"),
        "[project]\nname = \"user\"\n\n[agents.\"@user/ghost\"]\ncomponent = \"ghost.wasm\"\n",
    )
    .unwrap();
    let stderr = failed(&run(unbuilt.path(), &["package", "ghost"]), 3);
    assert!(stderr.contains("run `orchestr8 build` first"), "{stderr}");
    assert!(!unbuilt.path().join("dist").exists());

    // A broken lockfile is named, and nothing is installed.
    std::fs::write(unbuilt.path().join("orchestr8.lock"), "version = 7\n").unwrap();
    let stderr = failed(&run(unbuilt.path(), &["install"]), 3);
    assert!(
        stderr.contains("orchestr8.lock") && stderr.contains("version 7"),
        "{stderr}"
    );

    // Fixtures for a run must exist and be fixtures.
    std::fs::copy(
        repo().join("examples/research/workflow.json"),
        source.path().join("workflow.json"),
    )
    .unwrap();
    let stderr = failed(
        &run(
            source.path(),
            &["run", "workflow.json", "--fixtures", "missing.json"],
        ),
        2,
    );
    assert!(
        stderr.contains("cannot read fixture file `missing.json`"),
        "{stderr}"
    );
    std::fs::write(source.path().join("bad.json"), "[{\"request\": {}}]").unwrap();
    let stderr = failed(
        &run(
            source.path(),
            &["run", "workflow.json", "--fixtures", "bad.json"],
        ),
        2,
    );
    assert!(stderr.contains("entry 0, is not a fixture"), "{stderr}");
}
