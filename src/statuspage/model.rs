//! What the status page shows, as data: [`StatusReport`] is both the JSON of `GET /api/status`
//! and what the HTML template renders. Built by [`build`] from the live statuses, the cached
//! history, the recent incidents and the maintenance calendar (pure, time passed in).
//!
//! Only public assets appear (`"public": false` leaves an asset off), with their name, their
//! status and numbers: never an address, a header or a probe's details. Incident summaries are
//! the human-readable failure summary with the asset's address, host and path masked (`***`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::history::{AssetHistory, DAYS, History};
use crate::actors::health::StatusName;
use crate::asset::AssetConfig;
use crate::maintenance::Calendar;
use crate::settings::StatusPageSettings;
use crate::store::{Incident, IncidentUpdate};

/// How far back "recent incidents" go.
pub const RECENT_DAYS: i64 = 14;
/// At most this many recent (closed) incidents are listed, newest first.
pub const MAX_RECENT: usize = 100;
/// The group of assets without `metadata.group`.
pub const DEFAULT_GROUP: &str = "Services";

/// The whole page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub title: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub generated_at: DateTime<Utc>,
    /// When the uptime figures, day bars and response times were computed (at most about a
    /// minute before `generatedAt`); statuses are live.
    pub history_at: DateTime<Utc>,
    /// The hour of each asset's first `responseTimeMs` entry (the others follow hourly).
    pub response_times_from: DateTime<Utc>,
    pub overall: Overall,
    /// The banner's words for `overall`.
    pub overall_text: String,
    /// In manifest order of each group's first asset; assets in manifest order.
    pub groups: Vec<Group>,
    /// Open incidents of public assets, newest first.
    pub open_incidents: Vec<IncidentView>,
    /// Maintenance windows covering a public asset: those in force, then those to come, by start.
    pub maintenance: Vec<MaintenanceView>,
    /// Closed incidents of public assets that started or ended in the last 14 days, newest
    /// first, at most 100.
    pub recent_incidents: Vec<IncidentView>,
}

/// The banner. Outages rank first, then degraded, then maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    /// Every public asset is up (or not known yet).
    Operational,
    /// None down; one or more degraded or flapping.
    Degraded,
    /// Some down, fewer than half of those with a known state outside maintenance.
    PartialOutage,
    /// Half or more of them down.
    MajorOutage,
    /// None down or degraded; one or more in maintenance.
    Maintenance,
}

impl Overall {
    pub fn text(self) -> &'static str {
        match self {
            Overall::Operational => "All systems operational",
            Overall::Degraded => "Degraded performance",
            Overall::PartialOutage => "Partial outage",
            Overall::MajorOutage => "Major outage",
            Overall::Maintenance => "Maintenance in progress",
        }
    }

    /// The CSS class of the banner.
    pub fn class(self) -> &'static str {
        match self {
            Overall::Operational => "up",
            Overall::Degraded => "degraded",
            Overall::PartialOutage => "partial",
            Overall::MajorOutage => "down",
            Overall::Maintenance => "maintenance",
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub name: String,
    pub assets: Vec<AssetStatus>,
}

/// One public asset.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetStatus {
    pub id: String,
    pub name: String,
    /// Live, from the asset's actor: the `status` of `GET /api/assets`.
    pub status: StatusName,
    pub since: Option<DateTime<Utc>>,
    #[serde(flatten)]
    #[schema(value_type = HistoryView, inline)]
    pub history: Arc<HistoryView>,
}

/// An asset's numbers as shown, made once per computation of the history (a minute) and shared
/// by every request until the next: the figures, the day cells and the sparkline, and their HTML.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    pub uptime: UptimeFigures,
    /// The last 90 UTC days, oldest first (today last).
    pub days: Vec<DayView>,
    /// Average response time (ms) of each of the last 24 hours, oldest first (the current hour
    /// last); null for an hour without probes.
    pub response_time_ms: Vec<Option<f64>>,
    /// The 90-day bar's text alternative.
    #[serde(skip)]
    pub bar_label: String,
    /// The figures, the sparkline and the bar as HTML (rendered by askama, escaped), filled in by
    /// `render::history_fragment`.
    #[serde(skip)]
    pub html: String,
}

/// Uptime in percent over each window; null without probes in it.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct UptimeFigures {
    #[serde(rename = "last24h")]
    pub last_24h: Option<f64>,
    #[serde(rename = "last30d")]
    pub last_30d: Option<f64>,
    #[serde(rename = "last90d")]
    pub last_90d: Option<f64>,
}

