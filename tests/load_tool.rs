//! A small run of `statusd-load`, so that the tool the README's performance numbers come from
//! cannot rot: it starts statusd as a child, loads it, and prints one JSON line with every field.
//! Behaviour only: the numbers themselves are measured by people, with the README's commands.

use std::process::Command;

use serde_json::Value;

/// Runs the tool with `args` (split at spaces) against this build's statusd (unless it measures
/// the peer); its one JSON line, once it exited 0.
fn run_load_tool(args: &str) -> Value {
    let mut tool = Command::new(env!("CARGO_BIN_EXE_statusd-load"));
    tool.args(args.split_whitespace());
    if !args.contains("--monitor blackbox") {
        tool.args(["--statusd", env!("CARGO_BIN_EXE_statusd")]);
    }
    let output = tool.output().expect("run statusd-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).expect("JSON")
}

#[test]
fn the_load_tool_runs_statusd_and_prints_one_line_of_measurements() {
    let line = run_load_tool("--assets 20 --interval 1 --duration 3 --addresses 2 --fail-fraction 0.5 --history 30");
    for field in [
        "probes_expected",
        "probes_done",
        "probes_ok",
        "cpu_ms_per_1000_probes",
        "rss_peak_mib",
        "rss_final_mib",
        "rss_anon_final_mib",
        "gap_deviation_p50_ms",
        "gap_deviation_p99_ms",
        "schedule_lag_p99_s",
        "rows_stored",
        "time_to_ready_s",
        "api_asset_p99_ms",
        "sqlite_cpu_s",
        "tool_cpu_s",
    ] {
        assert!(line.get(field).is_some_and(|v| !v.is_null()), "{field} in {line}");
    }
    let number = |field: &str| line[field].as_f64().unwrap_or(0.0);
    assert!(number("probes_done") > 0.0 && number("probes_ok") > 0.0, "{line}");
    assert!(number("probes_ok") < number("probes_done"), "half the targets failed half-way: {line}");
    assert!(number("rss_peak_mib") > 0.0 && number("rows_stored") > 0.0, "{line}");
    assert!(number("rss_anon_final_mib") > 0.0 && number("rss_anon_final_mib") <= number("rss_final_mib"), "{line}");
    // 30 s of history, one result a second for each of the 20 assets, stored before the start.
    assert_eq!(line["history_rows"], 600, "{line}");
    // SQLite's threads are part of statusd (60 rows may take less than a clock tick of them).
    assert!(number("sqlite_cpu_s") >= 0.0 && number("sqlite_cpu_s") <= number("cpu_s"), "{line}");
    // Stopped with SIGTERM, statusd exits 0 on its own (a profile-guided build's training needs
    // that exit to write its counts: scripts/pgo-build).
    assert_eq!(line["stopped_cleanly"], true, "{line}");
    assert!(number("stop_s") >= 0.0, "{line}");
}

/// `--asset-type tcp`: every asset a TCP probe of the target's addresses, all of them up. The
/// target cannot tell TCP assets apart, so it times no gaps and cannot fail one.
#[test]
fn the_load_tool_loads_statusd_with_tcp_assets() {
    let line = run_load_tool("--asset-type tcp --assets 20 --interval 1 --duration 2 --addresses 2");
    assert_eq!(line["asset_type"], "tcp", "{line}");
    let number = |field: &str| line[field].as_f64().unwrap_or_else(|| panic!("{field} in {line}"));
    assert!(number("probes_done") > 0.0 && number("probes_ok") == number("probes_done"), "{line}");
    assert!(line["gap_deviation_p99_ms"].is_null(), "no HTTP request to time: {line}");
    assert_eq!(line["stopped_cleanly"], true, "{line}");

    let refused = Command::new(env!("CARGO_BIN_EXE_statusd-load"))
        .args(["--asset-type", "tcp", "--fail-fraction", "0.5", "--statusd", env!("CARGO_BIN_EXE_statusd")])
        .output()
        .expect("run statusd-load");
    assert!(!refused.status.success(), "TCP assets cannot be made to fail");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--fail-fraction"), "{refused:?}");
}

/// Runs 20 assets of `asset_type` over 2 addresses for 3 s with half the targets failing
/// half-way, and checks what every target that tells its assets apart shows: some probes OK,
/// the failures seen, each asset's gaps timed, statusd stopped cleanly.
fn run_with_half_failing(asset_type: &str) {
    let line = run_load_tool(&format!(
        "--asset-type {asset_type} --assets 20 --interval 1 --duration 3 --addresses 2 --fail-fraction 0.5"
    ));
    assert_eq!(line["asset_type"], asset_type, "{line}");
    let number = |field: &str| line[field].as_f64().unwrap_or_else(|| panic!("{field} in {line}"));
    assert!(number("probes_ok") > 0.0, "the target answers what the assets expect: {line}");
    assert!(number("probes_ok") < number("probes_done"), "half the targets failed half-way: {line}");
    assert!(number("gap_deviation_p99_ms") >= 0.0, "the target times each asset's gaps: {line}");
    assert_eq!(line["stopped_cleanly"], true, "{line}");
}

/// `--asset-type dns`: every asset an A query to the tool's own name server over UDP, which
/// times each asset's gaps from the name asked and answers SERVFAIL for the failing share.
#[test]
fn the_load_tool_loads_statusd_with_dns_assets() {
    run_with_half_failing("dns");
}

/// `--asset-type tls`: every asset a TLS probe sending its own server name to the tool's TLS
/// listener, whose certificate (from a CA the tool made, trusted through `caFile`) is judged;
/// the listener times each asset's gaps from that name and refuses the failing share's
/// handshakes.
#[test]
fn the_load_tool_loads_statusd_with_tls_assets() {
    run_with_half_failing("tls");
}

/// `--asset-type https`: the HTTP probe through the same TLS listener, by IP address (the
/// certificate names the loopback addresses); the failing share answers 500.
#[test]
fn the_load_tool_loads_statusd_with_https_assets() {
    run_with_half_failing("https");
}

/// `--replicas`: several statusd in cluster mode on one PostgreSQL database, each one's CPU and
/// memory, and the database work the coordination costs. Skipped without PostgreSQL, unless
/// `STATUSD_REQUIRE_POSTGRES` says it must run.
#[tokio::test]
async fn the_load_tool_runs_replicas_on_postgres_and_reports_each_and_the_database() {
    let admin = std::env::var("STATUSD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let Ok(pool) = sqlx::PgPool::connect(&admin).await else {
        assert!(std::env::var_os("STATUSD_REQUIRE_POSTGRES").is_none(), "PostgreSQL is required and not reachable");
        return;
    };
    let database = format!("statusd_load_{}", std::process::id());
    let create = format!("CREATE DATABASE {database}");
    sqlx::query(sqlx::AssertSqlSafe(create)).execute(&pool).await.expect("create the database");
    let server = admin.rsplit_once('/').map_or(admin.as_str(), |(server, _)| server);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_statusd-load"))
        .args(["--assets", "30", "--interval", "1", "--duration", "3", "--replicas", "2", "--history", "10"])
        .args(["--db", &format!("{server}/{database}")])
        .args(["--statusd", env!("CARGO_BIN_EXE_statusd")])
        .output()
        .await
        .expect("run statusd-load");
    let drop = format!("DROP DATABASE {database} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await.expect("drop the database");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let line: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(line["replicas"], 2, "{line}");
    for field in ["cpu_s", "rss_peak_mib", "rss_final_mib"] {
        let each = line[field].as_array().unwrap_or_else(|| panic!("{field}: one value per replica in {line}"));
        assert!(each.len() == 2 && each.iter().all(|v| v.as_f64().is_some_and(|v| v > 0.0)), "{field} in {line}");
    }
    assert!(line["probes_ok"].as_f64().is_some_and(|ok| ok > 0.0), "{line}");
    assert_eq!(line["history_rows"], 300, "10 s of history for 30 assets: {line}");
    assert_eq!(line["stopped_cleanly"], true, "both replicas exit 0 on SIGTERM: {line}");
    // Heartbeats and lease renewals run through the window.
    assert!(line["database"]["coordination_scans_per_s"].as_f64().is_some_and(|n| n > 0.0), "{line}");
    assert!(line["database"]["transactions_per_s"].as_f64().is_some_and(|n| n > 0.0), "{line}");
}

/// Whether `name` is a file in a directory of `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// `--monitor blackbox`: the same load on Prometheus scraping blackbox_exporter, measured the
/// same way, so that the README's comparison can be run again beside statusd's. `.ci/run`
/// installs both from Debian's packages; where they are not installed, this test says SKIPPED.
#[test]
fn the_load_tool_measures_prometheus_and_blackbox_exporter_on_the_same_load() {
    if !on_path("prometheus") || !(on_path("blackbox_exporter") || on_path("prometheus-blackbox-exporter")) {
        eprintln!(
            "SKIPPED: prometheus or blackbox_exporter not on PATH (apt-get install prometheus \
             prometheus-blackbox-exporter); the comparison's test did not run"
        );
        return;
    }
    let line =
        run_load_tool("--monitor blackbox --assets 20 --interval 1 --duration 4 --addresses 2 --fail-fraction 0.5");
    assert_eq!(line["monitor"], "prometheus+blackbox_exporter", "{line}");
    let number = |field: &str| line[field].as_f64().unwrap_or_else(|| panic!("{field} in {line}"));
    // Every asset scraped once per second of the window (Prometheus keeps its interval exactly).
    assert!(number("probes_done") >= 0.9 * number("probes_expected"), "{line}");
    assert!(number("probes_ok") > 0.0, "the target answers 200: {line}");
    assert!(number("probes_ok") < number("probes_done"), "half the targets failed half-way: {line}");
    assert!(number("gap_deviation_p99_ms") >= 0.0, "the target times each asset's gaps: {line}");
    for program in ["prometheus", "blackbox_exporter"] {
        assert!(line["cpu_s_each"][program].as_f64().is_some_and(|cpu| cpu > 0.0), "{program}'s CPU: {line}");
        assert!(line["rss_final_mib_each"][program].as_f64().is_some_and(|rss| rss > 0.0), "{program}: {line}");
    }
    assert!(number("cpu_ms_per_1000_probes") > 0.0 && number("rss_final_mib") > 0.0, "{line}");
    assert_eq!(line["stopped_cleanly"], true, "{line}");
}

/// Options that cannot go together are refused before anything starts, each by a message that
/// names the option given and its value, with exit status 1 and nothing on stdout: an option
/// that would be ignored (a `--prometheus` without `--monitor blackbox`) is refused too, so that
/// nobody reads a line measured otherwise than they asked.
#[test]
fn the_load_tool_refuses_options_that_cannot_go_together_naming_the_one_given() {
    let cases = [
        ("--monitor blackbox --asset-type dns", "--asset-type dns: --monitor blackbox"),
        ("--monitor blackbox --db postgres://localhost/x", "--db postgres://localhost/x: --monitor blackbox"),
        ("--monitor blackbox --replicas 2", "--replicas 2: --monitor blackbox"),
        ("--monitor blackbox --history 60", "--history 60: --monitor blackbox"),
        ("--monitor blackbox --statusd /usr/bin/statusd", "--statusd /usr/bin/statusd: --monitor blackbox"),
        ("--prometheus /usr/bin/prometheus", "--prometheus: only with --monitor blackbox"),
        ("--blackbox-exporter /usr/bin/blackbox_exporter", "--blackbox-exporter: only with --monitor blackbox"),
        ("--replicas 2", "--replicas 2: cluster mode needs a PostgreSQL --db"),
        ("--fail-fraction 1.5", "--fail-fraction 1.5: must be from 0 to 1"),
        ("--asset-type tcp --fail-fraction 0.5", "--fail-fraction: TCP assets cannot be made to fail"),
    ];
    for (args, message) in cases {
        let refused =
            Command::new(env!("CARGO_BIN_EXE_statusd-load")).args(args.split_whitespace()).output().expect("run");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{args}: {stderr}");
        assert!(stderr.starts_with(&format!("statusd-load: {message}")), "{args}: {stderr}");
        assert!(refused.stdout.is_empty(), "{args}: no line of measurements");
    }
}

/// Stopped by SIGTERM in the middle of a run (an operator, a CI job's timeout), the tool stops
/// the statusd it started and removes the run's directory before it exits: nothing of the run
/// is left running.
#[test]
fn the_load_tool_stopped_by_a_signal_stops_what_it_started() {
    let temp = tempfile::tempdir().expect("a directory for the run's files");
    let tool = Command::new(env!("CARGO_BIN_EXE_statusd-load"))
        .args(["--assets", "5", "--duration", "60", "--statusd", env!("CARGO_BIN_EXE_statusd")])
        .env("TMPDIR", temp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run statusd-load");
    let tool_pid = i32::try_from(tool.id()).expect("a pid");
    // The tool's child that is statusd, once it has opened a socket (running, not starting).
    let statusd = || {
        procfs::process::all_processes()
            .expect("/proc")
            .filter_map(|p| p.ok()?.stat().ok())
            .find(|stat| stat.ppid == tool_pid && stat.comm == "statusd")
            .filter(|stat| {
                let fds = procfs::process::Process::new(stat.pid).and_then(|p| p.fd()).into_iter().flatten();
                fds.filter_map(Result::ok).any(|fd| matches!(fd.target, procfs::process::FDTarget::Socket(_)))
            })
    };
    let waited = std::time::Instant::now();
    let statusd = loop {
        if let Some(stat) = statusd() {
            break stat;
        }
        assert!(waited.elapsed() < std::time::Duration::from_secs(60), "statusd was not started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // SAFETY: kill(2) takes two integers and touches no memory of this process.
    unsafe { libc::kill(tool_pid, libc::SIGTERM) };
    let output = tool.wait_with_output().expect("the tool exits");
    assert!(!output.status.success(), "a run cut short is not a measurement");
    assert!(String::from_utf8_lossy(&output.stderr).contains("stopped by SIGTERM"), "{output:?}");
    assert!(output.stdout.is_empty(), "no JSON line for a run cut short: {output:?}");
    // The same process (pid and start time) is gone, not left running as an orphan.
    let left = procfs::process::Process::new(statusd.pid).ok().and_then(|p| p.stat().ok());
    assert!(left.is_none_or(|stat| stat.starttime != statusd.starttime), "statusd ({}) still runs", statusd.pid);
    let files: Vec<_> = std::fs::read_dir(temp.path()).expect("read the temp dir").collect();
    assert!(files.is_empty(), "the run's directory is removed: {files:?}");
}
