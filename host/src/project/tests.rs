use super::*;

fn project(toml: &str) -> (tempfile::TempDir, Result<Project, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("agents/greeter")).unwrap();
    std::fs::write(dir.path().join("agents/greeter/Cargo.toml"), "").unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join(MANIFEST_FILE), toml).unwrap();
    let loaded = Project::load(dir.path());
    (dir, loaded)
}

const FULL: &str = r#"
[project]
name = "demo"
description = "a demo"

[agents."@demo/greeter"]
crate = "agents/greeter"

[agents."@demo/greeter".limits]
timeout_ms = 5000
fuel = 1000000
memory_mb = 32

[agents."@demo/greeter".grants]
allowed_hosts = ["api.github.com", "127.0.0.1:8080"]
dirs = [{ host = "data", guest = "/data" }]
env = ["LANG"]
secrets = ["github-token"]

[agents."@demo/greeter".config]
greeting = "Hello"
limits = { words = 3 }

[agents."@other/prebuilt"]
component = "vendor/prebuilt.wasm"
"#;

#[rstest::rstest]
#[case::python("python", PYTHON_APP)]
#[case::typescript("typescript", TYPESCRIPT_ENTRY)]
fn agents_in_other_languages_are_built_into_the_components_folder_like_a_crate(
    #[case] key: &str,
    #[case] entry: &str,
) {
    let toml =
        format!("[project]\nname = \"demo\"\n[agents.\"@demo/hi\"]\n{key} = \"agents/hi\"\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MANIFEST_FILE), &toml).unwrap();
    let missing = Project::load(dir.path()).unwrap_err().to_string();
    assert!(missing.contains(&format!("no {entry} there")), "{missing}");
    assert!(missing.contains(&format!("--lang {key}")), "{missing}");

    std::fs::create_dir_all(dir.path().join("agents/hi")).unwrap();
    std::fs::write(dir.path().join("agents/hi").join(entry), "").unwrap();
    let p = Project::load(dir.path()).unwrap();
    let hi = &p.agents["@demo/hi"];
    assert_eq!(hi.source.path(), dir.path().join("agents/hi"));
    assert_eq!(hi.source.key(), key);
    assert!(hi.source.is_built());
    assert_eq!(
        p.component_path(hi),
        dir.path().join(".orchestr8/components/demo.hi.wasm")
    );
}

#[test]
fn a_full_file_loads_with_paths_relative_to_the_project() {
    let (dir, loaded) = project(FULL);
    let p = loaded.unwrap();
    assert_eq!(p.name, "demo");
    let greeter = &p.agents["@demo/greeter"];
    assert_eq!(
        greeter.source,
        AgentSource::Crate(dir.path().join("agents/greeter"))
    );
    assert_eq!(greeter.policy.limits.timeout_ms, 5000);
    assert_eq!(
        greeter.config,
        serde_json::json!({"greeting": "Hello", "limits": {"words": 3}})
    );
    assert_eq!(p.agents["@other/prebuilt"].config, serde_json::json!({}));
    assert_eq!(greeter.policy.limits.memory_bytes, 32 << 20);
    assert_eq!(
        greeter.policy.limits.output_bytes,
        Limits::default().output_bytes
    );
    assert_eq!(greeter.policy.grants.allowed_hosts.len(), 2);
    assert_eq!(
        greeter.policy.grants.dirs[0].host_path,
        dir.path().join("data")
    );
    assert_eq!(
        p.component_path(greeter),
        dir.path().join(".orchestr8/components/demo.greeter.wasm")
    );
    let prebuilt = &p.agents["@other/prebuilt"];
    assert_eq!(
        p.component_path(prebuilt),
        dir.path().join("vendor/prebuilt.wasm")
    );
    assert_eq!(p.agent("greeter").unwrap().id, "@demo/greeter");
    assert!(p.agent("nobody").is_none());
}

#[test]
fn secrets_are_resolved_into_the_policy_and_missing_ones_reported() {
    let (dir, loaded) = project(FULL);
    let p = loaded.unwrap();
    std::fs::create_dir_all(p.state_dir()).unwrap();
    std::fs::write(
        dir.path().join(".orchestr8/secrets.toml"),
        "github-token = \"t0ken\"\n",
    )
    .unwrap();
    let secrets = p.secrets().unwrap();
    let (policy, missing) = p.policy(&p.agents["@demo/greeter"], &secrets);
    assert_eq!(policy.secret_values["github-token"].expose(), "t0ken");
    assert!(missing.is_empty());
    let (_, missing) = p.policy(&p.agents["@demo/greeter"], &Secrets::default());
    assert_eq!(missing, vec!["github-token".to_string()]);
}

#[test]
fn discovery_walks_up_from_a_subdirectory() {
    let (dir, _) = project(FULL);
    let sub = dir.path().join("agents/greeter");
    assert_eq!(Project::find(&sub).unwrap(), dir.path());
    let elsewhere = tempfile::tempdir().unwrap();
    let e = Project::discover(elsewhere.path()).unwrap_err();
    assert!(e.to_string().contains("orchestr8 init"), "{e}");
}

#[rstest::rstest]
#[case::bad_project_name(
    "[project]\nname = \"Demo Project\"\n",
    "project.name",
    "not a valid name"
)]
#[case::bad_agent_id(
    "[project]\nname = \"d\"\n[agents.greeter]\ncrate = \"agents/greeter\"\n",
    "agents.\"greeter\"",
    "@scope/name"
)]
#[case::no_source(
    "[project]\nname = \"d\"\n[agents.\"@d/a\"]\n",
    "agents.\"@d/a\"",
    "needs `crate"
)]
#[case::both_sources(
    "[project]\nname = \"d\"\n[agents.\"@d/a\"]\ncrate = \"agents/greeter\"\ncomponent = \"x.wasm\"\n",
    "agents.\"@d/a\"",
    "give one of `crate`, `python`, `typescript` or `component`"
)]
#[case::python_without_app(
    "[project]\nname = \"d\"\n[agents.\"@d/a\"]\npython = \"agents/greeter\"\n",
    "agents.\"@d/a\".python",
    "no app.py there"
)]
#[case::crate_without_cargo_toml(
    "[project]\nname = \"d\"\n[agents.\"@d/a\"]\ncrate = \"agents/nothing\"\n",
    "agents.\"@d/a\".crate",
    "no Cargo.toml"
)]
#[case::zero_timeout(
    "[project]\nname = \"d\"\n[agents.\"@d/a\"]\ncrate = \"agents/greeter\"\nlimits = { timeout_ms = 0 }\n",
    "agents.\"@d/a\".limits",
    "timeoutMs"
)]
#[case::missing_dir(
    "[project]\nname = \"d\"\n[agents.\"@d/a\"]\ncrate = \"agents/greeter\"\ngrants = { dirs = [{ host = \"nope\", guest = \"/x\" }] }\n",
    "agents.\"@d/a\".grants.dirs",
    "does not exist"
)]
fn invalid_files_name_the_key_and_the_reason(
    #[case] toml: &str,
    #[case] key: &str,
    #[case] reason: &str,
) {
    let (_dir, loaded) = project(toml);
    let e = loaded.unwrap_err();
    let text = e.to_string();
    assert!(text.contains(MANIFEST_FILE), "{text}");
    assert!(text.contains(key), "{text}");
    assert!(text.contains(reason), "{text}");
    assert_eq!(e.code(), ErrorCode::InvalidConfig);
}