/// One cell of the bar.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayView {
    pub date: NaiveDate,
    pub uptime_percent: Option<f64>,
    /// Incidents of the asset that were open at some time that day.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<Uuid>,
    /// The cell's colour class (`d0` best to `d4` worst, `dn` no data).
    #[serde(skip)]
    pub class: &'static str,
    /// The cell's tooltip: the date, the figure and that day's incidents.
    #[serde(skip)]
    pub tooltip: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentView {
    pub id: Uuid,
    pub asset_id: String,
    pub asset_name: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The human-readable failure summary, the asset's address masked.
    pub summary: String,
    /// Public updates posted by people, oldest first.
    pub updates: Vec<UpdateView>,
}

/// A public update of an incident (`POST /api/incidents/{id}/updates`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateView {
    pub at: DateTime<Utc>,
    /// investigating, identified, monitoring or resolved.
    pub status: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceView {
    pub id: String,
    pub active: bool,
    /// The occurrence in force, or the next one.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Names of the public assets it covers.
    pub assets: Vec<String>,
}

/// A public asset and its live state, as the API handler gathered them.
pub struct Live<'a> {
    pub config: &'a AssetConfig,
    pub status: StatusName,
    pub since: Option<DateTime<Utc>>,
}

/// Everything [`build`] reads.
pub struct Inputs<'a> {
    pub settings: &'a StatusPageSettings,
    /// Public assets only, in manifest order.
    pub assets: Vec<Live<'a>>,
    pub history: &'a History,
    /// Each public asset's numbers as shown, by asset id ([`history_views`]).
    pub views: &'a HashMap<String, Arc<HistoryView>>,
    /// Open incidents and those of the last 14 days (any asset: non-public ones are left out here).
    pub incidents: &'a [Incident],
    pub calendar: &'a Calendar,
    pub now: DateTime<Utc>,
}

/// The page's content.
pub fn build(inputs: Inputs<'_>) -> StatusReport {
    let Inputs { settings, assets, history, views, incidents, calendar, now } = inputs;
    let public: HashMap<&str, &AssetConfig> =
        assets.iter().map(|live| (live.config.id.as_str(), live.config)).collect();
    let overall = overall(assets.iter().map(|live| live.status));

    let mut groups: Vec<Group> = Vec::new();
    for live in &assets {
        let name = group_of(live.config);
        let history = views.get(&live.config.id).cloned().unwrap_or_else(|| {
            // Views are made for every asset asked about; this is a safety net.
            let mut view = history_view(live.config, history);
            view.html = super::render::history_fragment(&view).unwrap_or_default();
            Arc::new(view)
        });
        let asset = AssetStatus {
            id: live.config.id.clone(),
            name: display_name(live.config).to_string(),
            status: live.status,
            since: live.since,
            history,
        };
        match groups.iter_mut().find(|group| group.name == name) {
            Some(group) => group.assets.push(asset),
            None => groups.push(Group { name, assets: vec![asset] }),
        }
    }
    // Assets without a group come last when others have one.
    if groups.len() > 1
        && let Some(index) = groups.iter().position(|group| group.name == DEFAULT_GROUP)
    {
        let mut ungrouped = groups.remove(index);
        ungrouped.name = "Other".into();
        groups.push(ungrouped);
    }

    let view = |incident: &Incident| {
        let config = public.get(incident.asset_id.as_str())?;
        Some(IncidentView {
            id: incident.id,
            asset_id: incident.asset_id.clone(),
            asset_name: display_name(config).to_string(),
            started_at: incident.started_at,
            ended_at: incident.ended_at,
            summary: public_summary(config, &incident.summary),
            updates: Vec::new(),
        })
    };
    let mut open_incidents: Vec<IncidentView> =
        incidents.iter().filter(|incident| incident.ended_at.is_none()).filter_map(view).collect();
    open_incidents.sort_by_key(|incident| std::cmp::Reverse(incident.started_at));
    let recent_since = now - TimeDelta::days(RECENT_DAYS);
    let mut recent_incidents: Vec<IncidentView> = incidents
        .iter()
        .filter(|incident| incident.ended_at.is_some_and(|end| end >= recent_since))
        .filter_map(view)
        .collect();
    recent_incidents.sort_by_key(|incident| std::cmp::Reverse(incident.started_at));
    recent_incidents.truncate(MAX_RECENT);

    StatusReport {
        title: settings.title.clone(),
        description: settings.description.clone(),
        logo_url: settings.logo_url.clone(),
        generated_at: now,
        history_at: history.computed_at,
        response_times_from: history.first_hour,
        overall,
        overall_text: overall.text().to_string(),
        groups,
        open_incidents,
        maintenance: maintenance(calendar, &public, now),
        recent_incidents,
    }
}

