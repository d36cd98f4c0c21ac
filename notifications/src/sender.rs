//! The sender: claims due mail from the delivery log, opens what it needs at send time (the
//! recipient's address, a sealed token, the order of a receipt), renders and sends it over
//! SMTP, and records the outcome.
//!
//! - A claim is a lease (`notifications.lease_secs`): a sender that dies mid-send leaves its
//!   mail to be taken over when the lease runs out, so nothing is lost.
//! - Each attempt counts; the attempt number is the claim's token, so a sender whose lease was
//!   taken over cannot record an outcome over the new owner's.
//! - The lease is renewed just before each send, so only the holder of a live claim sends.
//!   What remains is at-least-once's own window: a crash or a database failure between the
//!   server's "accepted" and the `sent` mark sends that mail once more after the lease. Every
//!   mail has a stable `Message-ID` (the delivery id), so such a repeat is recognisable.
//! - Transient failures (connection, timeout, 4xx, a dependency down) retry with exponential
//!   backoff and jitter up to `notifications.max_attempts`, then the mail is dead with its
//!   reason; a 5xx is dead at once. Reasons are categories and codes, never a server's text
//!   (it quotes addresses).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lettre::{
    AsyncTransport, Message,
    message::{Mailbox, MultiPart},
};
use platform::{
    AppState, WorkerContext,
    config::NotificationsConfig,
    db::SystemDb,
    id::TenantId,
    pii::{Opened, PiiError, Sealed},
};
use serde_json::{Value, json};
use tokio::sync::Notify;
use users::contact::{self, Reach};

use crate::{
    domain::{self, Failure, Recipient, Template},
    render::Templates,
    repo::{self, DeliveryId, Outcome, Row},
};

/// How often the queue gauges are refreshed.
const GAUGES_EVERY: Duration = Duration::from_secs(10);

/// What the sender needs; one per worker.
#[derive(Debug)]
pub struct Sender {
    state: AppState,
    system: SystemDb,
    templates: Templates,
    settings: NotificationsConfig,
}

