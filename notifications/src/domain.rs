//! The rules, without I/O: which event sends which mail to whom, how long to wait before the
//! next attempt, how money reads in a receipt.

use std::time::Duration;

use platform::{
    events::sealed,
    pii::{SubjectId, SubjectKind},
};
use serde_json::Value;

/// Every mail Warung sends. The name is the template's file name and the value stored in
/// `notification_deliveries.template`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    EmailVerification,
    PasswordReset,
    StaffInvitation,
    OrderReceipt,
    PrivacyRequestReceived,
    PrivacyIdentityCheck,
    PrivacyExportReady,
    ErasureScheduled,
    ErasureCompleted,
    ConsentChanged,
    AccountDeletionScheduled,
    /// A shop's own news to customers who agreed to marketing mail.
    Marketing,
    /// A customer confirms a grant staff recorded for them (double opt-in).
    ConsentConfirmation,
    /// To a customer's previous address: their address was changed.
    EmailChanged,
    /// The restriction of the person's processing was lifted (GDPR art. 18(3)).
    RestrictionLifted,
}

/// A link carrying a single-use token: where the token is sealed in the event, and the page of
/// the portal that takes it. The token travels in the URL fragment, which browsers never send
/// to a server, so it cannot end up in an access log or a `Referer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLink {
    pub sealed_field: &'static str,
    pub page: &'static str,
}

impl Template {
    pub const ALL: [Self; 15] = [
        Self::EmailVerification,
        Self::PasswordReset,
        Self::StaffInvitation,
        Self::OrderReceipt,
        Self::PrivacyRequestReceived,
        Self::PrivacyIdentityCheck,
        Self::PrivacyExportReady,
        Self::ErasureScheduled,
        Self::ErasureCompleted,
        Self::ConsentChanged,
        Self::AccountDeletionScheduled,
        Self::Marketing,
        Self::ConsentConfirmation,
        Self::EmailChanged,
        Self::RestrictionLifted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
            Self::StaffInvitation => "staff_invitation",
            Self::OrderReceipt => "order_receipt",
            Self::PrivacyRequestReceived => "privacy_request_received",
            Self::PrivacyIdentityCheck => "privacy_identity_check",
            Self::PrivacyExportReady => "privacy_export_ready",
            Self::ErasureScheduled => "erasure_scheduled",
            Self::ErasureCompleted => "erasure_completed",
            Self::ConsentChanged => "consent_changed",
            Self::AccountDeletionScheduled => "account_deletion_scheduled",
            Self::Marketing => "marketing",
            Self::ConsentConfirmation => "consent_confirmation",
            Self::EmailChanged => "email_changed",
            Self::RestrictionLifted => "restriction_lifted",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn token_link(self) -> Option<TokenLink> {
        let link = |sealed_field, page| Some(TokenLink { sealed_field, page });
        match self {
            Self::EmailVerification => link(sealed::EMAIL_VERIFICATION_TOKEN, "verify-email"),
            Self::PasswordReset => link(sealed::PASSWORD_RESET_TOKEN, "reset-password"),
            Self::StaffInvitation => link(sealed::INVITATION_TOKEN, "accept-invitation"),
            Self::PrivacyIdentityCheck => link(sealed::PRIVACY_TOKEN, "privacy/confirm"),
            Self::PrivacyExportReady => link(sealed::PRIVACY_TOKEN, "privacy/download"),
            Self::ConsentConfirmation => link(sealed::CONSENT_TOKEN, "consent/confirm"),
            _ => None,
        }
    }

    /// The consent purpose the recipient must have granted, checked when the mail is planned
    /// and again when it is sent (a withdrawal in between stops it).
    pub fn requires_consent(self) -> Option<&'static str> {
        match self {
            Self::OrderReceipt => Some("receipt_email"),
            Self::Marketing => Some("marketing"),
            _ => None,
        }
    }

    /// Mail about the person's own data rights. It still goes to a person whose processing is
    /// restricted (answering their requests is not processing they can object to); every
    /// other mail is cancelled for them.
    pub fn answers_data_rights(self) -> bool {
        matches!(
            self,
            Self::PrivacyRequestReceived
                | Self::PrivacyIdentityCheck
                | Self::PrivacyExportReady
                | Self::ErasureScheduled
                | Self::ErasureCompleted
                | Self::ConsentChanged
                | Self::RestrictionLifted
        )
    }
}

impl Template {
    /// Mail the person is owed because they exercised a data right (the answer to a request
    /// they filed, the notice of their erasure). It is never held back by outbound quotas or
    /// by the shop's unverified owner: the law's clock runs regardless.
    pub fn owed_to_the_person(self) -> bool {
        matches!(
            self,
            Self::PrivacyRequestReceived
                | Self::PrivacyIdentityCheck
                | Self::PrivacyExportReady
                | Self::ErasureScheduled
                | Self::ErasureCompleted
                | Self::RestrictionLifted
        )
    }

