//! Public updates on an incident: posted with the API token, stored, returned with the incident;
//! `resolved` is a message, not a verdict: the probes still decide when the incident closes.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Setup, Statusd, Target, http_asset, no_channels};

const TOKEN: &str = "updates-test-token";

async fn post_update(statusd: &Statusd, id: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = statusd.http.post(statusd.url(&format!("/api/incidents/{id}/updates"))).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("post an update");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_are_stored_in_order_shown_with_the_incident_and_resolved_closes_nothing() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset("shop", &target.url())]), no_channels()).await;
    setup.write_settings(&format!("api_token = \"{TOKEN}\"\n"));
    let statusd = setup.start(&[]).await;
    statusd.wait_status("shop", "up", Duration::from_secs(10)).await;
    target.set(Mode::Error);
    let open = statusd.wait_incidents("open", 1).await;
    let id = open[0]["id"].as_str().expect("incident id").to_string();

    let investigating = json!({"status": "investigating", "message": "Checkout fails for some users."});
    assert_eq!(post_update(&statusd, &id, investigating.clone(), None).await.0, StatusCode::UNAUTHORIZED);
    let (status, refused) = post_update(&statusd, &id, json!({"status": "fixed", "message": "x"}), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["parameter"], "status", "{refused}");
    assert!(refused["error"].as_str().unwrap_or_default().contains("investigating, identified, monitoring, resolved"));
    let (status, refused) =
        post_update(&statusd, &id, json!({"status": "identified", "message": "  "}), Some(TOKEN)).await;
    assert_eq!((status, refused["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some("message")));
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(post_update(&statusd, &unknown, investigating.clone(), Some(TOKEN)).await.0, StatusCode::NOT_FOUND);

    let (status, first) = post_update(&statusd, &id, investigating, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!((first["status"].as_str(), first["incidentId"].as_str()), (Some("investigating"), Some(id.as_str())));
    let resolved = json!({"status": "resolved", "message": "We think it is fixed."});
    assert_eq!(post_update(&statusd, &id, resolved, Some(TOKEN)).await.0, StatusCode::CREATED);

    // The probes still see it down: `resolved` closed nothing.
    statusd.wait_probes("shop", 1).await;
    let (_, incident) = statusd.get(&format!("/api/incidents/{id}")).await;
    assert!(incident["endedAt"].is_null(), "{incident}");
    assert_eq!(statusd.asset("shop").await["status"], "down");
    let said: Vec<(&str, &str)> = incident["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|u| (u["status"].as_str().unwrap_or_default(), u["message"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(said, [("investigating", "Checkout fails for some users."), ("resolved", "We think it is fixed.")]);

    // A closed incident still takes an update (a postmortem), and they survive a restart.
    target.set(Mode::Ok);
    statusd.wait_incidents("closed", 1).await;
    let postmortem = json!({"status": "resolved", "message": "Postmortem: a full disk on db-2."});
    assert_eq!(post_update(&statusd, &id, postmortem, Some(TOKEN)).await.0, StatusCode::CREATED);
    statusd.stop().await;
    let statusd = setup.start(&[]).await;
    let (_, incident) = statusd.get(&format!("/api/incidents/{id}")).await;
    assert_eq!(incident["updates"].as_array().map(Vec::len), Some(3), "{incident}");
    assert_eq!(incident["updates"][2]["message"], "Postmortem: a full disk on db-2.");
    statusd.stop().await;
}
