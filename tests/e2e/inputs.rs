//! What clients send that statusd did not expect: every refusal is `{"error": …}` JSON with the
//! right status, and a push is a heartbeat whatever body comes with it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::e2e::harness::{Setup, Target, eventually, http_asset, no_channels};

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "s3cret-push-token-1234";

/// Status, content type and body of an answer.
async fn answer(response: reqwest::Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_posting_its_120_kb_log_with_each_heartbeat_keeps_its_push_asset_up() {
    let Some(backend) = crate::backend().await else { return };
    let asset = json!({
        "id": "nightly-job", "assetType": "push", "token": TOKEN, "intervalSeconds": 1, "graceSeconds": 1
    });
    let setup = Setup::new(backend, json!([asset]), no_channels()).await;
    let statusd = setup.start(&[]).await;
    // A log as `curl --data-binary @job.log` sends it: a Content-Length far over the API's
    // 64 KiB limit.
    let log: String = (0..3200).map(|i| format!("line {i:05}: step done, all fine so far\n")).collect();
    assert!(log.len() > 120_000, "{}", log.len());
    let url = statusd.url(&format!("/api/push/nightly-job?token={TOKEN}"));

    // Pings every 300 ms for 4 s, four times the push interval plus grace: the asset never goes
    // down, as every ping counts.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let response = statusd.http.post(&url).body(log.clone()).send().await.expect("push");
        let (status, _, body) = answer(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], true, "{body}");
        pings += 1;
        if pings == 1 {
            statusd.wait_status("nightly-job", "up", WAIT).await;
        }
        let asset = statusd.asset("nightly-job").await;
        assert_eq!(asset["status"], "up", "after {:?}: {asset}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Every ping is a stored success; no miss was ever recorded.
    let events = eventually("every ping stored", WAIT, || async {
        let (_, events) = statusd.get("/api/assets/nightly-job/events?limit=1000").await;
        let events = events.as_array()?.clone();
        (events.len() >= pings).then_some(events)
    })
    .await;
    assert!(events.iter().all(|e| e["success"] == true), "{events:?}");

    // A failing job's log is its message: the start of it, cut like any pushed message.
    let response = statusd.http.post(format!("{url}&status=down")).body(log.clone()).send().await.expect("push");
    assert_eq!(response.status(), StatusCode::OK);
    let down = statusd.wait_status("nightly-job", "down", WAIT).await;
    assert_eq!(down["lastProbe"]["message"], log.chars().take(200).collect::<String>());
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_is_json_with_an_error_and_its_status() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset("web", &target.url())]), no_channels()).await;
    // The demo webhook is the route that takes a JSON body through axum's extractor.
    setup.write_settings("demo = true\n");
    let statusd = setup.start(&[]).await;
    let chunked = |bytes: Vec<u8>| reqwest::Body::wrap_stream(futures::stream::iter([Ok::<_, std::io::Error>(bytes)]));
    let http = &statusd.http;
    let url = |path: &str| statusd.url(path);
    let cases = [
        // An asset id that is not UTF-8 once decoded: refused by the path extractor.
        ("path not UTF-8", http.get(url("/api/assets/%FF%FE")), StatusCode::BAD_REQUEST, "UTF-8"),
        // A query string the push parameters cannot be read from.
        ("bad query", http.get(url("/api/push/web?token=a&token=b")), StatusCode::BAD_REQUEST, "query string"),
        (
            "bad JSON body",
            http.post(url("/demo/webhook")).header("content-type", "application/json").body("{\"event\": "),
            StatusCode::BAD_REQUEST,
            "JSON",
        ),
        (
            "JSON body without its type",
            http.post(url("/demo/webhook")).body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            "body over the limit, announced",
            http.put(url("/api/log-level")).header("content-type", "application/json").body(vec![b' '; 100_000]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit exceeded",
        ),
        (
            "body over the limit, chunked",
            http.put(url("/api/log-level")).body(chunked(vec![b' '; 100_000])),
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit exceeded",
        ),
        ("unknown route", http.get(url("/api/nothing-here")), StatusCode::NOT_FOUND, "no route"),
        ("wrong method", http.delete(url("/api/assets")), StatusCode::METHOD_NOT_ALLOWED, "not allowed"),
    ];
    for (what, request, expected, words) in cases {
        let (status, content_type, body) = answer(request.send().await.expect("request")).await;
        assert_eq!(status, expected, "{what}: {body}");
        assert_eq!(content_type, "application/json", "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{what}: no error in {body}"));
        assert!(error.contains(words), "{what}: {error:?} does not say {words:?}");
    }
    statusd.stop().await;
}

/// An answer given before the request's body was read (a 413 for a body over the limit) closes
/// the connection, and says so: a client that has sent its whole body and read the whole answer
/// would otherwise put the connection back in its pool and send its next request into the
/// close. An answer to a request read whole keeps the connection.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_given_before_the_body_was_read_says_the_connection_closes() {
    let Some(backend) = crate::backend().await else { return };
    let setup = Setup::new(backend, json!([]), no_channels()).await;
    let statusd = setup.start(&[]).await;
    let chunked = |bytes: Vec<u8>| reqwest::Body::wrap_stream(futures::stream::iter([Ok::<_, std::io::Error>(bytes)]));
    let http = &statusd.http;
    let url = statusd.url("/api/log-level");
    let cases = [
        ("body over the limit, announced", http.put(&url).body(vec![b' '; 100_000]), Some("close")),
        ("body over the limit, chunked", http.put(&url).body(chunked(vec![b' '; 100_000])), Some("close")),
        (
            "bad JSON body, read whole",
            http.put(&url).header("content-type", "application/json").body("{\"level\": "),
            None,
        ),
        ("no body", http.get(statusd.url("/api/health")), None),
    ];
    for (what, request, expected) in cases {
        let response = request.send().await.expect("request");
        let connection =
            response.headers().get(reqwest::header::CONNECTION).map(|v| v.to_str().expect("ASCII").to_string());
        assert_eq!(connection.as_deref(), expected, "{what}: {}", response.status());
    }
    statusd.stop().await;
}
