-- Commerce: the catalog and its stock ledger (products), customers (users), POS orders with
-- payments, refunds and idempotency keys (orders). Tables of one module never reference another
-- module's tables: an order line names its product by id and keeps a copy of what it sold.

-- ---------------------------------------------------------------------------------------------
-- Catalog (products).
create table catalog_settings (
    tenant_id uuid not null,
    -- Sell beyond what is on hand (on_hand goes negative); off by default.
    allow_backorders boolean not null default false,
    updated_at timestamptz not null,
    constraint catalog_settings_pkey primary key (tenant_id),
    constraint catalog_settings_tenant_fkey foreign key (tenant_id) references tenants (id)
);
select warung_enable_tenant_rls('catalog_settings');
grant select, insert on catalog_settings to warung_app;
grant update (allow_backorders, updated_at) on catalog_settings to warung_app;
grant select on catalog_settings to warung_system;

create table categories (
    tenant_id uuid not null,
    id uuid not null,
    name text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    constraint categories_pkey primary key (tenant_id, id),
    constraint categories_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint categories_name_check check (length(name) between 1 and 100)
);
select warung_enable_tenant_rls('categories');
create unique index categories_name_key on categories (tenant_id, lower(name));
grant select, insert, delete on categories to warung_app;
grant update (name, updated_at) on categories to warung_app;
grant select on categories to warung_system;

create table products (
    tenant_id uuid not null,
    id uuid not null,
    name text not null,
    sku text not null,
    category_id uuid,
    price_minor bigint not null,
    currency text not null,
    -- Moved only together with a stock_movements row (products::stock).
    on_hand bigint not null,
    status text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    constraint products_pkey primary key (tenant_id, id),
    constraint products_tenant_fkey foreign key (tenant_id) references tenants (id),
    -- No action on delete: a category in use cannot be deleted (409 category_in_use).
    constraint products_category_fkey foreign key (tenant_id, category_id) references categories (tenant_id, id),
    constraint products_sku_key unique (tenant_id, sku),
    constraint products_price_check check (price_minor >= 0),
    constraint products_currency_check check (currency ~ '^[A-Z]{3}$'),
    constraint products_status_check check (status in ('active', 'archived')),
    constraint products_name_check check (length(name) between 1 and 200),
    constraint products_sku_check check (length(sku) between 1 and 64)
);
select warung_enable_tenant_rls('products');
create index products_category_idx on products (tenant_id, category_id, id);
grant select, insert on products to warung_app;
grant update (name, sku, category_id, price_minor, currency, on_hand, status, updated_at) on products to warung_app;
grant select on products to warung_system;

-- The stock ledger: append-only. on_hand of a product is the sum of its deltas.
create table stock_movements (
    tenant_id uuid not null,
    id uuid not null,
    product_id uuid not null,
    delta bigint not null,
    on_hand_after bigint not null,
    reason text not null,
    -- What caused it: an order id for sale, refund and cancellation.
    reference uuid,
    actor_id uuid,
    created_at timestamptz not null,
    constraint stock_movements_pkey primary key (tenant_id, id),
    constraint stock_movements_product_fkey foreign key (tenant_id, product_id) references products (tenant_id, id),
    constraint stock_movements_reason_check
        check (reason in ('initial', 'sale', 'refund', 'cancellation', 'adjustment', 'count'))
);
select warung_enable_tenant_rls('stock_movements');
create index stock_movements_product_idx on stock_movements (tenant_id, product_id, id);
grant select, insert on stock_movements to warung_app;
grant select on stock_movements to warung_system;

-- ---------------------------------------------------------------------------------------------
-- Customers (users): the merchant's data subjects. Every person field is sealed under the
-- customer's own key; email and phone are found through blind indexes.
create table customers (
    tenant_id uuid not null,
    id uuid not null,
    full_name bytea not null,
    email bytea,
    email_index bytea,
    phone bytea,
    phone_index bytea,
    address bytea,
    locale text not null,
    -- Created at the till for one order, without an account of their own.
    guest boolean not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    constraint customers_pkey primary key (tenant_id, id),
    constraint customers_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint customers_locale_check check (locale in ('id', 'en')),
    constraint customers_email_check check ((email is null) = (email_index is null)),
    constraint customers_phone_check check ((phone is null) = (phone_index is null))
);
select warung_enable_tenant_rls('customers');
create unique index customers_email_key on customers (tenant_id, email_index) where email_index is not null;
create index customers_phone_idx on customers (tenant_id, phone_index) where phone_index is not null;
grant select, insert on customers to warung_app;
grant update (full_name, email, email_index, phone, phone_index, address, locale, updated_at) on customers to warung_app;
grant select on customers to warung_system;

