//! Cashier shifts (#21): a cash drawer from its opening float to its counted close.
//!
//! Orders and cash payments belong to the open shift of the staff member who took them; a cash
//! refund and cash put in or taken out are booked against the open shift of whoever gave or
//! moved them. What the drawer should hold is
//! `float + cash taken − cash refunded + cash in − cash out`; closing records the count and the
//! difference (over or short). The X report is a shift's figures while it is open, the Z report
//! the same at close. Every change is audited.

use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use platform::{
    AppState, Authorized, Error, Principal, Result, Role,
    db::TenantTx,
    error::OnConstraint,
    events::{self, AuditRecord, Resource},
    http::{Json, Path},
    id::UserId,
    routes,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::{ReadOrders, WriteOrders};

platform::id_type!(
    /// A cashier's shift of one tenant.
    ShiftId
);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_shift))
        .routes(routes!(current_shift))
        .routes(routes!(shift_report))
        .routes(routes!(move_cash))
        .routes(routes!(close_shift))
}

/// Why cash went into or out of a drawer (codes, never free text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CashReason {
    FloatTopUp,
    ChangeRun,
    BankDeposit,
    Expense,
    Correction,
    Other,
}

impl CashReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::FloatTopUp => "float_top_up",
            Self::ChangeRun => "change_run",
            Self::BankDeposit => "bank_deposit",
            Self::Expense => "expense",
            Self::Correction => "correction",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CashDirection {
    In,
    Out,
}

/// A shift's figures: the X report while it is open, the Z report once closed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShiftReport {
    pub id: ShiftId,
    pub cashier_id: UserId,
    /// `x` while open, `z` once closed.
    pub kind: &'static str,
    pub currency: String,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub opening_float_minor: i64,
    /// Orders rung up in the shift, and what they come to.
    pub orders: i64,
    pub sales_minor: i64,
    /// Payments taken in the shift, by method (cash as it went towards orders, change excluded).
    pub payments: Vec<MethodTotal>,
    pub cash_sales_minor: i64,
    pub cash_refunds_minor: i64,
    pub cash_in_minor: i64,
    pub cash_out_minor: i64,
    /// float + cash sales − cash refunds + cash in − cash out.
    pub expected_minor: i64,
    pub counted_minor: Option<i64>,
    /// counted − expected: positive over, negative short.
    pub over_short_minor: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MethodTotal {
    pub method: String,
    pub amount_minor: i64,
}

