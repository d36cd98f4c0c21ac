//! Staff accounts: the public Rust API other modules use (auth signs people in through it) and
//! the role rules of staff management. Every person field is sealed under the staff member's
//! own key; the email is found through its blind index.

use chrono::{DateTime, Utc};
use platform::{
    Error, Result, Role,
    db::TenantTx,
    error::OnConstraint,
    events::{self, Actor, AuditRecord, Resource},
    id::UserId,
    pii::{IndexKind, Opened, PiiCipher, Sealed, Subject, SubjectKind},
};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = StaffStatus)]
pub enum Status {
    /// Invited, has not accepted yet: cannot sign in.
    Invited,
    Active,
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Active => "active",
            Self::Deleted => "deleted",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "invited" => Self::Invited,
            "active" => Self::Active,
            _ => Self::Deleted,
        }
    }
}

/// A staff account without its personal data (what sign-in and permission checks need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffUser {
    pub id: UserId,
    pub role: Role,
    pub status: Status,
    pub locale: Locale,
    pub email_verified_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Locale {
    Id,
    En,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::En => "en",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "id" => Some(Self::Id),
            "en" => Some(Self::En),
            _ => None,
        }
    }
}

/// A new staff member's personal data, in plaintext only for the time it takes to seal it.
#[derive(Debug)]
pub struct NewStaff<'a> {
    pub id: UserId,
    pub full_name: Option<&'a str>,
    pub email: &'a str,
    pub phone: Option<&'a str>,
    pub role: Role,
    pub locale: Locale,
    pub status: Status,
}

pub(crate) fn subject(id: UserId) -> Subject {
    Subject {
        id: id.into(),
        kind: SubjectKind::Staff,
    }
}

struct Row {
    id: uuid::Uuid,
    role: String,
    status: String,
    locale: String,
    email_verified_at: Option<DateTime<Utc>>,
}

impl Row {
    fn into_user(self) -> Result<StaffUser> {
        let role = Role::parse(&self.role)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown role in staff_users")))?;
        Ok(StaffUser {
            id: UserId(self.id),
            role,
            status: Status::parse(&self.status),
            locale: Locale::parse(&self.locale).unwrap_or(Locale::Id),
            email_verified_at: self.email_verified_at,
        })
    }
}

/// Creates a staff account and its audit record (`staff.created`) in `tx`. An email already
/// used by a live account of this tenant is a 409 `email_taken`.
#[tracing::instrument(skip_all, fields(user.id = %new.id))]
pub async fn create(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    new: NewStaff<'_>,
) -> Result<StaffUser> {
    let subject = subject(new.id);
    let email = pii
        .seal(tx, subject, "staff_users.email", new.email)
        .await?;
    let email_index = pii.blind_index(tx, IndexKind::Email, new.email).await?;
    let full_name = match new.full_name {
        Some(name) => Some(pii.seal(tx, subject, "staff_users.full_name", name).await?),
        None => None,
    };
    let phone = match new.phone {
        Some(phone) => Some(pii.seal(tx, subject, "staff_users.phone", phone).await?),
        None => None,
    };
    let tenant = tx.tenant();
    sqlx::query!(
        "insert into staff_users (tenant_id, id, role, status, full_name, email, email_index, phone, locale, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now())",
        tenant.0,
        new.id.0,
        new.role.as_str(),
        new.status.as_str(),
        full_name as Option<Sealed>,
        email as Sealed,
        email_index.0,
        phone as Option<Sealed>,
        new.locale.as_str(),
    )
    .execute(&mut **tx)
    .await
    .on_constraint("staff_users_email_key", || {
        Error::conflict("email_taken", "A staff account with this email already exists.")
    })?;
    let mut fields = vec!["role", "status", "email", "locale"];
    if new.full_name.is_some() {
        fields.push("full_name");
    }
    if new.phone.is_some() {
        fields.push("phone");
    }
    let record = AuditRecord::new(actor, "staff.created", Resource::new("staff", new.id))
        .fields(&fields)
        .details(serde_json::json!({ "role": new.role, "status": new.status }));
    events::emit_audit(tx, &record).await?;
    Ok(StaffUser {
        id: new.id,
        role: new.role,
        status: new.status,
        locale: new.locale,
        email_verified_at: None,
    })
}

/// The live (not deleted) account with this email, for sign-in and password reset.
pub async fn find_by_email(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    email: &str,
) -> Result<Option<StaffUser>> {
    let index = pii.blind_index(tx, IndexKind::Email, email).await?;
    let row = sqlx::query_as!(
        Row,
        "select id, role, status, locale, email_verified_at from staff_users
         where email_index = $1 and status <> 'deleted'",
        index.0
    )
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Row::into_user).transpose()
}

