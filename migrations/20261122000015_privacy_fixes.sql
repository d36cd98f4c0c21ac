-- Fixes to the privacy migrations before them. Migrations run as the schema owner, whom FORCE
-- ROW LEVEL SECURITY hides every tenant row from: a backfill must lift FORCE for its own
-- transaction (no other session sees the table open: ALTER TABLE holds its lock to the end).

-- 1. Shops created before privacy settings existed get theirs (the earlier backfill saw no
--    shop): Indonesian shops follow UU PDP, the others the GDPR.
alter table tenants no force row level security;
alter table privacy_settings no force row level security;
insert into privacy_settings (tenant_id, jurisdiction)
select id, case when country = 'ID' then 'uu_pdp' else 'gdpr' end from tenants
on conflict (tenant_id) do nothing;
alter table privacy_settings force row level security;
alter table tenants force row level security;

-- 2. A customer's last activity is their latest order, not their creation.
alter table customers no force row level security;
alter table orders no force row level security;
update customers c set last_active_at = greatest(c.created_at,
    (select max(o.created_at) from orders o where o.tenant_id = c.tenant_id and o.customer_id = c.id))
where c.last_active_at is null;
alter table orders force row level security;
alter table customers force row level security;

-- 3. The erasure job moves a request it could not finish to the back of its queue.
grant update (updated_at) on privacy_requests to warung_system;
