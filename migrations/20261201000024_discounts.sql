-- Discounts (#21 item 3): on a line or on the whole order, a share or an amount, each with a
-- reason code. The order's discount is shared out over its lines, so every line keeps what it
-- finally cost (tax is worked out on that) and a refund gives back the discounted price.

-- The most a cashier may take off an order, as a share of what its lines cost (basis points);
-- managers and owners are not limited. 0: cashiers give no discount.
alter table sales_settings add column cashier_discount_limit_bp integer not null default 0;
alter table sales_settings add constraint sales_settings_cashier_discount_check
    check (cashier_discount_limit_bp between 0 and 10000);
grant update (cashier_discount_limit_bp) on sales_settings to warung_app;

-- The order-level discount as asked ({"type", "rate_bp" | "amount_minor", "reason"}), and all
-- that was taken off the order (its lines' own discounts and the order's).
alter table orders add column discount jsonb;
alter table orders add column discount_minor bigint not null default 0;
alter table orders add constraint orders_discount_check check (discount_minor >= 0);

-- A line's own discount as asked, and what came off the line in all (its own and its share of
-- the order's): the line then costs unit price × quantity − discount_minor.
alter table order_lines add column discount jsonb;
alter table order_lines add column discount_minor bigint not null default 0;
alter table order_lines add constraint order_lines_discount_check
    check (discount_minor between 0 and unit_price_minor * quantity);
