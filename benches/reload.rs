//! Reload latency with 10,000 assets (or `STATUSD_BENCH_ASSETS`): the time from asking for a
//! reload to the Supervisor having applied it, for a few kinds of change, and how many actors
//! of unchanged assets were replaced by it (none should be). `cargo bench --bench reload`.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use statusd::{ReloadTrigger, SupervisorMsg};

/// Each asset's actor id, by asset id.
async fn actors(bench: &common::Bench) -> HashMap<String, ractor::ActorId> {
    let answer = bench.supervisor.call(SupervisorMsg::Assets, Some(Duration::from_secs(60))).await.expect("supervisor");
    let CallResult::Success(entries) = answer else { panic!("the supervisor did not answer") };
    entries.into_iter().filter_map(|entry| Some((entry.config.id.clone(), entry.actor?.get_id()))).collect()
}

/// Unchanged assets (in both maps, not in `changed`) whose actor is not the same one.
fn replaced(
    before: &HashMap<String, ractor::ActorId>,
    after: &HashMap<String, ractor::ActorId>,
    changed: &[String],
) -> usize {
    before.iter().filter(|(id, actor)| !changed.contains(id) && after.get(*id).is_some_and(|now| now != *actor)).count()
}

async fn reload(bench: &common::Bench) -> Duration {
    let started = Instant::now();
    let answer = bench
        .supervisor
        .call(|reply| SupervisorMsg::Reload(ReloadTrigger::Api, Some(reply)), Some(Duration::from_secs(60)))
        .await
        .expect("supervisor");
    let elapsed = started.elapsed();
    match answer {
        CallResult::Success(Ok(_)) => elapsed,
        CallResult::Success(Err(error)) => panic!("reload refused: {error}"),
        _ => panic!("the supervisor did not answer"),
    }
}

#[tokio::main]
async fn main() {
    let assets_n: usize = std::env::var("STATUSD_BENCH_ASSETS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let mut assets: Vec<_> = (0..assets_n).map(|i| common::idle_asset(i, 3600)).collect();
    let started = Instant::now();
    let bench = common::Bench::start(&assets, "watch_config = false\n", &[]).await;
    println!("start with {assets_n} assets: {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);

    let mut unchanged = Vec::new();
    let mut changed = Vec::new();
    let mut churned = Vec::new();
    let mut restarted_unchanged = 0;
    for round in 0..5 {
        unchanged.push(reload(&bench).await);
        let before = actors(&bench).await;

        // 100 assets get a new interval.
        let mut touched = Vec::new();
        for asset in assets.iter_mut().skip(round * 100).take(100) {
            asset["intervalSeconds"] = serde_json::json!(1800 + round as u64);
            touched.push(asset["id"].as_str().expect("id").to_string());
        }
        common::write_manifest(&bench.manifest(), &assets);
        changed.push(reload(&bench).await);
        restarted_unchanged += replaced(&before, &actors(&bench).await, &touched);

        // 100 removed and 100 added.
        let before = actors(&bench).await;
        let removed: Vec<String> =
            assets.drain(..100).map(|asset| asset["id"].as_str().expect("id").to_string()).collect();
        assets.extend((0..100).map(|i| common::idle_asset(assets_n * (round + 1) + i, 3600)));
        common::write_manifest(&bench.manifest(), &assets);
        churned.push(reload(&bench).await);
        restarted_unchanged += replaced(&before, &actors(&bench).await, &removed);
    }
    println!("reload, nothing changed:        {}", common::summary(unchanged));
    println!("reload, 100 of {assets_n} changed:  {}", common::summary(changed));
    println!("reload, 100 removed, 100 added: {}", common::summary(churned));
    println!("actors of unchanged assets replaced by these reloads: {restarted_unchanged}");
    bench.stop().await;
}
