//! HTTP handlers of auth: merchant onboarding, sign-in and sessions, mailed-token flows,
//! invitation acceptance, `/me` and the JWKS.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use chrono::TimeDelta;
use platform::routes;
use platform::{
    AppState, Error, Principal, Result, Role,
    events::Actor,
    http::{ClientAddr, Json},
    id::{SessionId, TenantId, UserId},
    throttle, tokens,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use users::{
    consent::{self, Audience, Choice, ConsentState, Evidence, Method},
    invitations,
    staff::{self, Locale, NewStaff, Profile, StaffUser, Status},
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use validator::Validate;

use crate::{
    credentials::{self, Purpose},
    service::Service,
    sessions::{self, Refreshed},
};

type Problem = platform::error::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(onboard))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(verify_email))
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
        .routes(routes!(accept_invitation))
        .routes(routes!(me))
        .routes(routes!(jwks))
        .merge(crate::intake::router())
}

fn password_rules(password: &str) -> std::result::Result<(), validator::ValidationError> {
    let chars = password.chars().count();
    if (12..=128).contains(&chars) {
        Ok(())
    } else {
        let mut error = validator::ValidationError::new("password_length");
        error.message = Some("must be 12 to 128 characters".into());
        Err(error)
    }
}

// ---------------------------------------------------------------------------------------------
// Onboarding

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct OnboardRequest {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    business_name: String,
    /// The shop's address in Warung: lowercase letters, digits and dashes, 3 to 63 characters.
    #[validate(regex(path = *SLUG, message = "must be 3 to 63 lowercase letters, digits or dashes, not starting or ending with a dash"))]
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")]
    slug: String,
    locale: Locale,
    /// ISO 3166-1 alpha-2, e.g. `ID`.
    #[validate(regex(path = *COUNTRY, message = "must be a two-letter ISO 3166-1 code, e.g. ID"))]
    #[schema(pattern = r"^[A-Z]{2}$")]
    country: String,
    #[validate(nested)]
    owner: OwnerRequest,
    consents: Vec<Choice>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct OwnerRequest {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    full_name: String,
    #[validate(
        email(message = "must be an email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    #[schema(max_length = 254)]
    email: String,
    #[validate(regex(path = *users::PHONE, message = "must be a phone number, e.g. +628123456789"))]
    #[schema(pattern = r"^\+?[0-9][0-9 \-]{5,24}$")]
    phone: Option<String>,
    #[validate(custom(function = "password_rules"))]
    #[schema(min_length = 12, max_length = 128)]
    password: String,
}

static SLUG: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$").unwrap_or_else(|_| unreachable!())
});
static COUNTRY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^[A-Z]{2}$").unwrap_or_else(|_| unreachable!())
});

#[derive(Debug, Serialize, ToSchema)]
struct OnboardResponse {
    tenant: OnboardedTenant,
    owner: OnboardedOwner,
}

#[derive(Debug, Serialize, ToSchema)]
struct OnboardedTenant {
    id: TenantId,
    slug: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct OnboardedOwner {
    id: UserId,
}

/// Signs a merchant up: the tenant, its owner (sealed PII), the owner's consents with the
/// current policy version, and an email-verification mail. Nothing is written unless all of it
/// is valid.
#[utoipa::path(post, path = "/api/v1/onboarding/merchants", tag = "onboarding",
    request_body = OnboardRequest,
    responses(
        (status = 201, body = OnboardResponse),
        (status = 409, description = "The slug is taken", body = Problem),
        (status = 422, description = "Invalid fields, or a required purpose not granted", body = Problem),
        (status = 429, body = Problem),
        (status = 503, body = Problem),
    ))]
