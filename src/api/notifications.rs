//! `GET /api/notifications?incident=&asset=&channel=&status=&limit=`: what each channel was
//! told, from the outbox (`notifications`), newest first.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use uuid::Uuid;

use super::error::ErrorBody;
use super::query::{Choice, Choices, Limit, Params, limit};
use super::{ApiError, ApiState};
use crate::store::{DeliveriesQuery, DeliveryRecord, DeliveryStatus};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsParams {
    /// Only this incident's notifications (an incident id)
    #[param(value_type = Option<String>)]
    incident: Option<Uuid>,
    /// Only this asset's notifications (an asset id)
    asset: Option<String>,
    /// Only this channel's notifications (a notifier name)
    channel: Option<String>,
    /// pending, sent or failed
    #[param(value_type = Option<String>)]
    status: Option<Choice<DeliveryStatus>>,
    /// 1 to 1000; default 100
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
}

impl Choices for DeliveryStatus {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("pending", DeliveryStatus::Pending), ("sent", DeliveryStatus::Sent), ("failed", DeliveryStatus::Failed)];
}

/// `GET /api/notifications`: each notification for each channel, with where it is (pending,
/// sent, failed), its attempts and its last error.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications",
    params(NotificationsParams),
    responses(
        (status = 200, description = "Notifications, newest first", body = Vec<DeliveryRecord>),
        (status = 400, description = "A parameter that is not what it should be", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn list_notifications(
    State(state): State<ApiState>,
    Params(params): Params<NotificationsParams>,
) -> Result<Json<Vec<DeliveryRecord>>, ApiError> {
    let query = DeliveriesQuery {
        incident: params.incident,
        asset: params.asset,
        channel: params.channel,
        status: params.status.map(|status| status.0),
        limit: limit(params.limit),
    };
    Ok(Json(state.store.deliveries(&query).await?))
}
