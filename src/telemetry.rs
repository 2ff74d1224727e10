//! Logs (tracing), metrics (Prometheus text on `/metrics`) and panic reporting.
//!
//! The tracing subscriber, the metrics recorder and the panic hook are process-wide: the first
//! statusd instance of a process installs them and later ones (tests start many) share them.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// Every metric statusd exports, in one place, so dashboards and code cannot drift apart.
pub mod names {
    pub const PROBE_TOTAL: &str = "statusd_probe_total";
    pub const PROBE_DURATION_SECONDS: &str = "statusd_probe_duration_seconds";
    pub const ASSET_UP: &str = "statusd_asset_up";
    pub const ASSET_DEGRADED: &str = "statusd_asset_degraded";
    pub const ASSET_FLAPPING: &str = "statusd_asset_flapping";
    pub const TLS_CERT_EXPIRY_SECONDS: &str = "statusd_tls_cert_expiry_seconds";
    pub const INCIDENTS_OPEN: &str = "statusd_incidents_open";
    pub const CLUSTER_MEMBERS: &str = "statusd_cluster_members";
    pub const CLUSTER_ASSETS_OWNED: &str = "statusd_cluster_assets_owned";
    pub const CLUSTER_LEASE_TAKEOVERS_TOTAL: &str = "statusd_cluster_lease_takeovers_total";
    pub const NOTIFICATIONS_TOTAL: &str = "statusd_notifications_total";
    pub const NOTIFICATIONS_RATE_LIMITED_TOTAL: &str = "statusd_notifications_rate_limited_total";
    pub const NOTIFICATION_TEMPLATE_ERRORS_TOTAL: &str = "statusd_notification_template_errors_total";
    pub const NOTIFICATIONS_DUPLICATE_TOTAL: &str = "statusd_notifications_duplicate_total";
    pub const ACTOR_RESTARTS_TOTAL: &str = "statusd_actor_restarts_total";
    pub const CONFIG_RELOADS_TOTAL: &str = "statusd_config_reloads_total";
    pub const SCHEDULE_LAG_SECONDS: &str = "statusd_schedule_lag_seconds";
    pub const PROBE_LAST_DURATION_SECONDS: &str = "statusd_probe_last_duration_seconds";
    pub const PROBES_SKIPPED_TOTAL: &str = "statusd_probes_skipped_total";
    pub const PERSISTENCE_QUEUE_DEPTH: &str = "statusd_persistence_queue_depth";
    pub const PERSISTENCE_DROPPED_TOTAL: &str = "statusd_persistence_dropped_total";
    pub const PERSISTENCE_REJECTED_TOTAL: &str = "statusd_persistence_rejected_total";
    pub const TASK_PANICS_TOTAL: &str = "statusd_task_panics_total";
    pub const HTTP_REQUESTS_TOTAL: &str = "statusd_http_requests_total";
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "statusd_http_request_duration_seconds";
    pub const HTTP_PANICS_TOTAL: &str = "statusd_http_panics_total";
    pub const SQLITE_MEMORY_BYTES: &str = "statusd_sqlite_memory_bytes";
    pub const BUILD_INFO: &str = "statusd_build_info";
    pub const SLA_ERROR_BUDGET_REMAINING_RATIO: &str = "statusd_sla_error_budget_remaining_ratio";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "invalid log level {level:?}: {reason} (use error, warn, info, debug, trace or a filter like \"statusd=debug,info\")"
    )]
    LogLevel { level: String, reason: String },
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
}

/// Parses a level or a tracing filter (`debug`, `statusd=debug,warn`).
pub fn log_filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    let invalid =
        |e: &dyn std::fmt::Display| TelemetryError::LogLevel { level: level.to_string(), reason: e.to_string() };
    // EnvFilter reads a bare word as a target to log at every level: "loud" would be accepted
    // and silence everything else. A bare directive must be a level.
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains(['=', '[']) && directive.parse::<tracing_subscriber::filter::LevelFilter>().is_err() {
            return Err(invalid(&format!("{directive:?} is not a level")));
        }
    }
    let filter = EnvFilter::builder().parse(level).map_err(|e| invalid(&e))?;
    if level.contains("ractor") {
        return Ok(filter);
    }
    // ractor wraps every actor in an INFO span named by its numeric id, which would prefix each
    // line with noise; our events name their actor themselves. Its warnings still come through.
    let quiet_ractor = "ractor=warn".parse().map_err(|e| invalid(&e))?;
    Ok(filter.add_directive(quiet_ractor))
}

