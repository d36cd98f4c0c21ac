//! Customers: a merchant's data subjects. Name, email, phone and address are sealed under the
//! customer's own key, so erasing one customer is shredding one key; email and phone are found
//! through blind indexes. Every read that opens a customer's data is audited (`pii.accessed`)
//! with its purpose. `orders` creates guest customers and checks ids through this API.

use chrono::{DateTime, Utc};
use platform::{
    Error, Result,
    db::{Db, TenantTx},
    error::OnConstraint,
    events::{self, Actor, AuditRecord, DomainEvent, Resource},
    pii::{IndexKind, Opened, Pii, PiiCipher, Sealed, Subject, SubjectId, SubjectKind},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::{
    consent::{self, Audience, Choice, ConsentState, Evidence, Method},
    staff::Locale,
};

platform::id_type!(
    /// A customer of one tenant (a data subject with their own key).
    CustomerId
);

impl From<CustomerId> for SubjectId {
    fn from(id: CustomerId) -> Self {
        Self(id.0)
    }
}

fn subject(id: CustomerId) -> Subject {
    Subject {
        id: id.into(),
        kind: SubjectKind::Customer,
    }
}

/// A new customer's data, in plaintext only for the time it takes to seal it.
pub struct NewCustomer<'a> {
    pub full_name: &'a str,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub address: Option<&'a str>,
    pub locale: Locale,
    /// Made at the till for one order.
    pub guest: bool,
}

/// Personal data never prints: `Debug` shows which fields are present, not their values.
impl std::fmt::Debug for NewCustomer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCustomer")
            .field("full_name", &"[redacted]")
            .field("email", &self.email.map(|_| "[redacted]"))
            .field("phone", &self.phone.map(|_| "[redacted]"))
            .field("address", &self.address.map(|_| "[redacted]"))
            .field("locale", &self.locale)
            .field("guest", &self.guest)
            .finish()
    }
}

/// A customer's details as a client sends them (also used for a guest at checkout).
#[derive(Clone, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerDetails {
    #[serde(deserialize_with = "platform::http::json::trimmed")]
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub full_name: String,
    #[validate(
        email(message = "must be an email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    #[schema(max_length = 254)]
    pub email: Option<String>,
    #[validate(regex(path = *crate::PHONE, message = "must be a phone number, e.g. +628123456789"))]
    #[schema(pattern = r"^\+?[0-9][0-9 \-]{5,24}$")]
    pub phone: Option<String>,
    #[serde(default, deserialize_with = "platform::http::json::trimmed_option")]
    #[validate(length(min = 1, max = 500, message = "must be 1 to 500 characters"))]
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub address: Option<String>,
    /// Language of mail to this customer (default `id`).
    pub locale: Option<Locale>,
    /// One choice per purpose of `GET /api/v1/privacy/purposes?audience=customer`; `orders`
    /// is required.
    pub consents: Vec<Choice>,
}

impl std::fmt::Debug for CustomerDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_new(false).fmt(f)
    }
}

impl CustomerDetails {
    pub fn as_new(&self, guest: bool) -> NewCustomer<'_> {
        NewCustomer {
            full_name: &self.full_name,
            email: self.email.as_deref(),
            phone: self.phone.as_deref(),
            address: self.address.as_deref(),
            locale: self.locale.unwrap_or(Locale::Id),
            guest,
        }
    }
}

fn email_taken() -> Error {
    Error::conflict("email_taken", "A customer with this email exists.")
}

async fn seal_optional(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    subject: Subject,
    column: &'static str,
    value: Option<&str>,
) -> Result<Option<Sealed>> {
    match value {
        Some(value) => Ok(Some(pii.seal(tx, subject, column, value).await?)),
        None => Ok(None),
    }
}

async fn index_optional(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    kind: IndexKind,
    value: Option<&str>,
) -> Result<Option<Vec<u8>>> {
    match value {
        Some(value) => Ok(Some(pii.blind_index(tx, kind, value).await?.0)),
        None => Ok(None),
    }
}

