//! HTTP handlers of the users module: privacy purposes and policy (public), staff invitations
//! and staff management (owner/manager).

use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use platform::http::Path;
use platform::routes;
use platform::{
    AppState, Authorized, Error, Result, Role,
    events::{self, AuditRecord, Resource},
    http::{Json, Page, PageParams, Query},
    id::UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use validator::Validate;

use crate::{
    InviteStaff, ManageStaff, ReadStaff,
    consent::{self, Audience, Lang, Policy, Purpose},
    invitations,
    staff::{self, Locale, Profile},
};

mod consents;
mod customers;
mod privacy;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(customers::router())
        .merge(consents::router())
        .merge(privacy::router())
        .routes(routes!(purposes))
        .routes(routes!(policy))
        .routes(routes!(invite))
        .routes(routes!(list_staff))
        .routes(routes!(get_staff, update_staff, delete_staff))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PrivacyParams {
    /// Whose consent: `merchant` (staff, default) or `customer`.
    #[param(inline)]
    audience: Option<Audience>,
    /// `id` (default) or `en`.
    lang: Option<Lang>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PurposeList {
    policy_version: String,
    items: Vec<Purpose>,
}

/// The purposes consent is asked for, with the current policy version (public: the portal
/// builds its checkboxes from this).
#[utoipa::path(get, path = "/api/v1/privacy/purposes", tag = "privacy", params(PrivacyParams),
    responses((status = 200, body = PurposeList), (status = 422, body = platform::error::Problem)))]
async fn purposes(
    State(state): State<AppState>,
    Query(params): Query<PrivacyParams>,
) -> Result<Json<PurposeList>> {
    let audience = params.audience.unwrap_or(Audience::Merchant);
    let lang = params.lang.unwrap_or_default();
    Ok(Json(PurposeList {
        policy_version: consent::current_version(&state.db, audience).await?,
        items: consent::purposes(&state.db, audience, lang).await?,
    }))
}

/// The privacy policy in force (public).
#[utoipa::path(get, path = "/api/v1/privacy/policy", tag = "privacy", params(PrivacyParams),
    responses((status = 200, body = Policy), (status = 422, body = platform::error::Problem)))]
async fn policy(
    State(state): State<AppState>,
    Query(params): Query<PrivacyParams>,
) -> Result<Json<Policy>> {
    let audience = params.audience.unwrap_or(Audience::Merchant);
    Ok(Json(
        consent::policy(&state.db, audience, params.lang.unwrap_or_default()).await?,
    ))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    #[validate(email(message = "must be an email address"), length(max = 254))]
    #[schema(max_length = 254)]
    email: String,
    #[schema(value_type = StaffRole)]
    role: Role,
    /// Language of the invitation mail and the account (default `id`).
    locale: Option<Locale>,
}

#[derive(Debug, Serialize, ToSchema)]
struct InviteResponse {
    id: uuid::Uuid,
    user_id: UserId,
    expires_at: DateTime<Utc>,
}

/// Invites a staff member by email; they accept through the mailed link
/// (`POST /api/v1/invitations/accept`). A manager cannot invite an owner.
#[utoipa::path(post, path = "/api/v1/users/invitations", tag = "staff",
    security(("bearer" = ["users.invite"])),
    request_body = InviteRequest,
    responses(
        (status = 201, body = InviteResponse),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 409, description = "A staff account with this email exists", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn invite(
    caller: Authorized<InviteStaff>,
    State(state): State<AppState>,
    Json(body): Json<InviteRequest>,
) -> Result<(StatusCode, Json<InviteResponse>)> {
    platform::error::validate(&body)?;
    if !Role::STAFF.contains(&body.role) {
        return Err(Error::invalid("role", "must be owner, manager or cashier"));
    }
    if !staff::may_assign(caller.role, None, body.role) {
        return Err(Error::Forbidden);
    }
    let ttl = TimeDelta::hours(i64::try_from(state.config.auth.invitation_ttl_hours).unwrap_or(72));
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let invitation = invitations::create(
        &state.pii,
        &mut tx,
        caller.user,
        &body.email,
        body.role,
        body.locale.unwrap_or(Locale::Id),
        ttl,
        state.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(InviteResponse {
            id: invitation.id,
            user_id: invitation.user,
            expires_at: invitation.expires_at,
        }),
    ))
}

/// Staff accounts of the caller's tenant (opening them is recorded as `pii.accessed`).
#[utoipa::path(get, path = "/api/v1/users", tag = "staff",
    security(("bearer" = ["users.read"])),
    params(PageParams),
    responses(
        (status = 200, body = Page<Profile>),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
    ))]
async fn list_staff(
    caller: Authorized<ReadStaff>,
    State(state): State<AppState>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Profile>>> {
    let limit = page.limit()?;
    let after = page.cursor::<UserId>()?;
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let items = staff::list(&state.pii, &mut tx, caller.actor(), after, limit).await?;
    tx.commit().await?;
    Ok(Json(Page::new(items, limit, |p| p.id.to_string())))
}

/// One staff account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "staff",
    security(("bearer" = ["users.read"])),
    params(("id" = UserId, Path)),
    responses(
        (status = 200, body = Profile),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
    ))]
