//! SQL of the delivery log. The intake and the sender work across tenants through the system
//! role; the owner's view, retry and the erasure cancellation go through tenant transactions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::{
    Result,
    db::{SystemDb, TenantTx},
    id::TenantId,
    pii::SubjectId,
};
use serde_json::Value;

use crate::domain::Plan;

platform::id_type!(
    /// One mail in the delivery log.
    DeliveryId
);

/// A delivery as stored.
#[derive(Debug, Clone)]
pub struct Row {
    pub tenant_id: uuid::Uuid,
    pub id: uuid::Uuid,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub template: String,
    pub recipient_kind: String,
    pub recipient_id: uuid::Uuid,
    pub context: Value,
    pub status: String,
    pub attempts: i32,
    pub lease_token: Option<uuid::Uuid>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// `next_attempt_at` of a mail held for a direct send: never due for the background senders
/// (9999-12-31; a date, not `infinity`, so it reads back as one).
pub fn held() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_214_400, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Queues one mail for an event, due at `due` (now when `None`). A second call for the same
/// event and template (a redelivered event) changes nothing and returns `None`. A mail due at
/// [`held`] is not due until sent directly ([`claim`] with `only`), so no background sender
/// races the caller for it.
pub async fn queue(
    system: &SystemDb,
    tenant: TenantId,
    event_id: uuid::Uuid,
    event_type: &str,
    plan: &Plan,
    context: &Value,
    due: Option<DateTime<Utc>>,
) -> Result<Option<DeliveryId>, sqlx::Error> {
    let id = DeliveryId::new();
    let inserted = sqlx::query!(
        "insert into notification_deliveries
             (tenant_id, id, event_id, event_type, template, recipient_kind, recipient_id, context, next_attempt_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()))
         on conflict (tenant_id, event_id, template) do nothing",
        tenant.0,
        id.0,
        event_id,
        event_type,
        plan.template.name(),
        plan.recipient.kind_str(),
        plan.recipient.id.0,
        context,
        due,
    )
    .execute(system.pool())
    .await?
    .rows_affected();
    Ok((inserted == 1).then_some(id))
}

/// Claims up to `batch` due mails (and mails whose sender's lease ran out) for this sender:
/// each becomes `sending` with one more attempt counted, a new lease token and a lease of
/// `lease`. Only the token's holder records the outcome ([`settle`]). With `only`, claims that
/// one mail if it is waiting, due or not (a direct send).
pub async fn claim(
    system: &SystemDb,
    batch: i64,
    lease: Duration,
    only: Option<(TenantId, DeliveryId)>,
) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        "update notification_deliveries d
         set status = 'sending', attempts = d.attempts + 1, lease_token = gen_random_uuid(),
             lease_until = now() + make_interval(secs => $2), updated_at = now()
         from (
             select tenant_id, id from notification_deliveries
             where ((status = 'sending' and lease_until < now())
                    or (status = 'pending' and ($3::uuid is not null or next_attempt_at <= now())))
               and ($3::uuid is null or (tenant_id = $3 and id = $4))
             order by next_attempt_at
             limit $1
             for update skip locked
         ) due
         where d.tenant_id = due.tenant_id and d.id = due.id
         returning d.tenant_id, d.id, d.event_id, d.event_type, d.template, d.recipient_kind, d.recipient_id,
                   d.context, d.status, d.attempts, d.lease_token, d.next_attempt_at, d.last_error, d.created_at,
                   d.sent_at",
        batch,
        lease.as_secs_f64(),
        only.map(|(t, _)| t.0),
        only.map(|(_, d)| d.0),
    )
    .fetch_all(system.pool())
    .await
}

/// The mail queued for `event_id` and `template`: its id, status and last error.
pub async fn find(
    system: &SystemDb,
    tenant: TenantId,
    event_id: uuid::Uuid,
    template: &str,
) -> Result<Option<(DeliveryId, String, Option<String>)>, sqlx::Error> {
    let row = sqlx::query!(
        "select id, status, last_error from notification_deliveries
         where tenant_id = $1 and event_id = $2 and template = $3",
        tenant.0,
        event_id,
        template
    )
    .fetch_optional(system.pool())
    .await?;
    Ok(row.map(|r| (DeliveryId(r.id), r.status, r.last_error)))
}

