//! Chat services limit how fast a webhook may post: Slack one message a second, answering 429
//! with `Retry-After: 1`; Discord with long waits and `X-RateLimit-*` headers. A rate-limited
//! channel must delay an alert, never drop it, keep the order of messages and never post again
//! before the wait it was given is over.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::e2e::databases::Backend;
use crate::e2e::harness::{Setup, Statusd, eventually, metric};

/// What the limited receiver does with a post.
#[derive(Clone, Copy)]
enum Policy {
    /// Slack: one message per second; otherwise 429 with `Retry-After: 1`.
    OnePerSecond,
    /// Discord: posts are refused for 42 s from the first (with what is left of the wait);
    /// every accepted one spends the budget (`X-RateLimit-Remaining: 0`, reset after 2 s).
    LongWaitThenBudget,
}

#[derive(Default)]
struct Log {
    /// Every post: when it arrived, the asset it was about, and whether it was accepted.
    posts: Vec<(Instant, String, bool)>,
    /// When each refusal told the channel it may post again.
    not_before: Vec<(Instant, Instant)>,
}

struct LimitedReceiver {
    url: String,
    log: Arc<Mutex<Log>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for LimitedReceiver {
    fn drop(&mut self) {
        self._server.abort();
    }
}

impl LimitedReceiver {
    async fn start(policy: Policy) -> LimitedReceiver {
        let log = Arc::new(Mutex::new(Log::default()));
        let app =
            axum::Router::new().route("/hook", axum::routing::post(receive)).with_state((policy, Arc::clone(&log)));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LimitedReceiver { url, log, _server: server }
    }

    fn accepted(&self) -> Vec<(Instant, String)> {
        self.log.lock().posts.iter().filter(|(_, _, ok)| *ok).map(|(at, asset, _)| (*at, asset.clone())).collect()
    }

