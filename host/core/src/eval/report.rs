//! From runs to a report: pass rates with their intervals per variant,
//! grader and case; latency; tokens and cost; and for each variant against
//! the first, the difference, the paired test and a verdict in words.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::grader::Grade;
use super::stats::{
    ALPHA, Interval, mcnemar_exact, newcombe_difference, quantile, runs_to_detect, wilson,
};

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every grader passed.
    Passed,
    /// The agent failed, or a grader failed.
    Failed,
    /// A grader could not decide (and none failed): not counted in pass
    /// rates.
    Error,
}

/// One grader's grade of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graded {
    /// The grader, as [`super::grader::Grader::label`] names it.
    pub grader: String,
    /// Its grade.
    #[serde(flatten)]
    pub grade: GradeRecord,
}

/// A grade as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "grade", rename_all = "kebab-case")]
pub enum GradeRecord {
    /// Passed.
    Pass,
    /// Failed, and why.
    Fail {
        /// Why.
        reason: String,
    },
    /// Could not decide, and why.
    Error {
        /// Why.
        reason: String,
    },
}

impl From<Grade> for GradeRecord {
    fn from(grade: Grade) -> Self {
        match grade {
            Grade::Pass => GradeRecord::Pass,
            Grade::Fail { reason } => GradeRecord::Fail { reason },
            Grade::Error { reason } => GradeRecord::Error { reason },
        }
    }
}

/// One run of one case under one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The variant.
    pub variant: String,
    /// The case's name.
    pub case: String,
    /// Which trial, from 1.
    pub trial: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// How long the agent took, in milliseconds.
    pub duration_ms: f64,
    /// The agent's failure (`CODE: message`), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_error: Option<String>,
    /// What the agent answered, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Each grader's grade (none when the agent failed).
    #[serde(default)]
    pub grades: Vec<Graded>,
    /// Tokens read, when the output says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Tokens written, when the output says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
}

impl Run {
    /// The outcome of a run whose agent answered and whose graders said
    /// `grades`, or whose agent failed (`agent_error`).
    pub fn outcome_of(agent_error: Option<&str>, grades: &[Graded]) -> Outcome {
        if agent_error.is_some()
            || grades
                .iter()
                .any(|g| matches!(g.grade, GradeRecord::Fail { .. }))
        {
            Outcome::Failed
        } else if grades
            .iter()
            .any(|g| matches!(g.grade, GradeRecord::Error { .. }))
        {
            Outcome::Error
        } else {
            Outcome::Passed
        }
    }
}

/// Passes, failures and errors of a group of runs (or grades).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// What was counted: a variant, a grader or a case.
    pub name: String,
    /// Passed.
    pub passed: u64,
    /// Failed.
    pub failed: u64,
    /// Could not be decided (not in the rate).
    pub errors: u64,
    /// `passed / (passed + failed)`, when any was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_rate: Option<f64>,
    /// Its 95% Wilson interval.
    pub interval: Interval,
}

impl Tally {
    fn new(name: &str) -> Self {
        Tally {
            name: name.to_string(),
            passed: 0,
            failed: 0,
            errors: 0,
            pass_rate: None,
            interval: wilson(0, 0),
        }
    }

    fn count(&mut self, passed: Option<bool>) {
        match passed {
            Some(true) => self.passed += 1,
            Some(false) => self.failed += 1,
            None => self.errors += 1,
        }
    }

    fn close(mut self) -> Self {
        let decided = self.passed + self.failed;
        self.pass_rate = (decided > 0).then(|| self.passed as f64 / decided as f64);
        self.interval = wilson(self.passed, decided);
        self
    }
}

/// One variant's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantReport {
    /// Its runs' pass rate (named after the variant).
    #[serde(flatten)]
    pub overall: Tally,
    /// Runs made.
    pub runs: u64,
    /// The agent's time per run, median, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    /// The agent's time per run, 95th percentile, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<f64>,
    /// Tokens read over all runs, when the output says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Tokens written over all runs, when the output says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// What the tokens cost, in dollars, when prices are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Per grader (a run's grade by that grader alone).
    pub graders: Vec<Tally>,
    /// Per case.
    pub cases: Vec<Tally>,
}