async fn onboard(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Json(body): Json<OnboardRequest>,
) -> Result<(StatusCode, Json<OnboardResponse>)> {
    let auth = Service::from_state(&state)?;
    platform::error::validate(&body)?;
    consent::validate(&state.db, Audience::Merchant, &body.consents).await?;
    throttle::public_write(&state.redis, &state.config.rate_limit, client).await?;
    let hash = auth
        .hasher()
        .hash(&SecretString::from(body.owner.password.clone()))
        .await?;

    let tenant = TenantId::new();
    let owner = UserId::new();
    let actor = Actor::User { id: owner };
    let now = state.clock.now();
    let mut tx = state.db.tenant(tenant).begin().await?;
    tenants::create(
        &mut tx,
        actor,
        &tenants::NewTenant {
            slug: &body.slug,
            business_name: &body.business_name,
            locale: body.locale.as_str(),
            country: &body.country,
        },
    )
    .await?;
    users::privacy::requests::init_settings(&mut tx, &body.country).await?;
    staff::create(
        &state.pii,
        &mut tx,
        actor,
        NewStaff {
            id: owner,
            full_name: Some(&body.owner.full_name),
            email: &body.owner.email,
            phone: body.owner.phone.as_deref(),
            role: Role::Owner,
            locale: body.locale,
            status: Status::Active,
        },
    )
    .await?;
    credentials::set_password(&mut tx, actor, owner, &hash).await?;
    consent::record(
        &state.db,
        &state.pii,
        &mut tx,
        actor,
        Audience::Merchant,
        owner.into(),
        &body.consents,
        Method::Signup,
        &Evidence::of(client, &headers),
    )
    .await?;
    let ttl =
        TimeDelta::hours(i64::try_from(auth.config().email_verification_ttl_hours).unwrap_or(48));
    credentials::issue_token(
        &state.pii,
        &mut tx,
        actor,
        owner,
        Purpose::EmailVerification,
        now,
        ttl,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant.id = %tenant, user.id = %owner, "merchant onboarded");
    Ok((
        StatusCode::CREATED,
        Json(OnboardResponse {
            tenant: OnboardedTenant {
                id: tenant,
                slug: body.slug,
            },
            owner: OnboardedOwner { id: owner },
        }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Sign-in and sessions

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    /// The shop's slug.
    tenant: String,
    email: String,
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
}

fn invalid_credentials() -> Error {
    Error::Unauthorized
}

/// Signs in with the shop's slug, email and password. Failed attempts are limited per account
/// and per client address (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Wrong shop, email or password (never says which)", body = Problem),
        (status = 429, body = Problem),
        (status = 503, body = Problem),
    ))]
async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(body): Json<LoginRequest>,
) -> Result<Json<TokenResponse>> {
    let auth = Service::from_state(&state)?;
    let password = SecretString::from(body.password);
    // A failure is reserved before the attempt and given back when the attempt does not fail:
    // forty concurrent guesses get as many checks as the limit allows, not forty.
    let client_key = state.redis.key(format_args!("login-failures:ip:{client}"));
    let per_client =
        throttle::reserve(&state.redis, &client_key, auth.login_failures_per_ip()).await?;
    let signed_in = sign_in(&state, &auth, client, &body.tenant, &body.email, &password).await;
    if !matches!(signed_in, Err(Error::Unauthorized)) {
        per_client.release(&state.redis).await;
    }
    signed_in.map(Json)
}

/// Checks the password under the account's limit, which is keyed on the account and the client
/// address together: a stranger's guesses lock the stranger out, not the person everywhere.
async fn sign_in(
    state: &AppState,
    auth: &Service,
    client: ClientAddr,
    slug: &str,
    email: &str,
    password: &SecretString,
) -> Result<TokenResponse> {
    let Some((tenant, true)) = tenants::by_slug(&state.db, slug.trim()).await? else {
        auth.hasher().verify(password, None).await?;
        return Err(invalid_credentials());
    };
    let mut tx = state.db.tenant(tenant).begin().await?;
    let index = state
        .pii
        .blind_index(&mut tx, platform::pii::IndexKind::Email, email)
        .await?;
    let account_key = state.redis.key(format_args!(
        "login-failures:account:{}:{}:{client}",
        tenant.0.simple(),
        hex::encode(&index.0)
    ));
    let per_account = throttle::reserve(
        &state.redis,
        &account_key,
        auth.login_failures_per_account(),
    )
    .await?;
    let checked = check_password(state, auth, tx, email, password).await;
    let user = match checked {
        Ok(Some(user)) => user,
        Ok(None) => {
            metrics::counter!("auth_login_failures_total").increment(1);
            return Err(invalid_credentials());
        }
        Err(err) => {
            per_account.release(&state.redis).await;
            return Err(err);
        }
    };
    throttle::clear(&state.redis, &account_key).await;

    let now = state.clock.now();
    let ttl = TimeDelta::days(i64::try_from(auth.config().session_ttl_days).unwrap_or(30));
    let mut tx = state.db.tenant(tenant).begin().await?;
    let (session, refresh) = sessions::create(&mut tx, user.id, now, ttl).await?;
    tx.commit().await?;
    metrics::counter!("auth_logins_total").increment(1);
    Ok(TokenResponse {
        access_token: auth.access_token(tenant, &user, session, now)?,
        refresh_token: refresh.text.expose_secret().to_owned(),
        token_type: "Bearer",
        expires_in: auth.access_ttl_secs(),
    })
}

