//! `GET /api/sla?from=&to=&tz=&format=json|csv`: per asset, uptime, downtime, incidents, MTTR,
//! MTBF, the target and the error budget over a period (default: the current calendar month).
//!
//! [`report`] reads what the arithmetic needs (incidents, inconclusive results, when assets were
//! created, the maintenance calendar) and hands it to [`crate::sla::figures`]; the badges and the
//! error-budget metric call it too, so all three give the same numbers for the same window.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::query::{Choice, Choices, Params, Timestamp};
use super::{ApiError, ApiState};
use crate::actors::supervisor::SupervisorMsg;
use crate::asset::AssetConfig;
use crate::sla::{Figures, History, Span, figures, month_of};
use crate::telemetry::names;

/// Longest period a report covers: ten years.
const MAX_PERIOD_DAYS: i64 = 3660;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Choices for Format {
    const CHOICES: &'static [(&'static str, Self)] = &[("json", Format::Json), ("csv", Format::Csv)];
}

/// An IANA time zone name, e.g. `Europe/Berlin`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct Zone(pub Tz);

impl TryFrom<String> for Zone {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse().map(Zone).map_err(|_| "must be an IANA time zone name, e.g. Europe/Berlin or UTC")
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlaParams {
    /// RFC 3339 timestamp: start of the period (included); default the start of the current month
    #[param(value_type = Option<String>)]
    from: Option<Timestamp>,
    /// RFC 3339 timestamp: end of the period (excluded); default the start of the next month
    #[param(value_type = Option<String>)]
    to: Option<Timestamp>,
    /// IANA time zone that sets the month's boundaries when from or to is left out; default UTC
    #[param(value_type = Option<String>)]
    tz: Option<Zone>,
    /// json (default) or csv
    #[param(value_type = Option<String>)]
    format: Option<Choice<Format>>,
}

/// One asset's figures over the period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetSla {
    pub asset_id: String,
    pub name: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// `GET /api/sla` as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlaReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The time zone of the month's boundaries.
    pub timezone: String,
    /// When the figures were computed: the period is measured up to here.
    pub generated_at: DateTime<Utc>,
    pub assets: Vec<AssetSla>,
}

/// `GET /api/sla`
#[utoipa::path(get, path = "/api/sla", tag = "sla",
    params(SlaParams),
    responses(
        (status = 200, description = "Per asset: uptime, downtime, incidents, MTTR, MTBF, target, error budget. \
            With format=csv, text/csv with a header row and one row per asset", body = SlaReport),
        (status = 400, description = "A timestamp, time zone or format not understood, or from not before to", body = ErrorBody),
        (status = 503, description = "The database or the supervisor is unavailable", body = ErrorBody),
    ))]
pub async fn sla(State(state): State<ApiState>, Params(params): Params<SlaParams>) -> Result<Response, ApiError> {
    let now = Utc::now();
    let tz = params.tz.map_or(Tz::UTC, |zone| zone.0);
    let month = month_of(now, tz);
    let from = params.from.map_or(month.0, |t| t.0);
    let to = params.to.map_or_else(|| if params.from.is_some() { now } else { month.1 }, |t| t.0);
    if from >= to {
        return Err(ApiError::bad_parameter("to", &to.to_rfc3339(), "to must be after from"));
    }
    if to - from > TimeDelta::days(MAX_PERIOD_DAYS) {
        return Err(ApiError::bad_parameter("to", &to.to_rfc3339(), "the period must be at most 3660 days"));
    }
    let entries = state.ask(SupervisorMsg::Assets).await?;
    let assets: Vec<Arc<AssetConfig>> = entries.into_iter().map(|entry| entry.config).collect();
    let rows = report(&state, &assets, from, to, now).await?;
    let report = SlaReport { from, to, timezone: tz.name().to_string(), generated_at: now, assets: rows };
    match params.format.map_or(Format::Json, |format| format.0) {
        Format::Json => Ok(Json(report).into_response()),
        Format::Csv => {
            let body = csv_of(&report).map_err(|e| ApiError::Unavailable(format!("cannot write the CSV: {e}")))?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
        }
    }
}

/// The columns of the CSV, in order.
pub const CSV_HEADER: [&str; 17] = [
    "assetId",
    "name",
    "from",
    "to",
    "uptimePercent",
    "eligibleSeconds",
    "downtimeSeconds",
    "incidents",
    "mttrSeconds",
    "mtbfSeconds",
    "targetPercent",
    "met",
    "allowedSeconds",
    "usedSeconds",
    "remainingSeconds",
    "remainingRatio",
    "burnRate24h",
];