-- ---------------------------------------------------------------------------------------------
-- Orders (orders). Amounts in minor units of the order's one currency.
create table orders (
    tenant_id uuid not null,
    id uuid not null,
    status text not null,
    cashier_id uuid not null,
    customer_id uuid,
    currency text not null,
    total_minor bigint not null,
    paid_minor bigint not null default 0,
    refunded_minor bigint not null default 0,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    paid_at timestamptz,
    cancelled_at timestamptz,
    constraint orders_pkey primary key (tenant_id, id),
    constraint orders_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint orders_status_check
        check (status in ('open', 'paid', 'partially_refunded', 'refunded', 'cancelled')),
    constraint orders_amounts_check
        check (total_minor >= 0 and paid_minor between 0 and total_minor
               and refunded_minor between 0 and paid_minor)
);
select warung_enable_tenant_rls('orders');
create index orders_customer_idx on orders (tenant_id, customer_id, id desc) where customer_id is not null;
grant select, insert on orders to warung_app;
grant update (status, paid_minor, refunded_minor, updated_at, paid_at, cancelled_at) on orders to warung_app;
grant select on orders to warung_system;

-- What was sold, as it was at order time (name, SKU and price copied from the catalog).
create table order_lines (
    tenant_id uuid not null,
    order_id uuid not null,
    line_no integer not null,
    product_id uuid not null,
    name text not null,
    sku text not null,
    unit_price_minor bigint not null,
    quantity bigint not null,
    refunded_quantity bigint not null default 0,
    constraint order_lines_pkey primary key (tenant_id, order_id, line_no),
    constraint order_lines_order_fkey foreign key (tenant_id, order_id) references orders (tenant_id, id),
    constraint order_lines_quantity_check
        check (quantity > 0 and refunded_quantity between 0 and quantity and unit_price_minor >= 0)
);
select warung_enable_tenant_rls('order_lines');
grant select, insert on order_lines to warung_app;
grant update (refunded_quantity) on order_lines to warung_app;
grant select on order_lines to warung_system;

create table payments (
    tenant_id uuid not null,
    id uuid not null,
    order_id uuid not null,
    method text not null,
    -- What went towards the order; for cash, tendered = amount + change.
    amount_minor bigint not null,
    tendered_minor bigint not null,
    change_minor bigint not null,
    cashier_id uuid not null,
    created_at timestamptz not null,
    constraint payments_pkey primary key (tenant_id, id),
    constraint payments_order_fkey foreign key (tenant_id, order_id) references orders (tenant_id, id),
    constraint payments_method_check check (method in ('cash', 'card', 'transfer', 'qr')),
    constraint payments_amount_check
        check (amount_minor >= 0 and change_minor >= 0 and tendered_minor > 0
               and tendered_minor = amount_minor + change_minor)
);
select warung_enable_tenant_rls('payments');
create index payments_order_idx on payments (tenant_id, order_id);
grant select, insert on payments to warung_app;
grant select on payments to warung_system;

create table refunds (
    tenant_id uuid not null,
    id uuid not null,
    order_id uuid not null,
    amount_minor bigint not null,
    reason text not null,
    restocked boolean not null,
    actor_id uuid not null,
    created_at timestamptz not null,
    constraint refunds_pkey primary key (tenant_id, id),
    constraint refunds_order_fkey foreign key (tenant_id, order_id) references orders (tenant_id, id),
    -- Zero for a line sold at price 0.
    constraint refunds_amount_check check (amount_minor >= 0),
    constraint refunds_reason_check check (reason in ('customer_return', 'damaged', 'wrong_item', 'other'))
);
select warung_enable_tenant_rls('refunds');
create index refunds_order_idx on refunds (tenant_id, order_id);
grant select, insert on refunds to warung_app;
grant select on refunds to warung_system;

create table refund_lines (
    tenant_id uuid not null,
    refund_id uuid not null,
    line_no integer not null,
    quantity bigint not null,
    amount_minor bigint not null,
    constraint refund_lines_pkey primary key (tenant_id, refund_id, line_no),
    constraint refund_lines_refund_fkey foreign key (tenant_id, refund_id) references refunds (tenant_id, id),
    constraint refund_lines_quantity_check check (quantity > 0 and amount_minor >= 0)
);
select warung_enable_tenant_rls('refund_lines');
grant select, insert on refund_lines to warung_app;
grant select on refund_lines to warung_system;

-- Idempotency-Key: the first response to a key is the answer to every retry with the same
-- request; the same key with another request is refused. Rows are inserted first in the
-- request's own transaction, so a concurrent retry waits for the first to commit or roll back.
create table idempotency_keys (
    tenant_id uuid not null,
    key text not null,
    -- The operation and its target, e.g. `POST /orders`, `POST /orders/{id}/payments`.
    scope text not null,
    request_hash bytea not null,
    response_status smallint,
    response_body jsonb,
    created_at timestamptz not null,
    constraint idempotency_keys_pkey primary key (tenant_id, key),
    constraint idempotency_keys_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint idempotency_keys_key_check check (length(key) between 1 and 255)
);
select warung_enable_tenant_rls('idempotency_keys');
grant select, insert on idempotency_keys to warung_app;
grant update (response_status, response_body) on idempotency_keys to warung_app;
grant select, delete on idempotency_keys to warung_system;
