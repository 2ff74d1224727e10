//! `GET /api/openapi.json`: the API described as OpenAPI 3. The paths are collected from the
//! handlers' own `#[utoipa::path]` annotations by the router that serves them (`routes.rs`), so
//! the document cannot list a route that is not served, nor miss one that is.

use std::sync::OnceLock;

use axum::Json;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "statusd",
        description = "Uptime monitor API: live asset state from the actors, history and uptime from the store. \
            Routes marked with apiToken need `Authorization: Bearer <STATUSD_API_TOKEN>` when a token is set."
    ),
    modifiers(&BearerToken),
    tags(
        (name = "assets", description = "Watched assets: live state, history, uptime, push heartbeats"),
        (name = "incidents", description = "Outages, open and closed"),
        (name = "actors", description = "The supervision tree"),
        (name = "config", description = "Reload and log level (mutating: behind the API token)"),
        (name = "health", description = "Liveness, readiness, version, metrics"),
        (name = "debug", description = "Only with --enable-chaos"),
        (name = "demo", description = "Only with demo = true: the example config's target and webhook"),
    )
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiToken",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("STATUSD_API_TOKEN")).build(),
            ),
        );
    }
}

/// The whole document, with the optional routes (chaos, demo) included and marked as such.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = routes::surface(true, true).into_openapi();
        document.info.version = crate::VERSION.to_string();
        document
    })
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn openapi() -> Json<&'static Document> {
    Json(document())
}