/// Why a mail could not be prepared.
enum Stop {
    /// Not sending, and it never will be (the subject was erased, withdrew consent, ...).
    Cancel(&'static str),
    /// Not sending yet: it waits (a quota, an unverified shop), without using an attempt.
    Hold(&'static str),
    Fail(Failure, String),
}

impl From<platform::Error> for Stop {
    fn from(err: platform::Error) -> Self {
        match err {
            platform::Error::Unavailable(dependency) => {
                Self::Fail(Failure::Transient, dependency.unavailable_code().into())
            }
            platform::Error::NotFound => Self::Cancel("not_found"),
            other => {
                tracing::warn!(error = %other, "preparing a mail failed");
                Self::Fail(Failure::Transient, "internal".into())
            }
        }
    }
}

impl From<PiiError> for Stop {
    fn from(err: PiiError) -> Self {
        platform::Error::from(err).into()
    }
}

impl From<sqlx::Error> for Stop {
    fn from(err: sqlx::Error) -> Self {
        platform::Error::from(err).into()
    }
}

impl Sender {
    pub fn new(state: AppState, system: SystemDb) -> anyhow::Result<Self> {
        Ok(Self {
            settings: state.config.notifications.clone(),
            templates: Templates::new()?,
            state,
            system,
        })
    }

    /// Sends due mail until shutdown; woken by the intake, and every `poll_ms` in any case.
    pub async fn run(self, ctx: WorkerContext, wake: Arc<Notify>) -> anyhow::Result<()> {
        let lease = Duration::from_secs(self.settings.lease_secs);
        let poll = Duration::from_millis(self.settings.poll_ms);
        let mut gauges_at = tokio::time::Instant::now();
        loop {
            let claimed = repo::claim(&self.system, self.settings.batch_size, lease, None).await?;
            // A few at a time: one slow server round trip does not hold up the batch, and a
            // backlog drains at several mails per round trip.
            let attempts: Vec<_> = claimed.iter().map(|row| self.process(row)).collect();
            let results: Vec<anyhow::Result<Option<Outcome>>> = futures::stream::iter(attempts)
                .buffer_unordered(self.settings.concurrency)
                .collect()
                .await;
            for result in results {
                result?;
            }
            if gauges_at.elapsed() >= GAUGES_EVERY || claimed.is_empty() {
                gauges_at = tokio::time::Instant::now();
                let (waiting, oldest) = repo::backlog(&self.system).await?;
                metrics::gauge!("notification_queue_depth").set(waiting as f64);
                metrics::gauge!("notification_queue_age_seconds").set(oldest);
            }
            if (claimed.len() as i64) < self.settings.batch_size {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => return Ok(()),
                    () = wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                }
            } else if ctx.shutdown.is_cancelled() {
                return Ok(());
            }
        }
    }

    /// Sends one waiting mail now, due or not (used by [`crate::deliver_now`]). Returns whether
    /// the SMTP server accepted it.
    pub async fn send_now(&self, tenant: TenantId, id: DeliveryId) -> anyhow::Result<bool> {
        let lease = Duration::from_secs(self.settings.lease_secs);
        let mut sent = false;
        for row in repo::claim(&self.system, 1, lease, Some((tenant, id))).await? {
            sent = matches!(self.process(&row).await?, Some(Outcome::Sent));
        }
        Ok(sent)
    }

    /// One attempt at one claimed mail, and its outcome recorded. `None`: the claim was lost
    /// before sending (nothing sent, nothing recorded).
    async fn process(&self, row: &Row) -> anyhow::Result<Option<Outcome>> {
        let template = Template::parse(&row.template);
        let label = template.map_or("unknown", Template::name);
        let outcome = match template {
            None => Outcome::Dead {
                reason: "unknown_template".into(),
            },
            Some(template) => match self.prepare(row, template).await {
                Ok(message) => {
                    // Renewed just before sending: a claim that was taken over or cancelled
                    // since the batch was claimed sends nothing.
                    let lease = Duration::from_secs(self.settings.lease_secs);
                    if !repo::renew(&self.system, row, lease).await? {
                        tracing::info!(delivery = %row.id, "claim lost before sending; left to its new holder");
                        return Ok(None);
                    }
                    match self.state.mailer.transport().send(message).await {
                        Ok(_) => Outcome::Sent,
                        Err(err) => self.after(row, smtp_failure(&err)),
                    }
                }
                Err(Stop::Cancel(reason)) => Outcome::Cancelled {
                    reason: reason.into(),
                },
                Err(Stop::Hold(reason)) => Outcome::Held {
                    after: Duration::from_secs(self.settings.held_recheck_secs),
                    reason: reason.into(),
                },
                Err(Stop::Fail(failure, reason)) => self.after(row, (failure, reason)),
            },
        };
        // A direct send (the erasure's farewell) is retried by its caller, whose own clock
        // bounds it: an outage must not use up its attempts (#18 item 8).
        let outcome = match outcome {
            Outcome::Retry { reason, .. } if row.event_type == "direct" => Outcome::Held {
                after: Duration::ZERO,
                reason,
            },
            other => other,
        };
        match &outcome {
            Outcome::Sent => {
                metrics::counter!("notification_email_sent_total", "template" => label)
                    .increment(1);
            }
            Outcome::Retry { .. } => {
                metrics::counter!("notification_email_failures_total", "template" => label)
                    .increment(1);
                metrics::counter!("notification_email_retries_total", "template" => label)
                    .increment(1);
            }
            Outcome::Dead { reason } => {
                metrics::counter!("notification_email_failures_total", "template" => label)
                    .increment(1);
                metrics::counter!("notification_email_dead_total", "template" => label)
                    .increment(1);
                tracing::warn!(delivery = %row.id, template = label, reason = reason.as_str(), "mail is dead");
            }
            Outcome::Held { reason, .. } => {
                metrics::counter!("notification_held_total", "template" => label, "reason" => reason.clone())
                    .increment(1);
                tracing::info!(delivery = %row.id, template = label, reason = reason.as_str(), "mail held");
            }
            Outcome::Cancelled { reason } => {
                metrics::counter!("notification_email_cancelled_total", "template" => label)
                    .increment(1);
                tracing::info!(delivery = %row.id, template = label, reason = reason.as_str(), "mail cancelled");
            }
        }
        if !repo::settle(&self.system, row, &outcome).await? {
            tracing::warn!(delivery = %row.id, "lease lost before the outcome was recorded");
        }
        Ok(Some(outcome))
    }

    fn after(&self, row: &Row, (failure, reason): (Failure, String)) -> Outcome {
        let base = Duration::from_millis(self.settings.backoff_base_ms);
        let max = Duration::from_millis(self.settings.backoff_max_ms);
        match domain::after_failure(
            failure,
            row.attempts,
            self.settings.max_attempts,
            base,
            max,
            rand::random::<f64>(),
        ) {
            Some(after) => Outcome::Retry { after, reason },
            None => Outcome::Dead { reason },
        }
    }

    /// Opens what the mail needs in one tenant transaction (its `pii.accessed` records commit
    /// with it) and builds the message.
    async fn prepare(&self, row: &Row, template: Template) -> Result<Message, Stop> {
        let tenant = TenantId(row.tenant_id);
        let recipient = Recipient::parse(&row.recipient_kind, row.recipient_id)
            .ok_or(Stop::Fail(Failure::Permanent, "bad_recipient".into()))?;
        let mut tx = self.state.db.tenant(tenant).begin().await?;
        if let Some(purpose) = template.requires_consent()
            && !users::consent::granted(&mut tx, recipient.id, purpose).await?
        {
            return Err(Stop::Cancel("consent_withdrawn"));
        }
        if !template.answers_data_rights()
            && users::privacy::requests::restricted(&mut tx, recipient.id).await?
        {
            return Err(Stop::Cancel("subject_restricted"));
        }
        self.hold_back(&mut tx, row, template, recipient).await?;
        let shop = tenants::current(&mut tx).await?;
        let mut contact =
            match contact::reach(&self.state.pii, &mut tx, recipient.kind, recipient.id).await? {
                Reach::Mail(contact) => contact,
                Reach::Erased => return Err(Stop::Cancel("subject_erased")),
                Reach::NoAddress => return Err(Stop::Cancel("no_address")),
                Reach::Unknown => return Err(Stop::Cancel("recipient_unknown")),
            };
        // Mail that must reach the address the person had before a recent change (the notice
        // of the change; the identity check of a request that copies or ends their data).
        if let Some(change) = row
            .context
            .get("address_change_id")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
        {
            match contact::previous_address(&self.state.pii, &mut tx, change).await? {
                Some(previous) => contact.email = previous,
                None => return Err(Stop::Cancel("previous_address_gone")),
            }
        }
        let locale = contact.locale.as_str();
        let mut vars = json!({
            "business_name": one_line(&shop.business_name),
            "recipient_name": contact.full_name.as_ref().map(|n| one_line(n.expose())),
        });
        let context = &row.context;
        if let Some(link) = template.token_link() {
            // A link that no longer works is not worth a mail (e.g. an event read long after it
            // was published, by a consumer group new to the topic).
            if context
                .get("expires_at")
                .and_then(Value::as_str)
                .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                .is_some_and(|at| at.with_timezone(&Utc) <= self.state.clock.now())
            {
                return Err(Stop::Cancel("link_expired"));
            }
            let sealed = context
                .get("token_sealed")
                .and_then(Value::as_str)
                .and_then(Sealed::from_base64)
                .ok_or(Stop::Fail(Failure::Permanent, "bad_payload".into()))?;
            let token = match self
                .state
                .pii
                .open(&mut tx, recipient.id, link.sealed_field, &sealed)
                .await
            {
                Ok(Opened::Value(token)) => token,
                Ok(Opened::Erased) => return Err(Stop::Cancel("subject_erased")),
                Err(PiiError::Corrupt { .. }) => {
                    return Err(Stop::Fail(Failure::Permanent, "bad_payload".into()));
                }
                Err(err) => return Err(err.into()),
            };
            let mut url = self
                .state
                .config
                .http
                .public_base_url
                .join("portal/")
                .map_err(|_| Stop::Fail(Failure::Permanent, "bad_base_url".into()))?;
            url.set_fragment(Some(&format!("/{}?token={}", link.page, token.expose())));
            vars["link"] = url.to_string().into();
        }
        for key in ["expires_at", "due_at", "scheduled_for"] {
            if let Some(at) = context.get(key).and_then(Value::as_str) {
                vars[key] = moment(at).into();
            }
        }
        for key in ["request_type", "changes", "headline", "message", "purpose"] {
            if let Some(value) = context.get(key) {
                vars[key] = value.clone();
            }
        }
        if template == Template::ConsentChanged {
            // Coalesced (one per period): it tells the choices as they stand now.
            let choices = users::consent::current(&mut tx, recipient.id).await?;
            vars["changes"] = choices
                .iter()
                .map(|c| {
                    json!({
                        "purpose": c.purpose,
                        "granted": c.granted,
                        "awaiting_confirmation": c.awaiting_confirmation,
                    })
                })
                .collect::<Vec<_>>()
                .into();
        }
        if template == Template::OrderReceipt {
            vars["order"] = self.receipt(&mut tx, context, locale).await?;
        }
        if template == Template::Marketing {
            // Saying no must be as easy as the mail: the portal's page for the person's requests.
            let mut page = self
                .state
                .config
                .http
                .public_base_url
                .join("portal/")
                .map_err(|_| Stop::Fail(Failure::Permanent, "bad_base_url".into()))?;
            page.set_fragment(Some("/privacy"));
            vars["privacy_link"] = page.to_string().into();
        }
        tx.commit().await.map_err(platform::Error::from)?;
        let mail = self
            .templates
            .render(template, locale, &vars)
            .map_err(|err| {
                tracing::warn!(template = template.name(), error = %err, "template failed");
                Stop::Fail(Failure::Permanent, "template".into())
            })?;
        let from: Mailbox = self
            .state
            .config
            .smtp
            .from
            .parse()
            .map_err(|_| Stop::Fail(Failure::Permanent, "bad_from".into()))?;
        let domain = from.email.domain().to_owned();
        let sender = Mailbox::new(
            Some(format!("{} via Warung", shop.business_name)),
            from.email,
        );
        let to = Mailbox::new(
            contact.full_name.map(|n| n.into_inner()),
            contact
                .email
                .expose()
                .parse()
                .map_err(|_| Stop::Fail(Failure::Permanent, "bad_address".into()))?,
        );
        Message::builder()
            .from(sender)
            .to(to)
            .subject(mail.subject)
            .message_id(Some(format!("<{}@{domain}>", row.id)))
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|_| Stop::Fail(Failure::Permanent, "bad_message".into()))
    }

