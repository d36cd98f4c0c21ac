//! Retention of people: guest customers inactive past their shop's period, staff accounts
//! deleted long enough ago, and people invited as staff who never signed up, are erased through the erasure flow ([`super::erasure`]), as an
//! erasure request with channel `retention` that the retention job files itself. Guests are
//! mailed `retention.deletion_scheduled` first and the erasure waits out the notice; naming
//! them on an order meanwhile calls it off (`customers::use_for_order`).

use chrono::TimeDelta;
use platform::{
    authz::BoxFuture,
    events::{self, Actor, DomainEvent},
    id::TenantId,
    pii::SubjectKind,
    retention::{Cutoffs, PAST_CUTOFF, RetentionTask, Swept},
};
use sqlx::PgConnection;

use super::RequestType;

/// Schedules the erasure of the people of `table` (aliased `t`) whose `age` is past their
/// shop's cutoff and who meet `condition`, unless one is already under way.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleErasure {
    pub category: &'static str,
    pub kind: SubjectKind,
    pub table: &'static str,
    pub age: &'static str,
    pub condition: &'static str,
    /// Mailed ahead (`retention.deletion_scheduled`); `None`: erased at the next run.
    pub notice: Option<TimeDelta>,
}

pub const INACTIVE_GUESTS: ScheduleErasure = ScheduleErasure {
    category: "inactive_guests",
    kind: SubjectKind::Customer,
    table: "customers",
    age: "coalesce(t.last_active_at, t.created_at)",
    // A restricted person asked for their data to be kept: not erased for inactivity.
    condition: "t.guest and t.erased_at is null and t.restricted_at is null",
    notice: Some(TimeDelta::days(14)),
};

pub const UNVERIFIED_SIGNUPS: ScheduleErasure = ScheduleErasure {
    category: "unverified_signups",
    kind: SubjectKind::Staff,
    table: "staff_users",
    age: "t.created_at",
    condition: "t.status = 'invited' and t.erased_at is null and t.restricted_at is null",
    notice: None,
};

pub const DELETED_STAFF: ScheduleErasure = ScheduleErasure {
    category: "deleted_staff",
    kind: SubjectKind::Staff,
    table: "staff_users",
    age: "t.deleted_at",
    condition: "t.status = 'deleted' and t.erased_at is null and t.restricted_at is null",
    notice: None,
};

const NOT_UNDER_WAY: &str = "not exists (select 1 from privacy_requests r
    where r.tenant_id = t.tenant_id and r.subject_id = t.id and r.type = 'erasure'
      and r.status in ('scheduled', 'erasing'))";

impl RetentionTask for ScheduleErasure {
    fn category(&self) -> &'static str {
        self.category
    }

    fn sweep<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        cutoffs: &'a Cutoffs,
        limit: i64,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Swept, sqlx::Error>> {
        let Self {
            table,
            age,
            condition,
            ..
        } = *self;
        let due = format!("({condition}) and {NOT_UNDER_WAY} and {age} < {PAST_CUTOFF}");
        Box::pin(async move {
            if dry_run {
                let sql = format!(
                    "select tenant_id, count(*) from {table} t where {due} group by tenant_id"
                );
                return sqlx::query_as::<_, (uuid::Uuid, i64)>(sqlx::AssertSqlSafe(sql))
                    .bind(cutoffs.default)
                    .bind(&cutoffs.tenants)
                    .bind(&cutoffs.at)
                    .fetch_all(conn)
                    .await;
            }
            let sql = format!(
                "select t.tenant_id, t.id, coalesce(s.jurisdiction, 'gdpr') from {table} t
                 left join privacy_settings s on s.tenant_id = t.tenant_id
                 where {due} order by {age} limit $4"
            );
            let people =
                sqlx::query_as::<_, (uuid::Uuid, uuid::Uuid, String)>(sqlx::AssertSqlSafe(sql))
                    .bind(cutoffs.default)
                    .bind(&cutoffs.tenants)
                    .bind(&cutoffs.at)
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await?;
            let mut swept: Swept = Vec::new();
            for (tenant, person, jurisdiction) in people {
                self.schedule(conn, cutoffs, TenantId(tenant), person, &jurisdiction)
                    .await?;
                match swept.iter_mut().find(|(t, _)| *t == tenant) {
                    Some((_, n)) => *n += 1,
                    None => swept.push((tenant, 1)),
                }
            }
            Ok(swept)
        })
    }
}

impl ScheduleErasure {
    async fn schedule(
        &self,
        conn: &mut PgConnection,
        cutoffs: &Cutoffs,
        tenant: TenantId,
        person: uuid::Uuid,
        jurisdiction: &str,
    ) -> Result<(), sqlx::Error> {
        let request = uuid::Uuid::now_v7();
        let at = cutoffs.now + self.notice.unwrap_or_default();
        // The clock of an erasure is the law's, as for one the person asked for.
        let due = super::due_at(
            super::Jurisdiction::parse(jurisdiction).unwrap_or(super::Jurisdiction::Gdpr),
            RequestType::Erasure,
            cutoffs.now,
        );
        sqlx::query!(
            "insert into privacy_requests (tenant_id, id, type, subject_kind, subject_id, channel,
                 jurisdiction, status, received_at, due_at, verified_at, scheduled_for, updated_at)
             values ($1, $2, $3, $4, $5, 'retention', $6, 'scheduled', $7, $8, $7, $9, $7)",
            tenant.0,
            request,
            RequestType::Erasure.as_str(),
            self.kind.as_str(),
            person,
            jurisdiction,
            cutoffs.now,
            due,
            at,
        )
        .execute(&mut *conn)
        .await?;
        if self.notice.is_some() {
            let event = DomainEvent {
                actor: Actor::System { name: "retention" },
                event_type: "retention.deletion_scheduled",
                payload: serde_json::json!({
                    "subject": { "kind": self.kind.as_str(), "id": person },
                    "request_id": request,
                    "scheduled_for": at,
                    "category": self.category,
                }),
            };
            events::emit_event_for(conn, tenant, &event).await?;
        }
        Ok(())
    }
}
