//! `--monitor blackbox`: the same load on the stack statusd is compared with, Prometheus
//! scraping blackbox_exporter's `/probe` once per asset and interval (the multi-target exporter
//! pattern of blackbox_exporter's README), measured the same way: both programs are children of
//! the tool, their CPU and memory read from `/proc` and summed, over the same window of the same
//! target. So the comparison in the README can be run again on any day, beside statusd's, and
//! the ratio of the two is read on one machine in one state (this machine's speed drifts by half
//! from one day to another).
//!
//! A probe is one scrape of `/probe?target=URL&module=http_2xx`: done when Prometheus recorded
//! its `up` sample (a scrape that timed out counts, with `up` 0), OK when the sample of
//! `probe_success` it brought back is 1. Both are counted by Prometheus' own query API over the
//! window (`count_over_time`, `sum_over_time`), at its end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Args, NotListening, Target, cpu_seconds, percentile, port_once_listening, rss_mib, stop};

/// The module every asset's scrape names: a GET whose answer must be 200, over IPv4 (the
/// target listens on 127.0.0.K), as statusd's assets of the load expect.
const MODULE: &str = "http_2xx";

/// The Prometheus job of the assets' scrapes.
const JOB: &str = "load";

/// A program of the stack, started and stopped by the tool.
struct Program {
    name: &'static str,
    child: Child,
    pid: i32,
    /// Where its output goes, read back into the error when it fails.
    log: PathBuf,
}

impl Program {
    /// An error if it has exited, with what it logged.
    fn exited(&mut self, before: &str) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited ({status}) {before}; it logged:\n{}", self.name, self.said())),
            Err(error) => Err(format!("{}: {error}", self.name)),
        }
    }

    fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// `name` if it is a path, else the first directory of `PATH` that holds it.
fn on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|path| path.is_file())
}

/// The blackbox_exporter binary: `--blackbox-exporter`, else upstream's name on `PATH`, else
/// Debian's (`prometheus-blackbox-exporter`).
fn blackbox_binary(args: &Args) -> Result<PathBuf, String> {
    match &args.blackbox_exporter {
        Some(path) => Ok(path.clone()),
        None => on_path("blackbox_exporter").or_else(|| on_path("prometheus-blackbox-exporter")).ok_or_else(|| {
            "--monitor blackbox: neither blackbox_exporter nor prometheus-blackbox-exporter is on PATH \
             (apt-get install prometheus-blackbox-exporter, or --blackbox-exporter PATH)"
                .to_string()
        }),
    }
}

/// Starts `binary` with `args`, its output to `log` in the run's directory (read back when it
/// fails to start), and waits (up to 60 s) until it listens on loopback.
async fn start(
    name: &'static str,
    binary: &Path,
    args: &[String],
    log: &Path,
) -> Result<(Program, u16), Box<dyn std::error::Error>> {
    let output = std::fs::File::create(log)?;
    let child = Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(output)
        .spawn()
        .map_err(|e| format!("starting {name} ({}): {e}", binary.display()))?;
    let pid = i32::try_from(child.id())?;
    let mut program = Program { name, child, pid, log: log.to_path_buf() };
    let binary = binary.display();
    match port_once_listening(&mut program.child, pid, Duration::from_secs(60)).await {
        Ok(port) => Ok((program, port)),
        Err(NotListening::Exited(status)) => {
            Err(format!("{name} ({binary}) exited ({status}) before it listened; it logged:\n{}", program.said())
                .into())
        }
        Err(NotListening::Unwaitable(error)) => Err(format!("{name} ({binary}): {error}").into()),
        Err(NotListening::TimedOut) => {
            Err(format!("{name} ({binary}) did not listen within 60 s; it logged:\n{}", program.said()).into())
        }
    }
}

/// The first line of `binary --version` (both programs print it to stderr), for the JSON line.
fn version(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = if output.stderr.is_empty() { output.stdout } else { output.stderr };
    String::from_utf8_lossy(&text).lines().next().map(str::to_string)
}

/// blackbox_exporter's configuration (JSON is YAML): one HTTP module with the assets' timeout.
fn blackbox_config(timeout_s: u64) -> Value {
    json!({"modules": {MODULE: {
        "prober": "http",
        "timeout": format!("{timeout_s}s"),
        "http": {"valid_status_codes": [200], "preferred_ip_protocol": "ip4", "ip_protocol_fallback": false},
    }}})
}

