-- Roles and the tenancy pattern every tenant-owned table follows.
--
-- warung_app     request handlers: owns nothing, row-level security applies, only the grants
--                each table gives it.
-- warung_system  cross-tenant workers (outbox relay, sinks, retention): never used by a handler.
-- The role running migrations owns every object. Login roles with passwords are created by the
-- operator (scripts/stack locally); these statements only make sure the roles exist.
do $$
begin
    if not exists (select from pg_roles where rolname = 'warung_app') then
        create role warung_app nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'warung_system') then
        create role warung_system nologin;
    end if;
end
$$;

revoke create on schema public from public;
grant usage on schema public to warung_app, warung_system;

-- The tenant of the current transaction, set by the app with
-- `select set_config('app.tenant_id', $1, true)`; NULL when unset, so every policy compares
-- against NULL and matches nothing. (After a local setting ends Postgres leaves '' behind,
-- hence the nullif.)
create function warung_current_tenant() returns uuid
    language sql stable parallel safe
as $$ select nullif(current_setting('app.tenant_id', true), '')::uuid $$;

-- The pattern for a tenant table: `tenant_id uuid not null` leading the primary key and every
-- foreign key, then `select warung_enable_tenant_rls('the_table');`, then explicit grants to
-- warung_app for exactly what it needs (and to warung_system for what its workers need).
create function warung_enable_tenant_rls(tbl regclass) returns void
    language plpgsql
as $$
begin
    execute format('alter table %s enable row level security', tbl);
    execute format('alter table %s force row level security', tbl);
    execute format(
        'create policy tenant_isolation on %s to warung_app '
        'using (tenant_id = warung_current_tenant()) '
        'with check (tenant_id = warung_current_tenant())', tbl);
    execute format(
        'create policy system_access on %s to warung_system using (true) with check (true)', tbl);
end
$$;
revoke all on function warung_enable_tenant_rls(regclass) from public;
