//! Every route of the API, in one place.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    ApiState, actors, assets, badges, cluster, debug, demo, feed, health, incidents, log_level, maintenance, metrics,
    middleware, notifications, notifiers, openapi, push, reload, sla, status, version,
};

/// Largest request body accepted; the API takes only small JSON documents. Push takes any
/// body, reading only what it keeps (see `api/push.rs`).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// A request that takes longer is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route with its handler; the OpenAPI document is collected from the same calls.
/// `chaos` and `demo` add the routes that exist only with `--enable-chaos` or `demo = true`.
pub fn surface(chaos: bool, demo: bool) -> OpenApiRouter<ApiState> {
    reading(demo).merge(statuspage()).merge(pushing()).merge(mutating(chaos))
}

/// The status page, its JSON and its feed: compressed (gzip or brotli, as the client accepts),
/// since the page of a thousand assets is megabytes of repetitive markup.
fn statuspage() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(status::page))
        .routes(routes!(status::status))
        .routes(routes!(feed::feed))
        .layer(CompressionLayer::new())
}

/// The routes that only read (push has its own token).
fn reading(demo: bool) -> OpenApiRouter<ApiState> {
    let reads = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::liveness))
        .routes(routes!(health::readiness))
        .routes(routes!(health::seed_health))
        .routes(routes!(assets::list_assets))
        .routes(routes!(assets::get_asset))
        .routes(routes!(assets::asset_events))
        .routes(routes!(assets::asset_uptime))
        .routes(routes!(incidents::list_incidents))
        .routes(routes!(maintenance::list_windows))
        .routes(routes!(sla::sla))
        .routes(routes!(badges::status_badge))
        .routes(routes!(badges::uptime_badge))
        .routes(routes!(badges::response_time_badge))
        .routes(routes!(incidents::get_incident))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(actors::list_actors))
        .routes(routes!(cluster::cluster))
        .routes(routes!(version::version))
        .routes(routes!(openapi::openapi))
        .routes(routes!(metrics::scrape));
    if demo { reads.routes(routes!(demo::flaky)).routes(routes!(demo::webhook)) } else { reads }
}

/// Heartbeats: guarded by each push asset's own token, not the API token (cron jobs hold only
/// theirs), and not under the body limit (a job may post its whole log; push keeps the start).
fn pushing() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(push::push_get, push::push_post))
}

/// The routes that change something; `router` puts them behind the API token.
fn mutating(chaos: bool) -> OpenApiRouter<ApiState> {
    let writes = OpenApiRouter::new()
        .routes(routes!(reload::reload))
        .routes(routes!(log_level::set_log_level))
        .routes(routes!(maintenance::create_window))
        .routes(routes!(maintenance::delete_window))
        .routes(routes!(incidents::acknowledge))
        .routes(routes!(incidents::add_update))
        .routes(routes!(notifiers::test_notifier));
    if chaos { writes.routes(routes!(debug::panic)) } else { writes }
}

pub fn router(state: ApiState) -> Router {
    let writes = mutating(state.enable_chaos)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::require_token));
    let (routes, _document) = reading(state.demo).merge(statuspage()).merge(writes).split_for_parts();
    let (push, _document) = pushing().split_for_parts();

    let cors = cors(&state.cors_origins);
    routes
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
        .merge(push)
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn(middleware::trace))
                .layer(axum::middleware::from_fn(middleware::record_metrics))
                // Outside everything that may answer an error in plain text.
                .layer(axum::middleware::from_fn(middleware::json_errors))
                // Inside the metrics layer, so that a caught panic is counted as the 500 it became.
                .layer(CatchPanicLayer::custom(middleware::panic_response))
                .layer(axum::middleware::from_fn(middleware::timeout)),
        )
        .layer(cors)
        .with_state(state)
}

/// No CORS headers unless origins are configured: a page on another site cannot read the API.
fn cors(origins: &[String]) -> tower::util::Either<CorsLayer, tower::layer::util::Identity> {
    if origins.is_empty() {
        return tower::util::Either::Right(tower::layer::util::Identity::new());
    }
    let allowed = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        // Settings validation has already checked every origin; one that still fails is skipped.
        AllowOrigin::list(origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()))
    };
    tower::util::Either::Left(
        CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("x-request-id")])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}
