//! The read side for the merchant's owner: their tenant's audit trail, filtered and paged, and
//! the verification of its hash chain.

use axum::extract::State;
use chrono::{DateTime, Utc};
use platform::routes;
use platform::{
    AppState, Authorized, Result,
    http::{Json, Page, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::{ReadAudit, verify};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(verify_chain))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventFilter {
    /// Resource kind, e.g. `staff`, `session`, `consent`.
    resource_kind: Option<String>,
    /// Resource id (with `resource_kind`); also finds records about several people that list
    /// it among their subjects (one `pii.accessed` per page of a list).
    resource_id: Option<String>,
    /// Acting user's id.
    actor: Option<String>,
    /// Action, e.g. `staff.updated`, `pii.accessed`.
    action: Option<String>,
    /// Occurred at or after (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Occurred before (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^-?[0-9]{1,18}$")]
    cursor: Option<String>,
}

/// One audit record as stored (ids and field names; no personal data by construction).
#[derive(Debug, Serialize, ToSchema)]
struct AuditEvent {
    event_id: uuid::Uuid,
    chain_seq: i64,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    action: String,
    actor: serde_json::Value,
    resource_kind: Option<String>,
    resource_id: Option<String>,
    request_id: Option<String>,
    changed_fields: serde_json::Value,
    details: serde_json::Value,
    /// Ids of the people a record about several of them concerns (a page of a list): empty
    /// for a record about one resource.
    subjects: Vec<String>,
}

/// The tenant's audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit",
    security(("bearer" = ["audit.read"])),
    params(EventFilter),
    responses(
        (status = 200, body = Page<AuditEvent>),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn events(
    caller: Authorized<ReadAudit>,
    State(state): State<AppState>,
    Query(filter): Query<EventFilter>,
) -> Result<Json<Page<AuditEvent>>> {
    let page = platform::http::PageParams {
        limit: filter.limit,
        cursor: filter.cursor.clone(),
    };
    let limit = page.limit()?;
    let before = page.cursor::<i64>()?;
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let rows = sqlx::query!(
        "select event_id, chain_seq, occurred_at, recorded_at, event_type, actor, resource_kind, resource_id,
                request_id, envelope
         from audit_events
         where ($1::text is null or resource_kind = $1)
           and ($2::text is null or resource_id = $2 or audit_subjects(envelope) @> array[$2])
           and ($3::text is null or actor_id = $3)
           and ($4::text is null or event_type = $4)
           and ($5::timestamptz is null or occurred_at >= $5)
           and ($6::timestamptz is null or occurred_at < $6)
           and ($7::bigint is null or chain_seq < $7)
         order by chain_seq desc
         limit $8",
        filter.resource_kind,
        filter.resource_id,
        filter.actor,
        filter.action,
        filter.from,
        filter.to,
        before,
        limit,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    let items = rows
        .into_iter()
        .map(|r| AuditEvent {
            event_id: r.event_id,
            chain_seq: r.chain_seq,
            occurred_at: r.occurred_at,
            recorded_at: r.recorded_at,
            action: r.event_type,
            actor: r.actor,
            resource_kind: r.resource_kind,
            resource_id: r.resource_id,
            request_id: r.request_id,
            changed_fields: r.envelope["payload"]["changed_fields"].clone(),
            details: r.envelope["payload"]["details"].clone(),
            subjects: serde_json::from_value(r.envelope["payload"]["subjects"].clone())
                .unwrap_or_default(),
        })
        .collect();
    Ok(Json(Page::new(items, limit, |e| e.chain_seq.to_string())))
}

#[derive(Debug, Serialize, ToSchema)]
struct ChainStatus {
    intact: bool,
    /// Records checked by this call: those stored after `verified_from`.
    links: i64,
    /// The last link of the background verification's checkpoint (0: none yet, the whole
    /// chain was checked now). Links up to it were found intact at `checkpoint_at`.
    verified_from: i64,
    checkpoint_at: Option<DateTime<Utc>>,
    /// When the background verification last walked the whole chain from its first link.
    full_verification_at: Option<DateTime<Utc>>,
    first_break: Option<Break>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Break {
    chain_seq: i64,
    event_id: Option<uuid::Uuid>,
    reason: &'static str,
}

/// Verifies the tenant's audit hash chain from the background verification's last checkpoint
/// to its head (the checkpoint's link and everything before it were verified by the
/// background job) and names the first broken link, if any.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    security(("bearer" = ["audit.read"])),
    responses(
        (status = 200, body = ChainStatus),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
    ))]
async fn verify_chain(
    caller: Authorized<ReadAudit>,
    State(state): State<AppState>,
) -> Result<Json<ChainStatus>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let (report, checkpoint) = verify::since_checkpoint(&mut tx, caller.tenant).await?;
    tx.rollback().await?;
    Ok(Json(ChainStatus {
        intact: report.intact(),
        links: report.links,
        verified_from: report.verified_from,
        checkpoint_at: checkpoint.as_ref().map(|c| c.verified_at),
        full_verification_at: checkpoint.as_ref().map(|c| c.full_at),
        first_break: report.first_break.map(|b| Break {
            chain_seq: b.chain_seq,
            event_id: b.event_id,
            reason: b.reason,
        }),
    }))
}
