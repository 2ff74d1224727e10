//! The status page in a real browser: headless Chromium (Debian's `chromium` package; `.ci/run`
//! installs it) loads it from a running statusd at a desktop and a 375 px wide viewport, saves a
//! screenshot of each under `target/statuspage/`, and finds no console error, no request to
//! another host, no horizontal scrolling on the phone, and the statuses of `/api/assets`.
//! Where Chromium is not installed the test says so loudly and passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headless_chrome::browser::tab::{RequestInterceptor, RequestPausedDecision};
use headless_chrome::browser::transport::{SessionId, Transport};
use headless_chrome::protocol::cdp::Fetch::events::RequestPausedEvent;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Emulation, Page};
use headless_chrome::{Browser, LaunchOptions};
use serde_json::json;

use crate::e2e::harness::{Mode, Setup, Target, http_asset, no_channels};

const WAIT: Duration = Duration::from_secs(15);

/// Where `cargo` puts its output, for the screenshots.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("statuspage")
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|dir| PathBuf::from(dir).join(name))
            .find(|path| path.exists())
    })
}

/// What one page load saw.
struct Visit {
    /// (name, status text) of each asset, in page order.
    statuses: Vec<(String, String)>,
    requests: Vec<String>,
    console_errors: Vec<String>,
    overflows: bool,
}

/// Loads `url` in a fresh headless Chromium with this viewport and saves a screenshot to `shot`.
fn visit(chromium: &Path, url: &str, width: u32, height: u32, shot: &Path) -> Visit {
    let options = LaunchOptions::default_builder()
        .path(Some(chromium.to_path_buf()))
        .headless(true)
        // As root (CI), Chromium refuses to start with its sandbox.
        .sandbox(false)
        .window_size(Some((width, height)))
        .idle_browser_timeout(Duration::from_secs(60))
        .build()
        .expect("launch options");
    let browser = Browser::new(options).expect("chromium starts");
    let tab = browser.new_tab().expect("a tab");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    let interceptor: Arc<dyn RequestInterceptor + Send + Sync> =
        Arc::new(move |_: Arc<Transport>, _: SessionId, event: RequestPausedEvent| {
            seen.lock().expect("lock").push(event.params.request.url.clone());
            RequestPausedDecision::Continue(None)
        });
    tab.enable_fetch(None, None).expect("fetch domain");
    tab.enable_request_interception(interceptor).expect("interception");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let heard = Arc::clone(&errors);
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let error = match event {
            Event::RuntimeExceptionThrown(thrown) => Some(format!("exception: {:?}", thrown.params.exception_details)),
            Event::RuntimeConsoleAPICalled(call) if format!("{:?}", call.params.Type) == "Error" => {
                Some(format!("console.error: {:?}", call.params.args))
            }
            Event::LogEntryAdded(entry) if format!("{:?}", entry.params.entry.level) == "Error" => {
                Some(format!("log: {} ({:?})", entry.params.entry.text, entry.params.entry.url))
            }
            _ => None,
        };
        if let Some(error) = error {
            heard.lock().expect("lock").push(error);
        }
    }))
    .expect("listener");
    // Headless windows are at least 500 px wide: the viewport is set as a phone's would be.
    tab.call_method(Emulation::SetDeviceMetricsOverride {
        width,
        height,
        device_scale_factor: 1.0,
        mobile: width < 500,
        scale: None,
        screen_width: None,
        screen_height: None,
        position_x: None,
        position_y: None,
        dont_set_visible_size: None,
        screen_orientation: None,
        viewport: None,
        display_feature: None,
        device_posture: None,
    })
    .expect("viewport");
    tab.enable_runtime().expect("runtime domain");
    tab.enable_log().expect("log domain");
    tab.navigate_to(url).expect("navigate").wait_until_navigated().expect("loaded");
    tab.wait_for_element("div.bar").expect("the page rendered");
    let statuses = tab
        .evaluate(
            "JSON.stringify([...document.querySelectorAll('li.asset')].map(a => \
               [a.querySelector('h3').textContent, a.querySelector('.st').textContent]))",
            false,
        )
        .expect("evaluate")
        .value
        .and_then(|value| value.as_str().map(str::to_string))
        .expect("a string");
    let statuses: Vec<(String, String)> = serde_json::from_str(&statuses).expect("statuses");
    let inner_width = tab
        .evaluate("window.innerWidth", false)
        .expect("evaluate")
        .value
        .and_then(|value| value.as_u64())
        .expect("a number");
    assert_eq!(inner_width, u64::from(width), "the viewport");
    let overflows = tab
        .evaluate("document.documentElement.scrollWidth > window.innerWidth", false)
        .expect("evaluate")
        .value
        .and_then(|value| value.as_bool())
        .expect("a boolean");
    let png = tab.capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true).expect("screenshot");
    std::fs::write(shot, png).expect("write the screenshot");
    let requests = requests.lock().expect("lock").clone();
    let console_errors = errors.lock().expect("lock").clone();
    Visit { statuses, requests, console_errors, overflows }
}