/// A variant against the baseline (the first variant).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The baseline variant.
    pub baseline: String,
    /// The variant compared with it.
    pub variant: String,
    /// The variant's pass rate minus the baseline's.
    pub difference: f64,
    /// Its 95% interval (Newcombe).
    pub interval: Interval,
    /// Pairs (same case, same trial) only the baseline passed.
    pub only_baseline: u64,
    /// Pairs only the variant passed.
    pub only_variant: u64,
    /// The exact McNemar test's two-sided p-value over those pairs.
    pub p_value: f64,
    /// Whether the difference is significant (interval and test agree).
    pub significant: bool,
    /// The verdict, in words.
    pub verdict: String,
}

/// Prices per million tokens, read and written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Dollars per million tokens read.
    pub input: Option<f64>,
    /// Dollars per million tokens written.
    pub output: Option<f64>,
}

/// A variant's report from its runs (in the order they were made).
pub fn variant_report(name: &str, runs: &[&Run], prices: Option<Prices>) -> VariantReport {
    let mut overall = Tally::new(name);
    let mut graders: Vec<Tally> = Vec::new();
    let mut cases: Vec<Tally> = Vec::new();
    let mut durations = Vec::with_capacity(runs.len());
    let (mut input_tokens, mut output_tokens) = (None::<u64>, None::<u64>);
    for run in runs {
        let decided = match run.outcome {
            Outcome::Passed => Some(true),
            Outcome::Failed => Some(false),
            Outcome::Error => None,
        };
        overall.count(decided);
        tally(&mut cases, &run.case).count(decided);
        for g in &run.grades {
            tally(&mut graders, &g.grader).count(match g.grade {
                GradeRecord::Pass => Some(true),
                GradeRecord::Fail { .. } => Some(false),
                GradeRecord::Error { .. } => None,
            });
        }
        durations.push(run.duration_ms);
        if let Some(t) = run.input_tokens {
            input_tokens = Some(input_tokens.unwrap_or(0) + t);
        }
        if let Some(t) = run.output_tokens {
            output_tokens = Some(output_tokens.unwrap_or(0) + t);
        }
    }
    let cost_usd = prices.and_then(|p| {
        let read = p
            .input
            .zip(input_tokens)
            .map(|(price, t)| price * t as f64 / 1e6);
        let written = p
            .output
            .zip(output_tokens)
            .map(|(price, t)| price * t as f64 / 1e6);
        match (read, written) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        }
    });
    VariantReport {
        overall: overall.close(),
        runs: runs.len() as u64,
        latency_p50_ms: quantile(&durations, 0.5),
        latency_p95_ms: quantile(&durations, 0.95),
        input_tokens,
        output_tokens,
        cost_usd,
        graders: graders.into_iter().map(Tally::close).collect(),
        cases: cases.into_iter().map(Tally::close).collect(),
    }
}

fn tally<'a>(tallies: &'a mut Vec<Tally>, name: &str) -> &'a mut Tally {
    let at = match tallies.iter().position(|t| t.name == name) {
        Some(at) => at,
        None => {
            tallies.push(Tally::new(name));
            tallies.len() - 1
        }
    };
    &mut tallies[at]
}

