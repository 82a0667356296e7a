//! The files `orchestr8 init` and `orchestr8 create` write, shipped inside
//! the binary: project and agent templates, and the agent SDK itself, which
//! is vendored into every project so its agents build with nothing of ours
//! published (only the Rust package registry is needed).

use std::path::{Path, PathBuf};

use orchestr8_host::ErrorCode;

use crate::error::{Failure, exit, report};

/// A file to write, relative to the project root.
#[derive(Clone)]
pub struct FileToWrite {
    pub path: PathBuf,
    pub text: String,
}

/// Where the vendored SDK lives in a project.
pub const SDK_DIR: &str = "vendor/orchestr8-agent-sdk";

/// The SDK's files, as they are in this repository's `agent-sdk/`.
const SDK_FILES: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../agent-sdk/src/lib.rs")),
    (
        "src/context.rs",
        include_str!("../../agent-sdk/src/context.rs"),
    ),
    ("src/error.rs", include_str!("../../agent-sdk/src/error.rs")),
    ("src/http.rs", include_str!("../../agent-sdk/src/http.rs")),
    ("src/llm.rs", include_str!("../../agent-sdk/src/llm.rs")),
    ("src/log.rs", include_str!("../../agent-sdk/src/log.rs")),
    (
        "src/prompt.rs",
        include_str!("../../agent-sdk/src/prompt.rs"),
    ),
    ("wit/orchestr8.wit", include_str!("../../wit/orchestr8.wit")),
    ("wit/deps/cli.wit", include_str!("../../wit/deps/cli.wit")),
    (
        "wit/deps/clocks.wit",
        include_str!("../../wit/deps/clocks.wit"),
    ),
    (
        "wit/deps/filesystem.wit",
        include_str!("../../wit/deps/filesystem.wit"),
    ),
    ("wit/deps/http.wit", include_str!("../../wit/deps/http.wit")),
    ("wit/deps/io.wit", include_str!("../../wit/deps/io.wit")),
    (
        "wit/deps/random.wit",
        include_str!("../../wit/deps/random.wit"),
    ),
    (
        "wit/deps/sockets.wit",
        include_str!("../../wit/deps/sockets.wit"),
    ),
];

/// Where the vendored Python SDK lives in a project: the `orchestr8_agent`
/// package and the WIT contract componentize-py builds against.
pub const PY_SDK_DIR: &str = "vendor/orchestr8-agent-python";

/// The Python SDK's files, as they are in `agent-sdk/python/src`.
const PY_SDK_FILES: &[(&str, &str)] = &[
    (
        "orchestr8_agent/__init__.py",
        include_str!("../../agent-sdk/python/src/orchestr8_agent/__init__.py"),
    ),
    (
        "orchestr8_agent/_wit.py",
        include_str!("../../agent-sdk/python/src/orchestr8_agent/_wit.py"),
    ),
    (
        "orchestr8_agent/context.py",
        include_str!("../../agent-sdk/python/src/orchestr8_agent/context.py"),
    ),
    (
        "orchestr8_agent/errors.py",
        include_str!("../../agent-sdk/python/src/orchestr8_agent/errors.py"),
    ),
    (
        "orchestr8_agent/http.py",
        include_str!("../../agent-sdk/python/src/orchestr8_agent/http.py"),
    ),
    (
        "orchestr8_agent/log.py",
        include_str!("../../agent-sdk/python/src/orchestr8_agent/log.py"),
    ),
    (
        "orchestr8_agent/py.typed",
        include_str!("../../agent-sdk/python/src/orchestr8_agent/py.typed"),
    ),
    (
        "orchestr8_agent/schema.py",
        include_str!("../../agent-sdk/python/src/orchestr8_agent/schema.py"),
    ),
];

/// The componentize-py pin, as in `agent-sdk/python/requirements-build.txt`.
pub const PY_TOOLCHAIN_PINS: &str = include_str!("../../agent-sdk/python/requirements-build.txt");

/// Where the vendored TypeScript SDK lives in a project: the
/// `@orchestr8/agent` package and the WIT contract ComponentizeJS builds
/// against.
pub const TS_SDK_DIR: &str = "vendor/orchestr8-agent-ts";