async fn get_staff(
    caller: Authorized<ReadStaff>,
    State(state): State<AppState>,
    Path(id): Path<UserId>,
) -> Result<Json<Profile>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let profile =
        staff::profile(&state.pii, &mut tx, caller.actor(), "staff_management", id).await?;
    tx.commit().await?;
    Ok(Json(profile))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateStaff {
    #[schema(value_type = Option<StaffRole>)]
    role: Option<Role>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    full_name: Option<String>,
    #[validate(length(min = 6, max = 32, message = "must be 6 to 32 characters"))]
    #[schema(min_length = 6, max_length = 32)]
    phone: Option<String>,
    locale: Option<Locale>,
}

/// Changes a staff member's role or profile. A manager cannot touch an owner or make one; the
/// last owner cannot be demoted. A role change ends the member's sessions (their next token
/// carries the new role).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "staff",
    security(("bearer" = ["users.manage"])),
    params(("id" = UserId, Path)),
    request_body = UpdateStaff,
    responses(
        (status = 200, body = Profile),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "Would leave the tenant without an owner", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn update_staff(
    caller: Authorized<ManageStaff>,
    State(state): State<AppState>,
    Path(id): Path<UserId>,
    Json(body): Json<UpdateStaff>,
) -> Result<Json<Profile>> {
    platform::error::validate(&body)?;
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let target = staff::get_live_for_update(&mut tx, id).await?;
    let new_role = body.role.unwrap_or(target.role);
    if !Role::STAFF.contains(&new_role) {
        return Err(Error::invalid("role", "must be owner, manager or cashier"));
    }
    if !staff::may_assign(caller.role, Some(target.role), new_role) {
        return Err(Error::Forbidden);
    }
    if staff::is_active_owner(&target)
        && new_role != Role::Owner
        && staff::owners(&mut tx).await? <= 1
    {
        return Err(Error::conflict(
            "last_owner",
            "The last owner cannot be demoted.",
        ));
    }
    let subject = staff::subject(id);
    let mut fields = Vec::new();
    let full_name = match &body.full_name {
        Some(name) => {
            fields.push("full_name");
            Some(
                state
                    .pii
                    .seal(&mut tx, subject, "staff_users.full_name", name)
                    .await?,
            )
        }
        None => None,
    };
    let phone = match &body.phone {
        Some(phone) => {
            fields.push("phone");
            Some(
                state
                    .pii
                    .seal(&mut tx, subject, "staff_users.phone", phone)
                    .await?,
            )
        }
        None => None,
    };
    if body.locale.is_some() {
        fields.push("locale");
    }
    let role_changed = new_role != target.role;
    if role_changed {
        fields.push("role");
    }
    if !fields.is_empty() {
        staff::update(&mut tx, id, new_role, full_name, phone, body.locale).await?;
        let record = AuditRecord::new(caller.actor(), "staff.updated", Resource::new("staff", id))
            .fields(&fields)
            .details(serde_json::json!({ "role": new_role }));
        events::emit_audit(&mut tx, &record).await?;
    }
    if role_changed {
        state
            .sessions
            .revoke_user(&mut tx, caller.actor(), id, "role_changed")
            .await?;
    }
    let profile =
        staff::profile(&state.pii, &mut tx, caller.actor(), "staff_management", id).await?;
    tx.commit().await?;
    Ok(Json(profile))
}

/// Deletes a staff account: its sessions end at once, its email is free again. The last owner
/// cannot be deleted; a manager cannot delete an owner. Erasing the person's data for good is
/// a data-subject request.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "staff",
    security(("bearer" = ["users.manage"])),
    params(("id" = UserId, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "The last owner", body = platform::error::Problem),
    ))]
async fn delete_staff(
    caller: Authorized<ManageStaff>,
    State(state): State<AppState>,
    Path(id): Path<UserId>,
) -> Result<StatusCode> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let target = staff::get_live_for_update(&mut tx, id).await?;
    if !staff::may_assign(caller.role, Some(target.role), target.role) {
        return Err(Error::Forbidden);
    }
    if staff::is_active_owner(&target) && staff::owners(&mut tx).await? <= 1 {
        return Err(Error::conflict(
            "last_owner",
            "The last owner cannot be deleted.",
        ));
    }
    staff::delete(&mut tx, id).await?;
    let record = AuditRecord::new(caller.actor(), "staff.deleted", Resource::new("staff", id))
        .fields(&["status", "deleted_at"]);
    events::emit_audit(&mut tx, &record).await?;
    state
        .sessions
        .close_account(&mut tx, caller.actor(), id, "account_deleted")
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The roles a merchant's staff can hold: [`Role`] without the operator's, as the documents
/// of the routes that give a role show it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(
    dead_code,
    reason = "documents the accepted values; requests parse into `Role`"
)]
enum StaffRole {
    Owner,
    Manager,
    Cashier,
}
