//! Data-subject requests: filed, verified by an emailed token, fulfilled.
//!
//! Nothing is disclosed or changed until the person proves they hold the mailbox: every
//! request starts `awaiting_verification` with a single-use token mailed to the subject's own
//! address (sealed under their key in the event). Using it fulfils what can be fulfilled at
//! once (export bundle, withdrawal, restriction), schedules an erasure, or hands a
//! rectification to staff.

use chrono::{DateTime, TimeDelta, Utc};
use platform::{
    AppState, Error, Result,
    db::TenantTx,
    events::{self, Actor, AuditRecord, DomainEvent, Resource},
    id::UserId,
    pii::{Subject, SubjectId, SubjectKind},
    tokens,
};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Jurisdiction, RequestType, Sla, Status, bundle, due_at, sla};
use crate::{
    consent::{self, Audience, Choice, Evidence, Method},
    customers::CustomerId,
};

platform::id_type!(
    /// A data-subject request.
    RequestId
);

platform::id_type!(
    /// An export bundle waiting to be downloaded.
    ExportId
);

/// How a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The person themselves, by email and shop (no account needed).
    Public,
    /// A signed-in staff member about their own data.
    #[serde(rename = "self")]
    Own,
    /// Staff recording a customer's request (at the till, on the phone).
    Staff,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Own => "self",
            Self::Staff => "staff",
        }
    }
}

/// A request as the owner's list and the filer see it (no PII: the subject by id).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Request {
    pub id: RequestId,
    #[serde(rename = "type")]
    pub kind: RequestType,
    pub subject: SubjectRef,
    pub channel: String,
    pub jurisdiction: Jurisdiction,
    pub status: Status,
    pub sla: Sla,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    /// An erasure's start, after the shop's grace period.
    pub scheduled_for: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// A code: exported, withdrawn, restricted, erased, rectified, last_owner, subject_gone.
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct SubjectRef {
    /// `staff` or `customer`.
    pub kind: &'static str,
    pub id: uuid::Uuid,
}

/// A request being filed.
#[derive(Debug, Clone, Copy)]
pub struct Filing {
    pub kind: RequestType,
    pub subject: Subject,
    pub channel: Channel,
    /// The staff member who filed it (`self` and `staff` channels).
    pub filed_by: Option<UserId>,
}

impl Filing {
    fn actor(&self) -> Actor {
        match self.filed_by {
            Some(id) => Actor::User { id },
            None => Actor::Subject {
                id: self.subject.id,
            },
        }
    }
}

/// The shop's privacy settings.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[schema(as = PrivacySettings)]
pub struct Settings {
    pub jurisdiction: Jurisdiction,
    /// Hours an erasure waits after it is confirmed (0 to 720).
    pub erasure_grace_hours: i32,
}