/// The TypeScript SDK's files, as they are in `agent-sdk/typescript`.
const TS_SDK_FILES: &[(&str, &str)] = &[
    (
        "package.json",
        include_str!("../../agent-sdk/typescript/package.json"),
    ),
    (
        "tsconfig.json",
        include_str!("../../agent-sdk/typescript/tsconfig.json"),
    ),
    (
        "src/agent.ts",
        include_str!("../../agent-sdk/typescript/src/agent.ts"),
    ),
    (
        "src/assets.d.ts",
        include_str!("../../agent-sdk/typescript/src/assets.d.ts"),
    ),
    (
        "src/context.ts",
        include_str!("../../agent-sdk/typescript/src/context.ts"),
    ),
    (
        "src/errors.ts",
        include_str!("../../agent-sdk/typescript/src/errors.ts"),
    ),
    (
        "src/http.ts",
        include_str!("../../agent-sdk/typescript/src/http.ts"),
    ),
    (
        "src/index.ts",
        include_str!("../../agent-sdk/typescript/src/index.ts"),
    ),
    (
        "src/llm.ts",
        include_str!("../../agent-sdk/typescript/src/llm.ts"),
    ),
    (
        "src/log.ts",
        include_str!("../../agent-sdk/typescript/src/log.ts"),
    ),
    (
        "src/schema.ts",
        include_str!("../../agent-sdk/typescript/src/schema.ts"),
    ),
    (
        "src/wit.d.ts",
        include_str!("../../agent-sdk/typescript/src/wit.d.ts"),
    ),
];

/// The pinned TypeScript toolchain (ComponentizeJS, esbuild, TypeScript,
/// zod) and the script that builds an agent with it, as they are in
/// `agent-sdk/typescript/toolchain`.
pub const TS_TOOLCHAIN_FILES: &[(&str, &str)] = &[
    (
        "package.json",
        include_str!("../../agent-sdk/typescript/toolchain/package.json"),
    ),
    (
        "package-lock.json",
        include_str!("../../agent-sdk/typescript/toolchain/package-lock.json"),
    ),
    (
        "build.mjs",
        include_str!("../../agent-sdk/typescript/toolchain/build.mjs"),
    ),
];

/// The language of a new agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate built for wasm32-wasip2 (needs rustup).
    Rust,
    /// A Python module built with componentize-py (needs Python 3.10+).
    #[value(alias = "py")]
    Python,
    /// A TypeScript module built with ComponentizeJS (needs Node.js 20+).
    #[value(alias = "ts")]
    Typescript,
}

/// Which agent template `create` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Input in, output out: a greeter to grow from.
    Basic,
    /// Calls an HTTP API (GitHub) through the allowlist, tested with fixtures.
    Http,
}

