//! The statistics of an evaluation: how sure a pass rate is, and whether
//! one variant beats another or the sample is too small to tell.
//!
//! - a pass rate's 95% interval is Wilson's score interval, which stays
//!   inside [0, 1] and keeps its coverage at small counts and at 0% and
//!   100%, where the textbook (Wald) interval fails;
//! - the difference of two pass rates gets Newcombe's hybrid score
//!   interval (method 10 of his 1998 comparison of eleven methods), built
//!   from the two Wilson intervals;
//! - whether the variants differ on the same cases and trials is the exact
//!   McNemar test: under no difference, each discordant pair (one variant
//!   passed, the other failed) is as likely one way as the other.
//!
//! A difference is called only when both say so (the interval excludes
//! zero and the paired test's p < 0.05); otherwise the verdict is "no
//! significant difference", with how many more trials would settle a
//! difference of the size seen.

use serde::Serialize;

/// The normal quantile for a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The normal quantile for 80% power.
const Z_POWER_80: f64 = 0.841_621_233_572_914_3;

/// The significance level of verdicts.
pub const ALPHA: f64 = 0.05;

/// A two-sided 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
}

impl Interval {
    /// Whether zero lies outside it.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// Wilson's 95% score interval for `passed` out of `runs` (`[0, 1]` when
/// there were no runs: nothing is known).
pub fn wilson(passed: u64, runs: u64) -> Interval {
    if runs == 0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    let n = runs as f64;
    let p = passed.min(runs) as f64 / n;
    let z2 = Z_95 * Z_95;
    let centre = p + z2 / (2.0 * n);
    let spread = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let scale = 1.0 + z2 / n;
    Interval {
        low: ((centre - spread) / scale).max(0.0),
        high: ((centre + spread) / scale).min(1.0),
    }
}

/// Newcombe's 95% interval for the difference of two pass rates, B's
/// minus A's (`passed_a` of `runs_a` against `passed_b` of `runs_b`).
pub fn newcombe_difference(passed_a: u64, runs_a: u64, passed_b: u64, runs_b: u64) -> Interval {
    let rate = |passed: u64, runs: u64| {
        if runs == 0 {
            0.0
        } else {
            passed.min(runs) as f64 / runs as f64
        }
    };
    let (p_a, p_b) = (rate(passed_a, runs_a), rate(passed_b, runs_b));
    let (a, b) = (wilson(passed_a, runs_a), wilson(passed_b, runs_b));
    let difference = p_b - p_a;
    let below = ((p_b - b.low).powi(2) + (a.high - p_a).powi(2)).sqrt();
    let above = ((b.high - p_b).powi(2) + (p_a - a.low).powi(2)).sqrt();
    Interval {
        low: (difference - below).max(-1.0),
        high: (difference + above).min(1.0),
    }
}

/// The exact two-sided McNemar p-value for `only_a` pairs where A passed
/// and B failed against `only_b` where B passed and A failed (pairs where
/// both agree say nothing about a difference).
pub fn mcnemar_exact(only_a: u64, only_b: u64) -> f64 {
    let n = only_a + only_b;
    if n == 0 {
        return 1.0;
    }
    let k = only_a.min(only_b);
    // P(X <= k) for X ~ Binomial(n, 1/2), summed in log space so that
    // large counts neither overflow nor underflow.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0f64;
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Runs per variant that a two-sided test at [`ALPHA`] with 80% power needs
/// to tell pass rates `p_a` and `p_b` apart; `None` when they are equal.
pub fn runs_to_detect(p_a: f64, p_b: f64) -> Option<u64> {
    let difference = (p_b - p_a).abs();
    if difference < f64::EPSILON {
        return None;
    }
    let mean = (p_a + p_b) / 2.0;
    let pooled = Z_95 * (2.0 * mean * (1.0 - mean)).sqrt();
    let separate = Z_POWER_80 * (p_a * (1.0 - p_a) + p_b * (1.0 - p_b)).sqrt();
    Some(((pooled + separate).powi(2) / (difference * difference)).ceil() as u64)
}

/// The `q`-quantile (0 to 1) of `values` by nearest rank; `None` when
/// there are none.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: Interval, low: f64, high: f64) {
        assert!(
            (actual.low - low).abs() < 5e-5 && (actual.high - high).abs() < 5e-5,
            "{actual:?} is not [{low}, {high}]"
        );
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single
    /// proportion: comparison of seven methods", Table I, method 3 (the
    /// score interval without continuity correction); the same values as
    /// statsmodels' `proportion_confint(method="wilson")`.
    #[test]
    fn wilson_intervals_match_the_published_values() {
        close(wilson(81, 263), 0.2553, 0.3662);
        close(wilson(15, 148), 0.0624, 0.1605);
        close(wilson(0, 20), 0.0, 0.1611);
        close(wilson(1, 29), 0.0061, 0.1718);
        close(wilson(29, 29), 0.8830, 1.0);
        close(wilson(7, 10), 0.3968, 0.8922);
        close(wilson(0, 0), 0.0, 1.0);
    }

    /// Newcombe (1998), "Interval estimation for the difference between
    /// independent proportions: comparison of eleven methods", Table II,
    /// method 10; the same as statsmodels'
    /// `confint_proportions_2indep(method="newcomb")`. (Newcombe's
    /// difference is the first minus the second; here B minus A.)
    #[test]
    fn newcombe_intervals_match_the_published_values() {
        close(newcombe_difference(48, 80, 56, 70), 0.0524, 0.3339);
        close(newcombe_difference(3, 10, 9, 10), 0.1705, 0.8090);
        close(newcombe_difference(2, 7, 6, 7), 0.0582, 0.8062);
        close(newcombe_difference(0, 29, 5, 56), -0.0381, 0.1926);
        close(newcombe_difference(0, 20, 0, 10), -0.1611, 0.2775);
        close(newcombe_difference(0, 10, 0, 10), -0.2775, 0.2775);
        close(newcombe_difference(0, 20, 10, 10), 0.6791, 1.0);
        close(newcombe_difference(0, 10, 10, 10), 0.6075, 1.0);
    }

    /// The exact McNemar test is a two-sided binomial test on the
    /// discordant pairs: 9 against 2 is 2 · (1 + 11 + 55) / 2^11.
    #[test]
    fn mcnemar_p_values_match_the_binomial_tail() {
        let cases = [
            ((9, 2), 0.065_430),
            ((2, 9), 0.065_430),
            ((0, 0), 1.0),
            ((5, 5), 1.0),
            ((10, 0), 0.001_953),
            ((1, 0), 1.0),
            ((3, 12), 0.035_156),
        ];
        for ((a, b), p) in cases {
            let got = mcnemar_exact(a, b);
            assert!((got - p).abs() < 1e-6, "{a} vs {b}: {got}, not {p}");
        }
        // Large counts stay finite and tiny.
        let p = mcnemar_exact(0, 1000);
        assert!(p > 0.0 && p < 1e-300, "{p}");
        let p = mcnemar_exact(480, 520);
        assert!(p > 0.2 && p < 0.25, "{p}");
    }

    /// 80% power at 5% for 50% against 60% needs about 388 per group (the
    /// usual formula; Fleiss, Statistical Methods for Rates and
    /// Proportions).
    #[test]
    fn the_runs_needed_follow_the_usual_sample_size_formula() {
        assert_eq!(runs_to_detect(0.5, 0.6), Some(388));
        assert_eq!(runs_to_detect(0.6, 0.5), Some(388));
        assert_eq!(runs_to_detect(0.7, 0.7), None);
    }

    #[test]
    fn quantiles_are_taken_by_nearest_rank() {
        let values = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&values, 0.5), Some(3.0));
        assert_eq!(quantile(&values, 0.95), Some(5.0));
        assert_eq!(quantile(&values, 0.0), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
