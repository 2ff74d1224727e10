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
        (name = "incidents", description = "Outages, open and closed; their timeline; acknowledgement; public updates"),
        (name = "notifications", description = "What each channel was told: the outbox, with each delivery's status"),
        (name = "sla", description = "SLA reports: uptime, downtime, MTTR, MTBF and error budgets over a period"),
        (name = "badges", description = "SVG badges of public assets, for READMEs"),
        (name = "status page", description = "The public status page (HTML), its content as JSON, the incidents as Atom"),
        (name = "maintenance", description = "Maintenance windows: silence assets while they are worked on"),
        (name = "actors", description = "The supervision tree"),
        (name = "cluster", description = "Replicas sharing one PostgreSQL database: members, assets owned, roles"),
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

#[cfg(test)]
mod tests {
    /// An asset's `locations` is documented as it is configured (`required`, `names`) and as the
    /// API answers it (each location's verdict).
    #[test]
    fn asset_locations_are_documented() {
        let document = serde_json::to_value(super::document()).expect("serializes");
        let schemas = &document["components"]["schemas"];
        let locations = &schemas["Locations"]["properties"];
        assert!(locations["required"].is_object() && locations["names"].is_object(), "{locations}");
        let view = &schemas["AssetView"];
        let answered = serde_json::to_string(view).expect("serializes");
        assert!(answered.contains("\"locations\""), "{view}");
        assert!(schemas["LocationState"].to_string().contains("unknown"), "{}", schemas["LocationState"]);
    }

    /// Every parameter the handlers read is in the document, where it goes and whether it is
    /// required: the typed `Params` structs describe themselves (`utoipa::IntoParams`).
    #[test]
    fn every_parameter_is_documented() {
        let document = serde_json::to_value(super::document()).expect("serializes");
        let mut documented = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    assert!(parameter["description"].is_string(), "{method} {path}: {parameter}");
                    assert!(parameter["schema"]["type"].is_string(), "{method} {path}: {parameter}");
                    let required = if parameter["required"] == true { "required" } else { "optional" };
                    documented.push(format!("{method} {path} {} {} {required}", parameter["name"], parameter["in"]));
                }
            }
        }
        let expected = [
            r#"get /api/assets "limit" "query" optional"#,
            r#"get /api/assets "cursor" "query" optional"#,
            r#"get /api/assets "status" "query" optional"#,
            r#"get /api/assets "metadata.KEY" "query" optional"#,
            r#"get /api/assets/{id} "id" "path" required"#,
            r#"get /api/assets/{id}/events "id" "path" required"#,
            r#"get /api/assets/{id}/events "limit" "query" optional"#,
            r#"get /api/assets/{id}/events "before" "query" optional"#,
            r#"get /api/assets/{id}/events "since" "query" optional"#,
            r#"get /api/assets/{id}/uptime "id" "path" required"#,
            r#"get /api/assets/{id}/uptime "days" "query" optional"#,
            r#"get /api/assets/{id}/uptime "hours" "query" optional"#,
            r#"get /api/assets/{id}/uptime "step" "query" optional"#,
            r#"post /api/debug/panic "actor" "query" required"#,
            r#"post /api/debug/panic "task" "query" optional"#,
            r#"get /api/incidents "state" "query" optional"#,
            r#"get /api/incidents "limit" "query" optional"#,
            r#"get /api/incidents/{id} "id" "path" required"#,
            r#"post /api/incidents/{id}/ack "id" "path" required"#,
            r#"post /api/incidents/{id}/updates "id" "path" required"#,
            r#"get /api/maintenance "state" "query" optional"#,
            r#"delete /api/maintenance/{id} "id" "path" required"#,
            r#"get /api/notifications "incident" "query" optional"#,
            r#"get /api/notifications "asset" "query" optional"#,
            r#"get /api/notifications "channel" "query" optional"#,
            r#"get /api/notifications "status" "query" optional"#,
            r#"get /api/notifications "limit" "query" optional"#,
            r#"post /api/notifiers/{name}/test "name" "path" required"#,
            r#"get /api/push/{id} "id" "path" required"#,
            r#"get /api/push/{id} "token" "query" required"#,
            r#"get /api/push/{id} "status" "query" optional"#,
            r#"get /api/push/{id} "msg" "query" optional"#,
            r#"post /api/push/{id} "id" "path" required"#,
            r#"post /api/push/{id} "token" "query" required"#,
            r#"post /api/push/{id} "status" "query" optional"#,
            r#"post /api/push/{id} "msg" "query" optional"#,
            r#"get /api/sla "from" "query" optional"#,
            r#"get /api/sla "to" "query" optional"#,
            r#"get /api/sla "tz" "query" optional"#,
            r#"get /api/sla "format" "query" optional"#,
            r#"get /badge/{id}/response-time.svg "id" "path" required"#,
            r#"get /badge/{id}/status.svg "id" "path" required"#,
            r#"get /badge/{id}/uptime/{window} "id" "path" required"#,
            r#"get /badge/{id}/uptime/{window} "window" "path" required"#,
        ];
        assert_eq!(documented, expected);
    }
}
