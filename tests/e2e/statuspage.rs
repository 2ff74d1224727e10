//! The status page (`GET /`), its JSON (`GET /api/status`) and its feed (`/feed.atom`), against
//! a statusd with assets up, down, degraded and in maintenance, one not public and one whose
//! name is markup.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{SecondsFormat, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Setup, Statusd, Target, eventually, http_asset, no_channels};

const WAIT: Duration = Duration::from_secs(15);

fn asset(id: &str, name: &str, target: &Target, group: Option<&str>) -> Value {
    let mut asset = http_asset(id, &target.url());
    asset["name"] = json!(name);
    if let Some(group) = group {
        asset["metadata"] = json!({"group": group});
    }
    asset
}

async fn text(statusd: &Statusd, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = statusd.http.get(statusd.url(path)).send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_shows_public_assets_by_group_with_live_statuses_and_never_an_address() {
    let Some(backend) = crate::backend().await else { return };
    let (healthy, failing, slow) = (Target::start().await, Target::start().await, Target::start().await);
    failing.set(Mode::Error);
    slow.set(Mode::Slow);
    let mut degraded = asset("search", "Search", &slow, Some("Backend"));
    degraded["timeoutSeconds"] = json!(2);
    degraded["degradedLatencyMs"] = json!(200);
    let mut hidden = asset("hidden-asset", "Hidden thing", &healthy, Some("Secret group"));
    hidden["public"] = json!(false);
    let assets = json!([
        asset("web", "Web site", &healthy, Some("Frontend")),
        asset("payments", "Payments API", &failing, Some("Backend")),
        degraded,
        asset("ledger", "Ledger", &healthy, None),
        asset("evil", "<script>alert(1)</script>", &healthy, Some("Frontend")),
        hidden,
    ]);
    let setup = Setup::new(backend, json!([]), no_channels()).await;
    let at = |delta: TimeDelta| (Utc::now() + delta).to_rfc3339_opts(SecondsFormat::Secs, true);
    let manifest = json!({"assets": assets, "maintenance": [
        {"id": "ledger-upgrade", "assets": ["ledger"], "start": at(TimeDelta::minutes(-1)), "end": at(TimeDelta::hours(1))},
        {"id": "hidden-work", "assets": ["hidden-asset"], "start": at(TimeDelta::days(1)), "end": at(TimeDelta::days(2))},
    ]});
    std::fs::write(setup.path("manifest.json"), manifest.to_string()).expect("write manifest");
    setup.write_settings(
        "api_token = \"page-token\"\n[statuspage]\ntitle = \"Acme status\"\ndescription = \"Everything Acme runs\"\n",
    );
    let statusd = setup.start(&[]).await;
    for (id, status) in [
        ("web", "up"),
        ("payments", "down"),
        ("search", "degraded"),
        ("ledger", "maintenance"),
        ("evil", "up"),
        ("hidden-asset", "up"),
    ] {
        statusd.wait_status(id, status, WAIT).await;
    }
    let open = statusd.wait_incidents("open", 1).await;
    let incident = open[0]["id"].as_str().expect("an id").to_string();
    let update = json!({"status": "identified", "message": "A <b>bad</b> deploy; rolling back."});
    let posted = statusd
        .http
        .post(statusd.url(&format!("/api/incidents/{incident}/updates")))
        .bearer_auth("page-token")
        .json(&update)
        .send()
        .await
        .expect("post an update");
    assert!(posted.status().is_success(), "{}", posted.status());

    // The page, compressed for a client that asks.
    let plain = reqwest::Client::builder().no_gzip().no_brotli().no_deflate().build().expect("client");
    let response = plain.get(statusd.url("/")).header("accept-encoding", "gzip").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let (status, headers, html) = text(&statusd, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().expect("ascii").starts_with("text/html"));
    assert!(headers["content-security-policy"].to_str().expect("ascii").contains("default-src 'none'"));

    assert!(html.contains("<title>Acme status: Partial outage</title>"), "{html}");
    assert!(html.contains("Everything Acme runs"));
    for group in ["Frontend", "Backend", "Other"] {
        assert!(html.contains(&format!("\">{group}</h2>")), "group {group}");
    }
    let status_of = |name: &str| {
        let start =
            html.find(&format!("<h3>{name}</h3><span class=\"st ")).unwrap_or_else(|| panic!("{name} on the page"));
        let rest = &html[start..];
        let label = rest
            .find("</span>")
            .and_then(|open| rest[open + 7..].find("</span>").map(|end| &rest[open + 7..open + 7 + end]));
        label.unwrap_or_default().to_string()
    };
    assert_eq!(status_of("Web site"), "Operational");
    assert_eq!(status_of("Payments API"), "Outage");
    assert_eq!(status_of("Search"), "Degraded");
    assert_eq!(status_of("Ledger"), "Maintenance");
    // The name is text, not markup.
    assert_eq!(status_of("&#60;script&#62;alert(1)&#60;/script&#62;"), "Operational");
    assert!(!html.contains("<script>alert(1)"), "an unescaped name");
    // Open incident, and maintenance of public assets only.
    assert!(html.contains("Open incidents"));
    assert!(html.contains("<h3>Payments API</h3>\n<p>Payments API is down: HTTP 500"), "{html}");
    assert!(html.contains("In progress: Ledger"));
    assert!(html.contains("<strong>identified</strong>"), "the update on the page");
    assert!(html.contains("A &#60;b&#62;bad&#60;/b&#62; deploy; rolling back."), "the update, escaped");
    // Neither the private asset nor its window, nor any address.
    assert!(!html.contains("Hidden thing") && !html.contains("hidden-asset") && !html.contains("Secret group"));
    for target in [&healthy, &failing, &slow] {
        assert!(!html.contains(&target.addr.to_string()), "an address on the page");
    }
    assert!(!html.contains("127.0.0.1") && !html.contains("/health\""), "an address on the page");
    // 90 day cells and a sparkline per asset.
    assert_eq!(html.matches("<div class=\"bar\" role=\"img\"").count(), 5);
    assert_eq!(html.matches("<i class=d").count(), 5 * 90);
    assert!(html.matches("<svg class=\"spark\"").count() >= 4, "sparklines");

    // The JSON: the same statuses as /api/assets, public assets only.
    let (code, report) = statusd.get("/api/status").await;
    assert_eq!(code, StatusCode::OK, "{report}");
    assert_eq!(report["overall"], "partial_outage");
    assert_eq!(report["title"], "Acme status");
    let shown: BTreeMap<String, Value> = report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["assets"].as_array().expect("assets").clone())
        .map(|asset| (asset["id"].as_str().expect("id").to_string(), asset))
        .collect();
    let (_, assets) = statusd.get("/api/assets").await;
    let live: BTreeMap<String, Value> = assets
        .as_array()
        .expect("assets")
        .iter()
        .filter(|asset| asset["public"] == true)
        .map(|asset| (asset["id"].as_str().expect("id").to_string(), asset["status"].clone()))
        .collect();
    assert_eq!(shown.keys().collect::<Vec<_>>(), live.keys().collect::<Vec<_>>());
    for (id, asset) in &shown {
        assert_eq!(asset["status"], live[id], "{id}");
        assert_eq!(asset["days"].as_array().map(Vec::len), Some(90), "{id}");
        assert_eq!(asset["responseTimeMs"].as_array().map(Vec::len), Some(24), "{id}");
    }
    assert_eq!(report["openIncidents"][0]["assetId"], "payments");
    assert_eq!(report["openIncidents"][0]["updates"][0]["status"], "identified");
    assert_eq!(report["maintenance"].as_array().map(Vec::len), Some(1), "{}", report["maintenance"]);
    assert!(!report.to_string().contains("127.0.0.1"));
    // The numbers come from the probes so far: the healthy asset is up all along, within a minute.
    let web_uptime = eventually("web's uptime", WAIT, || async {
        let (_, report) = statusd.get("/api/status").await;
        let web = report["groups"][0]["assets"][0].clone();
        web["uptime"]["last24h"].as_f64().map(|_| web)
    })
    .await;
    assert_eq!(web_uptime["uptime"]["last24h"], 100.0, "{web_uptime}");

    // The feed parses as Atom and names the incident, not the private asset.
    let (code, headers, xml) = text(&statusd, "/feed.atom").await;
    assert_eq!(code, StatusCode::OK);
    assert!(headers["content-type"].to_str().expect("ascii").starts_with("application/atom+xml"));
    let feed = atom_syndication::Feed::from_str(&xml).expect("valid Atom");
    assert_eq!(feed.title().as_str(), "Acme status: incidents");
    assert_eq!(feed.entries().len(), 1, "{xml}");
    assert!(feed.entries()[0].title().as_str().starts_with("Payments API: ongoing incident"), "{xml}");
    assert!(feed.entries()[0].id().starts_with("urn:uuid:"));
    let content = feed.entries()[0].content().and_then(|content| content.value()).unwrap_or_default();
    assert!(content.starts_with("Payments API is down: HTTP 500"), "{xml}");
    assert!(content.contains("(identified): A <b>bad</b> deploy; rolling back."), "{xml}");
    assert!(!xml.contains(&failing.addr.to_string()) && !xml.contains("Hidden"), "{xml}");
    statusd.stop().await;

    // Disabled: the usual JSON 404.
    setup.write_settings("[statuspage]\nenabled = false\n");
    let statusd = setup.start(&[]).await;
    for path in ["/", "/api/status", "/feed.atom"] {
        let (code, body) = statusd.get(path).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"], "the status page is disabled ([statuspage] enabled = false)");
    }
    statusd.stop().await;
}
