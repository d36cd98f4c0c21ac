//! The owner's and manager's view of the delivery log, and a retry for mail that gave up.

use axum::extract::State;
use chrono::{DateTime, Utc};
use platform::http::Path;
use platform::routes;
use platform::{
    AppState, Authorized, Error, Result,
    events::{self, AuditRecord, Resource},
    http::{Json, Page, PageParams, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    ReadDeliveries, RetryDeliveries,
    domain::Template,
    repo::{self, DeliveryId, Filter, Row},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum DeliveryStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// Being sent right now.
    Sending,
    Sent,
    /// Gave up: a permanent refusal, or every attempt failed. Can be retried.
    Dead,
    /// Not sent on purpose (the person was erased, withdrew consent, has no address). Can be
    /// retried; the reason is checked again.
    Cancelled,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "pending" => Self::Pending,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "dead" => Self::Dead,
            _ => Self::Cancelled,
        }
    }
}

/// Who a mail is for: a person by id. The address is never stored in the log.
#[derive(Debug, Serialize, ToSchema)]
struct DeliveryRecipient {
    /// `staff` or `customer`.
    kind: String,
    id: uuid::Uuid,
}

/// One mail in the delivery log: no address, no body.
#[derive(Debug, Serialize, ToSchema)]
struct Delivery {
    id: DeliveryId,
    /// The event that asked for it (`warung.events.v1`).
    event_id: uuid::Uuid,
    event_type: String,
    /// e.g. `email_verification`, `order_receipt`.
    template: String,
    recipient: DeliveryRecipient,
    status: DeliveryStatus,
    attempts: i32,
    /// When a pending mail is tried next.
    next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed or the mail was cancelled: a category and an SMTP code,
    /// e.g. `smtp_connection`, `smtp_permanent 550`, `subject_erased`.
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

impl From<Row> for Delivery {
    fn from(row: Row) -> Self {
        let status = DeliveryStatus::parse(&row.status);
        Self {
            id: DeliveryId(row.id),
            event_id: row.event_id,
            event_type: row.event_type,
            template: row.template,
            recipient: DeliveryRecipient {
                kind: row.recipient_kind,
                id: row.recipient_id,
            },
            next_attempt_at: (status == DeliveryStatus::Pending
                && row.next_attempt_at != repo::held())
            .then_some(row.next_attempt_at),
            status,
            attempts: row.attempts,
            last_error: row.last_error,
            created_at: row.created_at,
            sent_at: row.sent_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryFilter {
    status: Option<DeliveryStatus>,
    /// Template name, e.g. `order_receipt`.
    template: Option<String>,
    /// The recipient's id (a staff user or a customer).
    recipient_id: Option<uuid::Uuid>,
    /// The event that asked for the mail.
    event_id: Option<uuid::Uuid>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

/// The tenant's mail, newest first.
#[utoipa::path(get, path = "/api/v1/notifications/deliveries", tag = "notifications",
    security(("bearer" = ["notifications.read"])),
    params(DeliveryFilter),
    responses(
        (status = 200, body = Page<Delivery>),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn list_deliveries(
    caller: Authorized<ReadDeliveries>,
    State(state): State<AppState>,
    Query(filter): Query<DeliveryFilter>,
) -> Result<Json<Page<Delivery>>> {
    let page = PageParams {
        limit: filter.limit,
        cursor: filter.cursor.clone(),
    };
    let limit = page.limit()?;
    if let Some(template) = &filter.template
        && Template::parse(template).is_none()
    {
        return Err(Error::invalid("template", "unknown template"));
    }
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let rows = repo::list(
        &mut tx,
        &Filter {
            status: filter.status.map(|s| s.as_str().to_owned()),
            template: filter.template,
            recipient: filter.recipient_id,
            event: filter.event_id,
            before: page.cursor::<uuid::Uuid>()?,
        },
        limit,
    )
    .await?;
    tx.rollback().await?;
    let items = rows.into_iter().map(Delivery::from).collect();
    Ok(Json(Page::new(items, limit, |d: &Delivery| {
        d.id.to_string()
    })))
}

/// Puts a dead or cancelled mail back in the queue with a fresh set of attempts. What stopped
/// it is checked again when it is sent (an erased person's mail is cancelled again).
#[utoipa::path(post, path = "/api/v1/notifications/deliveries/{id}/retry", tag = "notifications",
    security(("bearer" = ["notifications.retry"])),
    params(("id" = DeliveryId, Path)),
    responses(
        (status = 200, body = Delivery),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`delivery_not_retryable`: it is waiting, being sent or sent", body = platform::error::Problem),
    ))]
async fn retry_delivery(
    caller: Authorized<RetryDeliveries>,
    State(state): State<AppState>,
    Path(id): Path<DeliveryId>,
) -> Result<Json<Delivery>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let row = repo::get_for_update(&mut tx, id)
        .await?
        .ok_or(Error::NotFound)?;
    if !matches!(row.status.as_str(), "dead" | "cancelled") {
        return Err(Error::conflict(
            "delivery_not_retryable",
            "Only a dead or cancelled mail can be retried.",
        ));
    }
    let requeued = repo::requeue(&mut tx, id).await?;
    let record = AuditRecord::new(
        caller.actor(),
        "notification.retried",
        Resource::new("notification", id),
    )
    .fields(&["status", "attempts"])
    .details(serde_json::json!({ "template": row.template, "previous_status": row.status }));
    events::emit_audit(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(requeued.into()))
}
