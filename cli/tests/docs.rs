//! The guide cannot drift from the CLI: every `orchestr8 …` command line in
//! a code block of `docs/src` must name a real command, and every `--flag`
//! it shows must be one that command accepts (its `--help` lists it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// `orchestr8 [-C DIR] WORD [WORD] …` lines of the guide's code blocks,
/// with where they are.
fn command_lines() -> Vec<(String, String)> {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/src");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&docs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut in_code = false;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            let line = line.trim();
            if in_code && line.starts_with("orchestr8 ") {
                let name = path.file_name().unwrap().to_string_lossy();
                lines.push((format!("{name}:{}", n + 1), line.to_string()));
            }
        }
    }
    assert!(lines.len() > 40, "found only {} command lines", lines.len());
    lines
}

/// The words before the first argument: `agent call`, `executions`.
fn subcommand(line: &str) -> Vec<String> {
    let mut words = line.split_whitespace().skip(1).peekable();
    if words.peek() == Some(&"-C") {
        words.next();
        words.next();
    }
    words
        .take_while(|w| {
            w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-')
        })
        .take(2)
        .map(str::to_string)
        .collect()
}

/// `--help` of the deepest real command among `words`.
fn help(words: &[String], cache: &mut BTreeMap<Vec<String>, Option<String>>) -> Option<String> {
    for depth in (1..=words.len()).rev() {
        let key = words[..depth].to_vec();
        let text = cache
            .entry(key.clone())
            .or_insert_with(|| {
                let out = Command::new(env!("CARGO_BIN_EXE_orchestr8"))
                    .args(&key)
                    .arg("--help")
                    .output()
                    .unwrap();
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            })
            .clone();
        if text.is_some() {
            return text;
        }
    }
    None
}

#[test]
fn every_command_line_in_the_guide_names_real_commands_and_flags() {
    let mut cache = BTreeMap::new();
    let global = help(&[], &mut cache).unwrap_or_default();
    let mut wrong = Vec::new();
    for (place, line) in command_lines() {
        let words = subcommand(&line);
        if words.is_empty() {
            continue; // `orchestr8 --version`, `orchestr8 -C dir …` only
        }
        let Some(text) = help(&words, &mut cache) else {
            wrong.push(format!(
                "{place}: no command `orchestr8 {}`",
                words.join(" ")
            ));
            continue;
        };
        for flag in line
            .split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '|'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            let flag = flag.split('=').next().unwrap_or(flag);
            if !text.contains(flag) && !global.contains(flag) {
                wrong.push(format!(
                    "{place}: `{flag}` is not a flag of `orchestr8 {}`",
                    words.join(" ")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the guide drifted from the CLI:\n{}",
        wrong.join("\n")
    );
}
