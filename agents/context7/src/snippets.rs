//! The documentation snippets of the brief, trimmed to the token budget.
//!
//! Context7 reports a token count per snippet, but the answer is untrusted:
//! a snippet counts as the larger of its claimed tokens and its length / 4,
//! so a lying or huge answer still ends up within the budget.

use serde::Serialize;

use crate::JsonSchema;
use crate::api::{Docs, clip};

/// Characters per token, the usual estimate for English and code.
const CHARS_PER_TOKEN: usize = 4;
/// Most snippets looked at, however many the answer holds.
const MAX_CONSIDERED: usize = 1000;
/// The longest title or source kept.
const MAX_LABEL_CHARS: usize = 300;

/// One snippet of documentation.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snippet {
    /// `code` (an example) or `info` (prose).
    pub kind: String,
    /// Its title or breadcrumb.
    pub title: String,
    /// Where it comes from, when Context7 says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The code's language, for code snippets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The text: description then fenced code, or the prose.
    pub content: String,
    /// Tokens it counts for against the budget.
    pub tokens: u64,
}

/// How the budget was spent.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// The budget, in tokens.
    pub limit: u64,
    /// Tokens of the snippets kept.
    pub used: u64,
    /// Snippets Context7 returned.
    pub returned: usize,
    /// Snippets left out to stay within the budget.
    pub omitted: usize,
}

fn estimate(text: &str) -> u64 {
    text.chars().count().div_ceil(CHARS_PER_TOKEN) as u64
}

fn tokens(claimed: Option<f64>, text: &str) -> u64 {
    let claimed = claimed.filter(|t| t.is_finite() && *t > 0.0).unwrap_or(0.0) as u64;
    claimed.max(estimate(text))
}

fn label(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| clip(t, MAX_LABEL_CHARS))
}

/// Only web addresses count as sources.
fn source(text: Option<&str>) -> Option<String> {
    label(text).filter(|s| s.starts_with("https://") || s.starts_with("http://"))
}

/// Every snippet of the answer, in Context7's order (code first).
fn all(docs: Docs) -> Vec<Snippet> {
    let code = docs.code_snippets.into_iter().map(|c| {
        let mut content = c.code_description.unwrap_or_default().trim().to_string();
        for block in &c.code_list {
            let language = block.language.as_deref().or(c.code_language.as_deref());
            content.push_str(&format!(
                "\n\n```{}\n{}\n```",
                language.unwrap_or_default(),
                block.code.trim_end()
            ));
        }
        let content = content.trim().to_string();
        Snippet {
            kind: "code".into(),
            title: label(c.code_title.as_deref().or(c.page_title.as_deref())).unwrap_or_default(),
            source: source(c.code_id.as_deref()),
            language: label(c.code_language.as_deref()),
            tokens: tokens(c.code_tokens, &content),
            content,
        }
    });
    let info = docs.info_snippets.into_iter().map(|i| {
        let content = i.content.trim().to_string();
        Snippet {
            kind: "info".into(),
            title: label(i.breadcrumb.as_deref()).unwrap_or_default(),
            source: source(i.page_id.as_deref()),
            language: None,
            tokens: tokens(i.content_tokens, &content),
            content,
        }
    });
    code.chain(info)
        .filter(|s| !s.content.is_empty())
        .take(MAX_CONSIDERED)
        .collect()
}

/// The snippets that fit in `limit` tokens, in order; a first snippet too
/// big on its own is cut to the budget rather than dropped.
pub fn within_budget(docs: Docs, limit: u64) -> (Vec<Snippet>, Budget) {
    let returned = docs.code_snippets.len() + docs.info_snippets.len();
    let mut kept = Vec::new();
    let mut used = 0;
    for mut snippet in all(docs) {
        if used + snippet.tokens > limit {
            if !kept.is_empty() {
                continue;
            }
            let marker = "\n[… cut to the token budget]";
            let room = (limit as usize * CHARS_PER_TOKEN).saturating_sub(marker.len());
            snippet.content = format!("{}{marker}", clip(&snippet.content, room));
            snippet.tokens = estimate(&snippet.content).min(limit);
        }
        used += snippet.tokens;
        kept.push(snippet);
    }
    let budget = Budget {
        limit,
        used,
        returned,
        omitted: returned - kept.len(),
    };
    (kept, budget)
}

/// The distinct sources of `snippets`, in order.
pub fn sources(snippets: &[Snippet]) -> Vec<String> {
    let mut seen = Vec::new();
    for s in snippets.iter().filter_map(|s| s.source.clone()) {
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Code, CodeSnippet, InfoSnippet};

    fn code(title: &str, code: &str, claimed: f64) -> CodeSnippet {
        CodeSnippet {
            code_title: Some(title.into()),
            code_description: Some("How to.".into()),
            code_language: Some("rust".into()),
            code_tokens: Some(claimed),
            code_id: Some(format!("https://docs.example/{title}")),
            code_list: vec![Code {
                language: None,
                code: code.into(),
            }],
            ..CodeSnippet::default()
        }
    }

    #[test]
    fn snippets_are_kept_in_order_until_the_budget_is_spent() {
        let docs = Docs {
            code_snippets: vec![
                code("a", "let a = 1;", 40.0),
                code("b", "x", 80.0),
                code("c", "y", 10.0),
            ],
            info_snippets: vec![InfoSnippet {
                content: "Prose.".into(),
                content_tokens: Some(5.0),
                page_id: Some("not a url".into()),
                ..InfoSnippet::default()
            }],
        };
        let (kept, budget) = within_budget(docs, 60);
        let titles: Vec<&str> = kept.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["a", "c", ""]);
        assert_eq!((budget.used, budget.returned, budget.omitted), (55, 4, 1));
        assert!(kept[0].content.contains("```rust\nlet a = 1;\n```"));
        assert_eq!(
            sources(&kept),
            ["https://docs.example/a", "https://docs.example/c"]
        );
    }

    #[test]
    fn a_lying_token_count_does_not_beat_the_budget() {
        let huge = "z".repeat(1_000_000);
        let docs = Docs {
            code_snippets: vec![code("huge", &huge, 1.0), code("also", &huge, 1.0)],
            info_snippets: vec![],
        };
        let (kept, budget) = within_budget(docs, 500);
        assert_eq!(kept.len(), 1);
        assert!(budget.used <= 500, "{budget:?}");
        assert!(kept[0].content.chars().count() <= 500 * CHARS_PER_TOKEN);
        assert!(kept[0].content.ends_with("[… cut to the token budget]"));
    }
}