/// Creates a customer (`customer.created`) and records their consent choices, which the
/// caller has checked with [`consent::validate`] for the customer audience. An email already
/// used by a customer of this tenant is a 409 `email_taken`.
#[expect(
    clippy::too_many_arguments,
    reason = "a person, their consent and its evidence"
)]
#[tracing::instrument(skip_all)]
pub async fn create(
    db: &Db,
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    new: &NewCustomer<'_>,
    choices: &[Choice],
    method: Method,
    evidence: &Evidence,
) -> Result<CustomerId> {
    let id = CustomerId::new();
    let subject = subject(id);
    let full_name = pii
        .seal(tx, subject, "customers.full_name", new.full_name)
        .await?;
    let email = seal_optional(pii, tx, subject, "customers.email", new.email).await?;
    let email_index = index_optional(pii, tx, IndexKind::Email, new.email).await?;
    let phone = seal_optional(pii, tx, subject, "customers.phone", new.phone).await?;
    let phone_index = index_optional(pii, tx, IndexKind::Phone, new.phone).await?;
    let address = seal_optional(pii, tx, subject, "customers.address", new.address).await?;
    let tenant = tx.tenant();
    sqlx::query!(
        "insert into customers (tenant_id, id, full_name, email, email_index, phone, phone_index, address,
                                locale, guest, created_at, updated_at, last_active_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), now(), now())",
        tenant.0,
        id.0,
        full_name as Sealed,
        email as Option<Sealed>,
        email_index,
        phone as Option<Sealed>,
        phone_index,
        address as Option<Sealed>,
        new.locale.as_str(),
        new.guest,
    )
    .execute(&mut **tx)
    .await
    .on_constraint("customers_email_key", email_taken)?;
    let mut fields = vec!["full_name", "locale", "guest"];
    for (field, present) in [
        ("email", new.email.is_some()),
        ("phone", new.phone.is_some()),
        ("address", new.address.is_some()),
    ] {
        if present {
            fields.push(field);
        }
    }
    let record = AuditRecord::new(actor, "customer.created", Resource::new("customer", id))
        .fields(&fields)
        .details(serde_json::json!({ "guest": new.guest }));
    events::emit_audit(tx, &record).await?;
    consent::record(
        db,
        pii,
        tx,
        actor,
        Audience::Customer,
        id.into(),
        choices,
        method,
        evidence,
    )
    .await?;
    Ok(id)
}

/// Whether `id` is a customer of the transaction's tenant, not erased.
pub async fn exists(tx: &mut TenantTx, id: CustomerId) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        "select exists (select 1 from customers where id = $1 and erased_at is null)",
        id.0
    )
    .fetch_one(&mut **tx)
    .await?
    .unwrap_or(false))
}

/// Names the customer on a new order: 404 when not this tenant's (or erased), 409
/// `subject_restricted` when they asked for their processing to be restricted. Otherwise
/// they are active again: a deletion the retention job scheduled for their inactivity is
/// called off.
///
/// Locks in the erasure job's order (the person's erasure requests, then the person), so the
/// two never deadlock, and an erasure that commits first leaves an erased person here (404).
pub async fn use_for_order(tx: &mut TenantTx, actor: Actor, id: CustomerId) -> Result<()> {
    let pending = sqlx::query!(
        "select id, channel, status from privacy_requests
         where subject_id = $1 and type = 'erasure' and status in ('scheduled', 'erasing')
         order by id for update",
        id.0
    )
    .fetch_all(&mut **tx)
    .await?;
    if pending
        .iter()
        .any(|r| r.status == "erasing" || r.channel != "retention")
    {
        return Err(erasing_conflict());
    }
    check_orderable(tx, id).await?;
    sqlx::query!(
        "update customers set last_active_at = now() where id = $1",
        id.0
    )
    .execute(&mut **tx)
    .await?;
    for request in pending
        .iter()
        .filter(|r| r.channel == "retention" && r.status == "scheduled")
    {
        crate::privacy::requests::close(
            tx,
            actor,
            crate::privacy::requests::RequestId(request.id),
            crate::privacy::Status::Rejected,
            "subject_returned",
            chrono::Utc::now(),
        )
        .await?;
    }
    Ok(())
}

async fn check_orderable(tx: &mut TenantTx, id: CustomerId) -> Result<()> {
    let restricted = sqlx::query_scalar!(
        "select restricted_at is not null from customers where id = $1 and erased_at is null
         for update",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .flatten();
    match restricted {
        None => Err(Error::NotFound),
        Some(true) => Err(Error::conflict(
            "subject_restricted",
            "This customer asked for the processing of their data to be restricted; ring the order up without naming them.",
        )),
        Some(false) => Ok(()),
    }
}

/// A customer's data, opened for display, with their current consent choices.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Customer {
    pub id: CustomerId,
    /// `null` once the customer's key is shredded (erased).
    #[schema(value_type = Option<String>)]
    pub full_name: Option<Pii<String>>,
    #[schema(value_type = Option<String>)]
    pub email: Option<Pii<String>>,
    #[schema(value_type = Option<String>)]
    pub phone: Option<Pii<String>>,
    #[schema(value_type = Option<String>)]
    pub address: Option<Pii<String>>,
    pub locale: Locale,
    pub guest: bool,
    pub consents: Vec<ConsentState>,
    pub created_at: DateTime<Utc>,
}