/// Cancels one waiting mail with `reason` (a direct send given up on).
pub async fn cancel_one(
    system: &SystemDb,
    tenant: TenantId,
    id: DeliveryId,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update notification_deliveries set status = 'cancelled', last_error = $3, updated_at = now(),
             lease_token = null, lease_until = null
         where tenant_id = $1 and id = $2 and status = 'pending'",
        tenant.0,
        id.0,
        reason,
    )
    .execute(system.pool())
    .await?;
    Ok(())
}

/// Extends this sender's lease on `row` just before it sends, so a mail is sent only by the
/// holder of a live claim. `false`: the claim is gone (taken over, cancelled, retried by
/// staff): do not send.
pub async fn renew(system: &SystemDb, row: &Row, lease: Duration) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query!(
        "update notification_deliveries set lease_until = now() + make_interval(secs => $4), updated_at = now()
         where tenant_id = $1 and id = $2 and lease_token = $3 and status = 'sending' and lease_until > now()",
        row.tenant_id,
        row.id,
        row.lease_token,
        lease.as_secs_f64(),
    )
    .execute(system.pool())
    .await?
    .rows_affected();
    Ok(renewed == 1)
}

/// When the next mail of `template` to `plan`'s recipient may go, if at most one may go every
/// `every`: `None` when one is already waiting (it will show the state of things when it is
/// sent, so it covers this event too); otherwise the moment the last one sent is `every` old
/// (or now).
pub async fn coalesced_slot(
    system: &SystemDb,
    tenant: TenantId,
    plan: &Plan,
    every: Duration,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select bool_or(status in ('pending', 'sending')) as "waiting",
                  greatest(now(), max(sent_at) + make_interval(secs => $4)) as "due!"
           from notification_deliveries
           where tenant_id = $1 and recipient_id = $2 and template = $3"#,
        tenant.0,
        plan.recipient.id.0,
        plan.template.name(),
        every.as_secs_f64(),
    )
    .fetch_one(system.pool())
    .await?;
    Ok((!row.waiting.unwrap_or(false)).then_some(row.due))
}

/// Mails sent lately: by the shop in the last hour, and to this mail's recipient in the last
/// 24 hours (what the outbound quotas count).
pub async fn sent_lately(system: &SystemDb, row: &Row) -> Result<(i64, i64), sqlx::Error> {
    let counts = sqlx::query!(
        r#"select
             (select count(*) from notification_deliveries
              where tenant_id = $1 and sent_at > now() - interval '1 hour') as "shop!",
             (select count(*) from notification_deliveries
              where tenant_id = $1 and recipient_id = $2 and sent_at > now() - interval '24 hours') as "person!""#,
        row.tenant_id,
        row.recipient_id,
    )
    .fetch_one(system.pool())
    .await?;
    Ok((counts.shop, counts.person))
}

/// What became of a claimed mail.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent,
    Retry {
        after: Duration,
        reason: String,
    },
    /// Not sent yet and not failed: it waits (an outbound quota, an unverified shop). The
    /// attempt does not count.
    Held {
        after: Duration,
        reason: String,
    },
    Dead {
        reason: String,
    },
    Cancelled {
        reason: String,
    },
}

/// Records the outcome of this sender's claim on a mail. Returns `false` when the claim was no
/// longer this sender's (taken over after its lease ran out, cancelled, retried by staff).
pub async fn settle(system: &SystemDb, row: &Row, outcome: &Outcome) -> Result<bool, sqlx::Error> {
    let (status, delay, reason) = match outcome {
        Outcome::Sent => ("sent", Duration::ZERO, None),
        Outcome::Retry { after, reason } | Outcome::Held { after, reason } => {
            ("pending", *after, Some(reason.as_str()))
        }
        Outcome::Dead { reason } => ("dead", Duration::ZERO, Some(reason.as_str())),
        Outcome::Cancelled { reason } => ("cancelled", Duration::ZERO, Some(reason.as_str())),
    };
    let updated = sqlx::query!(
        "update notification_deliveries
         set status = $4, last_error = $6,
             -- A held direct send stays out of the background queue: only its caller retries it.
             next_attempt_at = case when $7 and event_type = 'direct' then $8::timestamptz
                                    else now() + make_interval(secs => $5) end,
             lease_token = null, lease_until = null, updated_at = now(),
             sent_at = case when $4 = 'sent' then now() else sent_at end,
             attempts = attempts - case when $7 then 1 else 0 end
         where tenant_id = $1 and id = $2 and lease_token = $3 and status = 'sending'",
        row.tenant_id,
        row.id,
        row.lease_token,
        status,
        delay.as_secs_f64(),
        reason,
        matches!(outcome, Outcome::Held { .. }),
        held(),
    )
    .execute(system.pool())
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// How many mails wait, and how long the oldest of them has waited.
pub async fn backlog(system: &SystemDb) -> Result<(i64, f64), sqlx::Error> {
    let row = sqlx::query!(
        r#"select count(*) as "waiting!",
                  coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as "oldest!"
           from notification_deliveries where status in ('pending', 'sending')"#
    )
    .fetch_one(system.pool())
    .await?;
    Ok((row.waiting, row.oldest))
}

/// Filters of the owner's view.
#[derive(Debug, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub template: Option<String>,
    pub recipient: Option<uuid::Uuid>,
    pub event: Option<uuid::Uuid>,
    pub before: Option<uuid::Uuid>,
}

