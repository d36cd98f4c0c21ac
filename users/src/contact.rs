//! Reaching a person by mail: the notifications worker opens a recipient's address here at send
//! time, never earlier, and every opening is audited as `pii.accessed` with purpose
//! `notification`. A shredded subject answers [`Reach::Erased`]: their mail is not sent.

use platform::{
    Result,
    db::TenantTx,
    events::{self, Actor, AuditRecord, Resource},
    pii::{Opened, Pii, PiiCipher, Sealed, SubjectId, SubjectKind},
};

use crate::staff::Locale;

/// Who a mail goes to, opened for the time it takes to send it.
#[derive(Debug, Clone)]
pub struct Contact {
    pub email: Pii<String>,
    pub full_name: Option<Pii<String>>,
    /// The person's own language, when they chose one.
    pub locale: Locale,
}

#[derive(Debug, Clone)]
pub enum Reach {
    Mail(Contact),
    /// The person exists but gave no email address (customers may not).
    NoAddress,
    /// The subject's key is shredded: nothing of theirs can be read any more.
    Erased,
    /// No such person in this tenant.
    Unknown,
}

const PURPOSE: &str = "notification";

/// Opens the address and name of a staff member or customer of `tx`'s tenant, with one
/// `pii.accessed` record (actor: the notifications worker) when something was opened.
pub async fn reach(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    kind: SubjectKind,
    id: SubjectId,
) -> Result<Reach> {
    let (resource, row) = match kind {
        SubjectKind::Staff => (
            "staff",
            sqlx::query!(
                r#"select full_name, email as "email?", locale from staff_users where id = $1"#,
                id.0
            )
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| (r.full_name, r.email, r.locale)),
        ),
        SubjectKind::Customer => (
            "customer",
            sqlx::query!(
                r#"select full_name as "full_name?", email, locale from customers where id = $1"#,
                id.0
            )
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| (r.full_name, r.email, r.locale)),
        ),
        SubjectKind::Tenant => return Ok(Reach::Unknown),
    };
    let Some((name, email, locale)) = row else {
        return Ok(Reach::Unknown);
    };
    let Some(email) = email.map(Sealed) else {
        return Ok(Reach::NoAddress);
    };
    let name = name.map(Sealed);
    let email_field = if kind == SubjectKind::Staff {
        "staff_users.email"
    } else {
        "customers.email"
    };
    let name_field = if kind == SubjectKind::Staff {
        "staff_users.full_name"
    } else {
        "customers.full_name"
    };
    let mut items = vec![(id, email_field, &email)];
    if let Some(name) = &name {
        items.push((id, name_field, name));
    }
    let mut opened = pii.open_many(tx, &items).await?.into_iter();
    let Some(Opened::Value(email)) = opened.next() else {
        return Ok(Reach::Erased);
    };
    let full_name = match opened.next() {
        Some(Opened::Value(name)) => Some(name),
        _ => None,
    };
    let record = AuditRecord::new(
        Actor::System {
            name: "notifications",
        },
        "pii.accessed",
        Resource::new(resource, id),
    )
    .fields(if full_name.is_some() {
        &["email", "full_name"][..]
    } else {
        &["email"][..]
    })
    .details(serde_json::json!({ "purpose": PURPOSE }));
    events::emit_audit(tx, &record).await?;
    Ok(Reach::Mail(Contact {
        email,
        full_name,
        locale: Locale::parse(&locale).unwrap_or(Locale::Id),
    }))
}

/// Opens a customer's previous address, kept when it changed
/// (`customers::address_before_changes`), audited like [`reach`]. `None` when the change is no
/// longer kept (past its 30 days) or the key is shredded.
pub async fn previous_address(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    change: uuid::Uuid,
) -> Result<Option<Pii<String>>> {
    let Some(row) = sqlx::query!(
        "select customer_id, previous_email from customer_email_changes where id = $1",
        change
    )
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let customer = SubjectId(row.customer_id);
    let sealed = Sealed(row.previous_email);
    let opened = pii
        .open_many(tx, &[(customer, "customers.email", &sealed)])
        .await?
        .into_iter()
        .next();
    let Some(Opened::Value(email)) = opened else {
        return Ok(None);
    };
    let record = AuditRecord::new(
        Actor::System {
            name: "notifications",
        },
        "pii.accessed",
        Resource::new("customer", customer),
    )
    .fields(&["previous_email"])
    .details(serde_json::json!({ "purpose": PURPOSE }));
    events::emit_audit(tx, &record).await?;
    Ok(Some(email))
}