    /// Whether this mail to `recipient` waits until the shop's owner has verified their own
    /// address: every mail to a customer that is not owed to them. A shop signed up a minute
    /// ago by someone who never proved an address cannot write to strangers.
    pub fn needs_verified_shop(self, recipient: SubjectKind) -> bool {
        recipient == SubjectKind::Customer && !self.owed_to_the_person()
    }
}

/// Who a mail goes to: a data subject of the event's tenant, never an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    pub kind: SubjectKind,
    pub id: SubjectId,
}

impl Recipient {
    pub fn kind_str(self) -> &'static str {
        self.kind.as_str()
    }

    pub fn parse(kind: &str, id: uuid::Uuid) -> Option<Self> {
        Some(Self {
            kind: SubjectKind::parse_person(kind)?,
            id: SubjectId(id),
        })
    }
}

/// One mail to queue for an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub template: Template,
    pub recipient: Recipient,
}

/// Which mail an event sends, if any. `Ok(None)`: this event sends no mail. `Err`: an event
/// that should send one but does not say to whom (a producer bug: dead-lettered with the
/// reason).
pub fn plan(event_type: &str, payload: &Value) -> Result<Option<Plan>, String> {
    let id_at = |key: &str| -> Result<uuid::Uuid, String> {
        payload
            .get(key)
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("`{event_type}` without a valid `{key}`"))
    };
    let staff = |template| -> Result<Option<Plan>, String> {
        Ok(Some(Plan {
            template,
            recipient: Recipient {
                kind: SubjectKind::Staff,
                id: SubjectId(id_at("user_id")?),
            },
        }))
    };
    let subject = |template| -> Result<Option<Plan>, String> {
        let subject = payload.get("subject").unwrap_or(&Value::Null);
        let recipient = subject
            .get("kind")
            .and_then(Value::as_str)
            .zip(
                subject
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok()),
            )
            .and_then(|(kind, id)| Recipient::parse(kind, id))
            .ok_or_else(|| format!("`{event_type}` without a valid `subject`"))?;
        Ok(Some(Plan {
            template,
            recipient,
        }))
    };
    match event_type {
        "staff.email_verification_requested" => staff(Template::EmailVerification),
        "staff.password_reset_requested" => staff(Template::PasswordReset),
        "staff.invited" => staff(Template::StaffInvitation),
        // Only an order with a customer gets a receipt; whether they want one is checked
        // against their consent.
        "order.paid" => match payload.get("customer_id") {
            None | Some(Value::Null) => Ok(None),
            Some(_) => Ok(Some(Plan {
                template: Template::OrderReceipt,
                recipient: Recipient {
                    kind: SubjectKind::Customer,
                    id: SubjectId(id_at("customer_id")?),
                },
            })),
        },
        "privacy.request_received" => subject(Template::PrivacyRequestReceived),
        "privacy.identity_check_requested" => subject(Template::PrivacyIdentityCheck),
        "privacy.export_ready" => subject(Template::PrivacyExportReady),
        "privacy.erasure_scheduled" => subject(Template::ErasureScheduled),
        "consent.changed" => subject(Template::ConsentChanged),
        "consent.confirmation_requested" => subject(Template::ConsentConfirmation),
        "customer.email_changed" => subject(Template::EmailChanged),
        "privacy.restriction_lifted" => subject(Template::RestrictionLifted),
        "retention.deletion_scheduled" => subject(Template::AccountDeletionScheduled),
        "marketing.message" => subject(Template::Marketing),
        // `erasure_completed` has no event: the privacy flow sends it with `deliver_now`
        // while the subject's key still exists.
        _ => Ok(None),
    }
}

/// How long to wait before attempt `attempt + 1` after `attempt` failed: exponential from
/// `base`, capped at `max`, with "equal jitter" (a random point in the upper half) so that
/// mails that failed together do not retry together. `unit` is a random number in [0, 1).
pub fn backoff(attempt: i32, base: Duration, max: Duration, unit: f64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let ceiling = base.saturating_mul(1u32 << exponent).min(max);
    let half = ceiling / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// What an SMTP or preparation failure means for the mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Try again later (connection refused, timeout, 4xx, a dependency down).
    Transient,
    /// Never going to work (5xx, a broken event): dead at once.
    Permanent,
}

/// Decides what happens after a failed attempt: `Some(delay)` to retry, `None` when it is dead.
pub fn after_failure(
    failure: Failure,
    attempts: i32,
    max_attempts: i32,
    base: Duration,
    max: Duration,
    unit: f64,
) -> Option<Duration> {
    (failure == Failure::Transient && attempts < max_attempts)
        .then(|| backoff(attempts, base, max, unit))
}

