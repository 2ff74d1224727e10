//! SLA reports, uptime series and badges: an outage caused on a real target shows in
//! `GET /api/sla` (JSON and CSV) as the incident's duration, the uptime badge says what
//! `/api/sla` says for its window, the error-budget metric what the report says, and a
//! non-public asset has no badges.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Datelike, DurationRound, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Setup, Statusd, Target, eventually, http_asset, metric, no_channels};

const WAIT: Duration = Duration::from_secs(15);

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp")).expect("RFC 3339").with_timezone(&Utc)
}

/// `web`'s row of `/api/sla` over `[from, to)`.
async fn sla_row(statusd: &Statusd, from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    let path = format!("/api/sla?from={}&to={}", rfc3339(from), rfc3339(to));
    let (status, body) = statusd.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["assets"].as_array().expect("assets").iter().find(|row| row["assetId"] == "web").expect("web").clone()
}

/// A badge: its headers checked, its SVG parsed, and the text it shows.
async fn badge(statusd: &Statusd, path: &str) -> String {
    let response = statusd.http.get(statusd.url(path)).send().await.expect("badge");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    assert_eq!(response.headers()["content-type"], "image/svg+xml", "{path}");
    assert_eq!(response.headers()["cache-control"], "max-age=60", "{path}");
    let svg = response.text().await.expect("SVG");
    let document = roxmltree::Document::parse(&svg).expect("the badge is well-formed XML");
    assert_eq!(document.root_element().tag_name().name(), "svg");
    // shields.io's layout: the message is the last text (after the label and their shadows).
    let texts: Vec<&str> = document.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).collect();
    texts.last().expect("a message").to_string()
}

