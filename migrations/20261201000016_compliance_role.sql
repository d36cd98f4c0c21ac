-- The compliance verifier's role (issue #16, `warung compliance verify`): it reads every table
-- and writes none. It reads tenants' rows through a select-only policy of its own
-- (`compliance_read`), beside the app's `tenant_isolation` and the workers' `system_access`;
-- row-level security stays forced, so a table that lacks the policy shows it nothing, and the
-- verifier reports such a table as an ERROR, never as a clean scan.
--
-- The policy sees every tenant when no tenant is set (the operator's run over the whole
-- deployment) and only the set tenant when one is (a shop owner's own report, whose
-- connections start with `app.tenant_id` set): the owner's report is confined by the same wall
-- as every request, not by the care of the code that builds it.
--
-- It owns nothing, cannot bypass RLS, and has no INSERT, UPDATE, DELETE or TRUNCATE anywhere.
-- Probes that must show a write being refused run as the very role they test (warung_app,
-- warung_system) in a transaction that is always rolled back.
do $$
begin
    if not exists (select from pg_roles where rolname = 'warung_compliance') then
        create role warung_compliance nologin;
    end if;
end
$$;

grant usage on schema public to warung_compliance;
grant select on all tables in schema public to warung_compliance;
-- Tables the schema owner creates later (new migrations, audit partitions) are readable too.
alter default privileges in schema public grant select on tables to warung_compliance;

-- Its policy on every table that has row-level security today.
do $$
declare
    tbl regclass;
    tenant_column text;
begin
    for tbl, tenant_column in
        select c.oid::regclass,
               case when c.relname = 'tenants' then 'id'
                    when exists (select 1 from pg_attribute a where a.attrelid = c.oid
                                 and a.attname = 'tenant_id' and not a.attisdropped) then 'tenant_id'
               end
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relrowsecurity
    loop
        execute format(
            'create policy compliance_read on %s for select to warung_compliance using (%s)', tbl,
            case when tenant_column is null then 'true'
                 else format('warung_current_tenant() is null or %I = warung_current_tenant()',
                             tenant_column)
            end);
    end loop;
end
$$;

-- ... and on every tenant table made from now on.
create or replace function warung_enable_tenant_rls(tbl regclass) returns void
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
    execute format(
        'create policy compliance_read on %s for select to warung_compliance '
        'using (warung_current_tenant() is null or tenant_id = warung_current_tenant())', tbl);
end
$$;
revoke all on function warung_enable_tenant_rls(regclass) from public;