fn csv_of(report: &SlaReport) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER)?;
    let number = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    for row in &report.assets {
        let f = &row.figures;
        let b = &f.error_budget;
        writer.write_record([
            row.asset_id.clone(),
            row.name.clone(),
            report.from.to_rfc3339(),
            report.to.to_rfc3339(),
            number(f.uptime_percent),
            f.eligible_seconds.to_string(),
            f.downtime_seconds.to_string(),
            f.incidents.to_string(),
            number(f.mttr_seconds),
            number(f.mtbf_seconds),
            f.target_percent.to_string(),
            f.met.to_string(),
            b.allowed_seconds.to_string(),
            b.used_seconds.to_string(),
            b.remaining_seconds.to_string(),
            number(b.remaining_ratio),
            number(b.burn_rate_24h),
        ])?;
    }
    writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// The SLA figures of `assets` over `[from, to)` seen at `now`, in the order given: one store
/// query for incidents, one for inconclusive results (one asset's only, when given one), one
/// for creation times, and the maintenance calendar in memory. The status page may call it too.
pub async fn report(
    state: &ApiState,
    assets: &[Arc<AssetConfig>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<AssetSla>, ApiError> {
    let only = match assets {
        [one] => Some(one.id.as_str()),
        _ => None,
    };
    let incidents = state.store.incident_spans(from, to, only).await?;
    let inconclusive = state.store.inconclusive_results(from, to, only).await?;
    let created: HashMap<String, DateTime<Utc>> = state.store.assets_created().await?.into_iter().collect();
    let calendar = state.services.maintenance.calendar();
    // A window covering many assets is worked out once (cron arithmetic is the dear part).
    let mut occurrences: HashMap<&str, Vec<Span>> = HashMap::new();
    let mut histories: HashMap<&str, History> = assets
        .iter()
        .map(|asset| {
            let mut maintenance = Vec::new();
            for window in calendar.windows_of(&asset.id) {
                let spans = occurrences
                    .entry(window.id())
                    .or_insert_with(|| window.occurrences(from, to).into_iter().map(|o| (o.start, o.end)).collect());
                maintenance.extend_from_slice(spans);
            }
            (asset.id.as_str(), History { since: created.get(&asset.id).copied(), maintenance, ..History::default() })
        })
        .collect();
    for incident in incidents {
        if let Some(history) = histories.get_mut(incident.asset_id.as_str()) {
            history.incidents.push((incident.started_at, incident.ended_at.unwrap_or(now).max(incident.started_at)));
        }
    }
    let intervals: HashMap<&str, u64> = assets.iter().map(|a| (a.id.as_str(), a.interval_seconds)).collect();
    for (asset_id, at) in inconclusive {
        if let (Some(history), Some(interval)) =
            (histories.get_mut(asset_id.as_str()), intervals.get(asset_id.as_str()))
        {
            history.inconclusive.push(inconclusive_span(at, *interval));
        }
    }
    let default_target = state.sla_default_target;
    Ok(assets
        .iter()
        .map(|asset| {
            let history = histories.remove(asset.id.as_str()).unwrap_or_default();
            let target = asset.sla_target.unwrap_or(default_target);
            AssetSla {
                asset_id: asset.id.clone(),
                name: asset.name.clone(),
                figures: figures(&history, from, to, now, target),
            }
        })
        .collect())
}

/// An inconclusive result stands for one probe interval from its time.
fn inconclusive_span(at: DateTime<Utc>, interval_seconds: u64) -> Span {
    let interval = TimeDelta::seconds(i64::try_from(interval_seconds).unwrap_or(i64::MAX).min(86_400));
    (at, at + interval)
}

/// Sets `statusd_sla_error_budget_remaining_ratio{asset}` for the current UTC month; called at
/// every scrape (one report over every asset: three queries). Assets with a target of 100 %
/// have no budget and no series.
pub async fn refresh_budget_metric(state: &ApiState) -> Result<(), ApiError> {
    let now = Utc::now();
    let (from, to) = month_of(now, Tz::UTC);
    let entries = state.ask(SupervisorMsg::Assets).await?;
    let assets: Vec<Arc<AssetConfig>> = entries.into_iter().map(|entry| entry.config).collect();
    for row in report(state, &assets, from, to, now).await? {
        if let Some(ratio) = row.figures.error_budget.remaining_ratio {
            metrics::gauge!(names::SLA_ERROR_BUDGET_REMAINING_RATIO, "asset" => row.asset_id).set(ratio);
        }
    }
    Ok(())
}
