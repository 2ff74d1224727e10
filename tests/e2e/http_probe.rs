//! The HTTP probe against real servers misbehaving in every way it claims to recognise.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use statusd::AssetConfig;
use statusd::{ProbeContext, ProbeResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::e2e::harness::{Mode, Target};

async fn probe_once(address: &str, extra: Value) -> ProbeResult {
    let mut asset =
        json!({"id": "p", "assetType": "http", "address": address, "intervalSeconds": 5, "timeoutSeconds": 1});
    for (key, value) in extra.as_object().into_iter().flatten() {
        asset[key] = value.clone();
    }
    let asset: AssetConfig = serde_json::from_value(asset).expect("asset");
    let context = ProbeContext::new().expect("clients");
    asset.check(&context).await
}

/// [`probe_once`] over a fresh connection (statusd's own exchange, the default) and over a kept
/// one (reqwest), which must come to the same verdict, code and message; the first result.
async fn probe_both(address: &str, extra: Value) -> ProbeResult {
    let mut kept = extra.clone();
    kept["keepAlive"] = json!(true);
    let fresh = probe_once(address, extra).await;
    let reqwest = probe_once(address, kept).await;
    assert_eq!(
        (fresh.success, fresh.code, &fresh.message),
        (reqwest.success, reqwest.code, &reqwest.message),
        "{address}: a fresh connection and a kept one answered differently"
    );
    fresh
}

#[tokio::test]
async fn healthy_when_the_status_is_expected() {
    let target = Target::start().await;
    let called = std::time::Instant::now();
    let result = probe_once(&target.url(), json!({})).await;
    assert!(result.success, "{result:?}");
    assert_eq!((result.code, result.message.as_deref()), (Some(200), None));
    // The latency is the probe's own time in milliseconds: within the call's, never a larger unit.
    assert!(u128::try_from(result.latency_ms).is_ok_and(|ms| ms <= called.elapsed().as_millis()), "{result:?}");
    // Without expectedStatusCodes anything below 400 is healthy; with them only they are.
    let result = probe_once(&target.url(), json!({"expectedStatusCodes": [204]})).await;
    assert_eq!((result.success, result.message.as_deref()), (false, Some("HTTP 200 (expected 204)")));
    target.set(Mode::Error);
    let result = probe_once(&target.url(), json!({})).await;
    assert_eq!(
        (result.success, result.code, result.message.as_deref()),
        (false, Some(500), Some("HTTP 500 (expected < 400)"))
    );
}

#[tokio::test]
async fn names_a_timeout() {
    let target = Target::start().await;
    target.set(Mode::Hang);
    // The probe's own timeout ends it: the test's deadline is only there so that a probe that
    // never ends fails the test instead of hanging it.
    let result = tokio::time::timeout(Duration::from_secs(30), probe_both(&target.url(), json!({})))
        .await
        .expect("the probe's timeout ended the probe");
    assert_eq!((result.success, result.message.as_deref()), (false, Some("timeout after 1s")));
    // Not before the timeout: the latency of a timed-out probe is the time it was given.
    assert!(result.latency_ms >= 1000, "{}", result.latency_ms);
}

#[tokio::test]
async fn names_a_refused_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let result = probe_both(&format!("http://{addr}/"), json!({})).await;
    assert_eq!((result.success, result.code, result.message.as_deref()), (false, None, Some("connection refused")));
}

#[tokio::test]
async fn names_a_dns_error() {
    // .invalid never resolves (RFC 6761).
    let result = probe_both("http://statusd-test.invalid/", json!({})).await;
    assert!(!result.success);
    let message = result.message.expect("message");
    // The resolver's words (getaddrinfo's, through std), the same over both paths.
    assert!(message.starts_with("DNS error: failed to lookup address information: "), "{message}");
}

#[tokio::test]
async fn names_a_tls_error() {
    // A plain-text answer to a TLS ClientHello fails the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let result = probe_once(&format!("https://{addr}/health"), json!({})).await;
    assert!(!result.success);
    let message = result.message.expect("message");
    assert!(message.starts_with("TLS error: "), "{message}");
}