/// Creates the shop's settings at onboarding: the jurisdiction follows its country.
pub async fn init_settings(tx: &mut TenantTx, country: &str) -> Result<()> {
    sqlx::query!(
        "insert into privacy_settings (tenant_id, jurisdiction) values ($1, $2)
         on conflict (tenant_id) do nothing",
        tx.tenant().0,
        Jurisdiction::for_country(country).as_str(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn settings(tx: &mut TenantTx) -> Result<Settings> {
    let row = sqlx::query!("select jurisdiction, erasure_grace_hours from privacy_settings")
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(row) => Settings {
            jurisdiction: Jurisdiction::parse(&row.jurisdiction).unwrap_or(Jurisdiction::Gdpr),
            erasure_grace_hours: row.erasure_grace_hours,
        },
        // Not created (a shop older than this table would have been backfilled): the stricter
        // month-based law is never assumed shorter than it is.
        None => Settings {
            jurisdiction: Jurisdiction::Gdpr,
            erasure_grace_hours: 0,
        },
    })
}

pub async fn change_settings(tx: &mut TenantTx, actor: Actor, new: Settings) -> Result<Settings> {
    if !(0..=720).contains(&new.erasure_grace_hours) {
        return Err(Error::invalid(
            "erasure_grace_hours",
            "must be between 0 and 720 (30 days)",
        ));
    }
    sqlx::query!(
        "insert into privacy_settings (tenant_id, jurisdiction, erasure_grace_hours)
         values ($1, $2, $3)
         on conflict (tenant_id) do update
             set jurisdiction = excluded.jurisdiction,
                 erasure_grace_hours = excluded.erasure_grace_hours, updated_at = now()",
        tx.tenant().0,
        new.jurisdiction.as_str(),
        new.erasure_grace_hours,
    )
    .execute(&mut **tx)
    .await?;
    let record = AuditRecord::new(
        actor,
        "privacy.settings_changed",
        Resource::new("tenant", tx.tenant()),
    )
    .fields(&["jurisdiction", "erasure_grace_hours"]);
    events::emit_audit(tx, &record).await?;
    Ok(new)
}

/// The customer whose email this is, without opening anything (the blind index).
pub async fn customer_by_email(
    state: &AppState,
    tx: &mut TenantTx,
    email: &str,
) -> Result<Option<CustomerId>> {
    let index = state
        .pii
        .blind_index(tx, platform::pii::IndexKind::Email, email)
        .await?;
    Ok(sqlx::query_scalar!(
        "select id from customers where email_index = $1 and erased_at is null",
        index.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .map(CustomerId))
}

/// Whether the subject exists, is not erased, and has an address to check their identity by.
async fn reachable(tx: &mut TenantTx, subject: Subject) -> Result<Option<bool>> {
    let has_email = match subject.kind {
        // A deleted account keeps its rights until it is erased.
        SubjectKind::Staff => sqlx::query_scalar!(
            "select email is not null from staff_users where id = $1 and erased_at is null",
            subject.id.0
        )
        .fetch_optional(&mut **tx)
        .await?
        .flatten(),
        SubjectKind::Customer => sqlx::query_scalar!(
            "select email is not null from customers where id = $1 and erased_at is null",
            subject.id.0
        )
        .fetch_optional(&mut **tx)
        .await?
        .flatten(),
        SubjectKind::Tenant => None,
    };
    Ok(has_email)
}

/// Files a request and mails the identity check to the subject. Staff channels answer with
/// errors (unknown subject 404, no address 422, rate 429); the public channel's caller never
/// learns whether the address belongs to anyone (see `auth`'s intake).
pub async fn file(state: &AppState, tx: &mut TenantTx, filing: Filing) -> Result<Request> {
    let subject = filing.subject;
    match reachable(tx, subject).await? {
        None => return Err(Error::NotFound),
        Some(false) => {
            return Err(Error::unprocessable(
                "subject_unreachable",
                "This person has no email address to confirm the request with; add one first.",
            ));
        }
        Some(true) => {}
    }
    let now = state.clock.now();
    // One open identity check per person and type: a filing while one waits is that request
    // (no new request, no new mail). Anyone who knows the address can file, so filings cannot
    // flood the person's mailbox, and cannot block them either: the link that waits is in
    // their own mailbox.
    let open = sqlx::query_scalar!(
        "select id from privacy_requests
         where subject_id = $1 and type = $2 and status = 'awaiting_verification'
           and token_expires_at > $3
         order by received_at desc limit 1",
        subject.id.0,
        filing.kind.as_str(),
        now,
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(open) = open {
        return get(tx, RequestId(open), now).await?.ok_or(Error::NotFound);
    }
    // Only the person's own (confirmed) filings count against them: unconfirmed ones, which
    // anyone can file, are bounded by the rule above and by the filer's own limits.
    let filed_lately = sqlx::query_scalar!(
        r#"select count(*) as "n!" from privacy_requests
           where subject_id = $1 and received_at > $2 and verified_at is not null"#,
        subject.id.0,
        now - TimeDelta::hours(1),
    )
    .fetch_one(&mut **tx)
    .await?;
    if filed_lately >= FILINGS_PER_SUBJECT_PER_HOUR {
        return Err(Error::TooManyRequests {
            limit: platform::error::Limit::PrivacyRequestsPerPerson,
            retry_after: std::time::Duration::from_secs(3600),
        });
    }
    if filing.kind.exports() {
        // Only confirmed requests count: unconfirmed ones, which anyone can file, must not use
        // up the person's own right of access.
        let limit = state.config.privacy.exports_per_subject_per_day;
        let recent = sqlx::query_scalar!(
            r#"select count(*) as "n!" from privacy_requests
               where subject_id = $1 and type in ('access', 'export') and received_at > $2
                 and verified_at is not null"#,
            subject.id.0,
            now - TimeDelta::hours(24),
        )
        .fetch_one(&mut **tx)
        .await?;
        if recent >= limit {
            return Err(Error::TooManyRequests {
                limit: platform::error::Limit::ExportsPerPerson,
                retry_after: std::time::Duration::from_secs(3600),
            });
        }
    }
    if filing.kind == RequestType::Erasure && subject.kind == SubjectKind::Staff {
        refuse_last_owner(tx, subject.id).await?;
    }
    let settings = settings(tx).await?;
    let id = RequestId::new();
    let due = due_at(settings.jurisdiction, filing.kind, now);
    let issued = tokens::issue(tx.tenant());
    let expires_at = now + TimeDelta::hours(hours(state.config.privacy.verification_ttl_hours));
    sqlx::query!(
        "insert into privacy_requests (tenant_id, id, type, subject_kind, subject_id, channel,
             filed_by, jurisdiction, status, received_at, due_at, token_hash, token_expires_at,
             updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'awaiting_verification', $9, $10, $11, $12, $9)",
        tx.tenant().0,
        id.0,
        filing.kind.as_str(),
        subject.kind.as_str(),
        subject.id.0,
        filing.channel.as_str(),
        filing.filed_by.map(|u| u.0),
        settings.jurisdiction.as_str(),
        now,
        due,
        issued.hash.0,
        expires_at,
    )
    .execute(&mut **tx)
    .await?;
    let actor = filing.actor();
    let record = AuditRecord::new(
        actor,
        "privacy.request_filed",
        Resource::new("privacy_request", id),
    )
    .details(serde_json::json!({
        "type": filing.kind.as_str(),
        "channel": filing.channel.as_str(),
        "subject": { "kind": subject.kind.as_str(), "id": subject.id },
        "due_at": due,
    }));
    events::emit_audit(tx, &record).await?;
    let sealed = state
        .pii
        .seal(
            tx,
            subject,
            events::sealed::PRIVACY_TOKEN,
            issued.text.expose_secret(),
        )
        .await?;
    let who = serde_json::json!({ "kind": subject.kind.as_str(), "id": subject.id });
    // A copy of all their data, or its end, is confirmed from the address the customer had
    // before any change in the last 30 days: whoever changed it cannot confirm it.
    let confirm_at = if subject.kind == SubjectKind::Customer
        && (filing.kind.exports() || filing.kind == RequestType::Erasure)
    {
        crate::customers::address_before_changes(tx, subject.id).await?
    } else {
        None
    };
    for event in [
        DomainEvent {
            actor,
            event_type: "privacy.request_received",
            payload: serde_json::json!({
                "subject": who, "request_id": id, "request_type": filing.kind.as_str(), "due_at": due,
            }),
        },
        DomainEvent {
            actor,
            event_type: "privacy.identity_check_requested",
            payload: serde_json::json!({
                "subject": who, "request_id": id, "request_type": filing.kind.as_str(),
                "token_sealed": sealed.to_base64(), "expires_at": expires_at,
                "address_change_id": confirm_at,
            }),
        },
    ] {
        events::emit_event(tx, &event).await?;
    }
    get(tx, id, now).await?.ok_or(Error::NotFound)
}

/// Whether the person has had more confirmed copies of their data in the last 24 hours than
/// `privacy.exports_per_subject_per_day`, counting the one being confirmed.
async fn over_export_quota(
    state: &AppState,
    tx: &mut TenantTx,
    subject: Subject,
    now: DateTime<Utc>,
) -> Result<bool> {
    let confirmed = sqlx::query_scalar!(
        r#"select count(*) as "n!" from privacy_requests
           where subject_id = $1 and type in ('access', 'export') and verified_at > $2"#,
        subject.id.0,
        now - TimeDelta::hours(24),
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(confirmed > state.config.privacy.exports_per_subject_per_day)
}

/// Confirmed filings about one person per hour, whatever the channel.
const FILINGS_PER_SUBJECT_PER_HOUR: i64 = 5;

fn hours(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX / 3_600_000)
}

pub(crate) async fn refuse_last_owner(tx: &mut TenantTx, id: SubjectId) -> Result<()> {
    let is_owner = sqlx::query_scalar!(
        "select role = 'owner' and status = 'active' from staff_users where id = $1",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .flatten()
    .unwrap_or(false);
    if is_owner && crate::staff::owners(tx).await? <= 1 {
        return Err(Error::conflict(
            "last_owner",
            "The shop's last owner cannot be erased: make someone else owner first, or close the shop.",
        ));
    }
    Ok(())
}

fn invalid_link() -> Error {
    Error::bad_request("invalid_token", "The link is invalid, used or expired.")
}

/// Uses an identity-check token: the request is verified and fulfilled as far as it can be
/// now. The link works once.
pub async fn confirm(state: &AppState, token: &str) -> Result<Request> {
    let (tenant, hash) = tokens::parse(token).ok_or_else(invalid_link)?;
    let now = state.clock.now();
    let mut tx = state.db.tenant(tenant).begin().await?;
    let row = sqlx::query!(
        "select id, type, subject_kind, subject_id, due_at from privacy_requests
         where token_hash = $1 and status = 'awaiting_verification' and token_expires_at > $2
         for update",
        hash.0,
        now
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(invalid_link)?;
    let id = RequestId(row.id);
    let kind = RequestType::parse(&row.r#type)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown request type stored")))?;
    let subject = Subject {
        id: SubjectId(row.subject_id),
        kind: SubjectKind::parse_person(&row.subject_kind)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown subject kind stored")))?,
    };
    let actor = Actor::Subject { id: subject.id };
    sqlx::query!(
        "update privacy_requests set verified_at = $2, token_hash = null, token_expires_at = null,
             updated_at = $2
         where id = $1",
        id.0,
        now
    )
    .execute(&mut *tx)
    .await?;
    events::emit_audit(
        &mut tx,
        &AuditRecord::new(
            actor,
            "privacy.request_verified",
            Resource::new("privacy_request", id),
        )
        .fields(&["verified_at"]),
    )
    .await?;
    if reachable(&mut tx, subject).await?.is_none() {
        close(&mut tx, actor, id, Status::Rejected, "subject_gone", now).await?;
    } else if kind.exports() && over_export_quota(state, &mut tx, subject, now).await? {
        // Checked again when confirmed: requests filed before the quota was used up must not
        // each build a bundle.
        close(&mut tx, actor, id, Status::Rejected, "export_quota", now).await?;
    } else {
        fulfil(state, &mut tx, actor, (id, row.due_at), kind, subject, now).await?;
    }
    let request = get(&mut tx, id, now).await?.ok_or(Error::NotFound)?;
    tx.commit().await?;
    Ok(request)
}

async fn fulfil(
    state: &AppState,
    tx: &mut TenantTx,
    actor: Actor,
    (id, due): (RequestId, DateTime<Utc>),
    kind: RequestType,
    subject: Subject,
    now: DateTime<Utc>,
) -> Result<()> {
    match kind {
        RequestType::Access | RequestType::Export => {
            export(state, tx, actor, id, subject, now).await?;
            close(tx, actor, id, Status::Completed, "exported", now).await
        }
        RequestType::Withdrawal => {
            withdraw_optional(state, tx, actor, subject).await?;
            close(tx, actor, id, Status::Completed, "withdrawn", now).await
        }
        RequestType::Restriction => {
            restrict(tx, actor, subject, now).await?;
            close(tx, actor, id, Status::Completed, "restricted", now).await
        }
        RequestType::Rectification => {
            set_status(tx, actor, id, Status::InProgress, None, now).await
        }
        RequestType::Erasure => {
            // The grace period never pushes the erasure past its legal due time (a day
            // before it, so the job's schedule has room).
            let grace = settings(tx).await?.erasure_grace_hours;
            let at = (now + TimeDelta::hours(i64::from(grace)))
                .min(due - TimeDelta::hours(24))
                .max(now);
            set_status(tx, actor, id, Status::Scheduled, Some(at), now).await?;
            let event = DomainEvent {
                actor,
                event_type: "privacy.erasure_scheduled",
                payload: serde_json::json!({
                    "subject": { "kind": subject.kind.as_str(), "id": subject.id },
                    "request_id": id,
                    "scheduled_for": at,
                }),
            };
            events::emit_event(tx, &event).await?;
            Ok(())
        }
    }
}

async fn set_status(
    tx: &mut TenantTx,
    actor: Actor,
    id: RequestId,
    status: Status,
    scheduled_for: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "update privacy_requests set status = $2, scheduled_for = coalesce($3, scheduled_for),
             updated_at = $4
         where id = $1",
        id.0,
        status.as_str(),
        scheduled_for,
        now
    )
    .execute(&mut **tx)
    .await?;
    let record = AuditRecord::new(
        actor,
        "privacy.request_updated",
        Resource::new("privacy_request", id),
    )
    .fields(&["status"])
    .details(serde_json::json!({ "status": status.as_str(), "scheduled_for": scheduled_for }));
    events::emit_audit(tx, &record).await?;
    Ok(())
}

/// Marks a request whose identity check ran out as `expired`. `false`: it was confirmed (or
/// closed) meanwhile, and is left alone.
pub(crate) async fn expire(
    tx: &mut TenantTx,
    actor: Actor,
    id: RequestId,
    now: DateTime<Utc>,
) -> Result<bool> {
    let expired = sqlx::query!(
        "update privacy_requests set status = 'expired', outcome = 'not_verified', completed_at = $2,
             updated_at = $2, token_hash = null, token_expires_at = null
         where id = $1 and status = 'awaiting_verification' and token_expires_at <= $2",
        id.0,
        now
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if expired > 0 {
        let record = AuditRecord::new(
            actor,
            "privacy.request_closed",
            Resource::new("privacy_request", id),
        )
        .fields(&["status", "outcome", "completed_at"])
        .details(serde_json::json!({ "status": "expired", "outcome": "not_verified" }));
        events::emit_audit(tx, &record).await?;
    }
    Ok(expired > 0)
}

/// Closes a request with its outcome (a code).
pub(crate) async fn close(
    tx: &mut TenantTx,
    actor: Actor,
    id: RequestId,
    status: Status,
    outcome: &'static str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "update privacy_requests set status = $2, outcome = $3, completed_at = $4, updated_at = $4
         where id = $1",
        id.0,
        status.as_str(),
        outcome,
        now
    )
    .execute(&mut **tx)
    .await?;
    let record = AuditRecord::new(
        actor,
        "privacy.request_closed",
        Resource::new("privacy_request", id),
    )
    .fields(&["status", "outcome", "completed_at"])
    .details(serde_json::json!({ "status": status.as_str(), "outcome": outcome }));
    events::emit_audit(tx, &record).await?;
    Ok(())
}

/// Builds the bundle from every module, seals it under the subject's key, and mails a
/// single-use download link.
async fn export(
    state: &AppState,
    tx: &mut TenantTx,
    actor: Actor,
    request: RequestId,
    subject: Subject,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut sections = Vec::new();
    for provider in state.subjects.iter() {
        sections.extend(provider.export(state, tx, subject).await?);
    }
    let zip = bundle::zip(tx.tenant(), subject, now, &sections)?;
    let sealed = state
        .pii
        .seal(tx, subject, "privacy_exports.bundle", &bundle::encode(&zip))
        .await?;
    let issued = tokens::issue(tx.tenant());
    let expires_at = now + TimeDelta::hours(hours(state.config.privacy.export_ttl_hours));
    let export = ExportId::new();
    sqlx::query!(
        "insert into privacy_exports (tenant_id, id, request_id, subject_id, bundle, size_bytes,
             token_hash, created_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        tx.tenant().0,
        export.0,
        request.0,
        subject.id.0,
        sealed.0,
        i32::try_from(zip.len()).unwrap_or(i32::MAX),
        issued.hash.0,
        now,
        expires_at,
    )
    .execute(&mut **tx)
    .await?;
    let sizes: serde_json::Map<String, serde_json::Value> = sections
        .iter()
        .map(|s| (s.name.clone(), s.records.len().into()))
        .collect();
    let record = AuditRecord::new(
        actor,
        "pii.accessed",
        Resource::new(subject.kind.as_str(), subject.id),
    )
    .details(serde_json::json!({
        "purpose": "data_subject_request", "request_id": request, "export_id": export,
        "records": sizes,
    }));
    events::emit_audit(tx, &record).await?;
    let token_sealed = state
        .pii
        .seal(
            tx,
            subject,
            events::sealed::PRIVACY_TOKEN,
            issued.text.expose_secret(),
        )
        .await?;
    let event = DomainEvent {
        actor,
        event_type: "privacy.export_ready",
        payload: serde_json::json!({
            "subject": { "kind": subject.kind.as_str(), "id": subject.id },
            "request_id": request,
            "token_sealed": token_sealed.to_base64(),
            "expires_at": expires_at,
        }),
    };
    events::emit_event(tx, &event).await?;
    Ok(())
}

async fn withdraw_optional(
    state: &AppState,
    tx: &mut TenantTx,
    actor: Actor,
    subject: Subject,
) -> Result<()> {
    let audience = match subject.kind {
        SubjectKind::Customer => Audience::Customer,
        _ => Audience::Merchant,
    };
    let purposes = consent::purposes(&state.db, audience, consent::Lang::En).await?;
    let choices: Vec<Choice> = purposes
        .iter()
        .filter(|p| !p.required)
        .map(|p| Choice {
            purpose: p.code.clone(),
            granted: false,
        })
        .collect();
    consent::change(
        &state.db,
        &state.pii,
        tx,
        actor,
        audience,
        subject.id,
        &choices,
        Method::Request,
        &Evidence::default(),
    )
    .await?;
    Ok(())
}

async fn restrict(
    tx: &mut TenantTx,
    actor: Actor,
    subject: Subject,
    now: DateTime<Utc>,
) -> Result<()> {
    match subject.kind {
        SubjectKind::Customer => {
            sqlx::query!(
                "update customers set restricted_at = coalesce(restricted_at, $2) where id = $1",
                subject.id.0,
                now
            )
            .execute(&mut **tx)
            .await?;
        }
        _ => {
            sqlx::query!(
                "update staff_users set restricted_at = coalesce(restricted_at, $2) where id = $1",
                subject.id.0,
                now
            )
            .execute(&mut **tx)
            .await?;
        }
    }
    let record = AuditRecord::new(
        actor,
        "subject.restricted",
        Resource::new(subject.kind.as_str(), subject.id),
    )
    .fields(&["restricted_at"]);
    events::emit_audit(tx, &record).await?;
    Ok(())
}

/// Lifts a restriction (the person asked, or the dispute that justified it is settled). The
/// person is told (`privacy.restriction_lifted`: GDPR art. 18(3) asks that they learn of it).
pub async fn lift_restriction(tx: &mut TenantTx, actor: Actor, subject: Subject) -> Result<bool> {
    let lifted = match subject.kind {
        SubjectKind::Customer => sqlx::query!(
            "update customers set restricted_at = null where id = $1 and restricted_at is not null",
            subject.id.0
        )
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        _ => sqlx::query!(
            "update staff_users set restricted_at = null where id = $1 and restricted_at is not null",
            subject.id.0
        )
        .execute(&mut **tx)
        .await?
        .rows_affected(),
    };
    if lifted > 0 {
        let record = AuditRecord::new(
            actor,
            "subject.restriction_lifted",
            Resource::new(subject.kind.as_str(), subject.id),
        )
        .fields(&["restricted_at"]);
        events::emit_audit(tx, &record).await?;
        let event = DomainEvent {
            actor,
            event_type: "privacy.restriction_lifted",
            payload: serde_json::json!({
                "subject": { "kind": subject.kind.as_str(), "id": subject.id },
            }),
        };
        events::emit_event(tx, &event).await?;
    }
    Ok(lifted > 0)
}

/// Whether processing beyond storage is refused for this person.
pub async fn restricted(tx: &mut TenantTx, subject: SubjectId) -> Result<bool> {
    // A confirmed erasure restricts too: while it waits out the grace period or runs, the
    // person's data is not processed (no order, no mail but what answers their rights). An
    // erasure the retention job scheduled for an inactive guest does not: their coming back
    // cancels it.
    Ok(sqlx::query_scalar!(
        r#"select exists (select 1 from customers where id = $1 and restricted_at is not null)
              or exists (select 1 from staff_users where id = $1 and restricted_at is not null)
              or exists (select 1 from privacy_requests where subject_id = $1 and type = 'erasure'
                          and (status = 'erasing' or (status = 'scheduled' and channel <> 'retention')))
           as "restricted!""#,
        subject.0
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// Closes a request staff handled by hand (a rectification): `completed` with outcome
/// `rectified`, or `rejected` with outcome `rejected`.
pub async fn resolve(
    state: &AppState,
    tx: &mut TenantTx,
    actor: Actor,
    id: RequestId,
    done: bool,
) -> Result<Request> {
    let now = state.clock.now();
    let status = sqlx::query_scalar!(
        "select status from privacy_requests where id = $1 for update",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(Error::NotFound)?;
    if status != Status::InProgress.as_str() {
        return Err(Error::conflict(
            "request_not_in_progress",
            "Only a verified request waiting for staff (a rectification) can be resolved by hand.",
        ));
    }
    let (status, outcome) = if done {
        (Status::Completed, "rectified")
    } else {
        (Status::Rejected, "rejected")
    };
    close(tx, actor, id, status, outcome, now).await?;
    get(tx, id, now).await?.ok_or(Error::NotFound)
}

/// The bundle behind a download token, opened; the link works once. Audited as the subject's
/// own access.
pub async fn download(state: &AppState, token: &str) -> Result<Vec<u8>> {
    let (tenant, hash) = tokens::parse(token).ok_or_else(invalid_link)?;
    let now = state.clock.now();
    let mut tx = state.db.tenant(tenant).begin().await?;
    let row = sqlx::query!(
        "update privacy_exports set downloaded_at = $2
         where token_hash = $1 and downloaded_at is null and expires_at > $2
         returning id, subject_id, bundle",
        hash.0,
        now
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(invalid_link)?;
    let subject = SubjectId(row.subject_id);
    let opened = state
        .pii
        .open(
            &mut tx,
            subject,
            "privacy_exports.bundle",
            &platform::pii::Sealed(row.bundle),
        )
        .await?;
    let zip = opened
        .value()
        .and_then(bundle::decode)
        .ok_or_else(invalid_link)?;
    let record = AuditRecord::new(
        Actor::Subject { id: subject },
        "privacy.export_downloaded",
        Resource::new("privacy_export", row.id),
    )
    .fields(&["downloaded_at"]);
    events::emit_audit(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(zip)
}

struct Row {
    id: uuid::Uuid,
    r#type: String,
    subject_kind: String,
    subject_id: uuid::Uuid,
    channel: String,
    jurisdiction: String,
    status: String,
    received_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    verified_at: Option<DateTime<Utc>>,
    scheduled_for: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
}

impl Row {
    fn into_request(self, now: DateTime<Utc>) -> Result<Request> {
        let broken = || Error::Internal(anyhow::anyhow!("unreadable privacy_requests row"));
        let status = Status::parse(&self.status).ok_or_else(broken)?;
        Ok(Request {
            id: RequestId(self.id),
            kind: RequestType::parse(&self.r#type).ok_or_else(broken)?,
            subject: SubjectRef {
                kind: SubjectKind::parse_person(&self.subject_kind)
                    .ok_or_else(broken)?
                    .as_str(),
                id: self.subject_id,
            },
            channel: self.channel,
            jurisdiction: Jurisdiction::parse(&self.jurisdiction).ok_or_else(broken)?,
            status,
            sla: sla(status, self.due_at, self.completed_at, now),
            received_at: self.received_at,
            due_at: self.due_at,
            verified_at: self.verified_at,
            scheduled_for: self.scheduled_for,
            completed_at: self.completed_at,
            outcome: self.outcome,
        })
    }
}

pub async fn get(tx: &mut TenantTx, id: RequestId, now: DateTime<Utc>) -> Result<Option<Request>> {
    sqlx::query_as!(
        Row,
        "select id, type, subject_kind, subject_id, channel, jurisdiction, status, received_at,
                due_at, verified_at, scheduled_for, completed_at, outcome
         from privacy_requests where id = $1",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| row.into_request(now))
    .transpose()
}

/// Which requests a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    /// Only those not yet closed.
    pub open: bool,
    pub subject: Option<SubjectId>,
    pub after: Option<RequestId>,
    pub limit: i64,
}

/// Requests newest first (ids are time-ordered).
pub async fn list(tx: &mut TenantTx, filter: Filter, now: DateTime<Utc>) -> Result<Vec<Request>> {
    sqlx::query_as!(
        Row,
        "select id, type, subject_kind, subject_id, channel, jurisdiction, status, received_at,
                due_at, verified_at, scheduled_for, completed_at, outcome
         from privacy_requests
         where (not $1 or status not in ('completed', 'expired', 'rejected'))
           and ($2::uuid is null or subject_id = $2)
           and ($3::uuid is null or id < $3)
         order by id desc limit $4",
        filter.open,
        filter.subject.map(|s| s.0),
        filter.after.map(|a| a.0),
        filter.limit,
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|row| row.into_request(now))
    .collect()
}