    /// Holds back what may not go yet: mail to customers of a shop whose owner never verified
    /// their address, and mail over the shop's hourly or the person's daily quota (held longer
    /// than `held_max_hours`, it is cancelled). Mail owed to the person for a data right they
    /// used is never held. Several senders check at once, so a quota can be passed by at most
    /// the mails in flight.
    async fn hold_back(
        &self,
        tx: &mut platform::db::TenantTx,
        row: &Row,
        template: Template,
        recipient: Recipient,
    ) -> Result<(), Stop> {
        if template.owed_to_the_person() {
            return Ok(());
        }
        let hold = |reason| {
            let held_for = self.state.clock.now() - row.created_at;
            if held_for > chrono::TimeDelta::hours(self.settings.held_max_hours) {
                Stop::Cancel("held_too_long")
            } else {
                Stop::Hold(reason)
            }
        };
        if template.needs_verified_shop(recipient.kind) && !users::staff::owner_verified(tx).await?
        {
            return Err(hold("owner_unverified"));
        }
        let (shop, person) = repo::sent_lately(&self.system, row).await?;
        let over = |limit: i64, count: i64| limit > 0 && count >= limit;
        if over(self.settings.recipient_per_day, person) {
            return Err(hold("recipient_quota"));
        }
        if over(self.settings.tenant_per_hour, shop) {
            return Err(hold("tenant_quota"));
        }
        Ok(())
    }