    /// Posts that arrived before the wait a refusal had asked for was over. A post already on
    /// its way when the refusal was answered may arrive a moment after it: `slack` allows that.
    fn early_posts(&self, slack: Duration) -> Vec<String> {
        let log = self.log.lock();
        let mut early = Vec::new();
        for (refused_at, not_before) in &log.not_before {
            for (at, asset, _) in &log.posts {
                if *at > *refused_at + slack && at < not_before {
                    early.push(format!(
                        "{asset} at {:?} after a refusal asking for {:?}",
                        *at - *refused_at,
                        *not_before - *refused_at
                    ));
                }
            }
        }
        early
    }
}

async fn receive(State((policy, log)): State<(Policy, Arc<Mutex<Log>>)>, Json(body): Json<Value>) -> impl IntoResponse {
    let now = Instant::now();
    let asset = body["assetId"].as_str().unwrap_or("?").to_string();
    let mut log = log.lock();
    let last_accepted = log.posts.iter().rev().find(|(_, _, ok)| *ok).map(|(at, _, _)| *at);
    let mut headers = HeaderMap::new();
    let refuse = match policy {
        Policy::OnePerSecond => last_accepted.is_some_and(|at| now < at + Duration::from_secs(1)).then_some(1),
        Policy::LongWaitThenBudget => {
            let first = log.posts.first().map_or(now, |(at, _, _)| *at);
            let left = (first + Duration::from_secs(42)).saturating_duration_since(now);
            (!left.is_zero()).then(|| left.as_secs_f64().ceil() as u64)
        }
    };
    if let Some(seconds) = refuse {
        log.posts.push((now, asset, false));
        log.not_before.push((now, now + Duration::from_secs(seconds)));
        headers.insert("retry-after", HeaderValue::from(seconds));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-ratelimit-reset-after", HeaderValue::from(seconds));
        return (StatusCode::TOO_MANY_REQUESTS, headers, "You are being rate limited.");
    }
    log.posts.push((now, asset, true));
    if matches!(policy, Policy::LongWaitThenBudget) {
        log.not_before.push((now, now + Duration::from_secs(2)));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-ratelimit-reset-after", HeaderValue::from_static("2.000"));
    }
    (StatusCode::NO_CONTENT, headers, "")
}

fn push_assets(ids: &[String]) -> Value {
    json!(
        ids.iter()
            .map(|id| json!({"id": id, "assetType": "push", "token": "rate-limit-token-1", "intervalSeconds": 600}))
            .collect::<Vec<_>>()
    )
}

async fn start(ids: &[String], receiver: &LimitedReceiver) -> (Setup, Statusd) {
    let notifiers = json!({
        "notifiers": {"chat": {"type": "webhook", "url": receiver.url}},
        "notificationPolicy": {"onDown": ["chat"], "throttleSeconds": 0}
    });
    let setup = Setup::new(Backend::Sqlite, push_assets(ids), notifiers).await;
    let statusd = setup.start(&[]).await;
    (setup, statusd)
}

/// A push reporting a failure: the asset is down at once. Returns once its actor says so, that
/// is once its DOWN is on its way to the Incidents actor: pushes to different assets are handled
/// by different actors, so without the wait two DOWNs pushed one after the other may be decided
/// in either order.
async fn push_down(statusd: &Statusd, id: &str) {
    let (status, body) = statusd.post(&format!("/api/push/{id}?token=rate-limit-token-1&status=down&msg=failed")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    eventually(&format!("{id} down"), Duration::from_secs(10), || async {
        (statusd.asset(id).await["status"] == "down").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_downs_to_a_one_per_second_channel_all_arrive_in_order_and_none_early() {
    let receiver = LimitedReceiver::start(Policy::OnePerSecond).await;
    let ids: Vec<String> = (0..20).map(|i| format!("limited-{i:02}")).collect();
    let (_setup, statusd) = start(&ids, &receiver).await;

    // The first DOWN goes through; the other 19 are decided within a few hundred milliseconds.
    push_down(&statusd, &ids[0]).await;
    eventually("the first DOWN", Duration::from_secs(10), || async { (receiver.accepted().len() == 1).then_some(()) })
        .await;
    for id in &ids[1..] {
        push_down(&statusd, id).await;
    }
    eventually("all 20 DOWNs", Duration::from_secs(45), || async { (receiver.accepted().len() == 20).then_some(()) })
        .await;

    let accepted: Vec<String> = receiver.accepted().into_iter().map(|(_, asset)| asset).collect();
    assert_eq!(accepted, ids, "each DOWN once, in the order they were decided");
    let early = receiver.early_posts(Duration::from_millis(200));
    assert!(early.is_empty(), "posts before the wait asked for was over: {early:#?}");
    let metrics = statusd.metrics().await;
    let failed = "statusd_notifications_total{channel=\"chat\",event=\"DOWN\",result=\"failed\"}";
    assert_eq!(metric(&metrics, failed), Some(0.0), "a rate limit is not a failure");
    let limited = metric(&metrics, "statusd_notifications_rate_limited_total{channel=\"chat\"}").unwrap_or(0.0);
    assert!(limited >= 1.0, "the refusals are counted: {limited}");
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_42_second_retry_after_is_waited_out_in_full_and_a_spent_budget_is_respected() {
    let receiver = LimitedReceiver::start(Policy::LongWaitThenBudget).await;
    let ids = vec!["discord-a".to_string(), "discord-b".to_string()];
    let (_setup, statusd) = start(&ids, &receiver).await;

    push_down(&statusd, &ids[0]).await;
    push_down(&statusd, &ids[1]).await;
    eventually("both DOWNs", Duration::from_secs(60), || async { (receiver.accepted().len() == 2).then_some(()) })
        .await;

    let posts = receiver.log.lock().posts.clone();
    let (refused_at, _, _) = posts[0];
    let accepted = receiver.accepted();
    assert!(
        accepted[0].0 - refused_at >= Duration::from_secs(42),
        "the next post came {:?} after a 42 s Retry-After",
        accepted[0].0 - refused_at
    );
    assert!(accepted[1].0 - accepted[0].0 >= Duration::from_secs(2), "a spent budget waits for its reset");
    let early = receiver.early_posts(Duration::from_millis(200));
    assert!(early.is_empty(), "posts before the wait asked for was over: {early:#?}");
    statusd.stop().await;
}
