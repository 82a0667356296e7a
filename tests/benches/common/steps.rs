//! Workflow steps the engine benches run.

use serde_json::{Value, json};

/// `n` steps `s0`, `s1`, … calling the `state-probe` agent, each
/// depending on the one before (`chained`) or all independent.
pub fn probe_steps(n: usize, chained: bool) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let deps: Vec<String> = if chained && i > 0 {
                vec![format!("s{}", i - 1)]
            } else {
                vec![]
            };
            json!({"id": format!("s{i}"), "name": "s", "agent": {"id": "@test/state-probe"},
                   "dependencies": deps, "input": {"mapping": {"tag": i}}})
        })
        .collect()
}