fn percent(text: &str) -> f64 {
    text.strip_suffix('%').expect("a percentage").parse().expect("a number")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_shows_in_the_sla_report_the_csv_the_badges_and_the_budget_metric() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let quiet = Target::start().await;
    let mut web = http_asset("web", &target.url());
    web["slaTarget"] = json!(99.0);
    let mut secret = http_asset("secret", &quiet.url());
    secret["public"] = json!(false);
    let setup = Setup::new(backend, json!([web, secret]), no_channels()).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("web", "up", WAIT).await;

    // The outage: from the first failure to the first success, as the incident records it.
    target.set(Mode::Error);
    statusd.wait_incidents("open", 1).await;
    statusd.wait_probes("web", 2).await;
    target.set(Mode::Ok);
    let closed = statusd.wait_incidents("closed", 1).await;
    let (started, ended) = (time(&closed[0]["startedAt"]), time(&closed[0]["endedAt"]));
    let outage = (ended - started).num_milliseconds() as f64 / 1000.0;
    assert!(outage > 0.0);

    // A period around the outage: its downtime is the incident's duration, exactly.
    // (Ending at the recovery: the period is measured up to now, and must be over.)
    let (from, to) = (started - TimeDelta::milliseconds(200), ended);
    let row = sla_row(&statusd, from, to).await;
    assert_eq!(row["incidents"], 1, "{row}");
    let eligible = row["eligibleSeconds"].as_f64().expect("eligible");
    let downtime = row["downtimeSeconds"].as_f64().expect("downtime");
    // PostgreSQL keeps microseconds, the JSON shows milliseconds.
    assert!((downtime - outage).abs() < 2e-3, "{downtime} vs {outage}");
    assert!((eligible - (outage + 0.2)).abs() < 2e-3, "{eligible} vs {outage}: the asset existed the whole period");
    let uptime = row["uptimePercent"].as_f64().expect("uptime");
    assert!((uptime - 100.0 * (eligible - downtime) / eligible).abs() < 1e-9, "{row}");
    assert_eq!(row["targetPercent"], 99.0);
    assert_eq!(row["met"], false, "{row}");
    assert!((row["mttrSeconds"].as_f64().expect("mttr") - downtime).abs() < 1e-9);
    let budget = &row["errorBudget"];
    assert!((budget["allowedSeconds"].as_f64().expect("allowed") - 0.01 * eligible).abs() < 1e-6, "{row}");
    assert!((budget["remainingSeconds"].as_f64().expect("remaining") - (0.01 * eligible - downtime)).abs() < 1e-6);

    // The default period: this month in UTC, or in the time zone asked for.
    let (status, month) = statusd.get("/api/sla").await;
    assert_eq!(status, StatusCode::OK, "{month}");
    let now = Utc::now();
    let first = now.date_naive().with_day0(0).expect("the 1st").and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    assert_eq!(time(&month["from"]), first);
    assert_eq!(month["timezone"], "UTC");
    let rows = month["assets"].as_array().expect("assets");
    assert_eq!(rows.len(), 2, "private assets are reported too: the API is not the status page");
    let web_month = rows.iter().find(|r| r["assetId"] == "web").expect("web");
    assert!((web_month["downtimeSeconds"].as_f64().expect("downtime") - downtime).abs() < 2e-3, "{web_month}");
    let secret_month = rows.iter().find(|r| r["assetId"] == "secret").expect("secret");
    assert_eq!((secret_month["incidents"].clone(), secret_month["targetPercent"].clone()), (json!(0), json!(99.9)));
    let (status, berlin) = statusd.get("/api/sla?tz=Europe/Berlin").await;
    assert_eq!(status, StatusCode::OK, "{berlin}");
    assert_eq!(berlin["timezone"], "Europe/Berlin");
    let hours = (time(&berlin["to"]) - time(&berlin["from"])).num_hours();
    assert!((28 * 24 - 1..=31 * 24 + 1).contains(&hours), "{berlin}");
    let (status, error) = statusd.get("/api/sla?tz=Mars/Olympus").await;
    assert_eq!((status, error["parameter"].clone()), (StatusCode::BAD_REQUEST, json!("tz")), "{error}");
    let (status, error) = statusd.get(&format!("/api/sla?from={}&to={}", rfc3339(to), rfc3339(from))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    // CSV: a header row, one row per asset, the same figures.
    let path = format!("/api/sla?format=csv&from={}&to={}", rfc3339(from), rfc3339(to));
    let response = statusd.http.get(statusd.url(&path)).send().await.expect("csv");
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let text = response.text().await.expect("csv text");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_string).collect();
    assert_eq!(&header[..5], ["assetId", "name", "from", "to", "uptimePercent"]);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
    assert_eq!(records.len(), 2, "{text}");
    let web_csv = records.iter().find(|r| &r[0] == "web").expect("web row");
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(web_csv[column("downtimeSeconds")].parse::<f64>().expect("number"), downtime);
    assert_eq!(web_csv[column("uptimePercent")].parse::<f64>().expect("number"), uptime);
    assert_eq!(&web_csv[column("met")], "false");
    assert_eq!(&web_csv[column("incidents")], "1");

    // The uptime badge of a window says what /api/sla says over that window, up to now. No
    // incident is open, so uptime only grows with time: the badge, read between two reports,
    // lies between their figures.
    for (window, days) in [("24h", 1), ("7d", 7), ("30d", 30), ("90d", 90), ("365d", 365)] {
        let before = Utc::now();
        let low =
            sla_row(&statusd, before - TimeDelta::days(days), before).await["uptimePercent"].as_f64().expect("uptime");
        let shown = percent(&badge(&statusd, &format!("/badge/web/uptime/{window}.svg")).await);
        let after = Utc::now();
        let high =
            sla_row(&statusd, after - TimeDelta::days(days), after).await["uptimePercent"].as_f64().expect("uptime");
        let floor = |p: f64| (p * 100.0).floor() / 100.0;
        assert!(floor(low) <= shown && shown <= floor(high), "{window}: {low} <= {shown} <= {high}");
        assert!(shown < 100.0, "{window}: the outage shows");
    }
    assert_eq!(badge(&statusd, "/badge/web/status.svg").await, "up");
    assert!(badge(&statusd, "/badge/web/response-time.svg").await.ends_with(" ms"));

    // No badge for a private asset, an unknown one, or an unknown window: the usual JSON 404.
    for path in [
        "/badge/secret/status.svg",
        "/badge/secret/uptime/24h.svg",
        "/badge/secret/response-time.svg",
        "/badge/nope/status.svg",
        "/badge/nope/uptime/7d.svg",
        "/badge/web/uptime/2d.svg",
        "/badge/web/uptime/24h",
    ] {
        let (status, body) = statusd.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }

    // The error-budget metric: remaining / allowed of the current UTC month, as the report has it.
    let text = statusd.metrics().await;
    let ratio = metric(&text, "statusd_sla_error_budget_remaining_ratio{asset=\"web\"}").expect("the metric");
    let (_, month) = statusd.get("/api/sla").await;
    let web_month = month["assets"].as_array().expect("assets").iter().find(|r| r["assetId"] == "web").cloned();
    let expected = web_month.expect("web")["errorBudget"]["remainingRatio"].as_f64().expect("a ratio");
    assert!((ratio - expected).abs() < 1e-4, "{ratio} vs {expected}");
    assert!(ratio < 1.0, "the outage used some budget");
    assert_eq!(metric(&text, "statusd_sla_error_budget_remaining_ratio{asset=\"secret\"}"), Some(1.0));
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_uptime_series_has_a_point_per_step_and_the_window_form_is_unchanged() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset("web", &target.url())]), no_channels()).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("web", "up", WAIT).await;
    target.set(Mode::Error);
    statusd.wait_status("web", "down", WAIT).await;
    target.set(Mode::Ok);
    statusd.wait_status("web", "up", WAIT).await;

    // The current step's probes come from the raw events, so they show at once.
    let (_, series) = eventually("a series with this hour's probes", WAIT, || async {
        let (status, body) = statusd.get("/api/assets/web/uptime?days=90&step=1d").await;
        (status == StatusCode::OK && body["points"][89]["probes"].as_i64() > Some(2)).then_some((status, body))
    })
    .await;
    let today = Utc::now().duration_trunc(TimeDelta::days(1)).expect("a day");
    let points = series["points"].as_array().expect("points");
    assert_eq!((points.len(), series["step"].clone(), series["assetId"].clone()), (90, json!("1d"), json!("web")));
    assert_eq!(time(&points[89]["start"]), today);
    assert_eq!(time(&points[0]["start"]), today - TimeDelta::days(89));
    assert_eq!(time(&series["from"]), today - TimeDelta::days(89));
    let last = &points[89];
    let uptime = last["uptime"].as_f64().expect("an uptime");
    assert!(0.0 < uptime && uptime < 1.0, "failures and successes today: {last}");
    assert!(last["avgLatencyMs"].as_f64().is_some(), "{last}");
    assert_eq!(
        (points[0]["uptime"].clone(), points[0]["probes"].clone()),
        (Value::Null, json!(0)),
        "nothing counted then"
    );

    let (status, hourly) = statusd.get("/api/assets/web/uptime?hours=6&step=1h").await;
    assert_eq!(status, StatusCode::OK, "{hourly}");
    let points = hourly["points"].as_array().expect("points");
    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).expect("an hour");
    assert_eq!((points.len(), time(&points[5]["start"])), (6, hour));
    assert!(points[5]["probes"].as_i64() > Some(0), "{hourly}");
    let (_, daily_hours) = statusd.get("/api/assets/web/uptime?days=2&step=1h").await;
    assert_eq!(daily_hours["points"].as_array().map(Vec::len), Some(48));

    // Without step: the one figure for the window, as before.
    let (status, window) = statusd.get("/api/assets/web/uptime?hours=6").await;
    assert_eq!(status, StatusCode::OK, "{window}");
    assert!(window["uptimePercent"].as_f64().is_some() && window.get("points").is_none(), "{window}");

    for (path, parameter) in [
        ("/api/assets/web/uptime?hours=6&step=1d", "step"),
        ("/api/assets/web/uptime?days=7&step=2h", "step"),
        ("/api/assets/web/uptime?days=3000&step=1h", "step"),
    ] {
        let (status, error) = statusd.get(path).await;
        assert_eq!(
            (status, error["parameter"].clone()),
            (StatusCode::BAD_REQUEST, json!(parameter)),
            "{path}: {error}"
        );
    }
    let (status, _) = statusd.get("/api/assets/nope/uptime?days=3&step=1d").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    statusd.stop().await;
}