#[tokio::test]
async fn names_a_connection_closed_without_an_answer() {
    let target = Target::start().await;
    target.set(Mode::Close);
    // The server closes as it accepts, before the request is read: over a fresh connection
    // (statusd's own exchange) and a kept one (reqwest) alike, and every time, not only when
    // the request wins the race.
    for keep_alive in [false, true] {
        for _ in 0..20 {
            let result = probe_once(&target.url(), json!({"keepAlive": keep_alive})).await;
            assert!(!result.success);
            let message = result.message.expect("message");
            assert!(message.contains("closed") || message.contains("reset"), "keepAlive {keep_alive}: {message}");
        }
    }
}

#[tokio::test]
async fn reads_at_most_one_mebibyte_of_an_endless_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n").await;
        let chunk = vec![b'x'; 64 * 1024];
        while stream.write_all(&chunk).await.is_ok() {
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    let result = probe_once(&format!("http://{addr}/"), json!({})).await;
    assert!(result.success, "{result:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
    // The probe stopped reading at 1 MiB; the kernel's socket buffers hold a few MiB more.
    assert!(sent < 16 * 1024 * 1024, "the server got to send {sent} bytes");
}

#[tokio::test]
async fn never_panics_on_garbage() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for reply in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 999 What\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"\x00\xff\x13",
        ] {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(reply).await;
        }
    });
    for _ in 0..4 {
        let result = probe_once(&format!("http://{addr}/"), json!({})).await;
        assert!(!result.success, "{result:?}");
        assert!(result.message.is_some());
    }
}

/// An axum app that shows what it was sent, redirects, and serves a JSON health document.
async fn echo_server() -> String {
    use axum::routing::{any, get};
    async fn echo(method: axum::http::Method, headers: axum::http::HeaderMap, body: String) -> axum::Json<Value> {
        let token = headers.get("x-token").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        axum::Json(json!({"method": method.as_str(), "token": token, "body": body}))
    }
    let app = axum::Router::new()
        .route("/echo", any(echo))
        .route("/moved", get(|| async { axum::response::Redirect::temporary("/final") }))
        .route("/final", get(|| async { "you found the final page" }))
        .route("/health.json", get(|| async { axum::Json(json!({"status": "UP", "data": [{"id": 1}], "items": []})) }));
    serve(app).await
}

/// Serves `app` on a free loopback port; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn sends_the_method_headers_and_body_it_is_given() {
    let base = echo_server().await;
    let extra = json!({
        "method": "POST", "headers": {"x-token": "t0ps3cret"}, "body": "{\"ping\":1}",
        "bodyContains": "\"method\":\"POST\""
    });
    let result = probe_once(&format!("{base}/echo"), extra.clone()).await;
    assert!(result.success, "{result:?}");
    let mut wrong = extra;
    wrong["bodyContains"] = json!("\"token\":\"t0ps3cret\",\"body\":\"{\\\"ping\\\":2}\"");
    let result = probe_once(&format!("{base}/echo"), wrong).await;
    assert!(result.message.as_deref().is_some_and(|m| m.starts_with("HTTP 200, body does not contain")), "{result:?}");
    let result = probe_once(&format!("{base}/echo"), json!({"method": "DELETE", "bodyNotContains": "DELETE"})).await;
    assert_eq!(result.message.as_deref(), Some("HTTP 200, body contains \"DELETE\""));
}

#[tokio::test]
async fn follows_redirects_unless_told_not_to() {
    let base = echo_server().await;
    let result = probe_once(&format!("{base}/moved"), json!({"bodyContains": "final page"})).await;
    assert_eq!((result.success, result.code), (true, Some(200)), "{result:?}");
    let result = probe_once(&format!("{base}/moved"), json!({"followRedirects": false})).await;
    assert_eq!((result.success, result.code), (true, Some(307)), "a redirect is below 400: {result:?}");
    let result =
        probe_once(&format!("{base}/moved"), json!({"followRedirects": false, "expectedStatusCodes": [200]})).await;
    assert_eq!(result.message.as_deref(), Some("HTTP 307 (expected 200)"));
}

