-- Receipt numbers (#21 item 4): each paid order gets a human number from a gapless sequence
-- per shop and day, the day counted in the shop's time zone (tenants.time_zone), assigned in
-- the transaction that settles the order. The counter row is locked by that transaction, so
-- concurrent payments take consecutive numbers and a rolled-back payment gives its number back.

-- Prefix, the date as YYYYMMDD, an optional separator and 3 to 6 Ns for the zero-padded day
-- sequence: 'INV/YYYYMMDD/NNNN' gives INV/20261201/0001.
alter table sales_settings add column receipt_number_format text not null
    default 'INV/YYYYMMDD/NNNN';
alter table sales_settings add constraint sales_settings_receipt_number_format_check
    check (receipt_number_format ~ '^[A-Za-z0-9/_.-]{0,16}YYYYMMDD[/_.-]?N{3,6}$');
grant update (receipt_number_format) on sales_settings to warung_app;

create table receipt_counters (
    tenant_id uuid not null,
    day date not null,
    last_no integer not null,
    constraint receipt_counters_pkey primary key (tenant_id, day),
    constraint receipt_counters_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint receipt_counters_last_no_check check (last_no >= 1)
);
select warung_enable_tenant_rls('receipt_counters');
grant select, insert on receipt_counters to warung_app;
grant update (last_no) on receipt_counters to warung_app;
grant select on receipt_counters to warung_system;

alter table orders add column receipt_no text;
-- The shop's local date the number belongs to.
alter table orders add column receipt_day date;
create unique index orders_receipt_no_key on orders (tenant_id, receipt_no)
    where receipt_no is not null;
grant update (receipt_no, receipt_day) on orders to warung_app;
