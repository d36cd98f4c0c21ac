//! Mail templates: Indonesian and English, a plain-text and an HTML part each, rendered with
//! minijinja.
//!
//! Why minijinja: templates stay files a translator can edit (Jinja syntax, template
//! inheritance for the shared layout), HTML escaping is decided by the file name (`.html`
//! escapes every value, `.txt` does not), and undefined variables are errors when printed, so
//! a template that names a missing value fails its unit test instead of mailing a blank.
//! askama checks templates at compile time but makes each template × language a Rust type;
//! tera has the same model as minijinja with a heavier dependency tree.
//!
//! The files are compiled into the binary (`include_str!`): no template directory to deploy.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use crate::domain::Template;

macro_rules! files {
    ($($name:literal,)*) => {
        &[$(($name, include_str!(concat!("../templates/", $name))),)*]
    };
}

const FILES: &[(&str, &str)] = files!(
    "id/layout.txt",
    "id/layout.html",
    "id/email_verification.txt",
    "id/email_verification.html",
    "id/password_reset.txt",
    "id/password_reset.html",
    "id/staff_invitation.txt",
    "id/staff_invitation.html",
    "id/order_receipt.txt",
    "id/order_receipt.html",
    "id/privacy_request_received.txt",
    "id/privacy_request_received.html",
    "id/privacy_identity_check.txt",
    "id/privacy_identity_check.html",
    "id/privacy_export_ready.txt",
    "id/privacy_export_ready.html",
    "id/erasure_scheduled.txt",
    "id/erasure_scheduled.html",
    "id/erasure_completed.txt",
    "id/erasure_completed.html",
    "id/consent_changed.txt",
    "id/consent_changed.html",
    "id/account_deletion_scheduled.txt",
    "id/account_deletion_scheduled.html",
    "id/marketing.txt",
    "id/marketing.html",
    "id/consent_confirmation.txt",
    "id/consent_confirmation.html",
    "id/email_changed.txt",
    "id/email_changed.html",
    "id/restriction_lifted.txt",
    "id/restriction_lifted.html",
    "en/layout.txt",
    "en/layout.html",
    "en/email_verification.txt",
    "en/email_verification.html",
    "en/password_reset.txt",
    "en/password_reset.html",
    "en/staff_invitation.txt",
    "en/staff_invitation.html",
    "en/order_receipt.txt",
    "en/order_receipt.html",
    "en/privacy_request_received.txt",
    "en/privacy_request_received.html",
    "en/privacy_identity_check.txt",
    "en/privacy_identity_check.html",
    "en/privacy_export_ready.txt",
    "en/privacy_export_ready.html",
    "en/erasure_scheduled.txt",
    "en/erasure_scheduled.html",
    "en/erasure_completed.txt",
    "en/erasure_completed.html",
    "en/consent_changed.txt",
    "en/consent_changed.html",
    "en/account_deletion_scheduled.txt",
    "en/account_deletion_scheduled.html",
    "en/marketing.txt",
    "en/marketing.html",
    "en/consent_confirmation.txt",
    "en/consent_confirmation.html",
    "en/email_changed.txt",
    "en/email_changed.html",
    "en/restriction_lifted.txt",
    "en/restriction_lifted.html",
);

