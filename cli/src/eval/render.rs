//! The eval report for people: on a terminal, as Markdown, as HTML (the
//! Markdown rendered, for a browser or a CI artifact).

use orchestr8_host::eval::report::{GradeRecord, Outcome, Run, VariantReport};
use orchestr8_host::eval::stats::Interval;
use pulldown_cmark::{Event, Options, Parser, html};

use super::Saved;

pub(super) fn percent(rate: Option<f64>) -> String {
    rate.map_or("—".into(), |r| format!("{:.0}%", r * 100.0))
}

fn interval(v: &Interval) -> String {
    format!("[{:.0}%, {:.0}%]", v.low * 100.0, v.high * 100.0)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0} ms"))
}

/// The report for a terminal.
pub(super) fn terminal(saved: &Saved) -> String {
    let mut out = format!(
        "\n{} · {} · {} × {} per variant\n\n",
        saved.suite,
        saved.agent,
        plural(saved.cases as u64, "case"),
        plural(saved.trials.into(), "trial")
    );
    for v in &saved.variants {
        let o = &v.overall;
        out.push_str(&format!(
            "{}: {} passed ({} of {}), 95% CI {}{} · latency p50 {} p95 {}{}\n",
            o.name,
            percent(o.pass_rate),
            o.passed,
            o.passed + o.failed,
            interval(&o.interval),
            if o.errors > 0 {
                format!(" · {} grader errors (not counted)", o.errors)
            } else {
                String::new()
            },
            ms(v.latency_p50_ms),
            ms(v.latency_p95_ms),
            tokens(v)
        ));
        for g in &v.graders {
            out.push_str(&format!(
                "    grader {}: {} {}{}\n",
                g.name,
                percent(g.pass_rate),
                interval(&g.interval),
                if g.errors > 0 {
                    format!(", {} errors", g.errors)
                } else {
                    String::new()
                }
            ));
        }
        for c in &v.cases {
            out.push_str(&format!(
                "    case {}: {} of {}\n",
                c.name,
                c.passed,
                c.passed + c.failed + c.errors
            ));
        }
    }
    for c in saved.comparisons.iter().chain(&saved.regressions) {
        out.push_str(&format!("\n{}\n", c.verdict));
    }
    out
}

fn tokens(v: &VariantReport) -> String {
    match (v.input_tokens, v.output_tokens, v.cost_usd) {
        (None, None, _) => String::new(),
        (i, o, cost) => format!(
            " · tokens {} in, {} out{}",
            i.unwrap_or(0),
            o.unwrap_or(0),
            cost.map(|c| format!(" (${c:.4})")).unwrap_or_default()
        ),
    }
}

/// The report as Markdown.
pub(super) fn markdown(saved: &Saved) -> String {
    let mut out = format!(
        "# Evaluation: {}\n\nAgent `{}`, {}, {} per case and variant, {}.\n\n",
        text(&saved.suite),
        text(&saved.agent),
        plural(saved.cases as u64, "case"),
        plural(saved.trials.into(), "trial"),
        saved.at
    );
    out.push_str("| variant | pass rate | 95% CI | passed | failed | grader errors | latency p50 | latency p95 | tokens in | tokens out | cost |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for v in &saved.variants {
        let o = &v.overall;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            text(&o.name),
            percent(o.pass_rate),
            interval(&o.interval),
            o.passed,
            o.failed,
            o.errors,
            ms(v.latency_p50_ms),
            ms(v.latency_p95_ms),
            v.input_tokens.map_or("—".into(), |t| t.to_string()),
            v.output_tokens.map_or("—".into(), |t| t.to_string()),
            v.cost_usd.map_or("—".into(), |c| format!("${c:.4}")),
        ));
    }
    if !saved.comparisons.is_empty() || !saved.regressions.is_empty() {
        out.push_str("\n## Verdicts\n\n");
        for c in saved.comparisons.iter().chain(&saved.regressions) {
            out.push_str(&format!(
                "- **{}**\n  (pairs only {} passed: {}; only {} passed: {})\n",
                text(&c.verdict),
                text(&c.baseline),
                c.only_baseline,
                text(&c.variant),
                c.only_variant
            ));
        }
    }
    for v in &saved.variants {
        out.push_str(&format!(
            "\n## {}\n\n| grader | pass rate | 95% CI | errors |\n|---|---|---|---|\n",
            text(&v.overall.name)
        ));
        for g in &v.graders {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                text(&g.name),
                percent(g.pass_rate),
                interval(&g.interval),
                g.errors
            ));
        }
        out.push_str("\n| case | passed | runs |\n|---|---|---|\n");
        for c in &v.cases {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                text(&c.name),
                c.passed,
                c.passed + c.failed + c.errors
            ));
        }
        out.push_str(&not_passed(saved, &v.overall.name));
    }
    out.push_str(&format!(
        "\nIntervals are Wilson 95% score intervals; differences carry Newcombe's interval and the exact McNemar test over runs paired by case and trial, and are called only when both agree (p < 0.05). Every run: `orchestr8 eval {} --json`.\n",
        text(&saved.suite)
    ));
    out
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The most runs listed as not passed, per variant.
const MOST_LISTED: usize = 50;

/// Why each run of `variant` that did not pass did not: the agent's error,
/// or each grader that failed or could not decide, with its reason.
fn not_passed(saved: &Saved, variant: &str) -> String {
    let runs: Vec<&Run> = saved
        .runs
        .iter()
        .filter(|r| r.variant == variant && r.outcome != Outcome::Passed)
        .collect();
    if runs.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nRuns that did not pass:\n\n");
    for run in runs.iter().take(MOST_LISTED) {
        let why: Vec<String> = match &run.agent_error {
            Some(error) => vec![format!("the agent failed: {}", text(error))],
            None => run
                .grades
                .iter()
                .filter_map(|g| match &g.grade {
                    GradeRecord::Pass => None,
                    GradeRecord::Fail { reason } => {
                        Some(format!("{} failed: {}", text(&g.grader), text(reason)))
                    }
                    GradeRecord::Error { reason } => Some(format!(
                        "{} could not decide: {}",
                        text(&g.grader),
                        text(reason)
                    )),
                })
                .collect(),
        };
        out.push_str(&format!(
            "- {} (trial {}): {}\n",
            text(&run.case),
            run.trial,
            why.join("; ")
        ));
    }
    if runs.len() > MOST_LISTED {
        out.push_str(&format!(
            "- … and {} more (every run is in the JSON report)\n",
            runs.len() - MOST_LISTED
        ));
    }
    out
}

/// Text from the suite or a run (names, reasons) as Markdown: nothing in it
/// can end a table cell, break a line or become HTML (emphasis marks are
/// left alone, so addresses stay readable).
fn text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '|' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The Markdown report as a page of its own. Any HTML in the Markdown is
/// shown as text, never passed through.
pub(super) fn html(saved: &Saved) -> String {
    let markdown = markdown(saved);
    let events = Parser::new_ext(&markdown, Options::ENABLE_TABLES).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        event => event,
    });
    let mut body = String::new();
    html::push_html(&mut body, events);
    let mut title = String::new();
    html::push_html(
        &mut title,
        std::iter::once(Event::Text(format!("Evaluation: {}", saved.suite).into())),
    );
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:75rem;margin:2rem auto;padding:0 1rem;color:#1f2328}\
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}\
th{background:#f6f8fa}code{background:#f6f8fa;padding:0 .25rem;border-radius:3px}";
