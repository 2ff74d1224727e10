//! Restart latency: from a panic injected into an asset actor to its replacement running with
//! its state and answering, measured over 1,000 panics. `cargo bench --bench restart_latency`.
//! The panic hook captures a backtrace when RUST_BACKTRACE is set, which costs more than the
//! restart itself: run with it unset for production numbers.

mod common;

use std::time::{Duration, Instant};

use ractor::call_t;
use statusd::AssetMsg;
use statusd::SupervisorMsg;

const ASSETS: usize = 100;
const PANICS: usize = 1000;

#[tokio::main]
async fn main() {
    let assets: Vec<_> = (0..ASSETS).map(|i| common::idle_asset(i, 3600)).collect();
    // The point is restarting, not the crash-loop guard.
    let bench = common::Bench::start(&assets, "[restart]\nmax_restarts = 1000000\n", &[]).await;
    let mut samples = Vec::with_capacity(PANICS);
    for n in 0..PANICS {
        let id = format!("asset-{}", n % ASSETS);
        let before = call_t!(bench.supervisor, SupervisorMsg::Asset, 1000, id.clone())
            .expect("supervisor")
            .expect("asset")
            .actor
            .expect("running");
        let started = Instant::now();
        before.cast(AssetMsg::Panic("benchmark".into())).expect("panic");
        // Until a new actor runs and answers with the asset's state.
        loop {
            let entry =
                call_t!(bench.supervisor, SupervisorMsg::Asset, 1000, id.clone()).expect("supervisor").expect("asset");
            if let Some(actor) = entry.actor.filter(|actor| actor.get_id() != before.get_id())
                && call_t!(actor, AssetMsg::Snapshot, 1000).is_ok()
            {
                break;
            }
            tokio::task::yield_now().await;
        }
        samples.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let backtrace = std::env::var("RUST_BACKTRACE").unwrap_or_else(|_| "unset".into());
    println!("restart latency (RUST_BACKTRACE={backtrace}): {}", common::summary(samples));
    bench.stop().await;
}