/// The active account `email` names, if `password` is its password. Unknown accounts cost the
/// same hashing time as known ones.
async fn check_password(
    state: &AppState,
    auth: &Service,
    mut tx: platform::db::TenantTx,
    email: &str,
    password: &SecretString,
) -> Result<Option<StaffUser>> {
    let user = staff::find_by_email(&state.pii, &mut tx, email)
        .await?
        .filter(|u| u.status == Status::Active);
    let hash = match &user {
        Some(user) => credentials::password_hash(&mut tx, user.id).await?,
        None => None,
    };
    tx.rollback().await?;
    let matches = auth.hasher().verify(password, hash.as_deref()).await?;
    Ok(user.filter(|_| matches))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// Trades a refresh token for a new access token and a new refresh token. Each refresh token
/// works once: presenting a used one again ends the whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Unknown, used or expired refresh token", body = Problem),
        (status = 503, body = Problem),
    ))]
async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>> {
    let auth = Service::from_state(&state)?;
    let (tenant, hash) = tokens::parse(&body.refresh_token).ok_or(Error::Unauthorized)?;
    let now = state.clock.now();
    let mut tx = state.db.tenant(tenant).begin().await?;
    match sessions::refresh(&mut tx, &hash, now).await? {
        Refreshed::Invalid => {
            tx.rollback().await?;
            Err(Error::Unauthorized)
        }
        Refreshed::Reused { session } => {
            tracing::warn!(tenant.id = %tenant, session.id = %session, "refresh token reused; session revoked");
            metrics::counter!("auth_refresh_reuse_total").increment(1);
            auth.forget_after_commit(&mut tx, vec![session]);
            tx.commit().await?;
            Err(Error::Unauthorized)
        }
        Refreshed::Rotated {
            session,
            user,
            token,
        } => {
            let open = tenants::is_active(&mut tx).await?;
            let Some(account) = staff::get(&mut tx, user)
                .await?
                .filter(|u| u.status == Status::Active && open)
            else {
                tx.rollback().await?;
                return Err(Error::Unauthorized);
            };
            tx.commit().await?;
            Ok(Json(TokenResponse {
                access_token: auth.access_token(tenant, &account, session, now)?,
                refresh_token: token.text.expose_secret().to_owned(),
                token_type: "Bearer",
                expires_in: auth.access_ttl_secs(),
            }))
        }
    }
}

/// Ends the caller's session: its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, body = Problem)))]
async fn logout(caller: Principal, State(state): State<AppState>) -> Result<StatusCode> {
    let auth = Service::from_state(&state)?;
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    sessions::revoke(&mut tx, caller.actor(), caller.session, "logout").await?;
    auth.forget_after_commit(&mut tx, vec![caller.session]);
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Mailed tokens

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    token: String,
}

fn invalid_token() -> Error {
    Error::bad_request("invalid_token", "The link is invalid, used or expired.")
}

/// Confirms an email address with the token from the verification mail.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth",
    request_body = TokenRequest,
    responses((status = 204, description = "Verified"), (status = 400, body = Problem)))]
async fn verify_email(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> Result<StatusCode> {
    let (tenant, hash) = tokens::parse(&body.token).ok_or_else(invalid_token)?;
    let now = state.clock.now();
    let mut tx = state.db.tenant(tenant).begin().await?;
    let user = credentials::use_token(&mut tx, &hash, Purpose::EmailVerification, now)
        .await?
        .ok_or_else(invalid_token)?;
    staff::mark_email_verified(&mut tx, Actor::User { id: user }, user).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    tenant: String,
    email: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct Accepted {
    status: &'static str,
}

/// Mails a password-reset link if the account exists. Answers the same either way.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/request", tag = "auth",
    request_body = ResetRequest,
    responses((status = 202, body = Accepted), (status = 429, body = Problem), (status = 503, body = Problem)))]
async fn request_password_reset(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(body): Json<ResetRequest>,
) -> Result<(StatusCode, Json<Accepted>)> {
    let auth = Service::from_state(&state)?;
    throttle::public_write(&state.redis, &state.config.rate_limit, client).await?;
    // An unknown address must not answer sooner than a known one (sealing and storing a token).
    crate::intake::in_public_answer_time(issue_reset(&state, &auth, &body)).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { status: "accepted" })))
}

