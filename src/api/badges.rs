//! Badges for READMEs and wikis: `/badge/{id}/status.svg`, `/badge/{id}/uptime/{window}.svg`
//! and `/badge/{id}/response-time.svg`, flat SVG in the shields.io style drawn by the
//! `badge-maker` crate (a port of shields.io's own renderer, with its font metrics).
//!
//! Only public assets have badges: an unknown asset and one with `"public": false` get the same
//! 404, so a badge URL does not reveal that a private asset exists. The uptime badge's figure
//! comes from [`super::sla::report`], so it equals `GET /api/sla`'s `uptimePercent` over the
//! same window.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use badge_maker::{BadgeBuilder, Style};
use chrono::{TimeDelta, Utc};

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::actors::health::StatusName;
use crate::actors::supervisor::{AssetEntry, SupervisorMsg};
use crate::asset::AssetConfig;
use crate::store::Uptime;
use crate::store::rollup::hour_of;

/// The window of the response-time badge: the mean latency of the last 24 hours.
pub const RESPONSE_TIME_HOURS: i64 = 24;

/// The windows of the uptime badge, by the name in its URL.
pub const WINDOWS: [(&str, i64); 5] = [("24h", 1), ("7d", 7), ("30d", 30), ("90d", 90), ("365d", 365)];

/// A public asset, or 404 for an unknown or non-public one (the same answer for both).
async fn public_asset(state: &ApiState, id: &str) -> Result<AssetEntry, ApiError> {
    state
        .ask(|reply| SupervisorMsg::Asset(id.to_string(), reply))
        .await?
        .filter(|entry| entry.config.public)
        .ok_or_else(|| ApiError::NotFound(format!("no public asset {id:?}")))
}

/// `GET /badge/{id}/status.svg`: the live status (up, down, degraded, maintenance, …).
#[utoipa::path(get, path = "/badge/{id}/status.svg", tag = "badges",
    params(("id" = String, Path, description = "Asset id")),
    responses(
        (status = 200, description = "A flat SVG badge: status and its colour; Cache-Control max-age=60", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "No such asset, or not public", body = ErrorBody),
    ))]
pub async fn status_badge(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let entry = public_asset(&state, &id).await?;
    let status = super::assets::live(&state, &entry).0.status;
    let word = serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let color = match status {
        StatusName::Up => "#4c1",
        StatusName::Down | StatusName::Crashed => "#e05d44",
        StatusName::Degraded | StatusName::Flapping => "#dfb317",
        StatusName::Maintenance => "#007ec6",
        StatusName::Unknown | StatusName::Inconclusive => "#9f9f9f",
    };
    Ok(svg("status", &word, color))
}

/// `GET /badge/{id}/uptime/{window}.svg`: uptime over the last 24h, 7d, 30d, 90d or 365d.
#[utoipa::path(get, path = "/badge/{id}/uptime/{window}", tag = "badges",
    params(
        ("id" = String, Path, description = "Asset id"),
        ("window" = String, Path, description = "24h.svg, 7d.svg, 30d.svg, 90d.svg or 365d.svg"),
    ),
    responses(
        (status = 200, description = "A flat SVG badge: uptime in percent over the window, as GET /api/sla computes it \
            (two decimals, rounded down); Cache-Control max-age=60", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "No such asset, not public, or an unknown window", body = ErrorBody),
    ))]
pub async fn uptime_badge(
    State(state): State<ApiState>,
    Path((id, window)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, days) =
        window.strip_suffix(".svg").and_then(|name| WINDOWS.iter().find(|(known, _)| *known == name)).ok_or_else(
            || ApiError::NotFound(format!("no uptime badge {window:?}: use 24h, 7d, 30d, 90d or 365d, with .svg")),
        )?;
    let entry = public_asset(&state, &id).await?;
    let now = Utc::now();
    let config: Arc<AssetConfig> = entry.config;
    let rows = super::sla::report(&state, &[config], now - TimeDelta::days(*days), now, now).await?;
    let uptime = rows.first().and_then(|row| row.figures.uptime_percent);
    let (text, color) = match uptime {
        None => ("no data".to_string(), "#9f9f9f"),
        Some(percent) => (format!("{}%", percent_text(percent)), uptime_color(percent)),
    };
    Ok(svg(&format!("uptime {name}"), &text, color))
}

/// `GET /badge/{id}/response-time.svg`: mean latency of the last 24 hours.
#[utoipa::path(get, path = "/badge/{id}/response-time.svg", tag = "badges",
    params(("id" = String, Path, description = "Asset id")),
    responses(
        (status = 200, description = "A flat SVG badge: mean response time of the last 24 h in ms (from the hourly \
            rollups, as GET /api/assets/{id}/uptime?hours=24 gives it); Cache-Control max-age=60", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "No such asset, or not public", body = ErrorBody),
    ))]
pub async fn response_time_badge(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    public_asset(&state, &id).await?;
    let now = Utc::now();
    let from = hour_of(now - TimeDelta::hours(RESPONSE_TIME_HOURS));
    let rollups = state.store.rollups(&id, from, hour_of(now) + TimeDelta::hours(1)).await?;
    let uptime = Uptime::from_rollups(&id, from, now, &rollups);
    let (text, color) = match uptime.latency_ms {
        None => ("no data".to_string(), "#9f9f9f"),
        Some(latency) => (format!("{:.0} ms", latency.avg), latency_color(latency.avg)),
    };
    Ok(svg("response time", &text, color))
}

/// Two decimals, rounded down, so that 99.996 % never reads as 100.00 %.
pub fn percent_text(percent: f64) -> String {
    format!("{:.2}", (percent * 100.0).floor() / 100.0)
}

fn uptime_color(percent: f64) -> &'static str {
    match percent {
        p if p >= 99.9 => "#4c1",
        p if p >= 99.0 => "#97ca00",
        p if p >= 95.0 => "#dfb317",
        _ => "#e05d44",
    }
}

fn latency_color(ms: f64) -> &'static str {
    match ms {
        ms if ms < 200.0 => "#4c1",
        ms if ms < 500.0 => "#97ca00",
        ms if ms < 1000.0 => "#dfb317",
        _ => "#e05d44",
    }
}

/// The badge as a response: SVG, cached for a minute by browsers and image proxies.
fn svg(label: &str, message: &str, color: &str) -> Response {
    let drawn = BadgeBuilder::new().label(label).message(message).color_parse(color).style(Style::Flat).build();
    match drawn {
        Ok(badge) => ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "max-age=60")], badge.svg())
            .into_response(),
        // Only a colour it cannot parse fails, and the colours are the constants above.
        Err(error) => ApiError::Unavailable(format!("cannot draw the badge: {error}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_rounded_down_to_two_decimals() {
        assert_eq!(percent_text(99.996), "99.99");
        assert_eq!(percent_text(100.0), "100.00");
        assert_eq!(percent_text(83.333_333), "83.33");
    }

    #[test]
    fn every_colour_draws_a_flat_badge_that_parses_as_svg() {
        for color in ["#4c1", "#97ca00", "#dfb317", "#e05d44", "#007ec6", "#9f9f9f"] {
            let response = svg("uptime 30d", "99.95%", color);
            assert_eq!(response.status(), axum::http::StatusCode::OK, "{color}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "image/svg+xml");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "max-age=60");
        }
        let badge = BadgeBuilder::new().label("a <b>").message("&").color_parse("#4c1").build().expect("draws");
        let svg = badge.svg();
        let doc = roxmltree::Document::parse(&svg).expect("SVG is XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(doc.descendants().any(|n| n.text() == Some("a <b>")), "text is escaped: {svg}");
    }
}
