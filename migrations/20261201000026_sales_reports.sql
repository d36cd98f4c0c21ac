-- Sales reports (#21 item 6): read from what orders stored. A line keeps the category its
-- product was in when it was sold, so a report never depends on today's catalog; the indexes
-- serve a report's date range.
alter table order_lines add column category_id uuid;
create index orders_receipt_day_idx on orders (tenant_id, receipt_day)
    where receipt_day is not null;
create index payments_created_idx on payments (tenant_id, created_at);
create index refunds_created_idx on refunds (tenant_id, created_at);