/// Prometheus' configuration: one job scraping blackbox_exporter's `/probe` once per asset URL
/// and interval (relabelled from the target list as blackbox_exporter's README shows).
fn prometheus_config(urls: &[String], interval_s: u64, blackbox: u16) -> Value {
    json!({
        "global": {"scrape_interval": format!("{interval_s}s"), "scrape_timeout": format!("{interval_s}s")},
        "scrape_configs": [{
            "job_name": JOB,
            "metrics_path": "/probe",
            "params": {"module": [MODULE]},
            "static_configs": [{"targets": urls}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": format!("127.0.0.1:{blackbox}")},
            ],
        }],
    })
}

/// The value of a PromQL query returning one number (`sum(…)`), evaluated at `at` (Unix seconds).
async fn query(http: &reqwest::Client, base: &str, promql: &str, at: f64) -> Result<f64, String> {
    let form = serde_urlencoded::to_string([("query", promql.to_string()), ("time", format!("{at:.3}"))])
        .map_err(|e| format!("{promql}: {e}"))?;
    let url = format!("{base}/api/v1/query?{form}");
    let answer: Value = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url} ({promql}): {e}"))?
        .json()
        .await
        .map_err(|e| format!("GET {url} ({promql}): {e}"))?;
    let result = &answer["data"]["result"];
    match result.as_array().map(Vec::as_slice) {
        // No series at all: nothing was scraped.
        Some([]) => Ok(0.0),
        Some([one]) => {
            one["value"][1].as_str().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{promql}: {answer}"))
        }
        _ => Err(format!("{promql}: not one value: {answer}")),
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Runs the load on Prometheus and blackbox_exporter against the target listening on `port`,
/// with the run's files in `dir`; the JSON line, with the fields statusd's line has where they
/// mean the same.
pub async fn measure(
    args: &Args,
    target: &Arc<Target>,
    port: u16,
    dir: &Path,
) -> Result<Value, Box<dyn std::error::Error>> {
    let prometheus_binary =
        args.prometheus.clone().or_else(|| on_path("prometheus")).ok_or(
            "--monitor blackbox: prometheus is not on PATH (apt-get install prometheus, or --prometheus PATH)",
        )?;
    let blackbox_binary = blackbox_binary(args)?;
    let interval_s = args.interval.max(1);
    let interval = Duration::from_secs(interval_s);
    let addresses = usize::from(args.addresses.max(1));
    let urls: Vec<String> =
        (0..args.assets).map(|i| format!("http://127.0.0.{}:{port}/a/{i}", i % addresses + 1)).collect();

    let started = Instant::now();
    let blackbox_file = dir.join("blackbox.yml");
    std::fs::write(&blackbox_file, blackbox_config(interval_s.clamp(1, 5)).to_string())?;
    let (mut blackbox, blackbox_port) = start(
        "blackbox_exporter",
        &blackbox_binary,
        &[
            format!("--config.file={}", blackbox_file.display()),
            "--web.listen-address=127.0.0.1:0".to_string(),
            "--log.level=warn".to_string(),
        ],
        &dir.join("blackbox.log"),
    )
    .await?;
    let prometheus_file = dir.join("prometheus.yml");
    std::fs::write(&prometheus_file, prometheus_config(&urls, interval_s, blackbox_port).to_string())?;
    let (mut prometheus, prometheus_port) = start(
        "prometheus",
        &prometheus_binary,
        &[
            format!("--config.file={}", prometheus_file.display()),
            format!("--storage.tsdb.path={}", dir.join("prometheus").display()),
            "--web.listen-address=127.0.0.1:0".to_string(),
            "--log.level=warn".to_string(),
        ],
        &dir.join("prometheus.log"),
    )
    .await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let base = format!("http://127.0.0.1:{prometheus_port}");
    // Ready: every asset scraped once. Prometheus hands the targets it discovered to its scrape
    // loops every 5 s (its discovery manager's batching), so its own `/-/ready` comes first.
    let ready = format!("count(up{{job=\"{JOB}\"}})");
    loop {
        if query(&http, &base, &ready, unix_now()).await.is_ok_and(|scraped| scraped >= args.assets as f64) {
            break;
        }
        prometheus.exited("before every asset was scraped")?;
        blackbox.exited("before every asset was scraped")?;
        if started.elapsed() > Duration::from_secs(180) {
            return Err(format!("prometheus had not scraped every asset within 180 s ({ready})").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_s = started.elapsed().as_secs_f64();
    // One interval for the first scrapes (spread over it by Prometheus) to have happened.
    tokio::time::sleep(interval).await;

    let programs = [&prometheus, &blackbox];
    let cpu_of = |program: &Program| cpu_seconds(program.pid).ok_or(format!("reading {}'s CPU time", program.name));
    let cpu_before: Vec<f64> = programs.iter().map(|p| cpu_of(p)).collect::<Result<_, _>>()?;
    let own_pid = i32::try_from(std::process::id())?;
    let tool_before = cpu_seconds(own_pid).ok_or("reading the tool's own CPU time")?;
    let (window_start, from) = (Instant::now(), unix_now());
    target.hold_window(args).await;
    let to = unix_now();
    let cpu_window = window_start.elapsed().as_secs_f64();
    let cpu_after: Vec<f64> = programs.iter().map(|p| cpu_of(p)).collect::<Result<_, _>>()?;
    let tool_cpu = cpu_seconds(own_pid).ok_or("reading the tool's own CPU time")? - tool_before;
    let mut memory = Vec::new();
    for program in programs {
        memory.push(rss_mib(program.pid).ok_or(format!("reading {}'s memory", program.name))?);
    }
    // A scrape's samples carry its start time and are stored when it ends: the last scrapes of
    // the window are in once a scrape timeout (the interval) has passed.
    tokio::time::sleep(interval + Duration::from_millis(500)).await;
    let seconds = (to - from).round().max(1.0);
    let done = query(&http, &base, &format!("sum(count_over_time(up{{job=\"{JOB}\"}}[{seconds}s]))"), to).await?;
    let ok =
        query(&http, &base, &format!("sum(sum_over_time(probe_success{{job=\"{JOB}\"}}[{seconds}s]))"), to).await?;

    let each = |values: Vec<f64>| -> Value {
        let mut by_name = serde_json::Map::new();
        for (program, value) in programs.iter().zip(values) {
            by_name.insert(program.name.to_string(), json!((value * 1000.0).round() / 1000.0));
        }
        Value::Object(by_name)
    };
    let cpu: Vec<f64> = cpu_after.iter().zip(&cpu_before).map(|(after, before)| after - before).collect();
    let cpu_total: f64 = cpu.iter().sum();
    let mib = |value: f64| (value * 10.0).round() / 10.0;
    let rate = done / seconds;
    let mut deviations = std::mem::take(&mut *target.deviations.lock());
    let ms = |micros: Option<u64>| micros.map(|m| m as f64 / 1000.0);
    let mut line = json!({
        "monitor": "prometheus+blackbox_exporter",
        "versions": [version(&prometheus_binary), version(&blackbox_binary)],
        "assets": args.assets,
        "asset_type": "http",
        "interval_s": interval_s,
        "window_s": seconds,
        "addresses": addresses,
        "fail_fraction": args.fail_fraction,
        "time_to_ready_s": (ready_s * 100.0).round() / 100.0,
        "probes_expected": (args.assets as f64 * seconds / interval_s as f64).round(),
        "probes_done": done,
        "probes_ok": ok,
        "probes_per_s": rate.round(),
        "cpu_s": (cpu_total * 1000.0).round() / 1000.0,
        "cpu_s_each": each(cpu),
        "cpu_ms_per_1000_probes": if done > 0.0 {
            (cpu_total * 1_000_000.0 / (rate * cpu_window) * 10.0).round() / 10.0
        } else {
            0.0
        },
        "tool_cpu_s": (tool_cpu * 1000.0).round() / 1000.0,
        // Sums of the two programs' (each one's peak, at whatever moment it came).
        "rss_peak_mib": mib(memory.iter().map(|m| m.1).sum()),
        "rss_final_mib": mib(memory.iter().map(|m| m.0).sum()),
        "rss_anon_final_mib": mib(memory.iter().map(|m| m.2).sum()),
        "rss_final_mib_each": each(memory.iter().map(|m| mib(m.0)).collect()),
        "gap_deviation_p50_ms": ms(percentile(&mut deviations, 0.50)),
        "gap_deviation_p99_ms": ms(percentile(&mut deviations, 0.99)),
    });
    let stopped = [stop(&mut prometheus.child), stop(&mut blackbox.child)];
    line["stopped_cleanly"] = json!(stopped.iter().all(|s| s.clean));
    Ok(line)
}