struct Row {
    id: uuid::Uuid,
    full_name: Vec<u8>,
    email: Option<Vec<u8>>,
    phone: Option<Vec<u8>>,
    address: Option<Vec<u8>>,
    locale: String,
    guest: bool,
    created_at: DateTime<Utc>,
}

const COLUMNS: [&str; 4] = [
    "customers.full_name",
    "customers.email",
    "customers.phone",
    "customers.address",
];

/// Opens rows in one batch (one key fetch per subject at most) and records one `pii.accessed`
/// for all the customers shown, with `purpose`.
async fn open(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    purpose: &'static str,
    rows: Vec<Row>,
) -> Result<Vec<Customer>> {
    let sealed: Vec<(Subject, [Option<Sealed>; 4])> = rows
        .iter()
        .map(|r| {
            (
                subject(CustomerId(r.id)),
                [
                    Some(Sealed(r.full_name.clone())),
                    r.email.clone().map(Sealed),
                    r.phone.clone().map(Sealed),
                    r.address.clone().map(Sealed),
                ],
            )
        })
        .collect();
    let items: Vec<(SubjectId, &'static str, &Sealed)> = sealed
        .iter()
        .flat_map(|(subject, fields)| {
            COLUMNS
                .iter()
                .zip(fields)
                .filter_map(move |(column, field)| field.as_ref().map(|f| (subject.id, *column, f)))
        })
        .collect();
    let mut opened = pii.open_many(tx, &items).await?.into_iter();
    let mut customers = Vec::with_capacity(rows.len());
    for (row, (_, fields)) in rows.into_iter().zip(&sealed) {
        let mut values = fields.iter().map(|field| {
            field.as_ref()?;
            match opened.next() {
                Some(Opened::Value(value)) => Some(value),
                _ => None,
            }
        });
        let mut next = || values.next().flatten();
        let (full_name, email, phone, address) = (next(), next(), next(), next());
        let id = CustomerId(row.id);
        let consents = consent::current(tx, id.into()).await?;
        customers.push(Customer {
            id,
            full_name,
            email,
            phone,
            address,
            locale: Locale::parse(&row.locale).unwrap_or(Locale::Id),
            guest: row.guest,
            consents,
            created_at: row.created_at,
        });
    }
    if let Some(record) =
        AuditRecord::opened(actor, "customer", customers.iter().map(|c| c.id), purpose)
    {
        events::emit_audit(tx, &record).await?;
    }
    Ok(customers)
}

/// One customer, opened (`pii.accessed` with `purpose`); 404 when not this tenant's.
pub async fn profile(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    purpose: &'static str,
    id: CustomerId,
) -> Result<Customer> {
    let rows = sqlx::query_as!(
        Row,
        "select id, full_name, email, phone, address, locale, guest, created_at
         from customers where id = $1 and erased_at is null",
        id.0
    )
    .fetch_all(&mut **tx)
    .await?;
    open(pii, tx, actor, purpose, rows)
        .await?
        .pop()
        .ok_or(Error::NotFound)
}

/// How to find customers: by exact email or phone (through the blind indexes), or all of them
/// page by page.
#[derive(Debug, Default)]
pub struct Lookup<'a> {
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub after: Option<CustomerId>,
    pub limit: i64,
}

/// A page of customers in id order, opened (one `pii.accessed` for the page, purpose
/// `customer_service`).
pub async fn find(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    lookup: &Lookup<'_>,
) -> Result<Vec<Customer>> {
    let email_index = index_optional(pii, tx, IndexKind::Email, lookup.email).await?;
    let phone_index = index_optional(pii, tx, IndexKind::Phone, lookup.phone).await?;
    let rows = sqlx::query_as!(
        Row,
        "select id, full_name, email, phone, address, locale, guest, created_at
         from customers
         where ($1::bytea is null or email_index = $1)
           and ($2::bytea is null or phone_index = $2)
           and ($3::uuid is null or id > $3)
           and erased_at is null
         order by id limit $4",
        email_index,
        phone_index,
        lookup.after.map(|a| a.0),
        lookup.limit,
    )
    .fetch_all(&mut **tx)
    .await?;
    open(pii, tx, actor, "customer_service", rows).await
}

/// A change to a customer's data; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct Change<'a> {
    pub full_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub address: Option<&'a str>,
    pub locale: Option<Locale>,
}

