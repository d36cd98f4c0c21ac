//! Consent: purposes and policies as data (seeded by migrations, extended by the privacy work),
//! and consent records as append-only evidence. The current state of a subject's purpose is its
//! latest record.

use std::collections::BTreeSet;

use platform::{
    Error, Result,
    db::{Db, TenantTx},
    error::FieldError,
    events::{self, Actor, AuditRecord, Resource},
    pii::{IndexKind, PiiCipher, SubjectId},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod confirmation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    Merchant,
    Customer,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merchant => "merchant",
            Self::Customer => "customer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    #[default]
    Id,
    En,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::En => "en",
        }
    }
}

/// One purpose, in one language, as the portal shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Purpose {
    pub code: String,
    pub title: String,
    pub description: String,
    pub required: bool,
    pub lawful_basis: String,
    pub data_categories: Vec<String>,
    pub retention: String,
}

/// The policy in force for an audience.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = PrivacyPolicy)]
pub struct Policy {
    pub version: String,
    pub lang: Lang,
    pub title: String,
    pub body: String,
    pub published_at: chrono::DateTime<chrono::Utc>,
}

/// The current policy version for `audience` (latest published).
pub async fn current_version(db: &Db, audience: Audience) -> Result<String> {
    sqlx::query_scalar!(
        "select version from privacy_policies where audience = $1 and published_at <= now()
         order by major desc, minor desc limit 1",
        audience.as_str()
    )
    .fetch_optional(db.global())
    .await?
    .ok_or_else(|| {
        Error::Internal(anyhow::anyhow!(
            "no privacy policy published for {}",
            audience.as_str()
        ))
    })
}

pub async fn policy(db: &Db, audience: Audience, lang: Lang) -> Result<Policy> {
    let version = current_version(db, audience).await?;
    let row = sqlx::query!(
        "select t.title, t.body, p.published_at from privacy_policy_texts t
         join privacy_policies p using (audience, version)
         where t.audience = $1 and t.version = $2 and t.lang = $3",
        audience.as_str(),
        version,
        lang.as_str()
    )
    .fetch_optional(db.global())
    .await?
    .ok_or(Error::NotFound)?;
    Ok(Policy {
        version,
        lang,
        title: row.title,
        body: row.body,
        published_at: row.published_at,
    })
}

pub async fn purposes(db: &Db, audience: Audience, lang: Lang) -> Result<Vec<Purpose>> {
    let rows = sqlx::query!(
        "select p.code, t.title, t.description, p.required, p.lawful_basis, p.data_categories, p.retention
         from privacy_purposes p join privacy_purpose_texts t using (audience, code)
         where p.audience = $1 and t.lang = $2 order by p.position",
        audience.as_str(),
        lang.as_str()
    )
    .fetch_all(db.global())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Purpose {
            code: r.code,
            title: r.title,
            description: r.description,
            required: r.required,
            lawful_basis: r.lawful_basis,
            data_categories: r.data_categories,
            retention: r.retention,
        })
        .collect())
}

/// One choice as sent by a client.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConsentChoice)]
pub struct Choice {
    pub purpose: String,
    pub granted: bool,
}

/// How a consent was given (kept as evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Signup,
    Invitation,
    Checkout,
    Settings,
    Api,
    /// A data-subject request (a withdrawal request withdraws every optional purpose).
    Request,
    /// The person confirmed, from their own mailbox, a grant staff recorded for them.
    Confirmation,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Invitation => "invitation",
            Self::Checkout => "checkout",
            Self::Settings => "settings",
            Self::Api => "api",
            Self::Request => "request",
            Self::Confirmation => "confirmation",
        }
    }
}

/// Where a consent came from: kept only as keyed hashes.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

