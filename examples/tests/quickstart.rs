//! The quickstart runs offline, succeeds and prints the same account every time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic fails the test"
)]

use std::process::Command;

fn run() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .output()
        .expect("the quickstart binary runs");
    assert!(
        output.status.success(),
        "quickstart failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_quickstart_runs_to_completion_deterministically() {
    let first = run();
    assert_eq!(first, run(), "the output is deterministic");
    let table: Vec<Vec<&str>> = first
        .lines()
        .skip_while(|line| !line.starts_with("thing "))
        .skip(1)
        .map(|line| line.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(
        table,
        [
            ["pump-07", "rotate-logs", "SUCCEEDED"],
            ["pump-07", "firmware-2-4", "SUCCEEDED"],
            ["pump-08", "rotate-logs", "SUCCEEDED"],
            ["pump-08", "firmware-2-4", "FAILED"],
            ["valve-12", "rotate-logs", "SUCCEEDED"],
            ["valve-12", "calibrate-flow", "SUCCEEDED"],
            ["valve-12", "quantum-upgrade", "REJECTED"],
        ]
    );
}
