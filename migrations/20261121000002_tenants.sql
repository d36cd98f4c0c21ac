-- Merchants. The tenant row is itself isolated: a tenant transaction sees only its own row.
create table tenants (
    id uuid not null,
    slug text not null,
    business_name text not null,
    locale text not null,
    country text not null,
    status text not null default 'active',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tenants_pkey primary key (id),
    constraint tenants_slug_key unique (slug),
    constraint tenants_slug_format check (slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
    constraint tenants_business_name_length check (char_length(business_name) between 1 and 200),
    constraint tenants_locale_check check (locale in ('id', 'en')),
    constraint tenants_country_check check (country ~ '^[A-Z]{2}$'),
    constraint tenants_status_check check (status in ('active', 'suspended', 'closed'))
);

alter table tenants enable row level security;
alter table tenants force row level security;
create policy tenant_self on tenants to warung_app
    using (id = warung_current_tenant())
    with check (id = warung_current_tenant());
create policy system_access on tenants to warung_system using (true) with check (true);

-- Onboarding inserts inside a transaction scoped to the new tenant's id; the slug, the id and
-- the creation time never change; tenants are never deleted by the app (closure is a status).
grant select, insert on tenants to warung_app;
grant update (business_name, locale, status, updated_at) on tenants to warung_app;
grant select on tenants to warung_system;
grant update (status, updated_at) on tenants to warung_system;

-- Login knows a slug before it knows a tenant. This function, owned by the schema owner, is the
-- app's one cross-tenant read: one slug in, that tenant's id and status out.
do $$
begin
    execute format('create policy owner_slug_lookup on tenants for select to %I using (true)', current_user);
end
$$;

create function tenant_by_slug(p_slug text) returns table (id uuid, status text)
    language sql stable security definer
    set search_path = pg_catalog, public
as $$ select t.id, t.status from public.tenants t where t.slug = p_slug $$;
revoke all on function tenant_by_slug(text) from public;
grant execute on function tenant_by_slug(text) to warung_app;
