//! Every route of the API, in one place.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post, put};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use super::{ApiState, actors, assets, debug, demo, health, incidents, log_level, metrics, middleware, push, reload};

/// Largest request body accepted; the API takes only small JSON documents.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// A request that takes longer is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn router(state: ApiState) -> Router {
    let reads = Router::new()
        .route("/healthz", get(health::liveness))
        .route("/readyz", get(health::readiness))
        .route("/api/health", get(health::seed_health))
        .route("/api/assets", get(assets::list))
        .route("/api/assets/{id}", get(assets::one))
        .route("/api/assets/{id}/events", get(assets::events))
        .route("/api/assets/{id}/uptime", get(assets::uptime))
        .route("/api/incidents", get(incidents::list))
        .route("/api/actors", get(actors::list))
        .route("/metrics", get(metrics::render))
        // Guarded by each push asset's own token, not the API token: cron jobs hold only theirs.
        .route("/api/push/{id}", get(push::push).post(push::push));

    let reads = if state.demo {
        reads.route("/demo/flaky", get(demo::flaky)).route("/demo/webhook", post(demo::webhook))
    } else {
        reads
    };

    // Mutating routes: behind the API token when one is set.
    let mut writes =
        Router::new().route("/api/reload", post(reload::reload)).route("/api/log-level", put(log_level::set));
    if state.enable_chaos {
        writes = writes.route("/api/debug/panic", post(debug::panic));
    }
    let writes = writes.route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::require_token));

    reads
        .merge(writes)
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn(middleware::trace))
                .layer(CatchPanicLayer::custom(middleware::panic_response))
                .layer(axum::middleware::from_fn(middleware::record_metrics))
                .layer(axum::middleware::from_fn(middleware::timeout))
                .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES)),
        )
        .with_state(state)
}
