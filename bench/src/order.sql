-- The SQL of one `POST /api/v1/orders` with two lines and no customer, statement for statement
-- as the app runs it (orders::api::create_order), for pgbench -M prepared (variables become
-- parameters). Variables (-D): tenant, cashier, p1, p2. Ids are random v4 UUIDs (the app uses v7).
\set k random(1, 9000000000000000)
SELECT gen_random_uuid() AS oid, gen_random_uuid() AS m1, gen_random_uuid() AS m2,
       gen_random_uuid() AS e1, gen_random_uuid() AS e2, gen_random_uuid() AS e3,
       gen_random_uuid() AS e4 \gset
BEGIN;
SELECT set_config('app.tenant_id', :tenant, true);
INSERT INTO idempotency_keys (tenant_id, key, scope, request_hash, created_at)
  VALUES (:tenant, 'pgbench-' || :k::text, 'POST /orders', '\x00', now())
  ON CONFLICT (tenant_id, key) DO NOTHING RETURNING key;
SELECT id, name, sku, price_minor, currency, status, on_hand FROM products
  WHERE id = ANY(ARRAY[:p1, :p2]::uuid[]) ORDER BY id FOR UPDATE;
SELECT allow_backorders FROM catalog_settings;
UPDATE products SET on_hand = on_hand + -1, updated_at = now()
  WHERE id = :p1 AND (on_hand + -1 >= 0 OR false) RETURNING on_hand;
INSERT INTO stock_movements (tenant_id, id, product_id, delta, on_hand_after, reason, reference, actor_id, created_at)
  VALUES (:tenant, :m1, :p1, -1, 0, 'sale', :oid, :cashier, now()) RETURNING created_at;
INSERT INTO outbox (tenant_id, event_id, topic, event_type, schema_version, actor, request_id, payload)
  VALUES (:tenant, :e1, 'warung.audit.v1', 'stock.moved', 1, '{"kind": "user"}', 'pgbench',
          '{"action": "stock.moved", "resource": {"kind": "product"}, "changed_fields": ["on_hand"], "details": {"delta": -1, "reason": "sale"}}');
UPDATE products SET on_hand = on_hand + -1, updated_at = now()
  WHERE id = :p2 AND (on_hand + -1 >= 0 OR false) RETURNING on_hand;
INSERT INTO stock_movements (tenant_id, id, product_id, delta, on_hand_after, reason, reference, actor_id, created_at)
  VALUES (:tenant, :m2, :p2, -1, 0, 'sale', :oid, :cashier, now()) RETURNING created_at;
INSERT INTO outbox (tenant_id, event_id, topic, event_type, schema_version, actor, request_id, payload)
  VALUES (:tenant, :e2, 'warung.audit.v1', 'stock.moved', 1, '{"kind": "user"}', 'pgbench',
          '{"action": "stock.moved", "resource": {"kind": "product"}, "changed_fields": ["on_hand"], "details": {"delta": -1, "reason": "sale"}}');
INSERT INTO orders (tenant_id, id, status, cashier_id, customer_id, currency, total_minor, created_at, updated_at)
  VALUES (:tenant, :oid, 'open', :cashier, NULL, 'IDR', 36000, now(), now())
  RETURNING id, status, cashier_id, customer_id, currency, total_minor, paid_minor, refunded_minor,
            created_at, paid_at, cancelled_at;
INSERT INTO order_lines (tenant_id, order_id, line_no, product_id, name, sku, unit_price_minor, quantity)
  SELECT :tenant::uuid, :oid::uuid, * FROM unnest(ARRAY[1, 2]::int4[], ARRAY[:p1, :p2]::uuid[],
    ARRAY['Kopi Susu', 'Kopi Susu']::text[], ARRAY['A', 'B']::text[], ARRAY[18000, 18000]::int8[], ARRAY[1, 1]::int8[]);
INSERT INTO outbox (tenant_id, event_id, topic, event_type, schema_version, actor, request_id, payload)
  VALUES (:tenant, :e3, 'warung.audit.v1', 'order.created', 1, '{"kind": "user"}', 'pgbench',
          '{"action": "order.created", "resource": {"kind": "order"}, "changed_fields": ["status", "customer_id", "currency", "total_minor", "lines"], "details": {"total_minor": 36000, "currency": "IDR", "lines": 2}}');
INSERT INTO outbox (tenant_id, event_id, topic, event_type, schema_version, actor, request_id, payload)
  VALUES (:tenant, :e4, 'warung.events.v1', 'order.created', 1, '{"kind": "user"}', 'pgbench',
          '{"order_id": "x", "currency": "IDR", "total_minor": 36000, "lines": [{"quantity": 1, "unit_price_minor": 18000}, {"quantity": 1, "unit_price_minor": 18000}]}');
UPDATE idempotency_keys SET response_status = 201, response_body = '{"id": "x", "status": "open"}'
  WHERE key = 'pgbench-' || :k::text;
COMMIT;
