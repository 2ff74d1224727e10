//! A small run of `statusd-load`, so that the tool the README's performance numbers come from
//! cannot rot: it starts statusd as a child, loads it, and prints one JSON line with every field.
//! Behaviour only: the numbers themselves are measured by people, with the README's commands.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_load_tool_runs_statusd_and_prints_one_line_of_measurements() {
    let output = Command::new(env!("CARGO_BIN_EXE_statusd-load"))
        .args(["--assets", "20", "--interval", "1", "--duration", "3", "--addresses", "2", "--fail-fraction", "0.5"])
        .args(["--statusd", env!("CARGO_BIN_EXE_statusd")])
        .output()
        .expect("run statusd-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    let line: Value = serde_json::from_str(lines[0]).expect("JSON");
    for field in [
        "probes_expected",
        "probes_done",
        "probes_ok",
        "cpu_ms_per_1000_probes",
        "rss_peak_mib",
        "rss_final_mib",
        "gap_deviation_p50_ms",
        "gap_deviation_p99_ms",
        "schedule_lag_p99_s",
        "rows_stored",
        "time_to_ready_s",
        "api_asset_p99_ms",
    ] {
        assert!(line.get(field).is_some_and(|v| !v.is_null()), "{field} in {line}");
    }
    let number = |field: &str| line[field].as_f64().unwrap_or(0.0);
    assert!(number("probes_done") > 0.0 && number("probes_ok") > 0.0, "{line}");
    assert!(number("probes_ok") < number("probes_done"), "half the targets failed half-way: {line}");
    assert!(number("rss_peak_mib") > 0.0 && number("rows_stored") > 0.0, "{line}");
}
