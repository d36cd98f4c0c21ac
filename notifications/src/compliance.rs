//! What `notifications` tells the compliance verifier: its retention sweep, and that every
//! mail needing consent (receipts, marketing) left only while its purpose was granted.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use platform::{
    compliance::{Check, CheckSpec, ComplianceProbe, Ctx, Finding, Group::Consent, Severity},
    retention::RetentionTask,
};
use users::consent::{ChoiceAt, granted_at};

use crate::domain::Template;

#[derive(Debug)]
pub struct Probe;

impl ComplianceProbe for Probe {
    fn retention_tasks(&self) -> Vec<Arc<dyn RetentionTask>> {
        crate::retention_tasks()
    }

    fn checks(&self) -> Vec<Check> {
        vec![Check {
            spec: CheckSpec {
                id: "consent.mail_only_with_consent",
                group: Consent,
                title: "Every receipt and marketing mail left while its purpose was granted",
                severity: Severity::High,
                impact: 0.8,
                tenant_data: true,
            },
            run: |c| mail_only_with_consent(c).boxed(),
        }]
    }
}

#[derive(sqlx::FromRow)]
struct Sent {
    tenant_id: uuid::Uuid,
    id: uuid::Uuid,
    template: String,
    recipient_id: uuid::Uuid,
    sent_at: DateTime<Utc>,
}

async fn mail_only_with_consent(ctx: &Ctx) -> anyhow::Result<Finding> {
    let gated: Vec<(&str, &str)> = Template::ALL
        .iter()
        .filter_map(|t| Some((t.name(), t.requires_consent()?)))
        .collect();
    let templates: Vec<&str> = gated.iter().map(|(t, _)| *t).collect();
    let sent: Vec<Sent> = sqlx::query_as(
        "select tenant_id, id, template, recipient_id, sent_at from notification_deliveries
         where status = 'sent' and sent_at is not null and template = any($1)
           and tenant_id = any($2)
         order by tenant_id, sent_at",
    )
    .bind(&templates)
    .bind(ctx.tenant_ids().await?)
    .fetch_all(&ctx.read)
    .await?;
    let items: Vec<ChoiceAt> = sent
        .iter()
        .map(|m| ChoiceAt {
            tenant: m.tenant_id,
            subject: m.recipient_id,
            purpose: gated
                .iter()
                .find(|(t, _)| *t == m.template)
                .map_or("", |(_, p)| *p),
            at: m.sent_at,
        })
        .collect();
    let mut conn = ctx.read.acquire().await?;
    let granted = granted_at(&mut conn, &items).await?;
    let violations = sent
        .iter()
        .zip(&items)
        .zip(&granted)
        .filter(|(_, ok)| !**ok)
        .map(|((m, item), _)| {
            format!(
                "tenant {}: {} mail {} left without `{}` granted",
                m.tenant_id, m.template, m.id, item.purpose
            )
        })
        .collect();
    Ok(Finding::from_violations(
        violations,
        format!(
            "{} receipt and marketing mails, each sent while its purpose was granted",
            sent.len()
        ),
        |n| format!("{n} mails left without the consent they need"),
    ))
}