/// The staff member's open shift, if any.
pub async fn open_for(tx: &mut TenantTx, cashier: UserId) -> Result<Option<ShiftId>> {
    Ok(sqlx::query_scalar!(
        "select id from shifts where cashier_id = $1 and closed_at is null",
        cashier.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .map(ShiftId))
}

/// The shift's figures now; 404 when not this tenant's.
pub async fn report(tx: &mut TenantTx, id: ShiftId) -> Result<ShiftReport> {
    let shift = sqlx::query!(
        "select cashier_id, currency, opening_float_minor, opened_at, closed_at, counted_minor
         from shifts where id = $1",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(Error::NotFound)?;
    let sales = sqlx::query!(
        r#"select count(*) as "orders!", coalesce(sum(total_minor), 0)::int8 as "sales!"
           from orders where shift_id = $1 and status <> 'cancelled'"#,
        id.0
    )
    .fetch_one(&mut **tx)
    .await?;
    let payments: Vec<MethodTotal> = sqlx::query!(
        r#"select method as "method!", sum(amount_minor)::int8 as "amount!"
           from payments where shift_id = $1 group by method order by method"#,
        id.0
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| MethodTotal {
        method: r.method,
        amount_minor: r.amount,
    })
    .collect();
    let cash_refunds = sqlx::query_scalar!(
        r#"select coalesce(sum(amount_minor), 0)::int8 as "refunds!"
           from refunds where shift_id = $1 and method = 'cash'"#,
        id.0
    )
    .fetch_one(&mut **tx)
    .await?;
    let moved = sqlx::query!(
        r#"select coalesce(sum(amount_minor) filter (where kind = 'in'), 0)::int8 as "cash_in!",
                  coalesce(sum(amount_minor) filter (where kind = 'out'), 0)::int8 as "cash_out!"
           from shift_cash_movements where shift_id = $1"#,
        id.0
    )
    .fetch_one(&mut **tx)
    .await?;
    let cash_sales = payments
        .iter()
        .find(|p| p.method == "cash")
        .map_or(0, |p| p.amount_minor);
    let expected =
        shift.opening_float_minor + cash_sales - cash_refunds + moved.cash_in - moved.cash_out;
    Ok(ShiftReport {
        id,
        cashier_id: UserId(shift.cashier_id),
        kind: if shift.closed_at.is_some() { "z" } else { "x" },
        currency: shift.currency,
        opened_at: shift.opened_at,
        closed_at: shift.closed_at,
        opening_float_minor: shift.opening_float_minor,
        orders: sales.orders,
        sales_minor: sales.sales,
        payments,
        cash_sales_minor: cash_sales,
        cash_refunds_minor: cash_refunds,
        cash_in_minor: moved.cash_in,
        cash_out_minor: moved.cash_out,
        expected_minor: expected,
        counted_minor: shift.counted_minor,
        over_short_minor: shift.counted_minor.map(|c| c - expected),
    })
}

/// Owners and managers act on any shift; a cashier only on their own.
fn may_act_on(caller: &Principal, report: &ShiftReport) -> Result<()> {
    if caller.role == Role::Cashier && report.cashier_id != caller.user {
        return Err(Error::NotFound);
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OpenShift {
    /// Cash in the drawer at the start.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    opening_float_minor: i64,
}

/// Opens the caller's shift with its opening float (`shift.opened`). One open shift each.
#[utoipa::path(post, path = "/api/v1/shifts", tag = "orders",
    security(("bearer" = ["orders.write"])),
    request_body = OpenShift,
    responses(
        (status = 201, body = ShiftReport),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 409, description = "`shift_already_open`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn open_shift(
    caller: Authorized<WriteOrders>,
    State(state): State<AppState>,
    Json(body): Json<OpenShift>,
) -> Result<(StatusCode, Json<ShiftReport>)> {
    if !(0..=1_000_000_000_000).contains(&body.opening_float_minor) {
        return Err(Error::invalid(
            "opening_float_minor",
            "must be 0 to 1000000000000",
        ));
    }
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let shop = tenants::current(&mut tx).await?;
    let id = ShiftId::new();
    sqlx::query!(
        "insert into shifts (tenant_id, id, cashier_id, currency, opening_float_minor, opened_at)
         values ($1, $2, $3, $4, $5, $6)",
        caller.tenant.0,
        id.0,
        caller.user.0,
        shop.currency,
        body.opening_float_minor,
        state.clock.now(),
    )
    .execute(&mut *tx)
    .await
    .on_constraint("shifts_one_open_key", || {
        Error::conflict(
            "shift_already_open",
            "You have a shift open; close it first.",
        )
    })?;
    let record = AuditRecord::new(caller.actor(), "shift.opened", Resource::new("shift", id))
        .fields(&["opening_float_minor"])
        .details(serde_json::json!({ "opening_float_minor": body.opening_float_minor }));
    events::emit_audit(&mut tx, &record).await?;
    let report = report(&mut tx, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// The caller's open shift, as its X report; 404 when none is open.
#[utoipa::path(get, path = "/api/v1/shifts/current", tag = "orders",
    security(("bearer" = ["orders.write"])),
    responses(
        (status = 200, body = ShiftReport),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
    ))]
async fn current_shift(
    caller: Authorized<WriteOrders>,
    State(state): State<AppState>,
) -> Result<Json<ShiftReport>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let id = open_for(&mut tx, caller.user)
        .await?
        .ok_or(Error::NotFound)?;
    let report = report(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(report))
}

/// A shift's X report (open) or Z report (closed). A cashier sees only their own shifts.
#[utoipa::path(get, path = "/api/v1/shifts/{id}/report", tag = "orders",
    security(("bearer" = ["orders.read"])),
    params(("id" = ShiftId, Path)),
    responses(
        (status = 200, body = ShiftReport),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
    ))]
async fn shift_report(
    caller: Authorized<ReadOrders>,
    State(state): State<AppState>,
    Path(id): Path<ShiftId>,
) -> Result<Json<ShiftReport>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let report = report(&mut tx, id).await?;
    may_act_on(&caller, &report)?;
    tx.commit().await?;
    Ok(Json(report))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CashMovement {
    direction: CashDirection,
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    amount_minor: i64,
    reason: CashReason,
}

/// Cash put into or taken out of an open shift's drawer (`shift.cash_moved`).
#[utoipa::path(post, path = "/api/v1/shifts/{id}/cash-movements", tag = "orders",
    security(("bearer" = ["orders.write"])),
    params(("id" = ShiftId, Path)),
    request_body = CashMovement,
    responses(
        (status = 201, body = ShiftReport),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`shift_closed`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn move_cash(
    caller: Authorized<WriteOrders>,
    State(state): State<AppState>,
    Path(id): Path<ShiftId>,
    Json(body): Json<CashMovement>,
) -> Result<(StatusCode, Json<ShiftReport>)> {
    if !(1..=1_000_000_000_000).contains(&body.amount_minor) {
        return Err(Error::invalid("amount_minor", "must be 1 to 1000000000000"));
    }
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let before = locked(&mut tx, id).await?;
    may_act_on(&caller, &before)?;
    if before.closed_at.is_some() {
        return Err(Error::conflict("shift_closed", "This shift is closed."));
    }
    let kind = match body.direction {
        CashDirection::In => "in",
        CashDirection::Out => "out",
    };
    let movement = uuid::Uuid::now_v7();
    sqlx::query!(
        "insert into shift_cash_movements (tenant_id, id, shift_id, kind, amount_minor, reason,
                                           actor_id, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        caller.tenant.0,
        movement,
        id.0,
        kind,
        body.amount_minor,
        body.reason.as_str(),
        caller.user.0,
        state.clock.now(),
    )
    .execute(&mut *tx)
    .await?;
    let record = AuditRecord::new(
        caller.actor(),
        "shift.cash_moved",
        Resource::new("shift", id),
    )
    .fields(&["cash_movements"])
    .details(serde_json::json!({
        "movement_id": movement,
        "direction": kind,
        "amount_minor": body.amount_minor,
        "reason": body.reason.as_str(),
    }));
    events::emit_audit(&mut tx, &record).await?;
    let report = report(&mut tx, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// The shift's report with its row locked, so a close and a movement cannot interleave.
async fn locked(tx: &mut TenantTx, id: ShiftId) -> Result<ShiftReport> {
    sqlx::query_scalar!("select id from shifts where id = $1 for update", id.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(Error::NotFound)?;
    report(tx, id).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CloseShift {
    /// The cash counted in the drawer.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    counted_minor: i64,
}

/// Closes a shift with the counted cash: its Z report, with what was expected and the
/// difference (`shift.closed`). A cashier closes their own; owners and managers any.
#[utoipa::path(post, path = "/api/v1/shifts/{id}/close", tag = "orders",
    security(("bearer" = ["orders.write"])),
    params(("id" = ShiftId, Path)),
    request_body = CloseShift,
    responses(
        (status = 200, body = ShiftReport),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`shift_closed`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn close_shift(
    caller: Authorized<WriteOrders>,
    State(state): State<AppState>,
    Path(id): Path<ShiftId>,
    Json(body): Json<CloseShift>,
) -> Result<Json<ShiftReport>> {
    if !(0..=1_000_000_000_000).contains(&body.counted_minor) {
        return Err(Error::invalid(
            "counted_minor",
            "must be 0 to 1000000000000",
        ));
    }
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let before = locked(&mut tx, id).await?;
    may_act_on(&caller, &before)?;
    if before.closed_at.is_some() {
        return Err(Error::conflict("shift_closed", "This shift is closed."));
    }
    sqlx::query!(
        "update shifts set closed_at = $2, closed_by = $3, expected_minor = $4, counted_minor = $5
         where id = $1",
        id.0,
        state.clock.now(),
        caller.user.0,
        before.expected_minor,
        body.counted_minor,
    )
    .execute(&mut *tx)
    .await?;
    let record = AuditRecord::new(caller.actor(), "shift.closed", Resource::new("shift", id))
        .fields(&["closed_at", "expected_minor", "counted_minor"])
        .details(serde_json::json!({
            "expected_minor": before.expected_minor,
            "counted_minor": body.counted_minor,
            "over_short_minor": body.counted_minor - before.expected_minor,
        }));
    events::emit_audit(&mut tx, &record).await?;
    let report = report(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(report))
}

/// The shift a cash payment or refund by `staff` goes into: their open shift; when they have
/// none, `None`, or 409 `shift_required` where the shop requires shifts for cash.
pub async fn for_cash(tx: &mut TenantTx, staff: UserId, required: bool) -> Result<Option<ShiftId>> {
    match open_for(tx, staff).await? {
        Some(shift) => Ok(Some(shift)),
        None if required => Err(Error::conflict(
            "shift_required",
            "This shop takes cash only in an open shift: open one first.",
        )),
        None => Ok(None),
    }
}
