//! `GET /api/assets` paged and filtered: `limit` and `cursor` walk every asset once in id
//! order, `status` and `metadata.KEY=VALUE` keep only the assets that match, and the
//! unpaginated form answers everything up to its cap, then the first page with a cursor.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Setup, Statusd, Target, eventually, http_asset, no_channels};

const WAIT: Duration = Duration::from_secs(20);

fn ids(assets: &Value) -> Vec<String> {
    assets.as_array().expect("an array").iter().map(|a| a["id"].as_str().expect("id").to_string()).collect()
}

/// Every page of `query`, following `nextCursor` to the end: the ids, and how many pages.
async fn walk(statusd: &Statusd, query: &str) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = format!("/api/assets?{query}");
    loop {
        let (status, page) = statusd.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        pages += 1;
        seen.extend(ids(&page["assets"]));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/assets?{query}&cursor={cursor}"),
            None => {
                assert!(page["nextCursor"].is_null(), "the last page says so: {page}");
                return (seen, pages);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_walk_every_asset_once_in_id_order_and_filters_keep_only_matches() {
    let Some(backend) = crate::backend().await else { return };
    let healthy = Target::start().await;
    let broken = Target::start().await;
    broken.set(Mode::Error);
    // Listed out of id order on purpose: pages follow ids, not the manifest.
    let plan = [
        ("e-web", "prod", "web", false),
        ("a-db", "prod", "data", true),
        ("d-api", "staging", "web", false),
        ("b-cache", "prod", "web", true),
        ("g-queue", "staging", "data", true),
        ("c-auth", "prod", "web", false),
        ("f-cdn", "prod", "edge", false),
    ];
    let assets: Vec<Value> = plan
        .iter()
        .map(|(id, env, team, down)| {
            let mut asset = http_asset(id, &if *down { broken.url() } else { healthy.url() });
            asset["failureThreshold"] = json!(1);
            asset["metadata"] = json!({"env": env, "team": team, "tier": 1});
            asset
        })
        .collect();
    let setup = Setup::new(backend, json!(assets), no_channels()).await;
    let statusd = setup.start(&[]).await;
    for (id, _, _, down) in plan {
        statusd.wait_status(id, if down { "down" } else { "up" }, WAIT).await;
    }
    let mut sorted: Vec<String> = plan.iter().map(|p| p.0.to_string()).collect();
    sorted.sort();

    // Unpaginated: every asset, in id order, as an array.
    let (status, all) = statusd.get("/api/assets").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&all), sorted);

    // Pages of 3: every asset exactly once, in order, over three pages.
    let (walked, pages) = walk(&statusd, "limit=3").await;
    assert_eq!((walked, pages), (sorted.clone(), 3));
    // A page that ends exactly at the last asset says there is no more.
    let (_, whole) = statusd.get("/api/assets?limit=7").await;
    assert_eq!((ids(&whole["assets"]).len(), whole["nextCursor"].clone()), (7, Value::Null));

    // Status: only the down ones, paged too.
    let (down, _) = walk(&statusd, "status=down&limit=2").await;
    assert_eq!(down, ["a-db", "b-cache", "g-queue"]);
    let (_, up) = statusd.get("/api/assets?status=up").await;
    assert_eq!(ids(&up), ["c-auth", "d-api", "e-web", "f-cdn"]);
    assert!(up.as_array().expect("array").iter().all(|a| a["status"] == "up"), "{up}");

    // Metadata: every pair must match; numbers compare as JSON writes them.
    let (_, prod_web) = statusd.get("/api/assets?metadata.env=prod&metadata.team=web").await;
    assert_eq!(ids(&prod_web), ["b-cache", "c-auth", "e-web"]);
    let (both, _) = walk(&statusd, "metadata.env=prod&metadata.team=web&status=down&limit=1").await;
    assert_eq!(both, ["b-cache"]);
    let (_, tier) = statusd.get("/api/assets?metadata.tier=1&metadata.env=staging").await;
    assert_eq!(ids(&tier), ["d-api", "g-queue"]);
    let (_, none) = statusd.get("/api/assets?metadata.env=qa").await;
    assert_eq!(none, json!([]));
    let (_, missing_key) = statusd.get("/api/assets?metadata.owner=x&limit=5").await;
    assert_eq!(missing_key, json!({"assets": [], "nextCursor": null}));

    for (query, parameter) in
        [("cursor=zz", "cursor"), ("cursor=abc", "cursor"), ("status=sideways", "status"), ("limit=1001", "limit")]
    {
        let (status, body) = statusd.get(&format!("/api/assets?{query}")).await;
        assert_eq!((status, body["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some(parameter)), "{query}: {body}");
    }
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn above_its_cap_the_unpaginated_list_answers_the_first_page_and_where_the_next_starts() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    // One more than the cap; probed rarely, so that the test measures the listing only.
    let assets: Vec<Value> = (0..1001)
        .map(|i| {
            let mut asset = http_asset(&format!("asset-{i:04}"), &target.url());
            asset["intervalSeconds"] = json!(3600);
            asset
        })
        .collect();
    let setup = Setup::new(backend, json!(assets), no_channels()).await;
    let statusd = setup.start(&[]).await;
    let (first, link) = eventually("every asset listed", WAIT, || async {
        let response = statusd.http.get(statusd.url("/api/assets")).send().await.expect("request");
        let link = response.headers().get("link").and_then(|l| l.to_str().ok()).map(str::to_string);
        let body: Value = response.json().await.expect("JSON");
        body["nextCursor"].is_string().then_some((body, link))
    })
    .await;
    let listed = ids(&first["assets"]);
    assert_eq!(listed.len(), 1000, "the cap");
    assert_eq!((listed[0].as_str(), listed[999].as_str()), ("asset-0000", "asset-0999"));
    let cursor = first["nextCursor"].as_str().expect("cursor");
    let link = link.expect("a Link header");
    assert!(link.contains(&format!("cursor={cursor}")) && link.ends_with("rel=\"next\""), "{link}");
    let (status, rest) = statusd.get(&format!("/api/assets?cursor={cursor}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((ids(&rest["assets"]), rest["nextCursor"].clone()), (vec!["asset-1000".to_string()], Value::Null));
    statusd.stop().await;
}
