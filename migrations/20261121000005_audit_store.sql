-- The audit store (DESIGN §5): every audit record from `warung.audit.v1`, append-only,
-- partitioned by month on occurred_at (plus DEFAULT for anything outside existing partitions),
-- and hash-chained per tenant so an edit is detectable.
create table audit_events (
    tenant_id uuid not null,
    event_id uuid not null,
    -- Position in the tenant's chain: 1, 2, 3, ... in the order the sink stored them.
    chain_seq bigint not null,
    occurred_at timestamptz not null,
    recorded_at timestamptz not null default now(),
    event_type text not null,
    actor jsonb not null,
    actor_id text,
    resource_kind text,
    resource_id text,
    request_id text,
    -- The envelope as received (ids and field names only: no plaintext PII by construction).
    envelope jsonb not null,
    prev_hash bytea not null,
    hash bytea not null,
    constraint audit_events_pkey primary key (tenant_id, event_id, occurred_at)
) partition by range (occurred_at);

create table audit_events_default partition of audit_events default;

create index audit_events_time_brin on audit_events using brin (occurred_at);
create index audit_events_resource_idx on audit_events (tenant_id, resource_kind, resource_id);
create index audit_events_actor_idx on audit_events (tenant_id, actor_id);
create index audit_events_chain_idx on audit_events (tenant_id, chain_seq);

-- RLS on the parent governs queries through it; partitions are isolated too, in case anyone is
-- ever granted one directly.
select warung_enable_tenant_rls('audit_events');
select warung_enable_tenant_rls('audit_events_default');

-- Append-only: INSERT and SELECT, nothing else, for both application roles.
grant select, insert on audit_events to warung_app, warung_system;

create function audit_events_append_only() returns trigger
    language plpgsql
as $$
begin
    raise exception 'audit_events is append-only (% refused)', tg_op
        using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_events_append_only before update or delete on audit_events
    for each row execute function audit_events_append_only();
create trigger audit_events_no_truncate before truncate on audit_events
    for each statement execute function audit_events_append_only();

-- The head of each tenant's chain: the sink extends it under a row lock.
create table audit_chain_heads (
    tenant_id uuid not null,
    chain_seq bigint not null,
    hash bytea not null,
    constraint audit_chain_heads_pkey primary key (tenant_id),
    constraint audit_chain_heads_tenant_fkey foreign key (tenant_id) references tenants (id)
);
select warung_enable_tenant_rls('audit_chain_heads');
grant select on audit_chain_heads to warung_app;
grant select, insert on audit_chain_heads to warung_system;
grant update (chain_seq, hash) on audit_chain_heads to warung_system;

-- Messages the sink could not parse or store, with the reason: never dropped silently.
-- Not tenant-scoped: an unparseable message may name no tenant. Operators only.
create table audit_dead_letters (
    id bigint generated always as identity,
    received_at timestamptz not null default now(),
    topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    message_key text,
    reason text not null,
    payload bytea,
    constraint audit_dead_letters_pkey primary key (id)
);
grant select, insert on audit_dead_letters to warung_system;
