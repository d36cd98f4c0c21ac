//! A shop's news to its customers, only to those whose latest `marketing` choice is a grant in
//! effect (one staff recorded counts only once the customer confirmed it, see
//! `users::consent::confirmation`), and only once the shop's owner has verified their address:
//! one `marketing.message` event per recipient, planned and sent like every other mail, with
//! the consent checked again at send time (a withdrawal in between stops it).

use axum::{extract::State, http::StatusCode};
use platform::routes;
use platform::{
    AppState, Authorized, Error, Result,
    error::FieldError,
    events::{self, AuditRecord, DomainEvent, Resource},
    http::Json,
    permission,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

permission!(pub SendMarketing = "marketing.send", [Owner, Manager], "Mail the shop's news to the customers who agreed to it");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Message {
    /// The mail's subject: one line, 1 to 120 characters.
    headline: String,
    /// The text, 1 to 5000 characters (shown as text, never as HTML).
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct Sent {
    /// Customers it goes to: those who agreed to marketing mail and can be written to.
    recipients: usize,
}

fn check(body: &Message) -> Result<()> {
    let mut errors = Vec::new();
    let headline = body.headline.trim();
    if headline.is_empty()
        || headline.chars().count() > 120
        || headline.chars().any(char::is_control)
    {
        errors.push(FieldError::new(
            "headline",
            "must be one line of 1 to 120 characters",
        ));
    }
    let message = body.message.trim();
    if message.is_empty() || message.chars().count() > 5000 {
        errors.push(FieldError::new("message", "must be 1 to 5000 characters"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// Mails the shop's news to every customer who agreed to marketing mail (nobody else).
#[utoipa::path(post, path = "/api/v1/marketing/messages", tag = "notifications",
    security(("bearer" = ["marketing.send"])),
    request_body = Message,
    responses(
        (status = 202, body = Sent),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 409, description = "`owner_unverified`: the owner has not verified their email address yet", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn send(
    caller: Authorized<SendMarketing>,
    State(state): State<AppState>,
    Json(body): Json<Message>,
) -> Result<(StatusCode, Json<Sent>)> {
    check(&body)?;
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    if !users::staff::owner_verified(&mut tx).await? {
        return Err(Error::conflict(
            "owner_unverified",
            "The shop writes to customers once its owner has verified their email address.",
        ));
    }
    let recipients = users::consent::customers_granting(&mut tx, "marketing").await?;
    let campaign = uuid::Uuid::now_v7();
    for customer in &recipients {
        let event = DomainEvent {
            actor: caller.actor(),
            event_type: "marketing.message",
            payload: serde_json::json!({
                "subject": { "kind": "customer", "id": customer },
                "campaign_id": campaign,
                "headline": body.headline.trim(),
                "message": body.message.trim(),
            }),
        };
        events::emit_event(&mut tx, &event).await?;
    }
    let record = AuditRecord::new(
        caller.actor(),
        "marketing.sent",
        Resource::new("campaign", campaign),
    )
    .details(serde_json::json!({ "recipients": recipients.len() }));
    events::emit_audit(&mut tx, &record).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Sent {
            recipients: recipients.len(),
        }),
    ))
}