#[tokio::test]
async fn a_status_after_a_followed_redirect_says_so() {
    let base = echo_server().await;
    let result = probe_once(&format!("{base}/moved"), json!({"expectedStatusCodes": [301]})).await;
    assert_eq!(
        result.message.as_deref(),
        Some("HTTP 200 after a redirect (expected 301; set followRedirects: false to check the redirect itself)")
    );
    let result = probe_once(&format!("{base}/moved"), json!({"expectedStatusCodes": [204]})).await;
    assert_eq!(result.message.as_deref(), Some("HTTP 200 after a redirect (expected 204)"));
    // No redirect, no mention of one (credentials and a fragment are not part of what is sent).
    let result = probe_once(&format!("{base}/final"), json!({"expectedStatusCodes": [301]})).await;
    assert_eq!(result.message.as_deref(), Some("HTTP 200 (expected 301)"));
    let address = base.replace("http://", "http://user:secret-pw@");
    let result = probe_once(&format!("{address}/final#top"), json!({"expectedStatusCodes": [204]})).await;
    assert_eq!(result.message.as_deref(), Some("HTTP 200 (expected 204)"));
}

/// An app that says which `Authorization` it was sent (`/who`), and redirects to its own `/who`
/// (`/here`) or to `elsewhere` (`/away`).
async fn credentials_server(elsewhere: Option<String>) -> String {
    use axum::routing::get;
    async fn who(headers: axum::http::HeaderMap) -> String {
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("none");
        format!("authorization: {sent}")
    }
    let away = elsewhere.unwrap_or_default();
    let app = axum::Router::new()
        .route("/who", get(who))
        .route("/here", get(|| async { axum::response::Redirect::temporary("/who") }))
        .route("/away", get(move || async move { axum::response::Redirect::temporary(&away) }));
    serve(app).await
}

/// The credentials an asset sends go where its address points and follow a redirect on the same
/// origin, but never to another one (another port is another origin, RFC 6454), as curl and
/// browsers behave.
#[tokio::test]
async fn a_redirect_to_another_origin_does_not_carry_the_credentials() {
    let other = credentials_server(None).await;
    let base = credentials_server(Some(format!("{other}/who"))).await;
    let headers = json!({"authorization": "Bearer s3cret"});
    for (path, expected) in [("/who", "Bearer s3cret"), ("/here", "Bearer s3cret"), ("/away", "none")] {
        let result = probe_once(
            &format!("{base}{path}"),
            json!({"headers": headers, "bodyContains": format!("authorization: {expected}")}),
        )
        .await;
        assert!(result.success, "{path}: {result:?}");
    }
}

#[tokio::test]
async fn reports_the_time_to_the_first_byte() {
    let target = Target::start().await;
    target.set(Mode::Slow);
    let result = probe_once(&target.url(), json!({"timeoutSeconds": 2, "intervalSeconds": 5})).await;
    let first_byte = result.detail.timings.and_then(|t| t.first_byte_ms).expect("first byte time");
    assert!((400..1900).contains(&first_byte), "{first_byte}");
}

#[tokio::test]
async fn conditions_judge_status_body_and_time() {
    let base = echo_server().await;
    let url = format!("{base}/health.json");
    let holds = json!({"conditions": [
        "[STATUS] == 200", "[BODY].status == UP", "[BODY].data[0].id == 1", "len([BODY].items) == 0",
        "[RESPONSE_TIME] < 1000", "[CONNECTED] == true"
    ]});
    let result = probe_once(&url, holds).await;
    assert!(result.success, "{result:?}");
    let result = probe_once(&url, json!({"conditions": ["[STATUS] == 200", "[BODY].status == DOWN"]})).await;
    assert_eq!((result.success, result.message.as_deref()), (false, Some("[BODY].status (UP) == DOWN")));
    // With conditions and no expectedStatusCodes, the conditions judge the status too.
    let result = probe_once(&format!("{base}/nowhere"), json!({"conditions": ["[STATUS] == 404"]})).await;
    assert!(result.success, "{result:?}");
    // The address that answered, over a fresh connection and over a kept one alike.
    let ip = |ip: &str| json!({"conditions": [format!("[IP] == {ip}")]});
    let result = probe_both(&url, ip("127.0.0.1")).await;
    assert!(result.success, "{result:?}");
    let result = probe_both(&url, ip("127.0.0.2")).await;
    assert_eq!(result.message.as_deref(), Some("[IP] (127.0.0.1) == 127.0.0.2"));
}

/// A keep-alive HTTP/1.1 server whose accept loop can be stopped while the connections it
/// already has go on being served.
async fn keep_alive_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepting = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 || stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/"), accepting)
}

