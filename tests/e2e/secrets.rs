//! Secrets in addresses: a password or key in an asset's address is used by the probe and
//! never leaves the process (API, `assets` table, probe messages, notifications, metrics).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::e2e::harness::{CHANNELS, Receiver, Setup, all_channels, eventually, http_asset};

const WAIT: Duration = Duration::from_secs(10);
const PASSWORD: &str = "Pa55word-in-url";
const KEY: &str = "KEY-7f3a9c";
const PATH_TOKEN: &str = "ping-token-0f3c9a2e";

/// A server that answers 200 with its request line as the body, as error pages that show the
/// URL they were asked for do; and the Authorization header it got, to prove the probe sent it.
async fn echo_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (heads, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                let _ = heads.send(head);
                let response =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{line}", line.len());
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr.to_string(), seen)
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [PASSWORD, KEY, PATH_TOKEN] {
        assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_keys_and_hidden_addresses_never_leave_the_process() {
    let Some(backend) = crate::backend().await else { return };
    let (server, mut requests) = echo_server().await;
    let receiver = Receiver::start().await;
    let mut keyed = http_asset("keyed", &format!("http://user:{PASSWORD}@{server}/health?apikey={KEY}&page=1"));
    let mut hidden = http_asset("hidden", &format!("http://{server}/{PATH_TOKEN}"));
    hidden["hideAddress"] = json!(true);
    // The echoed request line fails the condition, so the message quotes it.
    for asset in [&mut keyed, &mut hidden] {
        asset["conditions"] = json!(["[BODY] == ok"]);
    }
    let setup = Setup::new(backend, json!([keyed, hidden]), all_channels(&receiver, 0)).await;
    let statusd = setup.start(&[]).await;

    // The probe itself uses the address as written: credentials and key reach the server.
    let head = eventually("a request from the keyed asset", WAIT, || {
        let head = requests.try_recv().ok().filter(|head| head.contains("/health"));
        async move { head }
    })
    .await;
    assert!(head.starts_with(&format!("GET /health?apikey={KEY}&page=1 ")), "{head}");
    assert!(head.to_ascii_lowercase().contains("authorization: basic "), "{head}");

    for id in ["keyed", "hidden"] {
        statusd.wait_status(id, "down", WAIT).await;
    }
    for channel in CHANNELS {
        eventually(&format!("both DOWNs on {channel}"), WAIT, || async {
            (receiver.bodies(channel).len() >= 2).then_some(())
        })
        .await;
    }

    let (_, assets) = statusd.get("/api/assets").await;
    assert_no_secret("GET /api/assets", &assets.to_string());
    let address = |assets: &Value, id: &str| {
        assets.as_array().expect("a list").iter().find(|a| a["id"] == id).expect("the asset")["address"].clone()
    };
    assert_eq!(address(&assets, "keyed"), format!("http://user:***@{server}/health?apikey=***&page=1"));
    assert_eq!(address(&assets, "hidden"), "***");
    assert!(assets.as_array().expect("a list").iter().all(|a| a["hideAddress"].is_boolean()));
    for id in ["keyed", "hidden"] {
        let asset = statusd.asset(id).await;
        assert_no_secret(&format!("GET /api/assets/{id}"), &asset.to_string());
        let message = asset["lastProbe"]["message"].as_str().expect("a message").to_string();
        assert!(message.starts_with("[BODY] (GET ") && message.contains("***"), "{message}");
        let (_, events) = statusd.get(&format!("/api/assets/{id}/events")).await;
        assert_no_secret(&format!("GET /api/assets/{id}/events"), &events.to_string());
    }
    assert_eq!(statusd.asset("keyed").await["address"], address(&assets, "keyed"));
    let incidents = statusd.wait_incidents("open", 2).await;
    assert_no_secret("GET /api/incidents", &incidents.to_string());

    let inspect = setup.inspect().await;
    let rows = inspect.asset_addresses().await;
    assert_eq!(
        rows,
        [
            ("hidden".to_string(), "***".to_string()),
            ("keyed".to_string(), format!("http://user:***@{server}/health?apikey=***&page=1"))
        ]
    );
    for id in ["keyed", "hidden"] {
        let messages = inspect.messages(id).await;
        assert!(!messages.is_empty(), "stored messages of {id}");
        assert_no_secret(&format!("stored messages of {id}"), &messages.join("\n"));
    }
    inspect.close().await;

    for channel in CHANNELS {
        for body in receiver.bodies(channel) {
            assert_no_secret(&format!("the {channel} notification"), &body.to_string());
        }
    }
    assert_no_secret("/metrics", &statusd.metrics().await);
    statusd.stop().await;
}
