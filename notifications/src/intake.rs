//! The intake: a consumer group on `warung.events.v1` that turns the events which send mail
//! into rows of the delivery log, then wakes the sender.
//!
//! - Idempotent on (event id, template): an event delivered twice queues one mail.
//! - The offset is committed only after the row is stored; a crash re-delivers, which the
//!   idempotency absorbs.
//! - A receipt is queued only for a customer who consented to receipt mail (checked again at
//!   send time).
//! - Consent-change confirmations are coalesced: at most one per person per
//!   `notifications.consent_change_every_secs`.
//! - An event that should send mail but cannot (no recipient in it, an unknown tenant) goes to
//!   `notification_dead_letters` with the reason. Nothing is dropped silently.

use std::sync::Arc;

use platform::{
    AppState, WorkerContext, clients::Kafka, db::SystemDb, events::EVENTS_TOPIC, id::TenantId,
};
use rdkafka::{
    Message,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::BorrowedMessage,
};
use serde_json::Value;
use tokio::sync::Notify;

use crate::{domain, repo};

pub const GROUP: &str = "warung-notifications";

pub async fn run(ctx: WorkerContext, state: AppState, wake: Arc<Notify>) -> anyhow::Result<()> {
    let consumer: StreamConsumer = Kafka::client_config(&state.config.kafka)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[EVENTS_TOPIC])?;
    loop {
        let message = tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            message = consumer.recv() => message?,
        };
        if take(&state, &ctx.system, &message).await? {
            wake.notify_one();
        }
        consumer.commit_message(&message, CommitMode::Async)?;
        metrics::counter!("notification_events_total").increment(1);
    }
}

/// Queues the mail `message` asks for, if any. Returns whether a new mail was queued. A
/// database outage is an error (the worker restarts and the event is read again).
async fn take(
    state: &AppState,
    system: &SystemDb,
    message: &BorrowedMessage<'_>,
) -> anyhow::Result<bool> {
    let dead = |reason: String| async move {
        repo::dead_letter(
            system,
            message.topic(),
            message.partition(),
            message.offset(),
            message.key(),
            &reason,
            message.payload(),
        )
        .await
        .map(|()| false)
    };
    let envelope = match parse(message.payload()) {
        Ok(envelope) => envelope,
        Err(reason) => return Ok(dead(reason).await?),
    };
    let plan = match domain::plan(&envelope.event_type, &envelope.payload) {
        Ok(Some(plan)) => plan,
        Ok(None) => return Ok(false),
        Err(reason) => return Ok(dead(reason).await?),
    };
    if let Some(purpose) = plan.template.requires_consent() {
        let mut tx = state.db.tenant(envelope.tenant).begin().await?;
        let granted = users::consent::granted(&mut tx, plan.recipient.id, purpose).await?;
        tx.rollback().await?;
        if !granted {
            metrics::counter!("notification_skipped_total", "reason" => "no_consent").increment(1);
            return Ok(false);
        }
    }
    // Consent-change confirmations: at most one per person per period; one already waiting
    // will show every change, since it shows the choices as they stand when it is sent.
    let mut due = None;
    let every = state.config.notifications.consent_change_every_secs;
    if plan.template == domain::Template::ConsentChanged && every > 0 {
        let every = std::time::Duration::from_secs(every.unsigned_abs());
        match repo::coalesced_slot(system, envelope.tenant, &plan, every).await? {
            None => {
                metrics::counter!("notification_coalesced_total").increment(1);
                return Ok(false);
            }
            Some(at) => due = Some(at),
        }
    }
    match repo::queue(
        system,
        envelope.tenant,
        envelope.event_id,
        &envelope.event_type,
        &plan,
        &envelope.payload,
        due,
    )
    .await
    {
        Ok(queued) => Ok(queued.is_some()),
        Err(sqlx::Error::Database(err)) if err.constraint().is_some() => Ok(dead(format!(
            "not storable: {}",
            err.constraint().unwrap_or_default()
        ))
        .await?),
        Err(err) => Err(err.into()),
    }
}

struct Envelope {
    tenant: TenantId,
    event_id: uuid::Uuid,
    event_type: String,
    payload: Value,
}

fn parse(payload: Option<&[u8]>) -> Result<Envelope, String> {
    let mut envelope: Value = serde_json::from_slice(payload.ok_or("empty message")?)
        .map_err(|e| format!("not JSON: {e}"))?;
    let id = |name: &str| -> Result<uuid::Uuid, String> {
        envelope
            .get(name)
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .ok_or(format!("missing or bad `{name}`"))
    };
    let tenant = TenantId(id("tenant_id")?);
    let event_id = id("event_id")?;
    let event_type = envelope
        .get("type")
        .and_then(Value::as_str)
        .ok_or("missing `type`")?
        .to_owned();
    Ok(Envelope {
        tenant,
        event_id,
        event_type,
        payload: envelope
            .get_mut("payload")
            .map(Value::take)
            .unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_without_ids_are_refused_with_a_reason() {
        assert_eq!(parse(None).err().unwrap(), "empty message");
        assert!(parse(Some(b"{")).err().unwrap().starts_with("not JSON"));
        let err = parse(Some(br#"{"event_id": "x", "type": "a"}"#))
            .err()
            .unwrap();
        assert_eq!(err, "missing or bad `tenant_id`");
        let ok = parse(Some(
            br#"{"tenant_id": "0190a0b0-0000-7000-8000-000000000001", "event_id": "0190a0b0-0000-7000-8000-000000000002",
                 "type": "order.paid", "payload": {"order_id": "1"}}"#,
        ))
        .unwrap();
        assert_eq!(ok.event_type, "order.paid");
        assert_eq!(ok.payload["order_id"], "1");
    }
}