/// Changes the level (or filter) of the running process's logs.
type LevelHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

static LEVEL: OnceLock<LevelHandle> = OnceLock::new();

/// Keeps the log writer's thread running; dropping it writes out what is still buffered. Keep it
/// until the process is done logging.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: tracing_appender::non_blocking::WorkerGuard,
}

/// Lines the log writer's buffer holds before it drops them. Its ring of slots is allocated
/// and written in full at start: `tracing-appender`'s default, 128,000 lines, keeps 4 MB
/// resident for good. 16,384 lines are still more than a second and a half of one line per
/// probe at 10,000 probes a second, while the writer thread empties it in milliseconds.
const LOG_BUFFER_LINES: usize = 16_384;

/// Whether log lines may carry colour codes (ANSI escapes): only when standard output is a
/// terminal and `NO_COLOR` is unset or empty (<https://no-color.org>). tracing-subscriber's
/// default looks at `NO_COLOR` only, so a log sent to a file, a pipe, journald or `docker logs`
/// got `ESC[2m`-style codes around every timestamp, level and field.
fn colour_on_stdout() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Installs the log subscriber and the panic hook, once per process; the guard comes back to
/// the caller that installed the subscriber (None for later callers in the same process).
///
/// Lines are handed to a writer thread (`tracing-appender`'s non-blocking writer), so logging
/// never blocks a runtime thread on `write(2)`: at 10,000 probes a second that would be 10,000
/// blocking writes. If the thread falls behind by more than its buffer ([`LOG_BUFFER_LINES`]),
/// lines are dropped rather than slowing statusd down.
pub fn init_logging(format: LogFormat, level: &str) -> Result<Option<LogGuard>, TelemetryError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = log_filter(level)?;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .lossy(true)
        .finish(std::io::stdout());
    let output = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(colour_on_stdout());
    let installed = match format {
        LogFormat::Pretty => tracing_subscriber::registry().with(filter).with(output.with_target(false)).try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(output.json().flatten_event(true).with_current_span(true))
            .try_init(),
    };
    install_panic_hook();
    // An error only means a subscriber is already installed (another instance in this process).
    if installed.is_err() {
        return Ok(None);
    }
    let _ = LEVEL.set(handle);
    Ok(Some(LogGuard { _writer: guard }))
}

/// Applies a new log level or filter to the running process.
pub fn set_log_level(level: &str) -> Result<(), TelemetryError> {
    let filter = log_filter(level)?;
    let handle = LEVEL.get().ok_or_else(|| TelemetryError::LogLevel {
        level: level.to_string(),
        reason: "logging was not set up by statusd".into(),
    })?;
    handle.reload(filter).map_err(|e| TelemetryError::LogLevel { level: level.to_string(), reason: e.to_string() })
}

/// Panics become structured error events with their message and location; ractor then turns
/// them into supervision events and the Supervisor restarts the actor.
fn install_panic_hook() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = panic_message(info.payload());
            let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
            let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
            let backtrace = std::backtrace::Backtrace::capture();
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                tracing::error!(panic.message = %message, panic.location = %location, thread, %backtrace, "panic: {message}");
            } else {
                tracing::error!(panic.message = %message, panic.location = %location, thread, "panic: {message}");
            }
        }));
    });
}