/// A rendered mail, ready for the envelope.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The compiled templates. Built once per worker.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        // `.html` escapes (the default callback decides by extension); say so explicitly.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        for (name, source) in FILES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    /// Renders `template` in `locale` (`id` or `en`; anything else falls back to `id`) with
    /// `vars` (a JSON object). The subject is one line.
    pub fn render(
        &self,
        template: Template,
        locale: &str,
        vars: &Value,
    ) -> Result<Rendered, minijinja::Error> {
        let locale = if locale == "en" { "en" } else { "id" };
        let text = self
            .env
            .get_template(&format!("{locale}/{}.txt", template.name()))?;
        // One evaluation gives the body (through the layout) and the state the subject block
        // is rendered from.
        let mut captured = text.render_captured(vars)?;
        let body = captured.output().to_owned();
        let subject = captured.with_state_mut(|state| state.render_block("subject"))?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut with_subject = vars.clone();
        if let Value::Object(map) = &mut with_subject {
            map.insert("subject".into(), Value::String(subject.clone()));
        }
        let html = self
            .env
            .get_template(&format!("{locale}/{}.html", template.name()))?
            .render(&with_subject)?;
        Ok(Rendered {
            subject,
            text: body,
            html,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(business_name: &str) -> Value {
        json!({
            "business_name": business_name,
            "recipient_name": "Siti Aminah",
            "link": "https://warung.example/portal/#/verify-email?token=abc&x=1",
            "expires_at": "2026-11-24 10:00 UTC",
            "request_type": "export",
            "due_at": "2026-11-25 10:00 UTC",
            "scheduled_for": "2026-12-22",
            "changes": [{"purpose": "marketing", "granted": false}, {"purpose": "receipt_email", "granted": true}],
            "purpose": "marketing",
            "headline": "Promo kopi susu",
            "message": "Beli dua, gratis satu.",
            "privacy_link": "https://warung.example/portal/#/privacy",
            "order": {
                "number": "INV/20261122/0001",
                "text": "Kopi Susu\n  2 x Rp18.000   Rp36.000\nKembalian   Rp14.000\n",
                "html": "<table><tr><td>Kopi Susu</td></tr></table>",
            },
        })
    }

    #[test]
    fn every_template_renders_in_both_languages() {
        let templates = Templates::new().unwrap();
        for template in Template::ALL {
            let mut subjects = Vec::new();
            for locale in ["id", "en"] {
                let mail = templates
                    .render(template, locale, &sample("Toko Budi"))
                    .unwrap_or_else(|e| panic!("{} {locale}: {e:#}", template.name()));
                assert!(!mail.subject.is_empty() && !mail.subject.contains('\n'));
                for part in [&mail.text, &mail.html] {
                    assert!(part.contains("Toko Budi"), "{} {locale}", template.name());
                    assert!(part.contains("Siti Aminah"), "{} {locale}", template.name());
                    assert!(!part.contains("{{") && !part.contains("{%"));
                }
                assert!(mail.html.contains(&format!("<html lang=\"{locale}\">")));
                if template.token_link().is_some() {
                    assert!(
                        mail.text
                            .contains("https://warung.example/portal/#/verify-email?token=abc&x=1")
                    );
                    assert!(mail.html.contains(
                        "href=\"https:&#x2f;&#x2f;warung.example&#x2f;portal&#x2f;#&#x2f;verify-email?token=abc&amp;x=1\""
                    ));
                }
                subjects.push(mail.subject);
            }
            // A marketing mail's subject is the shop's own headline, in whatever language.
            if template != Template::Marketing {
                assert_ne!(
                    subjects[0],
                    subjects[1],
                    "{}: one subject per language",
                    template.name()
                );
            }
        }
    }

    /// The receipt is printed (and escaped) by `orders::receipts`: the mail carries it as
    /// it came, the text part verbatim and the HTML part unescaped.
    #[test]
    fn the_receipt_carries_the_printed_receipt_as_it_came() {
        let mail = Templates::new()
            .unwrap()
            .render(Template::OrderReceipt, "id", &sample("Toko Budi"))
            .unwrap();
        assert!(
            mail.text
                .contains("Kopi Susu\n  2 x Rp18.000   Rp36.000\nKembalian   Rp14.000"),
            "{}",
            mail.text
        );
        assert!(
            mail.subject.contains("INV/20261122/0001"),
            "{}",
            mail.subject
        );
        assert!(
            mail.html
                .contains("<table><tr><td>Kopi Susu</td></tr></table>")
        );
    }

    #[test]
    fn hostile_values_are_escaped_in_html_and_kept_verbatim_in_text() {
        let hostile = "<script>alert('x')</script> & \"Co\"";
        let mut vars = sample(hostile);
        vars["recipient_name"] = json!("<img src=x onerror=alert(1)>");
        let mail = Templates::new()
            .unwrap()
            .render(Template::EmailVerification, "en", &vars)
            .unwrap();
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
        assert!(!mail.html.contains("<img"));
        assert!(mail.html.contains("&lt;script&gt;"));
        assert!(mail.html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(
            mail.text.contains(hostile),
            "plain text is not HTML: no entities"
        );
        assert!(mail.subject.contains(hostile));
    }

    #[test]
    fn a_missing_value_is_an_error_not_a_blank() {
        let mut vars = sample("Toko Budi");
        vars.as_object_mut().unwrap().remove("link");
        let err = Templates::new()
            .unwrap()
            .render(Template::PasswordReset, "id", &vars)
            .unwrap_err();
        assert_eq!(err.kind(), minijinja::ErrorKind::UndefinedError);
    }

    #[test]
    fn an_unknown_language_falls_back_to_indonesian() {
        let templates = Templates::new().unwrap();
        let fallback = templates
            .render(Template::ErasureCompleted, "fr", &sample("Toko Budi"))
            .unwrap();
        let id = templates
            .render(Template::ErasureCompleted, "id", &sample("Toko Budi"))
            .unwrap();
        assert_eq!(fallback.subject, id.subject);
    }
}