/// Money as a reader of `locale` expects it (the till's own formatting, shared with printed
/// receipts).
pub use orders::money::display as money;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "0190a0b0-0000-7000-8000-000000000001";

    #[test]
    fn only_what_a_person_is_owed_reaches_customers_of_an_unverified_shop() {
        for template in Template::ALL {
            assert_eq!(
                template.needs_verified_shop(SubjectKind::Customer),
                !template.owed_to_the_person(),
                "{template:?}"
            );
        }
        for waits in [
            Template::OrderReceipt,
            Template::ConsentChanged,
            Template::Marketing,
            Template::ConsentConfirmation,
            Template::EmailChanged,
        ] {
            assert!(
                waits.needs_verified_shop(SubjectKind::Customer),
                "{waits:?}"
            );
        }
        for owed in [
            Template::PrivacyRequestReceived,
            Template::PrivacyIdentityCheck,
            Template::PrivacyExportReady,
            Template::ErasureScheduled,
            Template::ErasureCompleted,
            Template::RestrictionLifted,
        ] {
            assert!(!owed.needs_verified_shop(SubjectKind::Customer), "{owed:?}");
        }
        // Staff mail (verifying the owner's own address among it) never waits for that.
        assert!(
            Template::ALL
                .into_iter()
                .all(|t| !t.needs_verified_shop(SubjectKind::Staff))
        );
        let confirm = plan(
            "consent.confirmation_requested",
            &json!({ "subject": { "kind": "customer", "id": ID } }),
        )
        .unwrap()
        .unwrap();
        assert_eq!(confirm.template, Template::ConsentConfirmation);
        assert_eq!(
            Template::ConsentConfirmation.token_link().unwrap().page,
            "consent/confirm"
        );
        let lifted = plan(
            "privacy.restriction_lifted",
            &json!({ "subject": { "kind": "customer", "id": ID } }),
        )
        .unwrap()
        .unwrap();
        assert_eq!(lifted.template, Template::RestrictionLifted);
        assert!(Template::RestrictionLifted.answers_data_rights());
    }

    #[test]
    fn staff_events_mail_the_user_they_name() {
        let reset = plan("staff.password_reset_requested", &json!({ "user_id": ID }))
            .unwrap()
            .unwrap();
        assert_eq!(reset.template, Template::PasswordReset);
        assert_eq!(reset.recipient.kind, SubjectKind::Staff);
        assert_eq!(reset.recipient.id.0.to_string(), ID);
        assert!(plan("staff.invited", &json!({})).is_err());
    }

    #[test]
    fn a_receipt_needs_a_customer_and_their_consent() {
        assert_eq!(
            plan("order.paid", &json!({ "customer_id": null })).unwrap(),
            None
        );
        let receipt = plan("order.paid", &json!({ "customer_id": ID }))
            .unwrap()
            .unwrap();
        assert_eq!(receipt.recipient.kind, SubjectKind::Customer);
        assert_eq!(
            receipt.template.requires_consent(),
            Some("receipt_email"),
            "receipts go only to customers who asked for them"
        );
        assert!(plan("order.paid", &json!({ "customer_id": "nope" })).is_err());
    }

    #[test]
    fn privacy_events_name_their_subject() {
        let erasure = plan(
            "privacy.erasure_scheduled",
            &json!({ "subject": { "kind": "customer", "id": ID } }),
        )
        .unwrap()
        .unwrap();
        assert_eq!(erasure.template, Template::ErasureScheduled);
        assert!(
            plan(
                "privacy.export_ready",
                &json!({ "subject": { "kind": "tenant", "id": ID } })
            )
            .is_err()
        );
    }

    #[test]
    fn other_events_send_nothing() {
        for event in ["order.created", "order.refunded", "stock.moved", "whatever"] {
            assert_eq!(plan(event, &json!({ "user_id": ID })).unwrap(), None);
        }
    }

    #[test]
    fn template_names_round_trip_and_are_unique() {
        for template in Template::ALL {
            assert_eq!(Template::parse(template.name()), Some(template));
        }
        assert_eq!(Template::parse("nope"), None);
    }

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(1, base, max, 0.999_999).as_secs(), 1);
        assert_eq!(backoff(3, base, max, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(3, base, max, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(20, base, max, 1.0), max);
        assert_eq!(backoff(i32::MAX, base, max, 0.0), max / 2);
    }

    #[test]
    fn permanent_failures_and_the_last_attempt_are_dead() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(10));
        assert!(after_failure(Failure::Transient, 1, 3, base, max, 0.5).is_some());
        assert_eq!(
            after_failure(Failure::Transient, 3, 3, base, max, 0.5),
            None
        );
        assert_eq!(
            after_failure(Failure::Permanent, 1, 3, base, max, 0.5),
            None
        );
    }
}
