-- Cashier shifts (#21 item 5): a cash drawer from opening float to counted close. Orders and
-- cash payments belong to the open shift of the staff member who took them; cash refunds and
-- cash put in or taken out are booked against the open shift of whoever gave or moved them.
-- Expected cash = float + cash taken − cash refunded + cash in − cash out.
create table shifts (
    tenant_id uuid not null,
    id uuid not null,
    cashier_id uuid not null,
    currency text not null,
    opening_float_minor bigint not null,
    opened_at timestamptz not null,
    -- Set at close: what the drawer should hold, and what was counted in it.
    closed_at timestamptz,
    closed_by uuid,
    expected_minor bigint,
    counted_minor bigint,
    constraint shifts_pkey primary key (tenant_id, id),
    constraint shifts_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint shifts_amounts_check check (opening_float_minor >= 0 and counted_minor >= 0),
    constraint shifts_closed_check
        check ((closed_at is null) = (counted_minor is null)
               and (closed_at is null) = (expected_minor is null))
);
select warung_enable_tenant_rls('shifts');
-- One open shift per staff member.
create unique index shifts_one_open_key on shifts (tenant_id, cashier_id) where closed_at is null;
grant select, insert on shifts to warung_app;
grant update (closed_at, closed_by, expected_minor, counted_minor) on shifts to warung_app;
grant select on shifts to warung_system;

create table shift_cash_movements (
    tenant_id uuid not null,
    id uuid not null,
    shift_id uuid not null,
    kind text not null,
    amount_minor bigint not null,
    reason text not null,
    actor_id uuid not null,
    created_at timestamptz not null,
    constraint shift_cash_movements_pkey primary key (tenant_id, id),
    constraint shift_cash_movements_shift_fkey foreign key (tenant_id, shift_id)
        references shifts (tenant_id, id),
    constraint shift_cash_movements_kind_check check (kind in ('in', 'out')),
    constraint shift_cash_movements_amount_check check (amount_minor > 0),
    constraint shift_cash_movements_reason_check
        check (reason in ('float_top_up', 'change_run', 'bank_deposit', 'expense', 'correction', 'other'))
);
select warung_enable_tenant_rls('shift_cash_movements');
create index shift_cash_movements_shift_idx on shift_cash_movements (tenant_id, shift_id);
grant select, insert on shift_cash_movements to warung_app;
grant select on shift_cash_movements to warung_system;

alter table orders add column shift_id uuid;
create index orders_shift_idx on orders (tenant_id, shift_id) where shift_id is not null;
alter table payments add column shift_id uuid;
create index payments_shift_idx on payments (tenant_id, shift_id) where shift_id is not null;
-- How a refund was given back (null before this: as the order was paid), and the shift whose
-- drawer a cash refund came out of.
alter table refunds add column method text;
alter table refunds add constraint refunds_method_check
    check (method in ('cash', 'card', 'transfer', 'qr'));
alter table refunds add column shift_id uuid;
create index refunds_shift_idx on refunds (tenant_id, shift_id) where shift_id is not null;

-- A shop that requires shifts takes cash only from someone with an open shift.
alter table sales_settings add column require_shift_for_cash boolean not null default false;
grant update (require_shift_for_cash) on sales_settings to warung_app;