    /// The receipt, read through `orders`' API at send time and printed by it: the mail
    /// carries the very receipt the till prints (80 mm text, and its HTML), in the
    /// recipient's language.
    async fn receipt(
        &self,
        tx: &mut platform::db::TenantTx,
        context: &Value,
        locale: &str,
    ) -> Result<Value, Stop> {
        let id = context
            .get("order_id")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .ok_or(Stop::Fail(Failure::Permanent, "bad_payload".into()))?;
        let order = orders::repo::get(tx, orders::repo::OrderId(id)).await?;
        let shop = tenants::profile(&self.state, tx).await?;
        let printed = orders::receipts::Receipt::of(&order, &shop, locale, None);
        let simple = order.summary.id.0.simple().to_string();
        Ok(json!({
            // Orders paid before receipt numbers existed show the end of their id.
            "number": order
                .summary
                .receipt_no
                .clone()
                .unwrap_or_else(|| simple[simple.len() - 10..].to_uppercase()),
            "text": printed.text(48),
            "html": printed.html_fragment()?,
        }))
    }
}

/// A name as one line: a line break in a shop's or a person's name must not forge lines in
/// the plain-text part.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// An RFC 3339 time as mail shows it (UTC, to the minute); anything else as it came.
fn moment(at: &str) -> String {
    DateTime::parse_from_rfc3339(at).map_or_else(
        |_| at.to_owned(),
        |t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        },
    )
}

/// What an SMTP error means, without its text.
fn smtp_failure(err: &lettre::transport::smtp::Error) -> (Failure, String) {
    let code = err.status().map(|c| c.to_string()).unwrap_or_default();
    if err.is_permanent() {
        (Failure::Permanent, format!("smtp_permanent {code}"))
    } else if err.is_transient() {
        (Failure::Transient, format!("smtp_transient {code}"))
    } else if err.is_timeout() {
        (Failure::Transient, "smtp_timeout".into())
    } else {
        (Failure::Transient, "smtp_connection".into())
    }
}
