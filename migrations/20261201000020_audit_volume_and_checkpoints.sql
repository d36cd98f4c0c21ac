-- Audit volume and verification cost (security review, #18 item 10).

-- One `pii.accessed` record per page lists the people it showed in `payload.subjects`. The list
-- lives only in the hashed envelope; this index, derived from it, lets a person's export and the
-- trail filter find page records by any one of them without a column that could disagree.
create function audit_subjects(envelope jsonb) returns text[]
    language sql immutable parallel safe strict
    set search_path = pg_catalog
as $$
    select coalesce(array_agg(subject), '{}')
    from jsonb_array_elements_text(
        case jsonb_typeof(envelope -> 'payload' -> 'subjects')
            when 'array' then envelope -> 'payload' -> 'subjects'
            else '[]'::jsonb
        end) as subject
$$;

create index audit_events_subjects_idx on audit_events using gin (audit_subjects(envelope));

-- Where each tenant's chain was last verified intact, by the background job (`audit.verify`):
-- the request path and the next run start here instead of at the first link. `full_at` is the
-- last time the whole chain was walked from its first link (the job does that every
-- `audit.full_verify_every_days`), which is what catches a record changed before a checkpoint.
create table audit_chain_checkpoints (
    tenant_id uuid not null,
    chain_seq bigint not null,
    hash bytea not null,
    verified_at timestamptz not null,
    full_at timestamptz not null,
    constraint audit_chain_checkpoints_pkey primary key (tenant_id),
    constraint audit_chain_checkpoints_tenant_fkey foreign key (tenant_id) references tenants (id)
);
select warung_enable_tenant_rls('audit_chain_checkpoints');
grant select on audit_chain_checkpoints to warung_app;
grant select, insert, update on audit_chain_checkpoints to warung_system;