/// One account of the transaction's tenant (deleted ones included; callers check `status`).
pub async fn get(tx: &mut TenantTx, id: UserId) -> Result<Option<StaffUser>> {
    let row = sqlx::query_as!(
        Row,
        "select id, role, status, locale, email_verified_at from staff_users where id = $1",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Row::into_user).transpose()
}

/// A live account, locked for an update in this transaction; 404 when missing or deleted.
pub(crate) async fn get_live_for_update(tx: &mut TenantTx, id: UserId) -> Result<StaffUser> {
    let row = sqlx::query_as!(
        Row,
        "select id, role, status, locale, email_verified_at from staff_users
         where id = $1 and status <> 'deleted' for update",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Row::into_user).transpose()?.ok_or(Error::NotFound)
}

/// Marks the email verified (`staff.email_verified`). Idempotent: a second call changes nothing.
pub async fn mark_email_verified(tx: &mut TenantTx, actor: Actor, id: UserId) -> Result<bool> {
    let updated = sqlx::query!(
        "update staff_users set email_verified_at = now(), updated_at = now()
         where id = $1 and email_verified_at is null and status <> 'deleted'",
        id.0
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated > 0 {
        let record = AuditRecord::new(actor, "staff.email_verified", Resource::new("staff", id))
            .fields(&["email_verified_at"]);
        events::emit_audit(tx, &record).await?;
    }
    Ok(updated > 0)
}

/// A staff member's personal data, opened for display.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Profile {
    pub id: UserId,
    pub role: Role,
    pub status: Status,
    pub locale: Locale,
    #[schema(value_type = Option<String>)]
    pub full_name: Option<platform::pii::Pii<String>>,
    #[schema(value_type = Option<String>)]
    pub email: Option<platform::pii::Pii<String>>,
    #[schema(value_type = Option<String>)]
    pub phone: Option<platform::pii::Pii<String>>,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

struct ProfileRow {
    id: uuid::Uuid,
    role: String,
    status: String,
    locale: String,
    full_name: Option<Vec<u8>>,
    email: Vec<u8>,
    phone: Option<Vec<u8>>,
    email_verified_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

/// Opens staff profiles for display and records one `pii.accessed` for all of them, with
/// `purpose`.
async fn open_profiles(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    purpose: &'static str,
    rows: Vec<ProfileRow>,
) -> Result<Vec<Profile>> {
    let sealed: Vec<(uuid::Uuid, Option<Sealed>, Sealed, Option<Sealed>)> = rows
        .iter()
        .map(|r| {
            (
                r.id,
                r.full_name.clone().map(Sealed),
                Sealed(r.email.clone()),
                r.phone.clone().map(Sealed),
            )
        })
        .collect();
    let mut items = Vec::new();
    for (id, name, email, phone) in &sealed {
        let subject = UserId(*id).into();
        if let Some(name) = name {
            items.push((subject, "staff_users.full_name", name));
        }
        items.push((subject, "staff_users.email", email));
        if let Some(phone) = phone {
            items.push((subject, "staff_users.phone", phone));
        }
    }
    let mut opened = pii.open_many(tx, &items).await?.into_iter();
    let mut take = |present: bool| -> Option<platform::pii::Pii<String>> {
        if !present {
            return None;
        }
        match opened.next() {
            Some(Opened::Value(v)) => Some(v),
            _ => None,
        }
    };
    let mut profiles = Vec::with_capacity(rows.len());
    for (row, (_, name, _, phone)) in rows.into_iter().zip(&sealed) {
        let full_name = take(name.is_some());
        let email = take(true);
        let phone = take(phone.is_some());
        let role = Role::parse(&row.role)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown role in staff_users")))?;
        profiles.push(Profile {
            id: UserId(row.id),
            role,
            status: Status::parse(&row.status),
            locale: Locale::parse(&row.locale).unwrap_or(Locale::Id),
            full_name,
            email,
            phone,
            email_verified: row.email_verified_at.is_some(),
            created_at: row.created_at,
        });
    }
    if let Some(record) =
        AuditRecord::opened(actor, "staff", profiles.iter().map(|p| p.id), purpose)
    {
        events::emit_audit(tx, &record).await?;
    }
    Ok(profiles)
}

/// One profile, opened (`pii.accessed`); 404 when missing or deleted.
pub async fn profile(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    purpose: &'static str,
    id: UserId,
) -> Result<Profile> {
    profile_where(pii, tx, actor, purpose, id, false).await
}

/// One profile, a deleted account's too: its person keeps their rights (an export of their
/// data) until they are erased.
pub(crate) async fn profile_of_subject(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    purpose: &'static str,
    id: UserId,
) -> Result<Profile> {
    profile_where(pii, tx, actor, purpose, id, true).await
}

async fn profile_where(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    purpose: &'static str,
    id: UserId,
    deleted_too: bool,
) -> Result<Profile> {
    let rows = sqlx::query_as!(
        ProfileRow,
        "select id, role, status, locale, full_name, email, phone, email_verified_at, created_at
         from staff_users where id = $1 and ($2 or status <> 'deleted')",
        id.0,
        deleted_too
    )
    .fetch_all(&mut **tx)
    .await?;
    open_profiles(pii, tx, actor, purpose, rows)
        .await?
        .pop()
        .ok_or(Error::NotFound)
}

/// A page of live accounts in id order, after `after`.
pub(crate) async fn list(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    after: Option<UserId>,
    limit: i64,
) -> Result<Vec<Profile>> {
    let rows = sqlx::query_as!(
        ProfileRow,
        "select id, role, status, locale, full_name, email, phone, email_verified_at, created_at
         from staff_users where status <> 'deleted' and ($1::uuid is null or id > $1)
         order by id limit $2",
        after.map(|a| a.0),
        limit
    )
    .fetch_all(&mut **tx)
    .await?;
    open_profiles(pii, tx, actor, "staff_management", rows).await
}

/// Writes changed fields; `None` leaves a field as it is. The caller records the audit entry.
pub(crate) async fn update(
    tx: &mut TenantTx,
    id: UserId,
    role: Role,
    full_name: Option<Sealed>,
    phone: Option<Sealed>,
    locale: Option<Locale>,
) -> Result<()> {
    sqlx::query!(
        "update staff_users set role = $2, full_name = coalesce($3, full_name), phone = coalesce($4, phone),
                locale = coalesce($5, locale), updated_at = now()
         where id = $1",
        id.0,
        role.as_str(),
        full_name as Option<Sealed>,
        phone as Option<Sealed>,
        locale.map(Locale::as_str),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks an account deleted (the caller records the audit entry and ends its sessions).
pub(crate) async fn delete(tx: &mut TenantTx, id: UserId) -> Result<()> {
    sqlx::query!(
        "update staff_users set status = 'deleted', deleted_at = now(), updated_at = now() where id = $1",
        id.0
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Who may set which role: a manager manages cashiers and managers, never owners; only an
/// owner makes or unmakes owners.
pub fn may_assign(actor: Role, from: Option<Role>, to: Role) -> bool {
    match actor {
        Role::Owner => true,
        Role::Manager => to != Role::Owner && from != Some(Role::Owner),
        Role::Cashier | Role::PlatformAdmin => false,
    }
}

/// Whether `user` is an active owner: the role the last-owner rule protects.
pub(crate) fn is_active_owner(user: &StaffUser) -> bool {
    user.role == Role::Owner && user.status == Status::Active
}

/// Number of active owners; the last one can be neither demoted, deleted nor erased. An owner
/// invited but not signed up yet does not count: they may never accept, and a shop must not be
/// left to nobody.
pub(crate) async fn owners(tx: &mut TenantTx) -> Result<i64> {
    // `for update` on the owners: two concurrent demotions cannot both see two owners.
    let ids = sqlx::query_scalar!(
        "select id from staff_users where role = 'owner' and status = 'active' for update"
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(i64::try_from(ids.len()).unwrap_or(i64::MAX))
}

/// Whether an active owner of the transaction's shop has verified their email address: until
/// then the shop writes to no customer (no one has proved they can be reached, so no one
/// answers for what the shop sends).
pub async fn owner_verified(tx: &mut TenantTx) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"select exists (select 1 from staff_users where role = 'owner' and status = 'active'
                           and email_verified_at is not null) as "verified!""#
    )
    .fetch_one(&mut **tx)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managers_never_touch_owners_and_cashiers_assign_nothing() {
        assert!(may_assign(Role::Owner, Some(Role::Cashier), Role::Owner));
        assert!(may_assign(Role::Owner, Some(Role::Owner), Role::Manager));
        assert!(may_assign(Role::Manager, None, Role::Cashier));
        assert!(may_assign(
            Role::Manager,
            Some(Role::Cashier),
            Role::Manager
        ));
        assert!(!may_assign(Role::Manager, None, Role::Owner));
        assert!(!may_assign(Role::Manager, Some(Role::Owner), Role::Cashier));
        assert!(!may_assign(Role::Cashier, None, Role::Cashier));
    }
}