/// The exposition text without the series of the given assets: lines whose `asset` label is one
/// of them, or whose `actor` label is `asset:<id>` of one. Asset ids are a safe alphabet (no
/// quote, no backslash: see config validation), so a label value ends at the next quote.
pub fn without_assets(text: &str, retired: &HashSet<String>) -> String {
    let label = |line: &str, name: &str| -> Option<String> {
        let start = line.find(name)? + name.len();
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_string())
    };
    let mut kept = String::with_capacity(text.len());
    for line in text.lines() {
        let of_retired = !line.starts_with('#')
            && (label(line, "asset=\"").is_some_and(|id| retired.contains(&id))
                || label(line, "actor=\"asset:").is_some_and(|id| retired.contains(&id)));
        if !of_retired {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

/// The message a panic was raised with (`panic!("…")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> Result<PrometheusHandle, TelemetryError> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
            let lag = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(names::PROBE_DURATION_SECONDS.into()), &seconds)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(names::HTTP_REQUEST_DURATION_SECONDS.into()), &seconds)
                })
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::SCHEDULE_LAG_SECONDS.into()), &lag))
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())?;
            describe();
            metrics::gauge!(names::BUILD_INFO, "version" => crate::VERSION, "commit" => crate::COMMIT).set(1.0);
            register_process_series();
            // Upkeep drains histogram buffers; without it their memory grows without bound.
            // A thread, not a task: it must outlive any one tokio runtime of the process.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(handle)
        })
        .clone()
        .map_err(TelemetryError::Metrics)
}

