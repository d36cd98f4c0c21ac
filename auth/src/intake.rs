//! The intake of data-subject requests (`POST /api/v1/privacy/requests`), three ways in:
//!
//! - **the person**, without an account: their shop's slug and their email. The answer is the
//!   same whether or not the address belongs to a customer (202), so the endpoint cannot be
//!   used to learn who shops where; rate-limited per client address;
//! - **a signed-in staff member about themselves** (`/me`): no subject in the body;
//! - **staff recording a customer's request** (`privacy.file`): the customer by id.
//!
//! Every way, nothing happens until the person confirms by the link mailed to their own
//! address (`users::privacy::requests`).

use axum::{extract::State, http::StatusCode};
use platform::routes;
use platform::{
    AppState, Authorized, Error, Principal, Result,
    http::{ClientAddr, Json},
    pii::{Subject, SubjectId, SubjectKind},
    throttle,
};
use serde::{Deserialize, Serialize};
use users::{
    FilePrivacyRequests, FileWeightyPrivacyRequests,
    privacy::{
        RequestType,
        requests::{self, Channel, Filing, Request},
    },
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

type Problem = platform::error::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(file))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Customer,
    Staff,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SubjectBody {
    kind: Kind,
    id: uuid::Uuid,
}

/// Without a token: `tenant` (the shop's slug) and `email`. With a token: nothing more (a
/// request about oneself) or `subject` (a customer's request, recorded by staff).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewRequest {
    #[serde(rename = "type")]
    kind: RequestType,
    tenant: Option<String>,
    email: Option<String>,
    subject: Option<SubjectBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum Filed {
    /// Staff see the request they filed.
    Request(Request),
    /// The public answer, the same whether or not the address is known.
    Accepted { status: &'static str },
}

/// Files a data-subject request. The subject gets a mail with a link to confirm it; nothing is
/// disclosed or changed before that.
#[utoipa::path(post, path = "/api/v1/privacy/requests", tag = "privacy",
    request_body = NewRequest,
    security((), ("bearer" = []), ("bearer" = ["privacy.file"]), ("bearer" = ["privacy.file_weighty"])),
    responses(
        (status = 201, body = Request, description = "Filed by staff"),
        (status = 202, description = "Public: a mail is on its way if the address belongs to a customer of the shop"),
        (status = 401, body = Problem),
        (status = 403, description = "A customer's access, export or erasure needs `privacy.file_weighty` (owner, manager)", body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "`last_owner`: the last owner cannot be erased", body = Problem),
        (status = 422, description = "`subject_unreachable`: no address to confirm with", body = Problem),
        (status = 429, body = Problem),
        (status = 503, body = Problem),
    ))]
async fn file(
    caller: Option<Principal>,
    State(state): State<AppState>,
    client: ClientAddr,
    Json(body): Json<NewRequest>,
) -> Result<(StatusCode, Json<Filed>)> {
    let Some(caller) = caller else {
        return file_public(&state, client, body).await;
    };
    if body.tenant.is_some() || body.email.is_some() {
        return Err(Error::invalid(
            "tenant",
            "signed in: name the customer as `subject`, or nothing for yourself",
        ));
    }
    let (subject, channel) = match body.subject {
        None => (
            Subject {
                id: caller.user.into(),
                kind: SubjectKind::Staff,
            },
            Channel::Own,
        ),
        Some(SubjectBody {
            kind: Kind::Customer,
            id,
        }) => {
            // A copy of all of a customer's data, or its end, is for an owner or a manager to
            // set in motion: a cashier could otherwise point it at a mailbox of their own.
            if body.kind.exports() || body.kind == RequestType::Erasure {
                Authorized::<FileWeightyPrivacyRequests>::check(caller)?;
            } else {
                Authorized::<FilePrivacyRequests>::check(caller)?;
            }
            (
                Subject {
                    id: SubjectId(id),
                    kind: SubjectKind::Customer,
                },
                Channel::Staff,
            )
        }
        Some(SubjectBody {
            kind: Kind::Staff, ..
        }) => {
            return Err(Error::invalid(
                "subject",
                "staff file their own requests (omit `subject`)",
            ));
        }
    };
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let filing = Filing {
        kind: body.kind,
        subject,
        channel,
        filed_by: Some(caller.user),
    };
    let request = requests::file(&state, &mut tx, filing).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(Filed::Request(request))))
}

/// How long a public answer about an address takes, whatever happened: a known address
/// (sealing a token, writing the request and its events) must not answer measurably later
/// than an unknown one. Used by the data-subject intake and the password-reset request.
pub(crate) const PUBLIC_ANSWER_TIME: std::time::Duration = std::time::Duration::from_millis(400);

/// Runs `work` and answers no sooner than [`PUBLIC_ANSWER_TIME`] after it started.
pub(crate) async fn in_public_answer_time<F: Future>(work: F) -> F::Output {
    let started = tokio::time::Instant::now();
    let answer = work.await;
    tokio::time::sleep_until(started + PUBLIC_ANSWER_TIME).await;
    answer
}

async fn file_public(
    state: &AppState,
    client: ClientAddr,
    body: NewRequest,
) -> Result<(StatusCode, Json<Filed>)> {
    in_public_answer_time(file_public_now(state, client, body)).await
}

async fn file_public_now(
    state: &AppState,
    client: ClientAddr,
    body: NewRequest,
) -> Result<(StatusCode, Json<Filed>)> {
    let mut missing = Vec::new();
    if body.tenant.as_deref().is_none_or(|t| t.trim().is_empty()) {
        missing.push(platform::error::FieldError::new(
            "tenant",
            "the shop's slug is required",
        ));
    }
    if body.email.as_deref().is_none_or(|e| !e.contains('@')) {
        missing.push(platform::error::FieldError::new(
            "email",
            "an email address is required",
        ));
    }
    if body.subject.is_some() {
        missing.push(platform::error::FieldError::new(
            "subject",
            "sign in to file for someone else",
        ));
    }
    if !missing.is_empty() {
        return Err(Error::Validation(missing));
    }
    throttle::public_write(&state.redis, &state.config.rate_limit, client).await?;
    let accepted = (
        StatusCode::ACCEPTED,
        Json(Filed::Accepted { status: "accepted" }),
    );
    let (Some(slug), Some(email)) = (body.tenant.as_deref(), body.email.as_deref()) else {
        return Ok(accepted);
    };
    let Some((tenant, true)) = tenants::by_slug(&state.db, slug.trim()).await? else {
        return Ok(accepted);
    };
    let mut tx = state.db.tenant(tenant).begin().await?;
    let Some(customer) = requests::customer_by_email(state, &mut tx, email).await? else {
        return Ok(accepted);
    };
    let filing = Filing {
        kind: body.kind,
        subject: Subject {
            id: customer.into(),
            kind: SubjectKind::Customer,
        },
        channel: Channel::Public,
        filed_by: None,
    };
    match requests::file(state, &mut tx, filing).await {
        Ok(_) => tx.commit().await?,
        // Saying "too many" would confirm the address is a customer's: answer as always.
        Err(Error::TooManyRequests { .. }) => {}
        Err(err) => return Err(err),
    }
    Ok(accepted)
}
