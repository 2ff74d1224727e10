//! Reload latency with 10,000 assets: the time from asking for a reload to the Supervisor
//! having applied it, for a few kinds of change. `cargo bench --bench reload`.

mod common;

use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use statusd::{ReloadTrigger, SupervisorMsg};

const ASSETS: usize = 10_000;

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
    let mut assets: Vec<_> = (0..ASSETS).map(|i| common::idle_asset(i, 3600)).collect();
    let started = Instant::now();
    let bench = common::Bench::start(&assets, "watch_config = false\n", &[]).await;
    println!("start with {ASSETS} assets: {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);

    let mut unchanged = Vec::new();
    let mut changed = Vec::new();
    let mut churned = Vec::new();
    for round in 0..5 {
        unchanged.push(reload(&bench).await);

        // 100 assets get a new interval.
        for asset in assets.iter_mut().skip(round * 100).take(100) {
            asset["intervalSeconds"] = serde_json::json!(1800 + round as u64);
        }
        common::write_manifest(&bench.manifest(), &assets);
        changed.push(reload(&bench).await);

        // 100 removed and 100 added.
        assets.drain(..100);
        assets.extend((0..100).map(|i| common::idle_asset(ASSETS * (round + 1) + i, 3600)));
        common::write_manifest(&bench.manifest(), &assets);
        churned.push(reload(&bench).await);
    }
    println!("reload, nothing changed:        {}", common::summary(unchanged));
    println!("reload, 100 of 10,000 changed:  {}", common::summary(changed));
    println!("reload, 100 removed, 100 added: {}", common::summary(churned));
    bench.stop().await;
}