/// The tenant's deliveries, newest first.
pub async fn list(tx: &mut TenantTx, filter: &Filter, limit: i64) -> Result<Vec<Row>> {
    Ok(sqlx::query_as!(
        Row,
        "select tenant_id, id, event_id, event_type, template, recipient_kind, recipient_id, context, status,
                attempts, lease_token, next_attempt_at, last_error, created_at, sent_at
         from notification_deliveries
         where ($1::text is null or status = $1) and ($2::text is null or template = $2)
           and ($3::uuid is null or recipient_id = $3) and ($4::uuid is null or event_id = $4)
           and ($5::uuid is null or id < $5)
         order by id desc limit $6",
        filter.status,
        filter.template,
        filter.recipient,
        filter.event,
        filter.before,
        limit,
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// One mail, locked for a change in this transaction.
pub async fn get_for_update(tx: &mut TenantTx, id: DeliveryId) -> Result<Option<Row>> {
    Ok(sqlx::query_as!(
        Row,
        "select tenant_id, id, event_id, event_type, template, recipient_kind, recipient_id, context, status,
                attempts, lease_token, next_attempt_at, last_error, created_at, sent_at
         from notification_deliveries where id = $1 for update",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?)
}

/// Puts a dead or cancelled mail back in the queue with a fresh set of attempts; returns it
/// as it now is.
pub async fn requeue(tx: &mut TenantTx, id: DeliveryId) -> Result<Row> {
    Ok(sqlx::query_as!(
        Row,
        "update notification_deliveries
         set status = 'pending', attempts = 0, next_attempt_at = now(), last_error = null, lease_token = null,
             lease_until = null, updated_at = now()
         where id = $1
         returning tenant_id, id, event_id, event_type, template, recipient_kind, recipient_id, context, status,
                   attempts, lease_token, next_attempt_at, last_error, created_at, sent_at",
        id.0
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// Cancels every mail still waiting for `subject`, except those of `keep` (templates). A mail
/// being sent right now is left to finish (its sender holds the key's data already). Returns
/// the cancelled ids.
pub async fn cancel_waiting(
    tx: &mut TenantTx,
    subject: SubjectId,
    keep: &[&str],
    reason: &str,
) -> Result<Vec<uuid::Uuid>> {
    let keep: Vec<String> = keep.iter().map(|k| (*k).to_owned()).collect();
    Ok(sqlx::query_scalar!(
        "update notification_deliveries
         set status = 'cancelled', last_error = $3, updated_at = now()
         where recipient_id = $1 and status = 'pending' and not (template = any($2))
         returning id",
        subject.0,
        &keep,
        reason,
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// Stores an event the intake could not use, with the reason.
pub async fn dead_letter(
    system: &SystemDb,
    topic: &str,
    partition: i32,
    offset: i64,
    key: Option<&[u8]>,
    reason: &str,
    payload: Option<&[u8]>,
) -> Result<(), sqlx::Error> {
    metrics::counter!("notification_dead_letters_total").increment(1);
    sqlx::query!(
        "insert into notification_dead_letters (topic, kafka_partition, kafka_offset, message_key, reason, payload)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (topic, kafka_partition, kafka_offset) do nothing",
        topic,
        partition,
        offset,
        key.map(|k| String::from_utf8_lossy(k).into_owned()),
        reason,
        payload,
    )
    .execute(system.pool())
    .await?;
    Ok(())
}
