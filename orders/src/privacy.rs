//! What `orders` holds on a person: the orders they bought (a customer), for their export; at
//! erasure the orders stay for bookkeeping (amounts, products, payments, refunds) and lose the
//! person: `customer_id` is cleared. A staff member's `cashier_id` on the orders they rang up
//! stays: it is the shop's record of its own till, and after the shred it names nobody.

use platform::{
    AppState, Result,
    authz::BoxFuture,
    db::TenantTx,
    events::{self, AuditRecord, Resource},
    pii::{Subject, SubjectKind},
    privacy::{Erasure, Section, SubjectDataProvider},
};

#[derive(Debug)]
pub struct Provider;

impl SubjectDataProvider for Provider {
    fn module(&self) -> &'static str {
        "orders"
    }

    fn export<'a>(
        &'a self,
        _state: &'a AppState,
        tx: &'a mut TenantTx,
        subject: Subject,
    ) -> BoxFuture<'a, Result<Vec<Section>>> {
        Box::pin(async move {
            if subject.kind != SubjectKind::Customer {
                return Ok(Vec::new());
            }
            let mut orders = Section::new("orders.orders");
            for row in sqlx::query!(
                "select id, status, currency, total_minor, paid_minor, refunded_minor, created_at,
                        paid_at, cancelled_at
                 from orders where customer_id = $1 order by id",
                subject.id.0
            )
            .fetch_all(&mut **tx)
            .await?
            {
                orders.push(serde_json::json!({
                    "id": row.id, "status": row.status, "currency": row.currency,
                    "total_minor": row.total_minor, "paid_minor": row.paid_minor,
                    "refunded_minor": row.refunded_minor, "created_at": row.created_at,
                    "paid_at": row.paid_at, "cancelled_at": row.cancelled_at,
                }))?;
            }
            let mut lines = Section::new("orders.lines");
            for row in sqlx::query!(
                "select l.order_id, l.line_no, l.product_id, l.name, l.sku, l.unit_price_minor,
                        l.quantity, l.refunded_quantity
                 from order_lines l join orders o on o.tenant_id = l.tenant_id and o.id = l.order_id
                 where o.customer_id = $1 order by l.order_id, l.line_no",
                subject.id.0
            )
            .fetch_all(&mut **tx)
            .await?
            {
                lines.push(serde_json::json!({
                    "order_id": row.order_id, "line_no": row.line_no, "product_id": row.product_id,
                    "name": row.name, "sku": row.sku, "unit_price_minor": row.unit_price_minor,
                    "quantity": row.quantity, "refunded_quantity": row.refunded_quantity,
                }))?;
            }
            let mut payments = Section::new("orders.payments");
            for row in sqlx::query!(
                "select p.order_id, p.method, p.amount_minor, p.tendered_minor, p.change_minor, p.created_at
                 from payments p join orders o on o.tenant_id = p.tenant_id and o.id = p.order_id
                 where o.customer_id = $1 order by p.created_at, p.id",
                subject.id.0
            )
            .fetch_all(&mut **tx)
            .await?
            {
                payments.push(serde_json::json!({
                    "order_id": row.order_id, "method": row.method, "amount_minor": row.amount_minor,
                    "tendered_minor": row.tendered_minor, "change_minor": row.change_minor,
                    "created_at": row.created_at,
                }))?;
            }
            Ok(vec![orders, lines, payments])
        })
    }

    fn erase<'a>(
        &'a self,
        _state: &'a AppState,
        tx: &'a mut TenantTx,
        erasure: &'a Erasure,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if erasure.subject.kind != SubjectKind::Customer {
                return Ok(());
            }
            let anonymized = sqlx::query!(
                "update orders set customer_id = null, updated_at = now() where customer_id = $1",
                erasure.subject.id.0
            )
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if anonymized > 0 {
                let record = AuditRecord::new(
                    erasure.actor,
                    "orders.anonymized",
                    Resource::new("customer", erasure.subject.id),
                )
                .fields(&["customer_id"])
                .details(
                    serde_json::json!({ "orders": anonymized, "request_id": erasure.request }),
                );
                events::emit_audit(tx, &record).await?;
            }
            Ok(())
        })
    }
}
