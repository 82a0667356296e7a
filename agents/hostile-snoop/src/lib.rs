//! Hostile: tries to read files, environment variables and secrets, and to
//! write files. With `strict` (the default) it fails if anything it tried was
//! refused; otherwise it reports exactly what it could see and do. Tests use
//! the report to show that what was not granted is invisible. Without input it
//! goes for `/etc/passwd`, `$HOME` and the secret `api-key`.

use std::collections::BTreeMap;

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(default)]
pub struct Input {
    /// Fail when any attempt is refused (default true).
    pub strict: bool,
    /// Files to read.
    pub read: Vec<String>,
    /// Files to create and write.
    pub write: Vec<String>,
    /// Environment variables to read.
    pub env: Vec<String>,
    /// Secrets to read.
    pub secrets: Vec<String>,
    /// Directories to list.
    pub list: Vec<String>,
}

impl Default for Input {
    fn default() -> Self {
        Input {
            strict: true,
            read: vec!["/etc/passwd".into()],
            write: Vec::new(),
            env: vec!["HOME".into()],
            secrets: vec!["api-key".into()],
            list: Vec::new(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// Path → contents, or `error: …`.
    pub read: BTreeMap<String, String>,
    /// Path → `written`, or `error: …`.
    pub write: BTreeMap<String, String>,
    /// Name → value, or null when unset.
    pub env: BTreeMap<String, Option<String>>,
    /// Every environment variable the agent can see.
    pub all_env: Vec<String>,
    /// Secret name → `read` (never the value), or `error: …`.
    pub secrets: BTreeMap<String, String>,
    /// Directory → entries, or an error.
    pub list: BTreeMap<String, Vec<String>>,
}

pub struct Snoop;

impl Agent for Snoop {
    const ID: &'static str = "@hostile/snoop";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Reads and writes whatever it is told to, and reports what worked.";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, ctx: &Context) -> Result<Output, AgentError> {
        let strict = input.strict;
        let read = input
            .read
            .into_iter()
            .map(|p| {
                let r = std::fs::read_to_string(&p).unwrap_or_else(|e| format!("error: {e}"));
                (p, r)
            })
            .collect();
        let write = input
            .write
            .into_iter()
            .map(|p| {
                let r = match std::fs::write(&p, b"written by hostile-snoop") {
                    Ok(()) => "written".to_string(),
                    Err(e) => format!("error: {e}"),
                };
                (p, r)
            })
            .collect();
        let env = input
            .env
            .into_iter()
            .map(|n| {
                let v = std::env::var(&n).ok();
                (n, v)
            })
            .collect();
        let secrets = input
            .secrets
            .into_iter()
            .map(|n| {
                let r = match ctx.secret(&n) {
                    Ok(_) => "read".to_string(),
                    Err(e) => format!("error: {e}"),
                };
                (n, r)
            })
            .collect();
        let list = input
            .list
            .into_iter()
            .map(|d| {
                let entries = match std::fs::read_dir(&d) {
                    Ok(it) => it
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect(),
                    Err(e) => vec![format!("error: {e}")],
                };
                (d, entries)
            })
            .collect();
        let output = Output {
            read,
            write,
            env,
            all_env: std::env::vars().map(|(k, _)| k).collect(),
            secrets,
            list,
        };
        if strict {
            let refused = refusals(&output);
            if !refused.is_empty() {
                return Err(AgentError::fatal(format!(
                    "refused: {}",
                    refused.join("; ")
                )));
            }
        }
        Ok(output)
    }
}

export_agent!(Snoop);

fn refusals(out: &Output) -> Vec<String> {
    let failed = |m: &BTreeMap<String, String>| {
        m.iter()
            .filter(|(_, v)| v.starts_with("error:"))
            .map(|(k, v)| format!("{k} ({v})"))
            .collect::<Vec<_>>()
    };
    let mut refused = failed(&out.read);
    refused.extend(failed(&out.write));
    refused.extend(failed(&out.secrets));
    refused.extend(
        out.env
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| format!("${k} (not set)")),
    );
    refused.extend(
        out.list
            .iter()
            .filter(|(_, v)| v.first().is_some_and(|e| e.starts_with("error:")))
            .map(|(k, _)| format!("{k}/ (cannot list)")),
    );
    refused
}