/// `variant`'s runs against `baseline`'s, paired by case and trial (a pair
/// with an undecided run is left out); `cases` is how many cases each trial
/// covers, for the advice on how many more trials would settle it.
pub fn compare(baseline: (&str, &[&Run]), variant: (&str, &[&Run]), cases: usize) -> Comparison {
    let decided = |runs: &[&Run]| -> HashMap<(String, u32), bool> {
        runs.iter()
            .filter(|r| r.outcome != Outcome::Error)
            .map(|r| ((r.case.clone(), r.trial), r.outcome == Outcome::Passed))
            .collect()
    };
    let (a, b) = (decided(baseline.1), decided(variant.1));
    let count = |m: &HashMap<(String, u32), bool>| {
        (m.values().filter(|p| **p).count() as u64, m.len() as u64)
    };
    let ((passed_a, runs_a), (passed_b, runs_b)) = (count(&a), count(&b));
    let (mut only_a, mut only_b) = (0, 0);
    for (key, passed) in &a {
        match (passed, b.get(key)) {
            (true, Some(false)) => only_a += 1,
            (false, Some(true)) => only_b += 1,
            _ => {}
        }
    }
    let rate = |p: u64, n: u64| if n == 0 { 0.0 } else { p as f64 / n as f64 };
    let (p_a, p_b) = (rate(passed_a, runs_a), rate(passed_b, runs_b));
    let difference = p_b - p_a;
    let interval = newcombe_difference(passed_a, runs_a, passed_b, runs_b);
    let p_value = mcnemar_exact(only_a, only_b);
    let significant = interval.excludes_zero() && p_value < ALPHA;
    let points = |x: f64| format!("{:+.0}", x * 100.0);
    // The numbers as seen from the first name: better minus worse when a
    // verdict is called, so a winning baseline reads "+", never "-".
    let stated = |sign: f64| {
        let (low, high) = if sign > 0.0 {
            (interval.low, interval.high)
        } else {
            (-interval.high, -interval.low)
        };
        format!(
            "{} points, 95% CI [{}, {}], paired test p {}",
            points(sign * difference),
            points(low),
            points(high),
            p_text(p_value)
        )
    };
    let verdict = if significant {
        let (better, worse, sign) = if difference > 0.0 {
            (variant.0, baseline.0, 1.0)
        } else {
            (baseline.0, variant.0, -1.0)
        };
        format!("{better} is better than {worse}: {}", stated(sign))
    } else {
        // How many runs per variant would tell apart a difference of the
        // size seen (or of 10 points when none was seen).
        let target = if difference.abs() >= 0.02 {
            (p_a, p_b)
        } else {
            let base = p_a.clamp(0.05, 0.85);
            (base, base + 0.10)
        };
        let advice = runs_to_detect(target.0, target.1)
            .map(|needed| {
                let have = runs_a.min(runs_b);
                let more = needed.saturating_sub(have);
                let per_case = (more as f64 / cases.max(1) as f64).ceil() as u64;
                format!(
                    "; about {per_case} more trials per case ({more} more runs per variant) would resolve a difference of {} points",
                    ((target.1 - target.0).abs() * 100.0).round()
                )
            })
            .unwrap_or_default();
        format!(
            "no significant difference between {} and {} at this sample size ({}){advice}",
            variant.0,
            baseline.0,
            stated(1.0)
        )
    };
    Comparison {
        baseline: baseline.0.to_string(),
        variant: variant.0.to_string(),
        difference,
        interval,
        only_baseline: only_a,
        only_variant: only_b,
        p_value,
        significant,
        verdict,
    }
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("= {p:.3}")
    }
}

