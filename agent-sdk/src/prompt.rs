//! Prompt templates: text (XML, typically) with `{{name}}` placeholders.
//!
//! Rendering is one pass over the template: every placeholder is replaced
//! by its value, and values are never scanned again, so text from a user or
//! from a remote API can inject neither a placeholder nor (once passed
//! through [`escape`]) a tag.

use crate::AgentError;

/// Replaces each `{{name}}` of `template` with its value in `values`, in
/// one pass. A placeholder without a value, or a `{{` never closed, is an
/// error: a template and the code that fills it must agree.
pub fn fill(template: &str, values: &[(&str, String)]) -> Result<String, AgentError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| AgentError::fatal("prompt template: `{{` is never closed"))?;
        let name = &after[..end];
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| AgentError::fatal(format!("prompt template: no value for `{name}`")))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `text` safe inside XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not XML.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_placed_once_and_never_scanned_again() {
        let filled = fill(
            "<q>{{question}}</q><a>{{answer}}</a>",
            &[
                ("question", escape("what is {{answer}} & <b>?")),
                ("answer", "42".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            filled,
            "<q>what is {{answer}} &amp; &lt;b&gt;?</q><a>42</a>"
        );
        assert!(fill("{{missing}}", &[]).is_err());
        assert!(fill("{{open", &[]).is_err());
        assert_eq!(escape("a\u{0}b\"'"), "ab&quot;&apos;");
    }
}