/// `{{key}}` → value.
pub(crate) fn render(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter()
        .fold(template.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

/// `my-agent` → `MyAgent`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The vendored SDK's files.
pub fn sdk_files() -> Vec<FileToWrite> {
    let version = env!("CARGO_PKG_VERSION");
    let mut files = vec![FileToWrite {
        path: Path::new(SDK_DIR).join("Cargo.toml"),
        text: render(
            include_str!("../templates/sdk/Cargo.toml"),
            &[("version", version)],
        ),
    }];
    files.extend(SDK_FILES.iter().map(|(path, text)| FileToWrite {
        path: Path::new(SDK_DIR).join(path),
        text: (*text).to_string(),
    }));
    files
}

/// The vendored Python SDK's files (the package and the WIT contract).
pub fn python_sdk_files() -> Vec<FileToWrite> {
    let package = PY_SDK_FILES.iter();
    let wit = SDK_FILES
        .iter()
        .filter(|(path, _)| path.starts_with("wit/"));
    package
        .chain(wit)
        .map(|(path, text)| FileToWrite {
            path: Path::new(PY_SDK_DIR).join(path),
            text: (*text).to_string(),
        })
        .collect()
}

/// The vendored TypeScript SDK's files (the package and the WIT contract).
pub fn typescript_sdk_files() -> Vec<FileToWrite> {
    let wit = SDK_FILES
        .iter()
        .filter(|(path, _)| path.starts_with("wit/"));
    TS_SDK_FILES
        .iter()
        .chain(wit)
        .map(|(path, text)| FileToWrite {
            path: Path::new(TS_SDK_DIR).join(path),
            text: (*text).to_string(),
        })
        .collect()
}

/// A new project named `project` whose first agent is `hello`.
pub fn project_files(project: &str) -> Vec<FileToWrite> {
    let id = format!("@{project}/hello");
    let uuid = uuid::Uuid::new_v4().to_string();
    let vars = [("project", project), ("id", id.as_str()), ("uuid", &uuid)];
    let t = |path: &str, template: &str| FileToWrite {
        path: path.into(),
        text: render(template, &vars),
    };
    let mut files = vec![
        t(
            "orchestr8.toml",
            include_str!("../templates/project/orchestr8.toml"),
        ),
        t(
            "Cargo.toml",
            include_str!("../templates/project/Cargo.toml"),
        ),
        t(".gitignore", include_str!("../templates/project/gitignore")),
        t("README.md", include_str!("../templates/project/README.md")),
        t(
            "workflows/hello.json",
            include_str!("../templates/project/workflows/hello.json"),
        ),
    ];
    files.extend(agent_files(project, "hello", Template::Basic));
    files.extend(sdk_files());
    files
}

/// The module and test cases of a new Python agent `name` in `project`.
pub fn python_agent_files(project: &str, name: &str) -> Vec<FileToWrite> {
    let id = format!("@{project}/{name}");
    let ty = type_name(name);
    let vars = [("name", name), ("id", id.as_str()), ("type", ty.as_str())];
    vec![
        FileToWrite {
            path: Path::new("agents").join(name).join("app.py"),
            text: render(include_str!("../templates/agent/basic.py"), &vars),
        },
        FileToWrite {
            path: Path::new("tests").join(format!("{name}.json")),
            text: render(include_str!("../templates/agent/basic.json"), &vars),
        },
    ]
}

/// The module, editor settings and test cases of a new TypeScript agent
/// `name` in `project`.
pub fn typescript_agent_files(project: &str, name: &str) -> Vec<FileToWrite> {
    let id = format!("@{project}/{name}");
    let vars = [("name", name), ("id", id.as_str()), ("sdk", TS_SDK_DIR)];
    let dir = Path::new("agents").join(name);
    let t = |path: PathBuf, template: &str| FileToWrite {
        path,
        text: render(template, &vars),
    };
    vec![
        t(
            dir.join("agent.ts"),
            include_str!("../templates/agent/basic.ts"),
        ),
        t(
            dir.join("tsconfig.json"),
            include_str!("../templates/agent/tsconfig.json"),
        ),
        t(
            dir.join("package.json"),
            include_str!("../templates/agent/package.json"),
        ),
        t(
            Path::new("tests").join(format!("{name}.json")),
            include_str!("../templates/agent/basic.json"),
        ),
    ]
}

/// The crate and test cases of a new agent `name` in `project`.
pub fn agent_files(project: &str, name: &str, template: Template) -> Vec<FileToWrite> {
    let id = format!("@{project}/{name}");
    let ty = type_name(name);
    let vars = [("name", name), ("id", id.as_str()), ("type", ty.as_str())];
    let (source, cases) = match template {
        Template::Basic => (
            render(include_str!("../templates/agent/basic.rs"), &vars),
            include_str!("../templates/agent/basic.json"),
        ),
        // The first-party GitHub agent is the template, so the template is
        // built and tested with the other agents.
        Template::Http => (
            include_str!("../../agents/github-repo/src/lib.rs")
                .replace("@orchestr8/github-repo", &id)
                .replace("GithubRepo", &ty),
            include_str!("../templates/agent/http.json"),
        ),
    };
    let dir = Path::new("agents").join(name);
    let mut files = vec![
        FileToWrite {
            path: dir.join("Cargo.toml"),
            text: render(include_str!("../templates/agent/Cargo.toml"), &vars),
        },
        FileToWrite {
            path: dir.join("src/lib.rs"),
            text: source,
        },
        FileToWrite {
            path: Path::new("tests").join(format!("{name}.json")),
            text: render(cases, &vars),
        },
    ];
    if template == Template::Http {
        files.push(FileToWrite {
            path: "tests/fixtures/github.json".into(),
            text: include_str!("../../fixtures/github.json").to_string(),
        });
    }
    files
}

/// Writes `files` under `root`. Unless `force`, refuses (writing nothing)
/// when any of them exists. Returns the paths written.
pub fn write_files(root: &Path, files: &[FileToWrite], force: bool) -> Result<(), Failure> {
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|f| root.join(&f.path).exists())
            .map(|f| format!("`{}`", root.join(&f.path).display()))
            .collect();
        if !existing.is_empty() {
            return Err(report(
                ErrorCode::InvalidConfig,
                &format!(
                    "{} already exist{}: nothing was written; pass --force to overwrite",
                    existing.join(", "),
                    if existing.len() == 1 { "s" } else { "" }
                ),
                exit::USAGE,
            ));
        }
    }
    for file in files {
        let path = root.join(&file.path);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, &file.text));
        if let Err(e) = written {
            return Err(report(
                ErrorCode::Internal,
                &format!("cannot write `{}`: {e}", path.display()),
                exit::FAILED,
            ));
        }
    }
    Ok(())
}