/// Applies `change` (`customer.updated` naming the fields, never their values); 404 when not
/// this tenant's, 409 `email_taken` when another customer has the email.
#[tracing::instrument(skip_all, fields(customer.id = %id))]
pub async fn update(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    id: CustomerId,
    change: &Change<'_>,
) -> Result<()> {
    // Requests, then the person (the erasure job's lock order): an edit waits for an erasure
    // under way, then refuses; it never writes fresh blind indexes onto an erased row.
    let erasing = sqlx::query_scalar!(
        "select id from privacy_requests where subject_id = $1 and type = 'erasure'
           and status in ('scheduled', 'erasing') for share",
        id.0
    )
    .fetch_all(&mut **tx)
    .await?;
    let current = sqlx::query!(
        "select erased_at, email, email_index from customers where id = $1 for update",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(Error::NotFound)?;
    if current.erased_at.is_some() || !erasing.is_empty() {
        return Err(erasing_conflict());
    }
    let subject = subject(id);
    let full_name =
        seal_optional(pii, tx, subject, "customers.full_name", change.full_name).await?;
    let email = seal_optional(pii, tx, subject, "customers.email", change.email).await?;
    let email_index = index_optional(pii, tx, IndexKind::Email, change.email).await?;
    let phone = seal_optional(pii, tx, subject, "customers.phone", change.phone).await?;
    let phone_index = index_optional(pii, tx, IndexKind::Phone, change.phone).await?;
    let address = seal_optional(pii, tx, subject, "customers.address", change.address).await?;
    let mut fields = Vec::new();
    for (field, present) in [
        ("full_name", full_name.is_some()),
        ("email", email.is_some()),
        ("phone", phone.is_some()),
        ("address", address.is_some()),
        ("locale", change.locale.is_some()),
    ] {
        if present {
            fields.push(field);
        }
    }
    if fields.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "update customers set full_name = coalesce($2, full_name), email = coalesce($3, email),
                email_index = coalesce($4, email_index), phone = coalesce($5, phone),
                phone_index = coalesce($6, phone_index), address = coalesce($7, address),
                locale = coalesce($8, locale), updated_at = now()
         where id = $1",
        id.0,
        full_name as Option<Sealed>,
        email as Option<Sealed>,
        email_index,
        phone as Option<Sealed>,
        phone_index,
        address as Option<Sealed>,
        change.locale.map(Locale::as_str),
    )
    .execute(&mut **tx)
    .await
    .on_constraint("customers_email_key", email_taken)?;
    let record =
        AuditRecord::new(actor, "customer.updated", Resource::new("customer", id)).fields(&fields);
    events::emit_audit(tx, &record).await?;
    if let (Some(previous), Some(previous_index), Some(new_index)) =
        (current.email, current.email_index, email_index)
        && previous_index != new_index
    {
        email_changed(tx, actor, id, previous).await?;
    }
    Ok(())
}

/// Whether the customer's confirmed erasure waits or runs: their data is then neither shown
/// nor changed, and nothing is sent to them but what answers their rights. (An erasure the
/// retention job scheduled for an inactive guest is not one: their return cancels it.)
pub async fn erasing(tx: &mut TenantTx, id: CustomerId) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"select exists (select 1 from privacy_requests where subject_id = $1 and type = 'erasure'
                           and (status = 'erasing' or (status = 'scheduled' and channel <> 'retention')))
           as "erasing!""#,
        id.0
    )
    .fetch_one(&mut **tx)
    .await?)
}

pub fn erasing_conflict() -> Error {
    Error::conflict(
        "customer_erasing",
        "This customer's data is being erased or has been erased: it can no longer be shown or changed.",
    )
}

/// Keeps the address a customer had (its ciphertext, never opened) for 30 days, and tells that
/// address of the change (`customer.email_changed`: the mail goes to the old address). A
/// data-subject request that hands over or ends the customer's data is confirmed from it
/// meanwhile ([`address_before_changes`]).
async fn email_changed(
    tx: &mut TenantTx,
    actor: Actor,
    id: CustomerId,
    previous: Vec<u8>,
) -> Result<()> {
    let change = uuid::Uuid::now_v7();
    let by = match actor {
        Actor::User { id } => Some(id.0),
        _ => None,
    };
    sqlx::query!(
        "insert into customer_email_changes (tenant_id, id, customer_id, previous_email, changed_at, changed_by)
         values ($1, $2, $3, $4, now(), $5)",
        tx.tenant().0,
        change,
        id.0,
        previous,
        by,
    )
    .execute(&mut **tx)
    .await?;
    let event = DomainEvent {
        actor,
        event_type: "customer.email_changed",
        payload: serde_json::json!({
            "subject": { "kind": "customer", "id": id },
            "address_change_id": change,
        }),
    };
    events::emit_event(tx, &event).await?;
    Ok(())
}

/// The change whose previous address was the customer's before any change in the last 30
/// days (the oldest such change), if their address changed in that time.
pub async fn address_before_changes(
    tx: &mut TenantTx,
    id: SubjectId,
) -> Result<Option<uuid::Uuid>> {
    Ok(sqlx::query_scalar!(
        "select id from customer_email_changes
         where customer_id = $1 and changed_at > now() - interval '30 days'
         order by changed_at, id limit 1",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?)
}