/// Adds their public updates (oldest first) to the open and recent incidents.
pub fn attach_updates(report: &mut StatusReport, updates: &[IncidentUpdate]) {
    let mut by_incident: HashMap<Uuid, Vec<UpdateView>> = HashMap::new();
    for update in updates {
        by_incident.entry(update.incident_id).or_default().push(UpdateView {
            at: update.at,
            status: update.status.as_str().to_string(),
            message: update.message.clone(),
        });
    }
    for incident in report.open_incidents.iter_mut().chain(report.recent_incidents.iter_mut()) {
        if let Some(mut updates) = by_incident.remove(&incident.id) {
            updates.sort_by_key(|update| update.at);
            incident.updates = updates;
        }
    }
}

/// The incidents the report lists (open and recent), whose updates it shows.
pub fn listed_incidents(report: &StatusReport) -> Vec<Uuid> {
    report.open_incidents.iter().chain(&report.recent_incidents).map(|incident| incident.id).collect()
}

/// The banner for these statuses.
pub fn overall(statuses: impl IntoIterator<Item = StatusName>) -> Overall {
    let (mut down, mut degraded, mut maintenance, mut known) = (0usize, 0usize, 0usize, 0usize);
    for status in statuses {
        match status {
            StatusName::Down => {
                down += 1;
                known += 1;
            }
            StatusName::Degraded | StatusName::Flapping => {
                degraded += 1;
                known += 1;
            }
            StatusName::Up => known += 1,
            StatusName::Maintenance => maintenance += 1,
            StatusName::Unknown | StatusName::Crashed | StatusName::Inconclusive => {}
        }
    }
    if down > 0 {
        if down * 2 >= known { Overall::MajorOutage } else { Overall::PartialOutage }
    } else if degraded > 0 {
        Overall::Degraded
    } else if maintenance > 0 {
        Overall::Maintenance
    } else {
        Overall::Operational
    }
}

/// The words shown next to a status's colour.
pub fn status_text(status: StatusName) -> &'static str {
    match status {
        StatusName::Up => "Operational",
        StatusName::Down => "Outage",
        StatusName::Degraded => "Degraded",
        StatusName::Flapping => "Unstable",
        StatusName::Maintenance => "Maintenance",
        StatusName::Unknown => "No data yet",
        StatusName::Crashed | StatusName::Inconclusive => "Unknown",
    }
}

/// The colour class of a status.
pub fn status_class(status: StatusName) -> &'static str {
    match status {
        StatusName::Up => "up",
        StatusName::Down => "down",
        StatusName::Degraded | StatusName::Flapping => "degraded",
        StatusName::Maintenance => "maintenance",
        StatusName::Unknown | StatusName::Crashed | StatusName::Inconclusive => "unknown",
    }
}

/// `metadata.group` when it is a non-empty string, else the one default group.
fn group_of(config: &AssetConfig) -> String {
    match config.metadata.get("group").and_then(|group| group.as_str()).map(str::trim) {
        Some(group) if !group.is_empty() => group.to_string(),
        _ => DEFAULT_GROUP.to_string(),
    }
}

fn display_name(config: &AssetConfig) -> &str {
    if config.name.trim().is_empty() { &config.id } else { &config.name }
}

/// A summary fit for the public: the address, its host and path masked, as with `hideAddress`.
pub fn public_summary(config: &AssetConfig, summary: &str) -> String {
    crate::redact::scrub(summary.to_string(), &crate::redact::secrets(&config.address, true))
}

/// The colour class of a day's uptime.
pub fn day_class(percent: Option<f64>) -> &'static str {
    match percent {
        None => "dn",
        Some(p) if p >= 99.95 => "d0",
        Some(p) if p >= 99.0 => "d1",
        Some(p) if p >= 95.0 => "d2",
        Some(p) if p >= 80.0 => "d3",
        Some(_) => "d4",
    }
}

/// `99.95%`, `100%`, or `no data`: two decimals, trailing zeros dropped.
pub fn percent_text(percent: Option<f64>) -> String {
    match percent {
        None => "no data".into(),
        Some(p) => {
            // Never shows 100 % for a day that was not: 99.999 reads 99.99.
            let floored = (p * 100.0).floor() / 100.0;
            let text = format!("{floored:.2}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            format!("{text}%")
        }
    }
}

/// Every public asset's numbers as shown, from `history`: done once per computation of the
/// history, not per request (the HTML is left to `render::history_fragment`).
pub fn history_views<'a>(
    configs: impl IntoIterator<Item = &'a AssetConfig>,
    history: &History,
) -> HashMap<String, HistoryView> {
    configs.into_iter().map(|config| (config.id.clone(), history_view(config, history))).collect()
}