/// Writes those of `files` whose content differs from what is on disk (a
/// vendored SDK kept at this CLI's version); returns how many it wrote.
pub fn refresh_files(root: &Path, files: &[FileToWrite]) -> Result<usize, Failure> {
    let stale: Vec<FileToWrite> = files
        .iter()
        .filter(|f| std::fs::read_to_string(root.join(&f.path)).ok().as_deref() != Some(&f.text))
        .cloned()
        .collect();
    write_files(root, &stale, true)?;
    Ok(stale.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_source_and_wit_file_is_vendored() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut on_disk = Vec::new();
        for (dir, prefix) in [
            ("agent-sdk/src", "src"),
            ("wit", "wit"),
            ("wit/deps", "wit/deps"),
        ] {
            for entry in std::fs::read_dir(repo.join(dir)).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_file() {
                    on_disk.push(format!("{prefix}/{}", entry.file_name().to_string_lossy()));
                }
            }
        }
        on_disk.sort();
        let mut vendored: Vec<String> = SDK_FILES.iter().map(|(p, _)| p.to_string()).collect();
        vendored.sort();
        assert_eq!(vendored, on_disk, "update SDK_FILES in cli/src/scaffold.rs");
    }

    #[test]
    fn every_python_sdk_file_is_vendored() {
        let package =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent-sdk/python/src/orchestr8_agent");
        let mut on_disk: Vec<String> = std::fs::read_dir(package)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| format!("orchestr8_agent/{}", e.file_name().to_string_lossy()))
            .collect();
        on_disk.sort();
        let mut vendored: Vec<String> = PY_SDK_FILES.iter().map(|(p, _)| p.to_string()).collect();
        vendored.sort();
        assert_eq!(
            vendored, on_disk,
            "update PY_SDK_FILES in cli/src/scaffold.rs"
        );
    }

    #[test]
    fn the_typescript_scaffold_pins_what_the_toolchain_builds_with() {
        let scaffold: serde_json::Value =
            serde_json::from_str(include_str!("../templates/agent/package.json")).unwrap();
        let toolchain: serde_json::Value = serde_json::from_str(TS_TOOLCHAIN_FILES[0].1).unwrap();
        for package in ["zod", "typescript"] {
            assert_eq!(
                scaffold["devDependencies"][package], toolchain["dependencies"][package],
                "{package}: cli/templates/agent/package.json and agent-sdk/typescript/toolchain/package.json disagree"
            );
        }
    }

    #[test]
    fn every_typescript_sdk_file_is_vendored() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent-sdk/typescript");
        // The package's README speaks of this repository: not vendored.
        let mut on_disk = vec!["package.json".to_string(), "tsconfig.json".to_string()];
        for entry in std::fs::read_dir(sdk.join("src")).unwrap() {
            let entry = entry.unwrap();
            on_disk.push(format!("src/{}", entry.file_name().to_string_lossy()));
        }
        on_disk.sort();
        let mut vendored: Vec<String> = TS_SDK_FILES.iter().map(|(p, _)| p.to_string()).collect();
        vendored.sort();
        assert_eq!(
            vendored, on_disk,
            "update TS_SDK_FILES in cli/src/scaffold.rs"
        );
    }

    #[test]
    fn the_vendored_manifest_has_the_sdk_dependencies() {
        let real = include_str!("../../agent-sdk/Cargo.toml");
        let vendored = include_str!("../templates/sdk/Cargo.toml");
        // Every dependency of the SDK, in the vendored manifest too; those
        // written as plain versions, at the same version.
        let deps = real
            .split("[dependencies]")
            .nth(1)
            .unwrap_or_default()
            .lines()
            .take_while(|l| !l.starts_with('['))
            .filter_map(|l| l.split_once(" = "))
            .collect::<Vec<_>>();
        assert!(deps.len() >= 5, "{deps:?}");
        for (key, spec) in deps {
            let dep = key.trim_end_matches(".workspace");
            let line = vendored
                .lines()
                .find(|l| l.starts_with(&format!("{dep} = ")))
                .unwrap_or_else(|| panic!("{dep} not vendored"));
            if dep == key {
                assert_eq!(line, format!("{dep} = {spec}"), "{dep}");
            }
        }
    }

    #[test]
    fn templates_render_every_placeholder() {
        for file in
            project_files("demo")
                .into_iter()
                .chain(agent_files("demo", "my-agent", Template::Http))
        {
            if file.path.starts_with(SDK_DIR) && file.path.extension().is_some_and(|e| e == "rs") {
                continue;
            }
            assert!(!file.text.contains("{{"), "{}", file.path.display());
        }
        assert_eq!(type_name("my-agent2"), "MyAgent2");
    }
}
