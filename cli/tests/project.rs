//! What a new user does, as real processes in a temporary directory:
//! `init`, `create`, `build`, `run`, `test`, `inspect`, and every way those
//! can go wrong.
//!
//! Agent crates build with a shared cargo target directory under this
//! workspace's `target/`, so the SDK's dependencies compile once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn orchestr8(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = Command::new(env!("CARGO_BIN_EXE_orchestr8"));
    command
        .args(args)
        .current_dir(dir)
        .env(
            "ORCHESTR8_CACHE_DIR",
            std::env::temp_dir().join("orchestr8-cli-tests-cache"),
        )
        .env("CARGO_TARGET_DIR", root.join("target/scaffolded-agents"))
        .env("ORCHESTR8_TOOLCHAINS_DIR", root.join("target/toolchains"))
        .env("NO_COLOR", "1")
        .env_remove("ORCHESTR8_STATE_DIR")
        // The agents are compiled for wasm32-wasip2: scripts/coverage's
        // instrumenting rustc wrapper is for the host build and must not
        // reach them (wasm32 has no profiler runtime).
        .env_remove("RUSTC_WRAPPER")
        .env_remove("__CARGO_LLVM_COV_RUSTC_WRAPPER");
    command
}

/// Stdout and stderr of a command that succeeded.
fn both(out: Output) -> (String, String) {
    assert!(out.status.success(), "{}", text(&out));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn ok(out: Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn fails(out: Output, code: i32, needle: &str) -> String {
    let all = text(&out);
    assert_eq!(out.status.code(), Some(code), "{all}");
    assert!(all.contains(needle), "expected `{needle}` in\n{all}");
    all
}

/// `create --lang ts`, `create --lang py`, `build`, `test` and a workflow
/// whose steps are TypeScript, Python and Rust agents, with nothing
/// installed by hand: the ComponentizeJS and componentize-py toolchains are
/// installed by `build` (here into a directory shared by test runs, so they
/// are installed once).
#[test]
fn typescript_and_python_agents_are_created_built_tested_and_run_beside_a_rust_one() {
    let tmp = tempfile::tempdir().unwrap();
    ok(orchestr8(tmp.path(), &["init", "demo"]));
    let project = tmp.path().join("demo");
    let out = ok(orchestr8(&project, &["create", "hey", "--lang", "ts"]));
    assert!(out.contains("created agent `@demo/hey`"), "{out}");
    let out = ok(orchestr8(&project, &["create", "hi", "--lang", "py"]));
    assert!(out.contains("created agent `@demo/hi`"), "{out}");
    for file in [
        "agents/hey/agent.ts",
        "agents/hey/tsconfig.json",
        "vendor/orchestr8-agent-ts/src/index.ts",
        "vendor/orchestr8-agent-ts/wit/orchestr8.wit",
        "agents/hi/app.py",
        "vendor/orchestr8-agent-python/orchestr8_agent/__init__.py",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    let toml = std::fs::read_to_string(project.join("orchestr8.toml")).unwrap();
    assert!(toml.contains("typescript = \"agents/hey\""), "{toml}");
    assert!(toml.contains("python = \"agents/hi\""), "{toml}");
    let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("agents/hey") && cargo.contains("agents/hi"),
        "{cargo}"
    );

    let out = ok(orchestr8(&project, &["build"]));
    assert!(out.contains("built @demo/hey 0.1.0"), "{out}");
    assert!(out.contains("built @demo/hi 0.1.0"), "{out}");
    assert!(out.contains("built @demo/hello"), "{out}");

    let out = ok(orchestr8(&project, &["test"]));
    for case in [
        "hey greets by name",
        "hey rejects an empty name",
        "hi greets by name",
        "hi rejects an empty name",
    ] {
        assert!(out.contains(&format!("PASS {case}")), "{out}");
    }
    assert!(out.trim_end().ends_with("6 passed, 0 failed"), "{out}");

    std::fs::write(
        project.join("workflows/mixed.json"),
        r#"{
          "version": "1.0.0", "schemaVersion": "1.0.0",
          "metadata": {"id": "4b6f7a52-3d0e-4c8b-9a51-0f6c2d8e1a77", "name": "mixed"},
          "steps": [
            {"id": "ts", "name": "TypeScript greets", "agent": {"id": "@demo/hey"}, "input": {"mapping": {"name": "Ada"}}},
            {"id": "py", "name": "Python greets the greeting", "agent": {"id": "@demo/hi"}, "dependencies": ["ts"],
             "input": {"mapping": {"name": "${steps.ts.output.greeting}"}}},
            {"id": "rust", "name": "Rust greets that", "agent": {"id": "@demo/hello"}, "dependencies": ["py"],
             "input": {"mapping": {"name": "${steps.py.output.greeting}"}}}
          ]
        }"#,
    )
    .unwrap();
    let out = ok(orchestr8(
        &project,
        &["run", "workflows/mixed.json", "--json"],
    ));
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["status"], "succeeded", "{out}");
    assert_eq!(
        result["steps"]["rust"]["output"]["greeting"],
        "Hello, Hello, Hello, Ada!!!"
    );

    // The vendored SDK is the CLI's: a build puts back what was changed.
    let vendored = project.join("vendor/orchestr8-agent-ts/src/log.ts");
    let sdk = std::fs::read_to_string(&vendored).unwrap();
    std::fs::write(&vendored, "// edited by hand\n").unwrap();

    // A type error fails a TypeScript build with the compiler's words, and
    // the last good component stays in place.
    let source = project.join("agents/hey/agent.ts");
    let good = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, good.replace("`Hello, ${name}!`", "name.length")).unwrap();
    let err = fails(
        orchestr8(&project, &["build", "hey"]),
        1,
        "building `@demo/hey` failed",
    );
    assert!(err.contains("agents/hey/agent.ts"), "{err}");
    assert!(
        err.contains("Type 'number' is not assignable to type 'string'"),
        "{err}"
    );
    assert!(
        project
            .join(".orchestr8/components/demo.hey.wasm")
            .is_file()
    );
    assert!(
        err.contains("wrote the TypeScript agent SDK of this orchestr8 into vendor/orchestr8-agent-ts (1 file)"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&vendored).unwrap(), sdk);

    // A broken Python agent fails its build with componentize-py's reason.
    std::fs::write(project.join("agents/hi/app.py"), "def broken(:\n").unwrap();
    let err = fails(
        orchestr8(&project, &["build", "hi"]),
        1,
        "building `@demo/hi` failed",
    );
    assert!(err.contains("SyntaxError"), "{err}");
}

