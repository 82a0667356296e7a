//! Tables the bench binaries print.

use std::time::Duration;

use super::{micros, percentile};

/// Prints a Markdown table of p50 and p95 per row of sorted samples.
pub fn print_p50_p95(first_column: &str, rows: &[(&str, &[Duration])]) {
    println!("| {first_column} | p50 | p95 |");
    println!("|---|---|---|");
    for (name, samples) in rows {
        println!(
            "| {name} | {} | {} |",
            micros(percentile(samples, 0.5)),
            micros(percentile(samples, 0.95))
        );
    }
}