/// The runs of each variant, in the order of `names`.
pub fn by_variant<'a>(runs: &'a [Run], names: &[String]) -> BTreeMap<String, Vec<&'a Run>> {
    let mut grouped: BTreeMap<String, Vec<&Run>> =
        names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for run in runs {
        if let Some(group) = grouped.get_mut(&run.variant) {
            group.push(run);
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(variant: &str, case: &str, trial: u32, outcome: Outcome) -> Run {
        Run {
            variant: variant.into(),
            case: case.into(),
            trial,
            outcome,
            duration_ms: f64::from(trial),
            agent_error: None,
            output: None,
            grades: vec![Graded {
                grader: "contains summary".into(),
                grade: match outcome {
                    Outcome::Passed => GradeRecord::Pass,
                    Outcome::Failed => GradeRecord::Fail {
                        reason: "no".into(),
                    },
                    Outcome::Error => GradeRecord::Error { reason: "?".into() },
                },
            }],
            input_tokens: Some(100),
            output_tokens: Some(10),
        }
    }

    /// `passes[i]`: how many of the trials of case i pass.
    fn runs(variant: &str, passes: &[u32], trials: u32) -> Vec<Run> {
        passes
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                (1..=trials).map(move |t| {
                    let outcome = if t <= *p {
                        Outcome::Passed
                    } else {
                        Outcome::Failed
                    };
                    run(variant, &format!("case {i}"), t, outcome)
                })
            })
            .collect()
    }

    #[test]
    fn a_clearly_better_variant_is_called_better() {
        let a = runs("a", &[1, 2, 1, 0, 2, 1, 1, 2, 0, 1], 5);
        let b = runs("b", &[5, 5, 4, 5, 5, 4, 5, 5, 5, 5], 5);
        let (a, b): (Vec<&Run>, Vec<&Run>) = (a.iter().collect(), b.iter().collect());
        let c = compare(("a", &a), ("b", &b), 10);
        assert!(c.significant, "{c:?}");
        assert!((c.difference - (48.0 - 11.0) / 50.0).abs() < 1e-9);
        assert!(
            c.verdict.starts_with("b is better than a: +74 points"),
            "{}",
            c.verdict
        );
        let report = variant_report(
            "b",
            &b,
            Some(Prices {
                input: Some(3.0),
                output: Some(15.0),
            }),
        );
        assert_eq!((report.overall.passed, report.overall.failed), (48, 2));
        assert_eq!(report.input_tokens, Some(5000));
        assert!((report.cost_usd.unwrap() - (5000.0 * 3.0 + 500.0 * 15.0) / 1e6).abs() < 1e-12);
        assert_eq!(report.cases.len(), 10);
        assert_eq!(report.graders[0].name, "contains summary");
    }

    #[test]
    fn a_better_baseline_is_named_first_with_a_positive_difference() {
        let a = runs("a", &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 1);
        let b = runs("b", &[1, 0, 1, 0, 0, 0, 1, 0, 0, 0], 1);
        let (a, b): (Vec<&Run>, Vec<&Run>) = (a.iter().collect(), b.iter().collect());
        let c = compare(("a", &a), ("b", &b), 10);
        assert!(c.significant, "{c:?}");
        assert!((c.difference + 0.7).abs() < 1e-9, "the field stays b - a");
        assert!(
            c.verdict
                .starts_with("a is better than b: +70 points, 95% CI [+"),
            "{}",
            c.verdict
        );
        let flipped = compare(("b", &b), ("a", &a), 10);
        let numbers = |v: &str| v.split_once(": ").map(|(_, n)| n.to_string());
        assert_eq!(numbers(&c.verdict), numbers(&flipped.verdict));
    }

    #[test]
    fn equal_variants_are_no_significant_difference_with_advice() {
        let a = runs("a", &[3, 2, 4, 3, 3], 5);
        let b = runs("b", &[3, 3, 3, 3, 3], 5);
        let (a, b): (Vec<&Run>, Vec<&Run>) = (a.iter().collect(), b.iter().collect());
        let c = compare(("a", &a), ("b", &b), 5);
        assert!(!c.significant, "{c:?}");
        assert!(
            c.verdict.starts_with(
                "no significant difference between b and a at this sample size (+0 points"
            ),
            "{}",
            c.verdict
        );
        assert!(c.verdict.contains("more trials per case"), "{}", c.verdict);
        assert!(
            c.verdict.contains("difference of 10 points"),
            "{}",
            c.verdict
        );
    }

    /// Undecided runs are neither passes nor failures.
    #[test]
    fn grader_errors_stay_out_of_the_pass_rate() {
        let mut a = runs("a", &[2], 4);
        a[3].outcome = Outcome::Error;
        let a: Vec<&Run> = a.iter().collect();
        let report = variant_report("a", &a, None);
        assert_eq!(
            (
                report.overall.passed,
                report.overall.failed,
                report.overall.errors
            ),
            (2, 1, 1)
        );
        assert_eq!(report.overall.pass_rate, Some(2.0 / 3.0));
        assert_eq!(report.cost_usd, None);
        assert_eq!(
            Run::outcome_of(
                None,
                &[Graded {
                    grader: "g".into(),
                    grade: GradeRecord::Error { reason: "x".into() }
                }]
            ),
            Outcome::Error
        );
        assert_eq!(Run::outcome_of(Some("TIMEOUT: slow"), &[]), Outcome::Failed);
    }
}