#[tokio::test]
async fn a_fresh_connection_per_probe_notices_a_server_that_stopped_accepting() {
    use statusd::ProbeContext;
    let (url, accepting) = keep_alive_server().await;
    let context = ProbeContext::new().expect("clients");
    let asset = |keep_alive: bool| {
        let asset = json!({"id": "p", "assetType": "http", "address": url, "intervalSeconds": 5,
                           "timeoutSeconds": 1, "keepAlive": keep_alive});
        serde_json::from_value::<AssetConfig>(asset).expect("asset")
    };
    let (fresh, kept) = (asset(false), asset(true));
    assert!(fresh.check(&context).await.success);
    assert!(kept.check(&context).await.success);
    accepting.abort();
    let _ = accepting.await;
    let result = fresh.check(&context).await;
    assert_eq!((result.success, result.message.as_deref()), (false, Some("connection refused")));
    // A kept-alive connection hides it: that is why it is not the default.
    assert!(kept.check(&context).await.success);
}

#[test]
fn http_settings_are_checked_at_load() {
    let manifest = json!({"assets": [
        {"id": "a", "assetType": "http", "address": "http://x/", "method": "FETCH",
         "headers": {"bad header": "v", "x-ok": "line\nbreak"}, "bodyContains": "", "caFile": "/nonexistent/ca.pem"}
    ]});
    let problems: Vec<String> = statusd::Manifest::from_value(&manifest, "manifest.json")
        .expect_err("invalid")
        .0
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    let expected = [
        "assets[0].method: \"FETCH\" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        "assets[0].headers.bad header: is not a valid header name",
        "assets[0].headers.x-ok: the value has characters a header cannot hold",
        "assets[0].bodyContains: must not be empty (leave it out instead)",
    ];
    for line in expected {
        assert!(problems.contains(&line.to_string()), "missing {line:?} in {problems:#?}");
    }
    assert!(problems.iter().any(|p| p.starts_with("assets[0].caFile: ")), "{problems:#?}");
    assert_eq!(problems.len(), 5, "{problems:#?}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, data).expect("gzip");
    encoder.finish().expect("gzip")
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, data).expect("deflate");
    encoder.finish().expect("deflate")
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::new();
    let params = brotli::enc::BrotliEncoderParams::default();
    brotli::BrotliCompress(&mut std::io::Cursor::new(data), &mut encoded, &params).expect("brotli");
    encoded
}

/// A server that answers every request with `head` (status line and headers, without the
/// blank line) and `body`, as a CDN would send it; it records each request's head.
async fn raw_server(head: String, body: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
    let answer = move |is_head: bool| {
        let mut response = format!("{head}\r\nconnection: close\r\n\r\n").into_bytes();
        if !is_head {
            response.extend_from_slice(&body);
        }
        response
    };
    serve_bytes(answer).await
}

/// A server that writes `answer(whether the request is a HEAD)` verbatim after each request.
async fn serve_bytes(answer: impl Fn(bool) -> Vec<u8> + Send + Sync + 'static) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (answer, seen) = (answer.clone(), seen.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                seen.lock().push(String::from_utf8_lossy(&request).to_ascii_lowercase());
                let _ = stream.write_all(&answer(request.starts_with(b"HEAD "))).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/"), requests)
}

/// A probe over a fresh connection (the default) goes by statusd's own exchange, one with
/// `keepAlive` by reqwest: a server sees the same request from both, `Connection` aside.
#[tokio::test]
async fn a_fresh_connection_sends_the_request_a_kept_one_does() {
    let (url, requests) = raw_server("HTTP/1.1 200 OK\r\ncontent-length: 2".into(), b"ok".to_vec()).await;
    let address = format!("{url}health?full=1#top");
    for headers in [json!({}), json!({"X-Token": "t0ps3cret", "User-Agent": "mine", "Accept": "text/plain"})] {
        for method in ["GET", "HEAD", "POST"] {
            let extra = json!({"method": method, "headers": headers, "body": (method == "POST").then_some("{}")});
            for keep_alive in [false, true] {
                let mut extra = extra.clone();
                extra["keepAlive"] = json!(keep_alive);
                let result = probe_once(&address, extra).await;
                assert!(result.success, "{method} {headers} keepAlive {keep_alive}: {result:?}");
            }
        }
    }
    let heads = requests.lock().clone();
    assert_eq!(heads.len(), 12);
    for pair in heads.chunks(2) {
        let lines = |head: &str| {
            let mut lines: Vec<String> =
                head.lines().filter(|line| !line.starts_with("connection:")).map(str::to_string).collect();
            lines.sort();
            lines
        };
        assert_eq!(lines(&pair[0]), lines(&pair[1]), "fresh:\n{}\nkept:\n{}", pair[0], pair[1]);
        assert!(pair[0].contains("\r\nconnection: close\r\n"), "{}", pair[0]);
    }
    assert!(heads[0].starts_with("get /health?full=1 http/1.1\r\n"), "{}", heads[0]);
}