async fn issue_reset(state: &AppState, auth: &Service, body: &ResetRequest) -> Result<()> {
    if let Some((tenant, true)) = tenants::by_slug(&state.db, body.tenant.trim()).await? {
        let mut tx = state.db.tenant(tenant).begin().await?;
        if let Some(user) = staff::find_by_email(&state.pii, &mut tx, &body.email)
            .await?
            .filter(|u| u.status == Status::Active)
        {
            let ttl = TimeDelta::minutes(
                i64::try_from(auth.config().password_reset_ttl_minutes).unwrap_or(30),
            );
            let actor = Actor::User { id: user.id };
            credentials::issue_token(
                &state.pii,
                &mut tx,
                actor,
                user.id,
                Purpose::PasswordReset,
                state.clock.now(),
                ttl,
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetConfirm {
    token: String,
    #[validate(custom(function = "password_rules"))]
    #[schema(min_length = 12, max_length = 128)]
    password: String,
}

/// Sets a new password with the token from the reset mail. Every session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth",
    request_body = ResetConfirm,
    responses((status = 204, description = "Password changed"), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn confirm_password_reset(
    State(state): State<AppState>,
    Json(body): Json<ResetConfirm>,
) -> Result<StatusCode> {
    let auth = Service::from_state(&state)?;
    platform::error::validate(&body)?;
    let (tenant, hash) = tokens::parse(&body.token).ok_or_else(invalid_token)?;
    let password_hash = auth
        .hasher()
        .hash(&SecretString::from(body.password))
        .await?;
    let now = state.clock.now();
    let mut tx = state.db.tenant(tenant).begin().await?;
    let user = credentials::use_token(&mut tx, &hash, Purpose::PasswordReset, now)
        .await?
        .ok_or_else(invalid_token)?;
    credentials::void_tokens(&mut tx, user, Purpose::PasswordReset, now).await?;
    credentials::set_password(&mut tx, Actor::User { id: user }, user, &password_hash).await?;
    let revoked =
        sessions::revoke_user(&mut tx, Actor::User { id: user }, user, "password_reset").await?;
    auth.forget_after_commit(&mut tx, revoked);
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct AcceptInvitation {
    token: String,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    full_name: String,
    #[validate(custom(function = "password_rules"))]
    #[schema(min_length = 12, max_length = 128)]
    password: String,
    consents: Vec<Choice>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AcceptedInvitation {
    user_id: UserId,
}

/// Accepts a staff invitation: sets the name and password, records consent; then sign in.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "staff",
    request_body = AcceptInvitation,
    responses((status = 201, body = AcceptedInvitation), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn accept_invitation(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Json(body): Json<AcceptInvitation>,
) -> Result<(StatusCode, Json<AcceptedInvitation>)> {
    let auth = Service::from_state(&state)?;
    platform::error::validate(&body)?;
    consent::validate(&state.db, Audience::Merchant, &body.consents).await?;
    let (tenant, hash) = tokens::parse(&body.token).ok_or_else(invalid_token)?;
    let password_hash = auth
        .hasher()
        .hash(&SecretString::from(body.password))
        .await?;
    let mut tx = state.db.tenant(tenant).begin().await?;
    let user = invitations::accept(
        &state.pii,
        &mut tx,
        &hash,
        &body.full_name,
        state.clock.now(),
    )
    .await?;
    let actor = Actor::User { id: user.id };
    credentials::set_password(&mut tx, actor, user.id, &password_hash).await?;
    consent::record(
        &state.db,
        &state.pii,
        &mut tx,
        actor,
        Audience::Merchant,
        user.id.into(),
        &body.consents,
        Method::Invitation,
        &Evidence::of(client, &headers),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(AcceptedInvitation { user_id: user.id }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Who am I, and the keys

#[derive(Debug, Serialize, ToSchema)]
struct Me {
    user: Profile,
    tenant: tenants::Tenant,
    session_id: SessionId,
    consents: Vec<ConsentState>,
    /// The privacy policy changed in a major version since these choices were made: ask the
    /// user to confirm or change them (`PUT /api/v1/me/consents`).
    reconsent_required: bool,
}

/// The signed-in user, their tenant and their consents (opening their data is audited).
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem), (status = 503, body = Problem)))]
async fn me(caller: Principal, State(state): State<AppState>) -> Result<Json<Me>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let user = staff::profile(
        &state.pii,
        &mut tx,
        caller.actor(),
        "self_service",
        caller.user,
    )
    .await?;
    let tenant = tenants::current(&mut tx).await?;
    let consents =
        consent::overview(&state.db, &mut tx, Audience::Merchant, caller.user.into()).await?;
    tx.commit().await?;
    Ok(Json(Me {
        user,
        tenant,
        session_id: caller.session,
        consents: consents.consents,
        reconsent_required: consents.reconsent_required,
    }))
}

/// The public keys that verify Warung access tokens (JWKS, RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set", content_type = "application/json")))]
async fn jwks(State(state): State<AppState>) -> Result<impl IntoResponse> {
    let auth = Service::from_state(&state)?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(auth.keys().jwks()),
    ))
}
