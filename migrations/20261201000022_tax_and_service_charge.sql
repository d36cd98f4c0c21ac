-- The till's money, part 1 (#21): tax and service charge. The rules are pure code in
-- orders::money; the shop's settings are copied onto each order (`orders.pricing`), and every
-- line keeps what it cost before and after tax, so a later change of settings never alters a
-- past order. Orders from before this migration read as sold untaxed.

-- A shop's sales settings (orders module). No row: no tax, no service charge.
create table sales_settings (
    tenant_id uuid not null,
    -- Catalog prices already include the tax (the usual way in Indonesian shops).
    prices_include_tax boolean not null,
    -- The rate `standard` products are taxed at (e.g. PPN, 1100 bp); both null: no tax.
    tax_rate_name text,
    tax_rate_bp integer,
    -- Basis points of each line's net; null: no service charge.
    service_charge_bp integer,
    -- The service charge is itself taxed at the default rate.
    service_charge_taxable boolean not null,
    updated_at timestamptz not null,
    constraint sales_settings_pkey primary key (tenant_id),
    constraint sales_settings_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint sales_settings_tax_rate_check
        check ((tax_rate_name is null) = (tax_rate_bp is null) and tax_rate_bp between 0 and 10000),
    constraint sales_settings_service_charge_check check (service_charge_bp between 1 and 10000)
);
select warung_enable_tenant_rls('sales_settings');
grant select, insert on sales_settings to warung_app;
grant update (prices_include_tax, tax_rate_name, tax_rate_bp, service_charge_bp,
              service_charge_taxable, updated_at) on sales_settings to warung_app;
grant select on sales_settings to warung_system;

-- Whether a product is taxed at the shop's default rate (products module).
alter table products add column tax_category text not null default 'standard';
alter table products add constraint products_tax_category_check
    check (tax_category in ('standard', 'exempt'));
grant update (tax_category) on products to warung_app;

-- The rule an order was priced by (orders::money::Pricing as JSON), and its sums.
alter table orders add column pricing jsonb;
alter table orders add column service_charge_minor bigint not null default 0;
alter table orders add column tax_minor bigint not null default 0;
alter table orders add constraint orders_charges_check
    check (service_charge_minor >= 0 and tax_minor >= 0);

-- Each line as billed: the rate its goods were taxed at (null: none), its net (before tax and
-- service charge), the tax, the service charge and the service charge's tax. The line's total
-- is the sum of the four.
alter table order_lines add column tax_category text not null default 'standard';
alter table order_lines add column tax_rate_name text;
alter table order_lines add column tax_rate_bp integer;
alter table order_lines add column net_minor bigint;
alter table order_lines add column tax_minor bigint not null default 0;
alter table order_lines add column service_charge_minor bigint not null default 0;
alter table order_lines add column service_tax_minor bigint not null default 0;
-- The lines sold so far, untaxed: their net is what they cost. (Forced RLS hides every row
-- from the schema owner; lifted for this one statement, inside the migration's transaction.)
alter table order_lines no force row level security;
update order_lines set net_minor = unit_price_minor * quantity;
alter table order_lines force row level security;
alter table order_lines alter column net_minor set not null;
alter table order_lines add constraint order_lines_money_check
    check (net_minor >= 0 and tax_minor >= 0 and service_charge_minor >= 0
           and service_tax_minor >= 0
           and (tax_rate_bp is null) = (tax_rate_name is null)
           and tax_category in ('standard', 'exempt'));

-- Per order and rate: the taxable base and the tax (goods and taxed service charge together).
create table order_tax_lines (
    tenant_id uuid not null,
    order_id uuid not null,
    name text not null,
    rate_bp integer not null,
    taxable_base_minor bigint not null,
    tax_minor bigint not null,
    constraint order_tax_lines_pkey primary key (tenant_id, order_id, name),
    constraint order_tax_lines_order_fkey foreign key (tenant_id, order_id)
        references orders (tenant_id, id),
    constraint order_tax_lines_amounts_check check (taxable_base_minor >= 0 and tax_minor >= 0)
);
select warung_enable_tenant_rls('order_tax_lines');
grant select, insert on order_tax_lines to warung_app;
grant select on order_tax_lines to warung_system;

-- What each refunded line gave back of the tax (goods and service charge), within amount_minor.
alter table refund_lines add column tax_minor bigint not null default 0;
alter table refund_lines add constraint refund_lines_tax_check
    check (tax_minor between 0 and amount_minor);