/// Without Node.js or Python on the PATH, building such an agent says what
/// to install, and nothing is half-installed.
#[test]
fn building_without_node_or_python_says_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    ok(orchestr8(tmp.path(), &["init", "demo"]));
    let project = tmp.path().join("demo");
    ok(orchestr8(&project, &["create", "hey", "--lang", "ts"]));
    ok(orchestr8(&project, &["create", "hi", "--lang", "py"]));
    let empty = tmp.path().join("no-tools");
    std::fs::create_dir(&empty).unwrap();
    let toolchains = tmp.path().join("toolchains");
    for (agent, needle) in [
        ("hey", "needs Node.js 20 or newer with npm"),
        ("hi", "needs Python 3.10 or newer"),
    ] {
        let out = command(&project, &["build", agent])
            .env("PATH", &empty)
            .env("ORCHESTR8_TOOLCHAINS_DIR", &toolchains)
            .output()
            .unwrap();
        fails(out, 1, needle);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&toolchains)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().contains("componentize-js")),
        "{leftovers:?}"
    );
}

#[test]
fn a_new_user_goes_from_nothing_to_a_tested_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(orchestr8(tmp.path(), &["init", "demo"]));
    assert!(out.contains("created project `demo`"), "{out}");
    let project = tmp.path().join("demo");
    for file in [
        "orchestr8.toml",
        "Cargo.toml",
        ".gitignore",
        "README.md",
        "workflows/hello.json",
        "tests/hello.json",
        "agents/hello/src/lib.rs",
        "vendor/orchestr8-agent-sdk/wit/orchestr8.wit",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }

    ok(orchestr8(&project, &["create", "greeter"]));
    ok(orchestr8(
        &project,
        &["create", "repo", "--template", "http"],
    ));
    let toml = std::fs::read_to_string(project.join("orchestr8.toml")).unwrap();
    assert!(toml.contains("[agents.\"@demo/greeter\"]"), "{toml}");
    assert!(
        toml.contains("allowed_hosts = [\"api.github.com\"]"),
        "{toml}"
    );

    // Not built yet: run says what to do.
    fails(
        orchestr8(&project, &["run", "workflows/hello.json"]),
        3,
        "run `orchestr8 build`",
    );

    let out = ok(orchestr8(&project, &["build"]));
    assert!(out.contains("built @demo/greeter"), "{out}");
    assert!(
        project
            .join(".orchestr8/components/demo.greeter.wasm")
            .is_file()
    );

    let out = ok(orchestr8(
        &project,
        &["run", "workflows/hello.json", "--json"],
    ));
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["status"], "succeeded");
    assert_eq!(
        result["steps"]["echo"]["output"]["greeting"],
        "Hello, Hello, world!!"
    );

    let out = ok(orchestr8(&project, &["test"]));
    assert!(out.contains("PASS greeter greets by name"), "{out}");
    assert!(out.contains("PASS repo looks up a repository"), "{out}");
    assert!(out.trim_end().ends_with("7 passed, 0 failed"), "{out}");

    let out = ok(orchestr8(&project, &["inspect", "--last"]));
    assert!(out.contains("execution-finished succeeded"), "{out}");
    assert!(out.contains(&result["executionId"].as_str().unwrap().to_string()));

    // From a subdirectory, the project is found above.
    let out = ok(orchestr8(
        &project.join("agents"),
        &["test", "--filter", "greeter", "--json"],
    ));
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["passed"], 2);

    // An edited agent is rebuilt before it runs, never run stale; with
    // --no-build the last build runs, with a warning.
    let hello = project.join("agents/hello/src/lib.rs");
    let original = std::fs::read_to_string(&hello).unwrap();
    let edited = original.replace("format!(\"Hello, {name}!\")", "format!(\"Howdy, {name}!\")");
    assert_ne!(edited, original);
    std::fs::write(&hello, &edited).unwrap();
    let (out, err) = both(orchestr8(
        &project,
        &["test", "--filter", "hello greets", "--no-build"],
    ));
    assert!(
        err.contains(
            "@demo/hello changed since its last build; running the last build (--no-build)"
        ),
        "{err}"
    );
    assert!(
        out.contains("1 passed"),
        "the last build still says Hello:\n{out}"
    );
    let (out, err) = both(orchestr8(
        &project,
        &["run", "workflows/hello.json", "--json"],
    ));
    assert!(
        err.contains("rebuilding @demo/hello (changed since the last build)"),
        "{err}"
    );
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        result["steps"]["echo"]["output"]["greeting"],
        "Howdy, Howdy, world!!"
    );
    // One that no longer builds is refused, saying how to run the last build.
    std::fs::write(&hello, edited.replace("Ok(Output {", "Ok(Outptu {")).unwrap();
    let all = fails(
        orchestr8(&project, &["run", "workflows/hello.json"]),
        1,
        "does not build now",
    );
    assert!(all.contains("--no-build"), "{all}");
    std::fs::write(&hello, &original).unwrap();
    ok(orchestr8(&project, &["build", "hello"]));

    // A wrong expectation and an unmatched outbound request fail clearly.
    std::fs::write(
        project.join("tests/wrong.json"),
        r#"[
          {"name": "wrong output", "agent": "@demo/greeter", "input": {"name": "Bob"},
           "expect": {"output": {"greeting": "Hi, Bob!"}}},
          {"name": "unmatched request", "agent": "@demo/repo", "input": {"repo": "a/b"},
           "fixtures": ["fixtures/github.json"], "expect": {"error": "RETRYABLE"}}
        ]"#,
    )
    .unwrap();
    let all = fails(orchestr8(&project, &["test"]), 1, "7 passed, 2 failed");
    assert!(all.contains("FAIL wrong output"), "{all}");
    assert!(
        all.contains(r#"got output {"greeting":"Hello, Bob!"}"#),
        "{all}"
    );
    assert!(
        all.contains("unhandled outbound request: GET https://api.github.com/repos/a/b"),
        "{all}"
    );
    std::fs::remove_file(project.join("tests/wrong.json")).unwrap();

    // A build error shows cargo's own output and fails.
    let lib = project.join("agents/greeter/src/lib.rs");
    let good = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, good.replace("Ok(Output {", "Ok(Outptu {")).unwrap();
    let all = fails(
        orchestr8(&project, &["build", "greeter"]),
        1,
        "building `@demo/greeter` failed",
    );
    assert!(
        all.contains("Outptu"),
        "cargo's diagnostics must show:\n{all}"
    );

    // An agent whose id disagrees with orchestr8.toml is refused.
    std::fs::write(&lib, good.replace("@demo/greeter", "@demo/someone-else")).unwrap();
    fails(
        orchestr8(&project, &["build", "greeter"]),
        3,
        "says it is `@demo/someone-else`",
    );
    std::fs::write(&lib, good).unwrap();

    fails(
        orchestr8(&project, &["build", "nobody"]),
        2,
        "no agent `nobody` in orchestr8.toml",
    );

    // An agent the workflow does not use, not built yet, does not stop it.
    ok(orchestr8(&project, &["create", "unused"]));
    let out = ok(orchestr8(
        &project,
        &["run", "workflows/hello.json", "--json"],
    ));
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["status"], "succeeded");
    // Nor testing the others.
    let out = ok(orchestr8(&project, &["test", "--filter", "greeter"]));
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    // Inside a project, agent call and agent info take an agent's name.
    let out = ok(orchestr8(
        &project,
        &["agent", "call", "greeter", "--input", r#"{"name": "Ada"}"#],
    ));
    assert!(out.contains("Hello, Ada!"), "{out}");
    let out = ok(orchestr8(
        &project,
        &["agent", "info", "@demo/hello", "--json"],
    ));
    let info: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["id"], "@demo/hello");
    // Nor serving another agent.
    let mut serve = command(
        &project,
        &["agent", "serve", "hello", "--bind", "127.0.0.1:0"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::inherit())
    .spawn()
    .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(serve.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert!(line.starts_with("listening on "), "{line:?}");
}

#[test]
fn agent_builds_of_every_project_share_one_target_directory() {
    let tmp = tempfile::tempdir().unwrap();
    ok(orchestr8(tmp.path(), &["init", "shared"]));
    let project = tmp.path().join("shared");
    // The user's cache, whose agent-target is the tests' warm one.
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(cache.join("orchestr8")).unwrap();
    let warm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/scaffolded-agents");
    std::fs::create_dir_all(&warm).unwrap();
    std::os::unix::fs::symlink(&warm, cache.join("orchestr8/agent-target")).unwrap();
    let out = command(&project, &["build"])
        .env_remove("CARGO_TARGET_DIR")
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    assert!(ok(out).contains("built @shared/hello"));
    assert!(
        !project.join("target").exists(),
        "the project has no target/ of its own"
    );
    assert!(warm.join("wasm32-wasip2/release/hello.wasm").is_file());

    // Another project's crate of the same name, at the same place in its
    // workspace, is the same unit to cargo: building it, then this project
    // again (its sources untouched, so older than that build), must still
    // give each project its own agent.
    ok(orchestr8(tmp.path(), &["init", "other"]));
    let other = tmp.path().join("other");
    let build = |dir: &Path| {
        let out = command(dir, &["build"])
            .env_remove("CARGO_TARGET_DIR")
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap();
        ok(out)
    };
    assert!(build(&other).contains("built @other/hello"));
    assert!(build(&project).contains("built @shared/hello"));
    assert!(build(&other).contains("built @other/hello"));
}

#[test]
fn init_and_create_refuse_to_overwrite_and_reject_bad_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("README.md"), "mine").unwrap();
    let all = fails(
        orchestr8(dir, &["init", ".", "--name", "demo"]),
        2,
        "--force",
    );
    assert!(all.contains("README.md"), "{all}");
    assert!(
        !dir.join("orchestr8.toml").exists(),
        "nothing may be written"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("README.md")).unwrap(),
        "mine"
    );

    ok(orchestr8(dir, &["init", ".", "--name", "demo", "--force"]));
    assert_ne!(
        std::fs::read_to_string(dir.join("README.md")).unwrap(),
        "mine"
    );

    fails(
        orchestr8(dir, &["init", "other", "--name", "Bad Name"]),
        2,
        "not a valid project name",
    );
    fails(orchestr8(dir, &["init", "2024"]), 2, "pass --name");

    for bad in ["Greeter", "1st", "a_b", "x-"] {
        fails(
            orchestr8(dir, &["create", bad]),
            2,
            "not a valid agent name",
        );
    }
    fails(
        orchestr8(dir, &["create", "hello"]),
        2,
        "already in orchestr8.toml",
    );
    ok(orchestr8(dir, &["create", "second"]));
    fails(
        orchestr8(
            dir,
            &["create", "web", "--lang", "py", "--template", "http"],
        ),
        2,
        "the `http` template is Rust only for now",
    );
    assert!(
        !dir.join("agents/web").exists(),
        "a refused create writes nothing"
    );
    fails(
        orchestr8(dir, &["create", "js", "--lang", "cobol"]),
        2,
        "invalid value 'cobol'",
    );
    std::fs::remove_file(dir.join("orchestr8.toml")).unwrap();
    fails(orchestr8(dir, &["create", "third"]), 3, "orchestr8 init");
    fails(orchestr8(dir, &["build"]), 3, "orchestr8 init");
    fails(orchestr8(dir, &["test"]), 3, "orchestr8 init");
}

