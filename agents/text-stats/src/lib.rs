//! Text statistics: a small, useful demo agent.
//!
//! Counts characters, words, lines and sentences, estimates reading time and
//! lists the most frequent words (ignoring case and common stop words).

use std::collections::HashMap;

use orchestr8_agent_sdk::{Agent, AgentError, Context, JsonSchema, export_agent, log};
use serde::{Deserialize, Serialize};

/// Words per minute assumed for the reading-time estimate.
const READING_WPM: f64 = 230.0;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "in",
    "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "with",
];

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The text to analyse.
    pub text: String,
    /// How many frequent words to list (default 5, at most 100).
    #[serde(default = "default_top")]
    pub top: usize,
}

fn default_top() -> usize {
    5
}

#[derive(Serialize, JsonSchema)]
pub struct WordCount {
    pub word: String,
    pub count: usize,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub characters: usize,
    pub words: usize,
    pub lines: usize,
    pub sentences: usize,
    pub reading_time_seconds: u64,
    pub top_words: Vec<WordCount>,
}

pub struct TextStats;

impl Agent for TextStats {
    const ID: &'static str = "@orchestr8/text-stats";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Counts characters, words, lines and sentences of a text and lists its most frequent words.";
    type Input = Input;
    type Output = Output;

    fn process(input: Input, _ctx: &Context) -> Result<Output, AgentError> {
        if input.top > 100 {
            return Err(AgentError::invalid_input("`top` must be at most 100"));
        }
        let words: Vec<String> = input
            .text
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .map(|w| w.to_lowercase())
            .collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for w in &words {
            if !STOP_WORDS.contains(&w.as_str()) {
                *counts.entry(w.as_str()).or_default() += 1;
            }
        }
        let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        top.truncate(input.top);
        let sentences = input
            .text
            .split(['.', '!', '?'])
            .filter(|s| s.chars().any(char::is_alphanumeric))
            .count();
        log::info(&format!("analysed {} words", words.len()));
        Ok(Output {
            characters: input.text.chars().count(),
            words: words.len(),
            lines: input.text.lines().count(),
            sentences,
            reading_time_seconds: (words.len() as f64 / READING_WPM * 60.0).ceil() as u64,
            top_words: top
                .into_iter()
                .map(|(word, count)| WordCount {
                    word: word.to_string(),
                    count,
                })
                .collect(),
        })
    }
}

export_agent!(TextStats);
