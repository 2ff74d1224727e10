//! The channel types that are a service's API (PagerDuty, Opsgenie, Telegram, ntfy, Gotify,
//! Pushover, Matrix) and the Slack-like webhooks (Mattermost, Rocket.Chat, Google Chat), each
//! against a local server that records every request as the service would receive it: method,
//! path, headers and JSON body. One outage, acknowledged, then over: each channel hears exactly
//! one DOWN, one ACK and one RECOVERY, in the shape the service documents.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::e2e::harness::{AbortOnDrop, Mode, Setup, Target, eventually, http_asset, metric};

const WAIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "channels-api-token";

/// One request as the service got it.
#[derive(Debug, Clone)]
struct Recorded {
    at: tokio::time::Instant,
    method: Method,
    /// Path and query, as sent (percent-encoded).
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// Answers every request with 200 `{"ok": true}` and keeps it.
struct Recorder {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    _server: AbortOnDrop,
}

impl Recorder {
    async fn start() -> Recorder {
        Recorder::refusing_first(None).await
    }

    /// With `refusal`, the first request is answered 429 with that JSON body (and kept too).
    async fn refusing_first(refusal: Option<Value>) -> Recorder {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let kept = Arc::clone(&requests);
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let kept = Arc::clone(&kept);
            let refusal = refusal.clone();
            async move {
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let path = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
                let mut kept = kept.lock();
                kept.push(Recorded { at: tokio::time::Instant::now(), method, path, headers, body });
                match refusal {
                    Some(refusal) if kept.len() == 1 => (StatusCode::TOO_MANY_REQUESTS, axum::Json(refusal)),
                    _ => (StatusCode::OK, axum::Json(json!({"ok": true}))),
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind recorder");
        let addr = listener.local_addr().expect("recorder address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { addr, requests, _server: AbortOnDrop(server) }
    }

    fn url(&self, prefix: &str) -> String {
        format!("http://{}/{prefix}", self.addr)
    }

    /// The requests whose path starts with `/<prefix>/`, in arrival order.
    fn of(&self, prefix: &str) -> Vec<Recorded> {
        let start = format!("/{prefix}/");
        self.requests.lock().iter().filter(|r| r.path.starts_with(&start)).cloned().collect()
    }
}

/// The event a request stands for, read the way each service would read it.
fn event_of(channel: &str, request: &Recorded) -> String {
    let body = &request.body;
    let headline = |text: &str| {
        ["DOWN", "ACK", "RECOVERY"].into_iter().find(|e| text.contains(&format!(" - {e}"))).map(String::from)
    };
    let event = match channel {
        "pagerduty" => match body["event_action"].as_str() {
            Some("trigger") => Some("DOWN".into()),
            Some("acknowledge") => Some("ACK".into()),
            Some("resolve") => Some("RECOVERY".into()),
            _ => None,
        },
        "opsgenie" => {
            if request.path.ends_with("/v2/alerts") {
                Some("DOWN".into())
            } else if request.path.contains("/acknowledge?") {
                Some("ACK".into())
            } else if request.path.contains("/close?") {
                Some("RECOVERY".into())
            } else {
                None
            }
        }
        "telegram" => body["text"].as_str().and_then(|t| headline(&t.replace("\\-", "-"))),
        "ntfy" => body["title"].as_str().and_then(headline),
        "gotify" | "pushover" => body["title"].as_str().and_then(headline),
        "matrix" => body["body"].as_str().and_then(headline),
        "mattermost" | "rocketchat" => body["attachments"][0]["fields"][1]["value"].as_str().map(String::from),
        "googlechat" => {
            body["cardsV2"][0]["card"]["sections"][0]["widgets"][0]["decoratedText"]["text"].as_str().map(String::from)
        }
        _ => None,
    };
    event.unwrap_or_else(|| format!("? {} {}", request.path, body))
}

const CHANNELS: [&str; 10] = [
    "pagerduty",
    "opsgenie",
    "telegram",
    "ntfy",
    "gotify",
    "pushover",
    "matrix",
    "mattermost",
    "rocketchat",
    "googlechat",
];

fn notifiers(recorder: &Recorder, dead: std::net::SocketAddr) -> Value {
    json!({
        "notifiers": {
            "deadtg": {"type": "telegram", "botToken": "999:DEAD-BOT-TOKEN", "chatId": "@ops", "baseUrl": format!("http://{dead}")},
            "pagerduty": {"type": "pagerduty", "routingKey": "PD-ROUTING-KEY", "baseUrl": recorder.url("pagerduty")},
            "opsgenie": {"type": "opsgenie", "apiKey": "OG-API-KEY", "priority": "P2", "baseUrl": recorder.url("opsgenie")},
            "telegram": {"type": "telegram", "botToken": "123:TG-BOT-TOKEN", "chatId": -1001, "messageThreadId": 7, "baseUrl": recorder.url("telegram")},
            "ntfy": {"type": "ntfy", "topic": "ops-alerts", "token": "NTFY-TOKEN", "baseUrl": recorder.url("ntfy")},
            "gotify": {"type": "gotify", "appToken": "GOTIFY-TOKEN", "priority": 9, "baseUrl": recorder.url("gotify")},
            "pushover": {"type": "pushover", "userKey": "PO-USER", "appToken": "PO-APP", "priority": 2, "baseUrl": recorder.url("pushover")},
            "matrix": {"type": "matrix", "accessToken": "MX-TOKEN", "roomId": "!ops:localhost", "baseUrl": recorder.url("matrix")},
            "mattermost": {"type": "mattermost", "webhookUrl": recorder.url("mattermost/hooks/MM-SECRET")},
            "rocketchat": {"type": "rocketchat", "webhookUrl": recorder.url("rocketchat/hooks/RC-SECRET")},
            "googlechat": {"type": "googlechat", "webhookUrl": recorder.url("googlechat/v1/spaces/X/messages?key=GC-KEY&token=GC-TOKEN")},
        },
        "notificationPolicy": {"onDown": CHANNELS, "onRecovery": CHANNELS, "throttleSeconds": 0}
    })
}

async fn all_heard(recorder: &Recorder, what: &str, count: usize) {
    for channel in CHANNELS {
        eventually(&format!("{what} on {channel}"), WAIT, || async {
            (recorder.of(channel).len() >= count).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_service_hears_down_ack_and_recovery_once_in_its_documented_shape() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let recorder = Recorder::start().await;
    // A port nothing listens on: bound, then let go.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let setup = Setup::new(backend, json!([http_asset("svc", &target.url())]), notifiers(&recorder, dead)).await;
    setup.write_settings(&format!("api_token = \"{TOKEN}\"\n"));
    let statusd = setup.start(&[]).await;
    statusd.wait_status("svc", "up", WAIT).await;
    target.set(Mode::Error);
    let down = statusd.wait_status("svc", "down", WAIT).await;
    let incident = down["openIncidentId"].as_str().expect("an open incident").to_string();
    all_heard(&recorder, "the DOWN", 1).await;

    let ack = statusd
        .http
        .post(statusd.url(&format!("/api/incidents/{incident}/ack")))
        .bearer_auth(TOKEN)
        .json(&json!({"by": "alice"}))
        .send()
        .await
        .expect("ack");
    assert_eq!(ack.status(), reqwest::StatusCode::OK);
    all_heard(&recorder, "the ACK", 2).await;
    target.set(Mode::Ok);
    statusd.wait_status("svc", "up", WAIT).await;
    all_heard(&recorder, "the RECOVERY", 3).await;
    let metrics = statusd.metrics().await;
    statusd.stop().await;

    for channel in CHANNELS {
        let events: Vec<String> = recorder.of(channel).iter().map(|r| event_of(channel, r)).collect();
        assert_eq!(events, ["DOWN", "ACK", "RECOVERY"], "{channel}");
        for event in ["DOWN", "ACK", "RECOVERY"] {
            let series =
                format!("statusd_notifications_total{{channel=\"{channel}\",event=\"{event}\",result=\"sent\"}}");
            assert_eq!(metric(&metrics, &series), Some(1.0), "{series}");
        }
    }

    // PagerDuty: one alert under dedup_key = the incident: trigger, acknowledge, resolve.
    let pd = recorder.of("pagerduty");
    for request in &pd {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/pagerduty/v2/enqueue"));
        assert_eq!(request.body["routing_key"], "PD-ROUTING-KEY");
        assert_eq!(request.body["dedup_key"], incident.as_str());
    }
    let trigger = &pd[0].body["payload"];
    assert_eq!((trigger["severity"].as_str(), trigger["source"].as_str()), (Some("critical"), Some("svc")));
    assert_eq!(trigger["summary"], "🔴 Asset svc - DOWN: HTTP 500 (expected 200)");
    assert!(trigger["timestamp"].is_string());

    // Opsgenie: create with alias = the incident, then acknowledge and close by alias.
    let og = recorder.of("opsgenie");
    assert!(og.iter().all(|r| r.headers["authorization"] == "GenieKey OG-API-KEY" && r.method == Method::POST));
    assert_eq!((og[0].body["alias"].as_str(), og[0].body["priority"].as_str()), (Some(incident.as_str()), Some("P2")));
    assert_eq!(og[1].path, format!("/opsgenie/v2/alerts/{incident}/acknowledge?identifierType=alias"));
    assert_eq!(og[2].path, format!("/opsgenie/v2/alerts/{incident}/close?identifierType=alias"));
    assert_eq!(og[2].body["source"], "statusd");

    // Telegram: the token in the path, chat_id and thread, MarkdownV2 escaped.
    let tg = recorder.of("telegram");
    assert!(tg.iter().all(|r| r.path == "/telegram/bot123:TG-BOT-TOKEN/sendMessage"));
    assert_eq!((tg[0].body["chat_id"].as_i64(), tg[0].body["message_thread_id"].as_i64()), (Some(-1001), Some(7)));
    assert_eq!(tg[0].body["parse_mode"], "MarkdownV2");
    assert!(
        tg[0].body["text"].as_str().expect("text").starts_with("*🔴 Asset svc \\- DOWN*\nHTTP 500 \\(expected 200\\)")
    );

    // ntfy: JSON to the root, bearer token, priority by event.
    let ntfy = recorder.of("ntfy");
    assert!(ntfy.iter().all(|r| r.path == "/ntfy/" && r.headers["authorization"] == "Bearer NTFY-TOKEN"));
    let priorities: Vec<u64> = ntfy.iter().filter_map(|r| r.body["priority"].as_u64()).collect();
    assert_eq!(priorities, [5, 3, 3]);
    assert_eq!(ntfy[0].body["topic"], "ops-alerts");

    // Gotify: /message with the app token in X-Gotify-Key.
    let gotify = recorder.of("gotify");
    assert!(gotify.iter().all(|r| r.path == "/gotify/message" && r.headers["x-gotify-key"] == "GOTIFY-TOKEN"));
    assert_eq!(gotify[0].body["priority"], 9);
    assert!(gotify[0].body["message"].as_str().expect("message").starts_with("HTTP 500 (expected 200)"));

    // Pushover: token and user in the body; an emergency DOWN with retry and expire.
    let po = recorder.of("pushover");
    assert!(
        po.iter().all(|r| r.path == "/pushover/1/messages.json"
            && r.body["token"] == "PO-APP"
            && r.body["user"] == "PO-USER")
    );
    assert_eq!(
        (po[0].body["priority"].as_i64(), po[0].body["retry"].as_u64(), po[0].body["expire"].as_u64()),
        (Some(2), Some(60), Some(3600))
    );
    assert_eq!((po[2].body["priority"].as_i64(), po[2].body.get("retry")), (Some(0), None));

    // Matrix: PUT to the room with a transaction id per message, an m.notice with HTML.
    let mx = recorder.of("matrix");
    let prefix = "/matrix/_matrix/client/v3/rooms/%21ops%3Alocalhost/send/m.room.message/";
    assert!(mx.iter().all(|r| r.method == Method::PUT
        && r.path.starts_with(prefix)
        && r.headers["authorization"] == "Bearer MX-TOKEN"));
    let txns: std::collections::HashSet<&str> = mx.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(txns.len(), 3, "one transaction per message");
    assert_eq!(
        (mx[0].body["msgtype"].as_str(), mx[0].body["format"].as_str()),
        (Some("m.notice"), Some("org.matrix.custom.html"))
    );

    // The Slack-like webhooks: their own keys beside the attachment.
    let mm = recorder.of("mattermost");
    assert_eq!(
        (mm[0].path.as_str(), mm[0].body["username"].as_str()),
        ("/mattermost/hooks/MM-SECRET", Some("statusd"))
    );
    assert_eq!(mm[0].body["attachments"][0]["color"], "#D92D20");
    let rc = recorder.of("rocketchat");
    assert_eq!(
        (rc[0].body["alias"].as_str(), rc[0].body["text"].as_str()),
        (Some("statusd"), Some("🔴 Asset svc - DOWN"))
    );
    assert!(rc[0].body["attachments"][0]["ts"].is_string());
    let gc = recorder.of("googlechat");
    assert_eq!(gc[0].path, "/googlechat/v1/spaces/X/messages?key=GC-KEY&token=GC-TOKEN");
    assert_eq!(gc[0].body["cardsV2"][0]["card"]["header"]["subtitle"], "svc");

    // The outbox answers with the notifications, never with a channel's secrets.
    let statusd = setup.start(&[]).await;
    let (_, outbox) = statusd.get("/api/notifications?limit=100").await;
    let text = outbox.to_string();
    for secret in [
        "PD-ROUTING-KEY",
        "OG-API-KEY",
        "TG-BOT-TOKEN",
        "NTFY-TOKEN",
        "GOTIFY-TOKEN",
        "PO-USER",
        "PO-APP",
        "MX-TOKEN",
        "MM-SECRET",
        "RC-SECRET",
        "GC-KEY",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(outbox.as_array().map(Vec::len), Some(30), "{outbox}");

    // A test message through PagerDuty is a change event, which pages no one; one that cannot
    // be delivered says why without the token its URL carries.
    let test = |name: &str| {
        let request = statusd.http.post(statusd.url(&format!("/api/notifiers/{name}/test"))).bearer_auth(TOKEN);
        async move { request.send().await.expect("test").json::<Value>().await.expect("an outcome") }
    };
    assert_eq!(test("pagerduty").await["sent"], true);
    let change = recorder.of("pagerduty").pop().expect("the test message");
    assert_eq!(change.path, "/pagerduty/v2/change/enqueue");
    assert_eq!((change.body["routing_key"].as_str(), change.body.get("event_action")), (Some("PD-ROUTING-KEY"), None));
    let failed = test("deadtg").await;
    assert_eq!(failed["sent"], false);
    let error = failed["error"].as_str().expect("an error");
    assert!(error.contains("refused") && !error.contains("DEAD-BOT-TOKEN"), "{error}");
    statusd.stop().await;
}

/// What the SMTP sink received, in order: the envelope's sender and recipients, and the message.
type Mails = Arc<Mutex<Vec<(String, Vec<String>, String)>>>;

/// A small SMTP server (RFC 5321's commands a client sends for one plain mail: EHLO or HELO,
/// MAIL, RCPT, DATA, RSET, NOOP, QUIT) that keeps each mail: envelope and message as received.
struct SmtpSink {
    port: u16,
    mails: Mails,
    _server: AbortOnDrop,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let port = listener.local_addr().expect("smtp address").port();
        let mails: Mails = Arc::default();
        let kept = Arc::clone(&mails);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(smtp_session(stream, Arc::clone(&kept)));
            }
        });
        SmtpSink { port, mails, _server: AbortOnDrop(server) }
    }
}

async fn smtp_session(stream: tokio::net::TcpStream, mails: Mails) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
            "HELO" | "RSET" | "NOOP" => b"250 OK\r\n",
            "MAIL" => {
                from = line[10..].to_string();
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(line[8..].to_string());
                b"250 OK\r\n"
            }
            "DATA" => {
                let _ = write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    // Dot-stuffing (RFC 5321 section 4.5.2).
                    data.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
                    data.push_str("\r\n");
                }
                mails.lock().push((std::mem::take(&mut from), std::mem::take(&mut to), data));
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"502 not implemented\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Email: one mail per event to every recipient, plain text and HTML, through a real SMTP
/// conversation with a server the test runs.
#[tokio::test(flavor = "multi_thread")]
async fn email_sends_one_mail_per_event_with_plain_text_and_html() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let sink = SmtpSink::start().await;
    let notifiers = json!({
        "notifiers": {
            "mail": {
                "type": "email", "host": "127.0.0.1", "port": sink.port, "security": "none",
                "from": "statusd <statusd@example.com>", "to": ["ops@example.com", "dev@example.com"],
            },
            // The default security: STARTTLS required, and the sink offers none.
            "tls": {"type": "email", "host": "127.0.0.1", "port": sink.port, "username": "statusd", "password": "MAIL-SECRET",
                    "from": "statusd@example.com", "to": ["ops@example.com"]},
        },
        "notificationPolicy": {"onDown": ["mail"], "onRecovery": ["mail"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([http_asset("mailed", &target.url())]), notifiers).await;
    setup.write_settings(&format!("api_token = \"{TOKEN}\"\n"));
    let statusd = setup.start(&[]).await;

    // Never in clear text when STARTTLS is asked for: refused before any mail or password.
    let refused = statusd
        .http
        .post(statusd.url("/api/notifiers/tls/test"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("test")
        .json::<Value>()
        .await
        .expect("an outcome");
    assert_eq!(refused["sent"], false, "{refused}");
    assert_eq!(refused["error"], "internal client error: STARTTLS is not supported on this server");
    assert!(!refused.to_string().contains("MAIL-SECRET"), "{refused}");
    assert!(sink.mails.lock().is_empty());

    statusd.wait_status("mailed", "up", WAIT).await;
    target.set(Mode::Error);
    statusd.wait_status("mailed", "down", WAIT).await;
    eventually("the DOWN mail", WAIT, || async { (!sink.mails.lock().is_empty()).then_some(()) }).await;
    target.set(Mode::Ok);
    statusd.wait_status("mailed", "up", WAIT).await;
    eventually("the RECOVERY mail", WAIT, || async { (sink.mails.lock().len() >= 2).then_some(()) }).await;
    let metrics = statusd.metrics().await;
    statusd.stop().await;

    let mails = sink.mails.lock().clone();
    assert_eq!(mails.len(), 2);
    for ((from, to, data), event) in mails.iter().zip(["DOWN", "RECOVERY"]) {
        assert_eq!(from, "<statusd@example.com>");
        assert_eq!(to, &["<ops@example.com>", "<dev@example.com>"]);
        let mail = mailparse::parse_mail(data.as_bytes()).expect("a MIME message");
        let header =
            |name: &str| mail.headers.iter().find(|h| h.get_key().eq_ignore_ascii_case(name)).map(|h| h.get_value());
        assert_eq!(
            header("Subject").as_deref(),
            Some(format!("{} Asset mailed - {event}", if event == "DOWN" { "🔴" } else { "🟢" }).as_str())
        );
        assert_eq!(header("To").as_deref(), Some("ops@example.com, dev@example.com"));
        assert_eq!(mail.ctype.mimetype, "multipart/alternative");
        let parts: Vec<(String, String)> =
            mail.subparts.iter().map(|p| (p.ctype.mimetype.clone(), p.get_body().expect("a body"))).collect();
        assert_eq!(parts.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["text/plain", "text/html"]);
        assert!(parts[0].1.contains(&format!("Asset mailed - {event}")), "{}", parts[0].1);
        assert!(parts[1].1.contains("<h2") && parts[1].1.contains("Asset: Asset mailed (mailed)"), "{}", parts[1].1);
        let series = format!("statusd_notifications_total{{channel=\"mail\",event=\"{event}\",result=\"sent\"}}");
        assert_eq!(metric(&metrics, &series), Some(1.0), "{series}");
    }
    assert!(mails[0].2.contains("HTTP 500 (expected 200)"));
}

/// Telegram names its flood-control wait in the body only (`parameters.retry_after`): the
/// channel waits that long, then sends the message once.
#[tokio::test(flavor = "multi_thread")]
async fn telegram_waits_as_long_as_its_429_body_asks() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let refusal = json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}});
    let recorder = Recorder::refusing_first(Some(refusal)).await;
    let notifiers = json!({
        "notifiers": {"tg": {"type": "telegram", "botToken": "1:T", "chatId": 5, "baseUrl": recorder.url("telegram")}},
        "notificationPolicy": {"onDown": ["tg"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([http_asset("flood", &target.url())]), notifiers).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("flood", "up", WAIT).await;
    target.set(Mode::Error);
    eventually("the DOWN after the wait", WAIT, || async { (recorder.of("telegram").len() == 2).then_some(()) }).await;
    statusd.stop().await;
    let requests = recorder.of("telegram");
    assert_eq!(requests.len(), 2, "one refused, one taken");
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_secs(3), "waited {waited:?}");
    assert_eq!(requests[0].body, requests[1].body, "the same message");
}

/// Templates: a Slack text per event with every variable (the address masked, the metadata,
/// the outage's duration), sent through `baseUrl` in place of the webhook URL's host; a
/// generic webhook with its own method, secret header and JSON body; an email with its own
/// subject, through an `smtp://` `baseUrl`; and a template that fails for this asset, which
/// leaves the built-in message, counted. Each one arrives once per event.
#[tokio::test(flavor = "multi_thread")]
async fn templates_shape_each_message_and_one_that_fails_leaves_the_built_in_one() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let recorder = Recorder::start().await;
    let sink = SmtpSink::start().await;
    let mut asset = http_asset("tpl", &format!("{}?apikey=ASSET-KEY-SECRET", target.url()));
    asset["name"] = json!("Payments <API>");
    asset["metadata"] = json!({"team": "payments", "runbook": "https://wiki/pay"});
    let notifiers = json!({
        "notifiers": {
            "tslack": {
                "type": "slack",
                // Nothing listens there: baseUrl takes its place, the path stays.
                "webhookUrl": "https://hooks.slack.invalid/services/T0/B0/SLACK-SECRET",
                "baseUrl": recorder.url("slack"),
                "template": {
                    "DOWN": "{{ asset.name }} ({{ asset.metadata.team }}) is {{ event }}: {{ details }} at {{ asset.address }}, incident {{ incident.id }}, tier {{ tier }}",
                    "RECOVERY": "{{ asset.id }} is back after {{ duration }} (since {{ timestamp[:4] }})",
                },
            },
            "thook": {
                "type": "webhook", "url": recorder.url("hook/in"), "method": "PUT",
                "headers": {"X-Token": "HOOK-HEADER-SECRET"},
                "body": "{\"msg\": {{ asset.name ~ ' ' ~ event }}, \"incident\": {{ incident.id }}, \"runbook\": {{ asset.metadata.runbook }}}",
            },
            "tbroken": {
                "type": "mattermost", "webhookUrl": recorder.url("broken/hooks/MM"),
                "template": {"DOWN": "owner: {{ asset.metadata.owner.name }}"},
            },
            "tmail": {
                "type": "email", "baseUrl": format!("smtp://127.0.0.1:{}", sink.port),
                "from": "statusd@example.com", "to": ["ops@example.com"],
                "template": {"DOWN": {"subject": "[{{ asset.metadata.team }}] {{ asset.id }} down", "body": "{{ details }}"}},
            },
        },
        "notificationPolicy": {"onDown": ["tslack", "thook", "tbroken", "tmail"], "onRecovery": ["tslack", "thook", "tbroken"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([asset]), notifiers).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("tpl", "up", WAIT).await;
    target.set(Mode::Error);
    let down = statusd.wait_status("tpl", "down", WAIT).await;
    let incident = down["openIncidentId"].as_str().expect("an open incident").to_string();
    for channel in ["slack", "hook", "broken"] {
        eventually(&format!("the DOWN on {channel}"), WAIT, || async {
            (recorder.of(channel).len() == 1).then_some(())
        })
        .await;
    }
    eventually("the DOWN mail", WAIT, || async { (!sink.mails.lock().is_empty()).then_some(()) }).await;
    target.set(Mode::Ok);
    statusd.wait_status("tpl", "up", WAIT).await;
    for channel in ["slack", "hook", "broken"] {
        eventually(&format!("the RECOVERY on {channel}"), WAIT, || async {
            (recorder.of(channel).len() == 2).then_some(())
        })
        .await;
    }
    let metrics = statusd.metrics().await;
    let (_, outbox) = statusd.get("/api/notifications?limit=100").await;
    statusd.stop().await;

    let slack = recorder.of("slack");
    assert_eq!(slack[0].path, "/slack/services/T0/B0/SLACK-SECRET");
    assert_eq!(
        slack[0].body,
        json!({"text": format!(
            "Payments &lt;API&gt; (payments) is DOWN: HTTP 500 (expected 200) at {}?apikey=***, incident {incident}, tier 0",
            target.url()
        )})
    );
    let recovery = slack[1].body["text"].as_str().expect("text");
    assert!(recovery.starts_with("tpl is back after ") && recovery.contains("s (since 20"), "{recovery}");

    let hook = recorder.of("hook");
    assert!(
        hook.iter()
            .all(|r| r.method == Method::PUT && r.path == "/hook/in" && r.headers["x-token"] == "HOOK-HEADER-SECRET")
    );
    assert_eq!(
        hook[0].body,
        json!({"msg": "Payments <API> DOWN", "incident": incident, "runbook": "https://wiki/pay"})
    );
    assert_eq!(hook[1].body["msg"], "Payments <API> RECOVERY");

    // The failing template: the built-in Mattermost message instead, counted once.
    let broken = recorder.of("broken");
    assert_eq!(broken[0].body["text"], "🔴 Payments <API> - DOWN");
    assert_eq!(broken[0].body["attachments"][0]["fields"][1]["value"], "DOWN");
    assert_eq!(metric(&metrics, "statusd_notification_template_errors_total{channel=\"tbroken\"}"), Some(1.0));
    assert_eq!(metric(&metrics, "statusd_notification_template_errors_total{channel=\"tslack\"}"), Some(0.0));

    let mails = sink.mails.lock().clone();
    assert_eq!(mails.len(), 1);
    let mail = mailparse::parse_mail(mails[0].2.as_bytes()).expect("a MIME message");
    let subject = mail.headers.iter().find(|h| h.get_key() == "Subject").map(|h| h.get_value());
    assert_eq!(subject.as_deref(), Some("[payments] tpl down"));
    assert_eq!(mail.subparts[0].get_body().expect("plain").trim_end(), "HTTP 500 (expected 200)");

    let text = outbox.to_string();
    for secret in ["HOOK-HEADER-SECRET", "SLACK-SECRET", "ASSET-KEY-SECRET"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

/// Template problems are config problems, named by file, notifier and key: a syntax error,
/// an unknown event, a body that does not render JSON, a template where the type takes none.
#[tokio::test(flavor = "multi_thread")]
async fn template_problems_are_refused_at_load_with_their_key() {
    let setup = Setup::new(
        crate::e2e::harness::Backend::Sqlite,
        json!([http_asset("a", "http://127.0.0.1:1/")]),
        json!({
            "notifiers": {
                "chat": {"type": "slack", "webhookUrl": "https://hooks.example.com/x",
                         "template": {"DOWN": "{% if %}", "DOWNN": "x"}},
                "hook": {"type": "webhook", "url": "https://hooks.example.com/y", "body": "{\"a\": {{ event }}", "method": "BREW"},
                "pager": {"type": "pagerduty", "routingKey": "k", "template": {"DOWN": "x"}},
                "tries": {"type": "ntfy", "topic": "t", "maxAttempts": 11},
            },
            "notificationPolicy": {"onDown": ["chat"]}
        }),
    )
    .await;
    let mut args = setup.args(&[]);
    args[0] = "check-config".into();
    let output = std::process::Command::new(crate::e2e::harness::binary()).args(&args).output().expect("check-config");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in [
        "notifiers.chat.template.DOWN: syntax error",
        "notifiers.chat.template.DOWNN: unknown event (one of: DOWN, RECOVERY, REMINDER",
        "notifiers.hook.body: does not render to JSON",
        "notifiers.hook.method: \"BREW\" is not GET, POST, PUT, PATCH or DELETE",
        "notifiers.pager.template: unknown field",
        "notifiers.tries.maxAttempts: must be at most 10",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    assert!(stderr.contains("notifiers.json"), "the file is named:\n{stderr}");
}