#[rstest::rstest]
#[case("demo", true)]
#[case("my-agent2", true)]
#[case("Demo", false)]
#[case("2fast", false)]
#[case("trailing-", false)]
#[case("has space", false)]
#[case("", false)]
fn names_are_lower_case_words(#[case] name: &str, #[case] ok: bool) {
    assert_eq!(is_valid_name(name), ok, "{name}");
}

#[test]
fn recording_is_http_by_default_and_set_per_project_or_per_agent() {
    let (_dir, loaded) = project(FULL);
    let p = loaded.unwrap();
    assert_eq!(
        p.agents["@demo/greeter"].policy.recording,
        crate::sandbox::Recording::Http
    );
    let toml = r#"
[project]
name = "demo"
record = "off"

[agents."@demo/greeter"]
crate = "agents/greeter"

[agents."@other/prebuilt"]
component = "vendor/prebuilt.wasm"
record = "http"
"#;
    let (_dir, loaded) = project(toml);
    let p = loaded.unwrap();
    assert_eq!(
        p.agents["@demo/greeter"].policy.recording,
        crate::sandbox::Recording::Off
    );
    assert_eq!(
        p.agents["@other/prebuilt"].policy.recording,
        crate::sandbox::Recording::Http
    );
    let (_dir, loaded) = project(&toml.replace("record = \"off\"", "record = \"everything\""));
    let e = loaded.unwrap_err().to_string();
    assert!(e.contains("record") || e.contains("everything"), "{e}");
}