/// One asset's numbers as shown: figures, day cells with their tooltips (the date, the figure and
/// the incidents of the day, summaries masked), response times.
pub fn history_view(config: &AssetConfig, history: &History) -> HistoryView {
    let empty;
    let numbers: &AssetHistory = match history.assets.get(&config.id) {
        Some(numbers) => numbers,
        None => {
            empty = AssetHistory::empty();
            &empty
        }
    };
    let mut per_day: Vec<Vec<Uuid>> = vec![Vec::new(); DAYS];
    let mut seen = HashSet::new();
    for (day, id) in history.day_incidents.get(&config.id).into_iter().flatten() {
        if let Some(ids) = per_day.get_mut(*day)
            && seen.insert((*day, *id))
        {
            ids.push(*id);
        }
    }
    let summary = |id: &Uuid| {
        history
            .incidents
            .iter()
            .find(|incident| incident.id == *id)
            .map(|incident| public_summary(config, &incident.summary))
    };
    let days = numbers
        .days
        .iter()
        .zip(per_day)
        .enumerate()
        .map(|(index, (count, incidents))| {
            let date = history.date(index);
            let percent = count.percent();
            let mut tooltip = format!("{}: {}", date.format("%b %-d"), percent_text(percent));
            match incidents.len() {
                0 => {}
                1 => tooltip.push_str(", 1 incident"),
                n => tooltip.push_str(&format!(", {n} incidents")),
            }
            for id in incidents.iter().take(3) {
                if let Some(summary) = summary(id) {
                    tooltip.push_str(&format!("\n• {summary}"));
                }
            }
            DayView { date, uptime_percent: percent, incidents, class: day_class(percent), tooltip }
        })
        .collect();
    let uptime = UptimeFigures {
        last_24h: numbers.over_24h().percent(),
        last_30d: numbers.over_days(30).percent(),
        last_90d: numbers.over_days(DAYS).percent(),
    };
    HistoryView {
        bar_label: format!("Uptime per day over 90 days: {} overall", percent_text(uptime.last_90d)),
        uptime,
        days,
        response_time_ms: numbers.latency_ms.clone(),
        html: String::new(),
    }
}

/// Windows that cover at least one public asset: in force now, then upcoming, by start.
fn maintenance(calendar: &Calendar, public: &HashMap<&str, &AssetConfig>, now: DateTime<Utc>) -> Vec<MaintenanceView> {
    let mut views: Vec<MaintenanceView> = calendar
        .windows()
        .iter()
        .filter_map(|window| {
            let assets: Vec<String> = calendar
                .assets_of(window.id())
                .iter()
                .filter_map(|id| public.get(id.as_str()).map(|config| display_name(config).to_string()))
                .collect();
            if assets.is_empty() {
                return None;
            }
            let (active, occurrence) = match window.occurrence_at(now) {
                Some(current) => (true, current),
                None => (false, window.next_after(now)?),
            };
            Some(MaintenanceView {
                id: window.id().to_string(),
                active,
                start: occurrence.start,
                end: occurrence.end,
                assets,
            })
        })
        .collect();
    views.sort_by(|a, b| b.active.cmp(&a.active).then(a.start.cmp(&b.start)));
    views
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_ranks_outages_then_degraded_then_maintenance() {
        use StatusName::*;
        assert_eq!(overall([Up, Up, Unknown]), Overall::Operational);
        assert_eq!(overall([]), Overall::Operational);
        assert_eq!(overall([Up, Maintenance]), Overall::Maintenance);
        assert_eq!(overall([Up, Degraded, Maintenance]), Overall::Degraded);
        assert_eq!(overall([Up, Flapping]), Overall::Degraded);
        assert_eq!(overall([Up, Up, Up, Down, Degraded, Maintenance]), Overall::PartialOutage);
        assert_eq!(overall([Up, Down, Maintenance, Unknown]), Overall::MajorOutage);
        assert_eq!(overall([Down]), Overall::MajorOutage);
    }

    #[test]
    fn percentages_never_round_up_to_a_perfect_day() {
        assert_eq!(percent_text(Some(100.0)), "100%");
        assert_eq!(percent_text(Some(99.999)), "99.99%");
        assert_eq!(percent_text(Some(99.5)), "99.5%");
        assert_eq!(percent_text(Some(0.0)), "0%");
        assert_eq!(percent_text(None), "no data");
        assert_eq!(day_class(Some(99.999)), "d0");
        assert_eq!(day_class(Some(99.9)), "d1");
        assert_eq!(day_class(Some(50.0)), "d4");
        assert_eq!(day_class(None), "dn");
    }
}
