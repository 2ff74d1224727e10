//! What an operator relies on: the version, the OpenAPI document, request ids in answers and
//! logs, the API token, caught handler panics, CORS, the container's healthcheck, and metric
//! series that exist before their first event.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{Backend, Receiver, Setup, Target, all_channels, binary, http_asset, metric, no_channels};

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "ops-test-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_lists_every_route_and_every_listed_route_answers() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset("documented", &target.url())]), no_channels()).await;
    setup.write_settings(&format!("demo = true\napi_token = \"{TOKEN}\"\n"));
    let statusd = setup.start(&["--enable-chaos"]).await;

    let (status, version) = statusd.get("/api/version").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert!(version["commit"].as_str().is_some_and(|c| !c.is_empty()), "{version}");

    let (status, document) = statusd.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with('3')), "{}", document["openapi"]);
    assert_eq!(document["components"]["securitySchemes"]["apiToken"]["scheme"], "bearer");

    // Every documented operation is served: none falls through to the router's fallbacks.
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            documented.insert(operation["operationId"].as_str().expect("operationId").to_string());
            // Answers that come from the handler, whatever their status; only the panic route
            // is asked for something harmless.
            let url = statusd
                .url(&path.replace("{id}", "documented"))
                .replace("/api/debug/panic", "/api/debug/panic?actor=nobody");
            let request = match method.as_str() {
                "get" => statusd.http.get(&url),
                "post" => statusd.http.post(&url).json(&json!({})),
                "put" => statusd.http.put(&url).json(&json!({"level": "info"})),
                "delete" => statusd.http.delete(&url),
                other => panic!("unexpected method {other} for {path}"),
            };
            let response = request.bearer_auth(TOKEN).send().await.expect("request");
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert!(
                !body.contains("no route for") && !body.contains("is not allowed on"),
                "{method} {path} is documented but not served: {status} {body}"
            );
            if operation["security"].is_array() {
                let unauthenticated = match method.as_str() {
                    "post" => statusd.http.post(&url),
                    "delete" => statusd.http.delete(&url),
                    _ => statusd.http.put(&url),
                };
                let response = unauthenticated.send().await.expect("request");
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path} without the token");
            }
        }
    }

    // Every handler routes.rs registers is in the document, and nothing bypasses it.
    let routes = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/routes.rs")).expect("routes.rs");
    assert!(!routes.contains(".route(\""), "a route added with .route() would be missing from the OpenAPI document");
    let registered: BTreeSet<String> = routes
        .split("routes!(")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .flat_map(|handlers| handlers.split(','))
        .filter_map(|handler| handler.trim().rsplit("::").next())
        .map(str::to_string)
        .collect();
    assert!(registered.len() >= 19, "{registered:?}");
    assert_eq!(registered, documented, "routes.rs and /api/openapi.json disagree");
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutating_routes_need_the_token_and_reads_do_not() {
    let Some(backend) = crate::backend().await else { return };
    let setup = Setup::new(backend, json!([]), no_channels()).await;
    setup.write_settings(&format!("api_token = \"{TOKEN}\"\n"));
    let statusd = setup.start(&[]).await;
    let level = |token: Option<&str>, level: &str| {
        let request = statusd.http.put(statusd.url("/api/log-level")).json(&json!({"level": level}));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            let response = request.send().await.expect("request");
            (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    for token in [None, Some("wrong"), Some(&TOKEN[..TOKEN.len() - 1])] {
        let (status, body) = level(token, "debug").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(body, json!({"error": "missing or wrong bearer token"}));
        let response = statusd.http.post(statusd.url("/api/reload")).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(level(Some(TOKEN), "info").await, (StatusCode::OK, json!({"level": "info"})));
    let (status, body) = level(Some(TOKEN), "loud").await;
    assert_eq!((status, body["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some("level")), "{body}");
    let response = statusd.http.post(statusd.url("/api/reload")).bearer_auth(TOKEN).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    for path in ["/api/assets", "/api/incidents", "/api/actors", "/api/version", "/readyz"] {
        assert_eq!(statusd.get(path).await.0, StatusCode::OK, "{path} is a read");
    }
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_handler_is_answered_500_json_counted_and_the_api_goes_on() {
    let Some(backend) = crate::backend().await else { return };
    let setup = Setup::new(backend, json!([]), no_channels()).await;
    let statusd = setup.start(&["--enable-chaos"]).await;
    let panics = || async { metric(&statusd.metrics().await, "statusd_http_panics_total").expect("the series exists") };
    let before = panics().await;
    for _ in 0..3 {
        let (status, body) = statusd.post("/api/debug/panic?actor=api").await;
        assert_eq!((status, body), (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal error"})));
    }
    // Other tests of this process may panic handlers too: at least ours were counted.
    assert!(panics().await >= before + 3.0);
    assert_eq!(statusd.get("/healthz").await.0, StatusCode::OK);
    assert!(
        statusd
            .metrics()
            .await
            .contains("statusd_http_requests_total{method=\"POST\",route=\"/api/debug/panic\",status=\"500\"}")
    );
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_headers_only_for_the_configured_origins() {
    let Some(backend) = crate::backend().await else { return };
    let allowed_origin = |statusd: &crate::e2e::harness::Statusd, origin: &'static str| {
        let preflight = statusd
            .http
            .request(reqwest::Method::OPTIONS, statusd.url("/api/reload"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization");
        let get = statusd.http.get(statusd.url("/api/assets")).header("origin", origin);
        async move {
            let preflight = preflight.send().await.expect("preflight");
            let get = get.send().await.expect("get");
            assert_eq!(get.status(), StatusCode::OK);
            let header = |response: &reqwest::Response| {
                response.headers().get("access-control-allow-origin").map(|v| v.to_str().expect("ascii").to_string())
            };
            (header(&preflight), header(&get))
        }
    };

    let setup = Setup::new(backend, json!([]), no_channels()).await;
    let statusd = setup.start(&[]).await;
    assert_eq!(allowed_origin(&statusd, "https://evil.example").await, (None, None), "CORS is off by default");
    statusd.stop().await;

    setup.write_settings("cors_origins = [\"https://status.example.com\"]\n");
    let statusd = setup.start(&[]).await;
    let allowed = Some("https://status.example.com".to_string());
    assert_eq!(allowed_origin(&statusd, "https://status.example.com").await, (allowed.clone(), allowed));
    assert_eq!(allowed_origin(&statusd, "https://evil.example").await, (None, None));
    statusd.stop().await;

    setup.write_settings("cors_origins = [\"https://status.example.com/\"]\n");
    let error = statusd::Settings::from_args(setup.args(&[]), &Default::default()).expect_err("refused");
    assert!(error.to_string().contains("cors_origins: \"https://status.example.com/\""), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn series_that_count_rare_events_exist_from_the_start() {
    let Some(backend) = crate::backend().await else { return };
    let receiver = Receiver::start().await;
    let setup =
        Setup::new(backend, json!([http_asset("counted", "http://127.0.0.1:1/")]), all_channels(&receiver, 0)).await;
    let statusd = setup.start(&[]).await;
    let metrics = statusd.metrics().await;
    for series in [
        "statusd_actor_restarts_total{actor=\"asset:counted\"}",
        "statusd_actor_restarts_total{actor=\"notifier:slack\"}",
        "statusd_notifications_total{channel=\"teams\",event=\"DOWN\",result=\"failed\"}",
        "statusd_notifications_total{channel=\"webhook\",event=\"PANIC\",result=\"sent\"}",
        "statusd_probe_total{asset=\"counted\",result=\"failure\"}",
        "statusd_probes_skipped_total{asset=\"counted\"}",
        "statusd_config_reloads_total{result=\"error\"}",
        "statusd_persistence_dropped_total",
        "statusd_persistence_queue_depth",
        "statusd_incidents_open",
        "statusd_http_panics_total",
    ] {
        assert!(metric(&metrics, series).is_some(), "{series} is missing:\n{metrics}");
    }
    // This suite runs on SQLite, whose own memory (outside Rust's allocator) is reported.
    assert!(metric(&metrics, "statusd_sqlite_memory_bytes").is_some_and(|bytes| bytes > 0.0), "{metrics}");
    statusd.stop().await;
}

/// statusd as its own process with JSON logs; returns its port and a channel of log lines.
struct Process {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    log: Vec<String>,
}

impl Process {
    fn start(args: &[String]) -> Process {
        let mut child = Command::new(binary())
            .args(args)
            .env_remove("STATUSD_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start statusd");
        let stdout = child.stdout.take().expect("stdout");
        let (lines_tx, lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        Process { child, lines, log: Vec::new() }
    }

    /// Reads log lines until one satisfies `found`, which it returns.
    async fn wait_for_line(&mut self, what: &str, found: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = tokio::time::timeout(WAIT, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no log line with {what} within {WAIT:?}:\n{}", self.log.join("\n")))
                .unwrap_or_else(|| panic!("statusd exited before logging {what}:\n{}", self.log.join("\n")));
            self.log.push(line.clone());
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && found(&event)
            {
                return event;
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_echoed_generated_and_in_every_log_line_of_the_request() {
    let Some(backend) = crate::backend().await else { return };
    let setup = Setup::new(backend, json!([]), no_channels()).await;
    let mut process = Process::start(&setup.args(&["--log-format", "json", "--log-level", "debug"])[1..]);
    let started = process.wait_for_line("the start", |event| event["message"] == "statusd started").await;
    let listen = started["listen"].as_str().expect("listen address").to_string();
    let http = reqwest::Client::new();

    let response = http
        .put(format!("http://{listen}/api/log-level"))
        .header("x-request-id", "ops-request-42")
        .json(&json!({"level": "debug"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], "ops-request-42");
    let in_request = |event: &Value| {
        event["spans"].as_array().is_some_and(|spans| spans.iter().any(|s| s["request_id"] == "ops-request-42"))
    };
    let changed = process.wait_for_line("the level change", |e| e["message"] == "log level changed").await;
    assert!(in_request(&changed), "the handler's own log line carries the request id: {changed}");
    let answered = process.wait_for_line("the answer", |e| e["message"] == "answered").await;
    assert!(in_request(&answered), "{answered}");
    assert_eq!(answered["status"], 200);

    // Without an id, one is made up, returned, and logged.
    let response = http.get(format!("http://{listen}/api/assets")).send().await.expect("request");
    let generated = response.headers()["x-request-id"].to_str().expect("ascii").to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    process
        .wait_for_line("the generated id", |event| {
            event["spans"].as_array().is_some_and(|spans| spans.iter().any(|s| s["request_id"] == generated))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_healthcheck_subcommand_exits_0_for_a_live_statusd_and_1_otherwise() {
    let Some(backend) = crate::backend().await else { return };
    let setup = Setup::new(backend, json!([]), no_channels()).await;
    let statusd = setup.start(&[]).await;
    let healthcheck = |env: &[(&str, String)]| {
        let mut command = Command::new(binary());
        command.current_dir(setup.dir.path()).arg("healthcheck").env_remove("STATUSD_LISTEN");
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("healthcheck")
    };
    // As in the container: the settings say 0.0.0.0, the check goes to loopback.
    let output = healthcheck(&[("STATUSD_LISTEN", format!("0.0.0.0:{}", statusd.addr.port()))]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("/healthz: 200"));
    let port = statusd.addr.port();
    statusd.stop().await;

    let output = healthcheck(&[("STATUSD_LISTEN", format!("127.0.0.1:{port}"))]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("http://127.0.0.1:{port}/healthz: connection refused")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_keeps_at_most_max_connections_open_and_the_next_client_waits_its_turn() {
    let setup = Setup::new(Backend::Sqlite, json!([]), no_channels()).await;
    setup.write_settings("max_connections = 2\n");
    let statusd = setup.start(&[]).await;
    // Two clients hold a connection each without asking anything.
    let first = tokio::net::TcpStream::connect(statusd.addr).await.expect("connect");
    let _second = tokio::net::TcpStream::connect(statusd.addr).await.expect("connect");
    let third = reqwest::Client::new();
    let waiting = third.get(statusd.url("/healthz")).timeout(Duration::from_millis(500)).send().await;
    assert!(waiting.is_err_and(|e| e.is_timeout()), "the third client is not served while two are open");
    drop(first);
    let served = third.get(statusd.url("/healthz")).timeout(Duration::from_secs(5)).send().await;
    assert_eq!(served.expect("served once a connection closed").status(), reqwest::StatusCode::OK);
    statusd.stop().await;
}