/// An IPv6 address and a name to resolve go the same way over a fresh connection (statusd's
/// own exchange) as over a kept one (reqwest): the `Host` the server sees and the address
/// that answered (`[IP]`) included.
#[tokio::test]
async fn ipv6_addresses_and_names_are_probed_alike_over_both_paths() {
    use axum::routing::get;
    async fn host(headers: axum::http::HeaderMap) -> String {
        let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("none");
        format!("host: {host}")
    }
    let listener = TcpListener::bind("[::1]:0").await.expect("bind ::1");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().route("/", get(host))).await });
    let v4 = serve(axum::Router::new().route("/", get(host))).await;
    let v4_port = v4.rsplit(':').next().expect("port").to_string();
    let cases = [
        (format!("http://[::1]:{port}/"), format!("host: [::1]:{port}"), "::1"),
        (format!("http://localhost:{v4_port}/"), format!("host: localhost:{v4_port}"), "127.0.0.1"),
    ];
    for (address, host, ip) in cases {
        let checks = json!({"bodyContains": host, "conditions": [format!("[IP] == {ip}")]});
        let result = probe_both(&address, checks).await;
        assert!(result.success, "{address}: {result:?}");
    }
}

#[tokio::test]
async fn compressed_bodies_are_asked_for_decoded_and_judged() {
    let page = br#"{"status": "UP", "note": "served compressed, as CDNs do"}"#;
    for (encoding, encoded) in [("gzip", gzip(page)), ("deflate", zlib(page)), ("br", brotli(page))] {
        let head = format!("HTTP/1.1 200 OK\r\ncontent-encoding: {encoding}\r\ncontent-length: {}", encoded.len());
        let (url, requests) = raw_server(head, encoded).await;
        let checks = json!({"bodyContains": "\"status\": \"UP\"", "conditions": ["[BODY].status == UP"]});
        let result = probe_both(&url, checks).await;
        assert!(result.success, "{encoding}: {result:?}");
        let asked = requests.lock()[0].clone();
        let accepted = asked.lines().find_map(|l| l.strip_prefix("accept-encoding:")).unwrap_or_default().to_string();
        for name in ["gzip", "deflate", "br"] {
            assert!(accepted.contains(name), "Accept-Encoding {accepted:?} lacks {name}");
        }
        let result = probe_both(&url, json!({"bodyContains": "DOWN"})).await;
        assert_eq!(result.message.as_deref(), Some("HTTP 200, body does not contain \"DOWN\""), "{encoding}");
        // A HEAD answer announces the encoding but has no body to decode.
        let result = probe_both(&url, json!({"method": "HEAD"})).await;
        assert!(result.success, "{encoding} HEAD: {result:?}");
    }
}

#[tokio::test]
async fn a_decompression_bomb_is_cut_at_one_mebibyte_decoded() {
    // 64 MiB of zeros in about 64 KiB of gzip: what a hostile or broken server may send.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
    let head = format!("HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: {}", bomb.len());
    let (url, _) = raw_server(head, bomb).await;
    let result = probe_both(&url, json!({"bodyContains": "never there", "timeoutSeconds": 5})).await;
    assert_eq!(
        result.message.as_deref(),
        Some("HTTP 200, body does not contain \"never there\" (only the first 1 MiB of the body was read)")
    );
    let result = probe_both(&url, json!({"conditions": ["[BODY] == ok"], "timeoutSeconds": 5})).await;
    let message = result.message.expect("a message");
    assert!(message.ends_with(" == ok (only the first 1 MiB of the body was read)"), "{message}");
}