/// The series with no per-asset labels exist from the start, at zero, so that alerts such as
/// `increase(statusd_persistence_dropped_total[10m]) > 0` have something to evaluate.
fn register_process_series() {
    metrics::counter!(names::PERSISTENCE_DROPPED_TOTAL).increment(0);
    metrics::counter!(names::PERSISTENCE_REJECTED_TOTAL).increment(0);
    metrics::counter!(names::HTTP_PANICS_TOTAL).increment(0);
    for result in ["success", "error"] {
        metrics::counter!(names::CONFIG_RELOADS_TOTAL, "result" => result).increment(0);
    }
    metrics::gauge!(names::PERSISTENCE_QUEUE_DEPTH).set(0.0);
    metrics::gauge!(names::INCIDENTS_OPEN).set(0.0);
    metrics::gauge!(names::CLUSTER_MEMBERS).set(0.0);
    metrics::gauge!(names::CLUSTER_ASSETS_OWNED).set(0.0);
    metrics::counter!(names::CLUSTER_LEASE_TAKEOVERS_TOTAL).increment(0);
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::PROBE_TOTAL, "Probes run, by asset and result (success or failure).");
    describe_histogram!(
        names::PROBE_DURATION_SECONDS,
        Unit::Seconds,
        "How long probes took, by asset (by probe type with [metrics] per_asset = \"summary\")."
    );
    describe_gauge!(
        names::PROBE_LAST_DURATION_SECONDS,
        Unit::Seconds,
        "How long the asset's last probe took ([metrics] per_asset = \"summary\" only)."
    );
    describe_gauge!(names::ASSET_UP, "1 while the asset is up, 0 while it is down.");
    describe_gauge!(
        names::ASSET_DEGRADED,
        "1 while the asset is up but degraded (slow, or against degradedConditions), else 0."
    );
    describe_gauge!(
        names::ASSET_FLAPPING,
        "1 while the flap breaker holds the asset (its state changes too often to report each change)."
    );
    describe_gauge!(
        names::TLS_CERT_EXPIRY_SECONDS,
        "Seconds until the earliest certificate expiry seen by the asset's last probe (negative once expired)."
    );
    describe_gauge!(names::INCIDENTS_OPEN, "Incidents currently open.");
    describe_gauge!(names::CLUSTER_MEMBERS, "Cluster mode: members whose heartbeat is younger than the lease.");
    describe_gauge!(
        names::CLUSTER_ASSETS_OWNED,
        "Cluster mode: assets whose lease this replica holds (it probes them)."
    );
    describe_counter!(
        names::CLUSTER_LEASE_TAKEOVERS_TOTAL,
        "Cluster mode: expired leases of other replicas this one took over."
    );
    describe_counter!(names::NOTIFICATIONS_TOTAL, "Notifications by channel, event and result (sent or failed).");
    describe_counter!(
        names::NOTIFICATIONS_RATE_LIMITED_TOTAL,
        "Deliveries a channel refused with a rate limit (429, or 503 with Retry-After); each is sent again after the wait."
    );
    describe_counter!(
        names::NOTIFICATION_TEMPLATE_ERRORS_TOTAL,
        "Templates that failed to render, by channel; the built-in message was sent instead."
    );
    describe_counter!(
        names::NOTIFICATIONS_DUPLICATE_TOTAL,
        "Notifications decided again with an outbox key already decided (incident, event, channel, tier): not sent twice."
    );
    describe_counter!(names::ACTOR_RESTARTS_TOTAL, "Actor restarts after a failure, by actor.");
    describe_counter!(names::CONFIG_RELOADS_TOTAL, "Config reloads by result (success, or error when refused).");
    describe_histogram!(
        names::SCHEDULE_LAG_SECONDS,
        Unit::Seconds,
        "How late probes started after they were due (waiting for a worker)."
    );
    describe_counter!(
        names::PROBES_SKIPPED_TOTAL,
        "Ticks skipped because the previous probe of the asset was still running."
    );
    describe_gauge!(names::PERSISTENCE_QUEUE_DEPTH, "Results and incident changes waiting to be written.");
    describe_counter!(names::PERSISTENCE_DROPPED_TOTAL, "Probe results dropped because the write buffer was full.");
    describe_counter!(
        names::PERSISTENCE_REJECTED_TOTAL,
        "Probe results the database refused for good (a constraint, an encoding); each is logged with its asset."
    );
    describe_counter!(
        names::TASK_PANICS_TOTAL,
        "Panics caught inside tasks that actors spawn, by actor and task (probe, delivery, write, retention)."
    );
    describe_counter!(names::HTTP_REQUESTS_TOTAL, "API requests by method, route template and status.");
    describe_histogram!(names::HTTP_REQUEST_DURATION_SECONDS, Unit::Seconds, "API request latency by route template.");
    describe_counter!(names::HTTP_PANICS_TOTAL, "API handlers that panicked (answered 500).");
    describe_gauge!(
        names::SQLITE_MEMORY_BYTES,
        "Memory SQLite holds in this process (page caches, prepared statements), with the SQLite store."
    );
    describe_gauge!(
        names::SLA_ERROR_BUDGET_REMAINING_RATIO,
        "Error budget left this UTC month, by asset: remaining / allowed downtime (1 untouched, 0 spent, below 0 breached)."
    );
    describe_gauge!(names::BUILD_INFO, "Always 1; the labels say which build is running.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_of_retired_assets_are_left_out() {
        let text = "# TYPE statusd_asset_up gauge\nstatusd_asset_up{asset=\"old\"} 1\nstatusd_asset_up{asset=\"older-not\"} 1\n\
                    statusd_actor_restarts_total{actor=\"asset:old\"} 0\nstatusd_actor_restarts_total{actor=\"incidents\"} 0\n";
        let retired = HashSet::from(["old".to_string()]);
        assert_eq!(
            without_assets(text, &retired),
            "# TYPE statusd_asset_up gauge\nstatusd_asset_up{asset=\"older-not\"} 1\n\
             statusd_actor_restarts_total{actor=\"incidents\"} 0\n"
        );
    }

    #[test]
    fn levels_and_filters_are_accepted_and_bare_words_that_are_not_levels_are_refused() {
        for good in ["debug", "INFO", "off", "statusd=debug,warn", "warn,statusd::api=trace", "sqlx=warn, info"] {
            assert!(log_filter(good).is_ok(), "{good}");
        }
        for bad in ["loud", "debug,loud", "statusd=loudest", "statusd=debug,verbose"] {
            let error = log_filter(bad).expect_err(bad).to_string();
            assert!(error.contains(&format!("invalid log level {bad:?}")), "{error}");
        }
    }
}