#[test]
fn an_invalid_config_names_the_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(orchestr8(dir, &["init", ".", "--name", "demo"]));
    let toml = dir.join("orchestr8.toml");
    let good = std::fs::read_to_string(&toml).unwrap();

    std::fs::write(
        &toml,
        format!("{good}\n[agents.\"@demo/hello\".limits]\nfule = 1\n"),
    )
    .unwrap();
    let all = fails(orchestr8(dir, &["build"]), 3, "unknown field `fule`");
    assert!(all.contains("orchestr8.toml"), "{all}");
    assert!(all.contains("limits"), "{all}");
    assert!(all.contains("line "), "{all}");

    std::fs::write(
        &toml,
        format!("{good}\n[agents.\"@demo/hello\".grants]\nallowed_hosts = [\"ftp://x\"]\n"),
    )
    .unwrap();
    fails(
        orchestr8(dir, &["run", "workflows/hello.json"]),
        3,
        "only http:// and https://",
    );

    std::fs::write(&toml, "[project\nname = 1").unwrap();
    fails(
        orchestr8(dir, &["validate", "workflows/hello.json"]),
        3,
        "orchestr8.toml",
    );

    std::fs::write(&toml, good.replace("agents/hello", "agents/missing")).unwrap();
    fails(orchestr8(dir, &["test"]), 3, "no Cargo.toml");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = ok(orchestr8(tmp.path(), &["completions", shell]));
        assert!(out.contains("orchestr8"), "{shell}");
    }
    fails(
        orchestr8(tmp.path(), &["completions", "tcsh"]),
        2,
        "invalid value",
    );
}