#[tokio::test]
async fn a_body_in_an_encoding_statusd_cannot_decode_says_so() {
    let head = "HTTP/1.1 200 OK\r\ncontent-encoding: zstd\r\ncontent-length: 4".to_string();
    let (url, _) = raw_server(head, b"\x28\xb5\x2f\xfd".to_vec()).await;
    let result = probe_both(&url, json!({"bodyContains": "UP"})).await;
    assert_eq!(
        result.message.as_deref(),
        Some("HTTP 200, body does not contain \"UP\" (the body is zstd-encoded, which statusd does not decode)")
    );
}

#[tokio::test]
async fn heads_that_curl_and_browsers_read_are_read() {
    let headers =
        |count: usize, value: &str| -> String { (0..count).map(|i| format!("x-header-{i}: {value}\r\n")).collect() };
    let long_value = "a".repeat(64 * 1024);
    let heads: Vec<(&str, String)> = vec![
        ("150 headers", format!("HTTP/1.1 200 OK\r\n{}content-length: 2\r\n\r\nok", headers(150, "v"))),
        ("a 64 KiB header line", format!("HTTP/1.1 200 OK\r\nx-long: {long_value}\r\ncontent-length: 2\r\n\r\nok")),
        (
            "300 KiB of headers",
            format!("HTTP/1.1 200 OK\r\n{}content-length: 2\r\n\r\nok", headers(75, &"b".repeat(4096))),
        ),
        ("obsolete line folding", "HTTP/1.1 200 OK\r\nx-folded: a\r\n  b\r\ncontent-length: 2\r\n\r\nok".into()),
        ("no reason phrase", "HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok".into()),
        ("a space before the colon", "HTTP/1.1 200 OK\r\nx-thing : v\r\ncontent-length: 2\r\n\r\nok".into()),
        ("an invalid header name", "HTTP/1.1 200 OK\r\nbad header: x\r\ncontent-length: 2\r\n\r\nok".into()),
        ("a line that is no header", "HTTP/1.1 200 OK\r\ngarbage\r\ncontent-length: 2\r\n\r\nok".into()),
        ("bare LF line ends", "HTTP/1.1 200 OK\ncontent-length: 2\n\nok".into()),
        ("Latin-1 in a value and the reason", "HTTP/1.1 200 D\u{e9}j\u{e0} vu\r\nx-name: caf\u{e9}\r\ncontent-length: 2\r\n\r\nok".into()),
        (
            "interim 100 and 103 answers",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".into(),
        ),
        ("HTTP/1.0, read to the close", "HTTP/1.0 200 OK\r\n\r\nok".into()),
    ];
    for (what, response) in heads {
        let bytes: Vec<u8> = response.chars().map(|c| u8::try_from(u32::from(c)).expect("Latin-1")).collect();
        let (url, _) = serve_bytes(move |_| bytes.clone()).await;
        let result = probe_both(&url, json!({"bodyContains": "ok"})).await;
        assert_eq!((result.success, result.code), (true, Some(200)), "{what}: {result:?}");
    }
}

#[tokio::test]
async fn a_head_statusd_cannot_read_is_named_as_such() {
    let headers: String = (0..1001).map(|i| format!("x-header-{i}: v\r\n")).collect();
    let (many, _) = raw_server(format!("HTTP/1.1 200 OK\r\n{headers}content-length: 2"), b"ok".to_vec()).await;
    let huge = format!("x-huge: {}", "c".repeat(500 * 1024));
    let (large, _) = raw_server(format!("HTTP/1.1 200 OK\r\n{huge}\r\ncontent-length: 2"), b"ok".to_vec()).await;
    for url in [many, large] {
        let result = probe_both(&url, json!({})).await;
        assert_eq!(
            result.message.as_deref(),
            Some("the response head is larger than statusd reads (at most 1000 header lines and 408 KiB)")
        );
    }
    // curl reads this one; hyper cannot be told to.
    let (url, _) = raw_server("HTTP/1.1  200  OK\r\ncontent-length: 2".into(), b"ok".to_vec()).await;
    let result = probe_both(&url, json!({})).await;
    assert_eq!(
        result.message.as_deref(),
        Some("invalid HTTP status line: statusd reads a 3-digit code between single spaces (HTTP/1.1 200 OK)")
    );
}