impl Evidence {
    /// The client of a request: its address and user agent.
    pub fn of(client: platform::http::ClientAddr, headers: &axum::http::HeaderMap) -> Self {
        Self {
            client_address: Some(client.to_string()),
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// Checks `choices` against the audience's purposes: every purpose known, none twice, every
/// required one granted. Errors name the field (`consents`) and the purposes.
pub async fn validate(db: &Db, audience: Audience, choices: &[Choice]) -> Result<()> {
    let purposes = purposes(db, audience, Lang::En).await?;
    let mut errors = known_once(&purposes, choices);
    let missing: Vec<&str> = purposes
        .iter()
        .filter(|p| p.required)
        .filter(|p| !choices.iter().any(|c| c.purpose == p.code && c.granted))
        .map(|p| p.code.as_str())
        .collect();
    if !missing.is_empty() {
        errors.push(FieldError::new(
            "consents",
            format!("required purposes not granted: {}", missing.join(", ")),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// Every choice names a known purpose, and none twice: an error per offending choice.
fn known_once(purposes: &[Purpose], choices: &[Choice]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    // The field names the position, never the submitted text: errors echo nothing back.
    for (i, choice) in choices.iter().enumerate() {
        let field = format!("consents[{i}].purpose");
        if !purposes.iter().any(|p| p.code == choice.purpose) {
            errors.push(FieldError::new(
                field,
                "is not a purpose of the policy in force",
            ));
        } else if !seen.insert(choice.purpose.as_str()) {
            errors.push(FieldError::new(field, "is given twice"));
        }
    }
    errors
}

/// Records `choices` (already [`validate`]d) as evidence, one row and one audit record
/// (`consent.granted` / `consent.withdrawn`) per purpose.
#[allow(clippy::too_many_arguments, reason = "evidence has many parts")]
pub async fn record(
    db: &Db,
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    audience: Audience,
    subject: SubjectId,
    choices: &[Choice],
    method: Method,
    evidence: &Evidence,
) -> Result<()> {
    let version = current_version(db, audience).await?;
    let ip_hash = match &evidence.client_address {
        Some(ip) => Some(pii.blind_index(tx, IndexKind::ClientAddress, ip).await?.0),
        None => None,
    };
    let ua_hash = match &evidence.user_agent {
        Some(ua) => Some(pii.blind_index(tx, IndexKind::UserAgent, ua).await?.0),
        None => None,
    };
    let kind = match audience {
        Audience::Merchant => "staff",
        Audience::Customer => "customer",
    };
    // Only a customer's own confirmation makes such a grant count (double opt-in).
    let confirm_first = match (audience, method) {
        (Audience::Customer, m) if m != Method::Confirmation => double_opt_in(db, audience).await?,
        _ => Vec::new(),
    };
    let tenant = tx.tenant();
    for choice in choices {
        let awaiting = choice.granted && confirm_first.contains(&choice.purpose);
        let id = uuid::Uuid::now_v7();
        sqlx::query!(
            "insert into consent_records (tenant_id, id, subject_id, subject_kind, purpose, policy_version,
                                          granted, method, ip_hash, user_agent_hash, recorded_at,
                                          awaiting_confirmation)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11)",
            tenant.0,
            id,
            subject.0,
            kind,
            choice.purpose,
            version,
            choice.granted,
            method.as_str(),
            ip_hash.as_deref(),
            ua_hash.as_deref(),
            awaiting,
        )
        .execute(&mut **tx)
        .await?;
        let action = match (choice.granted, awaiting) {
            (true, true) => "consent.awaiting_confirmation",
            (true, false) => "consent.granted",
            (false, _) => "consent.withdrawn",
        };
        let record = AuditRecord::new(actor, action, Resource::new("consent", id)).details(
            serde_json::json!({
                "subject": subject,
                "purpose": choice.purpose,
                "policy_version": version,
                "method": method.as_str(),
            }),
        );
        events::emit_audit(tx, &record).await?;
        if awaiting {
            confirmation::request(pii, tx, actor, subject, &choice.purpose).await?;
        }
    }
    Ok(())
}

/// The purposes of `audience` whose grant on someone's behalf waits for their confirmation.
async fn double_opt_in(db: &Db, audience: Audience) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!(
        "select code from privacy_purposes where audience = $1 and double_opt_in",
        audience.as_str()
    )
    .fetch_all(db.global())
    .await?)
}

/// The latest choice per purpose of a subject.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentState {
    pub purpose: String,
    /// Whether the purpose is granted, in effect.
    pub granted: bool,
    /// A grant recorded on the person's behalf that waits for them to confirm it from their
    /// mailbox (double opt-in); until then `granted` is `false`.
    pub awaiting_confirmation: bool,
    pub policy_version: String,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

pub async fn current(tx: &mut TenantTx, subject: SubjectId) -> Result<Vec<ConsentState>> {
    let rows = sqlx::query!(
        "select distinct on (purpose) purpose, granted, awaiting_confirmation, policy_version, recorded_at
         from consent_records where subject_id = $1
         order by purpose, recorded_at desc, id desc",
        subject.0
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ConsentState {
            purpose: r.purpose,
            granted: r.granted && !r.awaiting_confirmation,
            awaiting_confirmation: r.awaiting_confirmation,
            policy_version: r.policy_version,
            recorded_at: r.recorded_at,
        })
        .collect())
}

/// Whether `subject`'s latest choice for `purpose` is a grant in effect (no record, or a grant
/// still awaiting the person's confirmation: not granted). Checked at the moment of
/// processing, so a withdrawal takes effect at once.
pub async fn granted(tx: &mut TenantTx, subject: SubjectId, purpose: &str) -> Result<bool> {
    let granted = sqlx::query_scalar!(
        r#"select granted and not awaiting_confirmation as "granted!" from consent_records
         where subject_id = $1 and purpose = $2
         order by recorded_at desc, id desc limit 1"#,
        subject.0,
        purpose
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(granted.unwrap_or(false))
}

/// The customers of the transaction's tenant whose latest choice for `purpose` is a grant, who
/// can be written to (an address, not erased, not restricted): the recipients of mail they
/// asked for, such as a shop's news.
pub async fn customers_granting(tx: &mut TenantTx, purpose: &str) -> Result<Vec<SubjectId>> {
    let ids = sqlx::query_scalar!(
        "select latest.subject_id from (
             select distinct on (subject_id) subject_id, granted, awaiting_confirmation
             from consent_records
             where subject_kind = 'customer' and purpose = $1
             order by subject_id, recorded_at desc, id desc) latest
         join customers c on c.id = latest.subject_id
         where latest.granted and not latest.awaiting_confirmation and c.email is not null and c.erased_at is null
           and c.restricted_at is null
         order by latest.subject_id",
        purpose
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(ids.into_iter().map(SubjectId).collect())
}

/// A subject's consent as they see it: each purpose's latest choice, the policy in force, and
/// whether a new major version of it asks them to choose again.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Overview {
    /// The policy version in force for the subject's audience.
    pub policy_version: String,
    /// `true` when their choices were made under an older major version of the policy: they
    /// are asked to confirm or change them (any `PUT` of their consents records them anew).
    pub reconsent_required: bool,
    pub consents: Vec<ConsentState>,
}

fn major(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

/// Whether choices made under `recorded` versions need confirming under `current`: some
/// choice predates the current major version (minor versions never ask again).
pub fn reconsent_required<'a>(current: &str, recorded: impl IntoIterator<Item = &'a str>) -> bool {
    let Some(current) = major(current) else {
        return false;
    };
    recorded
        .into_iter()
        .any(|version| major(version).is_some_and(|m| m < current))
}

pub async fn overview(
    db: &Db,
    tx: &mut TenantTx,
    audience: Audience,
    subject: SubjectId,
) -> Result<Overview> {
    let policy_version = current_version(db, audience).await?;
    let consents = current(tx, subject).await?;
    Ok(Overview {
        reconsent_required: reconsent_required(
            &policy_version,
            consents.iter().map(|c| c.policy_version.as_str()),
        ),
        policy_version,
        consents,
    })
}

/// Changes a subject's choices. A purpose is recorded (with its audit record) only when its
/// choice differs from the latest one or was made under another policy version, so sending the
/// same choices twice records nothing new. A required purpose cannot be withdrawn here (422
/// naming it): that ends the relationship, which is an erasure request. When anything was
/// recorded, `consent.changed` is emitted (the confirmation mail), with purposes and choices
/// only. Returns what was recorded.
#[allow(clippy::too_many_arguments, reason = "evidence has many parts")]
pub async fn change(
    db: &Db,
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    audience: Audience,
    subject: SubjectId,
    choices: &[Choice],
    method: Method,
    evidence: &Evidence,
) -> Result<Vec<Choice>> {
    let purposes = purposes(db, audience, Lang::En).await?;
    let mut errors = known_once(&purposes, choices);
    for choice in choices.iter().filter(|c| !c.granted) {
        if purposes
            .iter()
            .any(|p| p.required && p.code == choice.purpose)
        {
            errors.push(FieldError::new(
                "consents",
                format!(
                    "`{}` is required: withdrawing it means asking for erasure",
                    choice.purpose
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let version = current_version(db, audience).await?;
    let now = current(tx, subject).await?;
    let changed: Vec<Choice> = choices
        .iter()
        .filter(|choice| {
            !now.iter().any(|state| {
                // A grant awaiting confirmation is already this choice: asking again would
                // only mail the person again.
                state.purpose == choice.purpose
                    && (state.granted || state.awaiting_confirmation) == choice.granted
                    && state.policy_version == version
            })
        })
        .cloned()
        .collect();
    if changed.is_empty() {
        return Ok(changed);
    }
    record(
        db, pii, tx, actor, audience, subject, &changed, method, evidence,
    )
    .await?;
    let kind = match audience {
        Audience::Merchant => "staff",
        Audience::Customer => "customer",
    };
    let event = events::DomainEvent {
        actor,
        event_type: "consent.changed",
        payload: serde_json::json!({
            "subject": { "kind": kind, "id": subject },
            "changes": changed,
            "policy_version": version,
        }),
    };
    events::emit_event(tx, &event).await?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_major_version_asks_again() {
        assert!(!reconsent_required("1.0", ["1.0", "1.0"]));
        assert!(
            !reconsent_required("1.3", ["1.0", "1.2"]),
            "minor versions never ask"
        );
        assert!(
            reconsent_required("2.0", ["2.0", "1.4"]),
            "one old choice is enough"
        );
        assert!(
            !reconsent_required("2.0", []),
            "nothing chosen, nothing to confirm"
        );
        assert!(!reconsent_required("garbage", ["1.0"]));
    }
}

/// A choice to look up as of a moment: whose, in which shop, for which purpose, and when.
#[derive(Debug, Clone, Copy)]
pub struct ChoiceAt<'a> {
    pub tenant: uuid::Uuid,
    pub subject: uuid::Uuid,
    pub purpose: &'a str,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// For each item, whether the subject's latest choice for the purpose recorded at or before
/// `at` was a grant (`false` when they had made none): evidence, for the compliance verifier,
/// that a mail needing consent had it when it left. One query for all items.
pub async fn granted_at(
    conn: &mut sqlx::PgConnection,
    items: &[ChoiceAt<'_>],
) -> Result<Vec<bool>, sqlx::Error> {
    let tenants: Vec<uuid::Uuid> = items.iter().map(|i| i.tenant).collect();
    let subjects: Vec<uuid::Uuid> = items.iter().map(|i| i.subject).collect();
    let purposes: Vec<&str> = items.iter().map(|i| i.purpose).collect();
    let ats: Vec<chrono::DateTime<chrono::Utc>> = items.iter().map(|i| i.at).collect();
    sqlx::query_scalar(
        "select coalesce((select c.granted and not c.awaiting_confirmation from consent_records c
                          where c.tenant_id = i.t and c.subject_id = i.s and c.purpose = i.p
                            and c.recorded_at <= i.at
                          order by c.recorded_at desc, c.id desc limit 1), false)
         from unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[])
              with ordinality as i(t, s, p, at, n)
         order by i.n",
    )
    .bind(&tenants)
    .bind(&subjects)
    .bind(&purposes)
    .bind(&ats)
    .fetch_all(conn)
    .await
}