/// The words the page shows next to each status.
fn words(status: &str) -> &'static str {
    match status {
        "up" => "Operational",
        "down" => "Outage",
        "degraded" => "Degraded",
        "flapping" => "Unstable",
        "maintenance" => "Maintenance",
        "unknown" => "No data yet",
        _ => "Unknown",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_shows_the_statuses_of_the_api_without_errors_or_requests_elsewhere() {
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED: no chromium on PATH (apt-get install chromium); the browser test did not run");
        return;
    };
    let (healthy, failing) = (Target::start().await, Target::start().await);
    failing.set(Mode::Error);
    let named = |id: &str, name: &str, target: &Target, group: &str| {
        let mut asset = http_asset(id, &target.url());
        asset["name"] = json!(name);
        asset["metadata"] = json!({"group": group});
        asset
    };
    let mut hidden = named("hidden", "Hidden", &healthy, "Internal");
    hidden["public"] = json!(false);
    let assets = json!([
        named("web", "Web site", &healthy, "Frontend"),
        named("evil", "<script>alert(1)</script>", &healthy, "Frontend"),
        named("payments", "Payments API", &failing, "Backend"),
        named("ledger", "Ledger", &healthy, "Backend"),
        hidden,
    ]);
    let setup = Setup::new(crate::e2e::databases::Backend::Sqlite, json!([]), no_channels()).await;
    let now = chrono::Utc::now();
    let window = json!({"id": "ledger-upgrade", "assets": ["ledger"],
        "start": (now - chrono::TimeDelta::minutes(1)).to_rfc3339(), "end": (now + chrono::TimeDelta::hours(1)).to_rfc3339()});
    std::fs::write(setup.path("manifest.json"), json!({"assets": assets, "maintenance": [window]}).to_string())
        .expect("manifest");
    let statusd = setup.start(&[]).await;
    for (id, status) in [("web", "up"), ("evil", "up"), ("payments", "down"), ("ledger", "maintenance")] {
        statusd.wait_status(id, status, WAIT).await;
    }
    statusd.wait_incidents("open", 1).await;
    let (_, api) = statusd.get("/api/assets").await;
    let expected: Vec<(String, String)> = api
        .as_array()
        .expect("assets")
        .iter()
        .filter(|asset| asset["public"] == true)
        .map(|asset| {
            let name = asset["name"].as_str().expect("name").to_string();
            (name, words(asset["status"].as_str().expect("status")).to_string())
        })
        .collect();
    let expected: BTreeMap<String, String> = expected.into_iter().collect();

    let dir = target_dir();
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    let origin = statusd.url("/");
    for (width, height, file) in [(1280, 2000, "desktop.png"), (375, 812, "phone-375.png")] {
        let (chromium, url, shot) = (chromium.clone(), origin.clone(), dir.join(file));
        let seen = tokio::task::spawn_blocking(move || visit(&chromium, &url, width, height, &shot))
            .await
            .expect("the browser task");
        let shown: BTreeMap<String, String> = seen.statuses.iter().cloned().collect();
        assert_eq!(shown, expected, "at {width} px");
        assert!(seen.console_errors.is_empty(), "console errors at {width} px: {:?}", seen.console_errors);
        assert!(!seen.requests.is_empty(), "the page itself was requested");
        let elsewhere: Vec<&String> =
            seen.requests.iter().filter(|url| !url.starts_with(&origin) && !url.starts_with("data:")).collect();
        assert!(elsewhere.is_empty(), "requests to other hosts at {width} px: {elsewhere:?}");
        assert!(!seen.overflows, "the page scrolls sideways at {width} px");
        eprintln!("screenshot: {}", dir.join(file).display());
    }
    statusd.stop().await;
}
