-- Transactional outbox (DESIGN §4). Every mutation writes its audit record (and any domain event)
-- here in the SAME transaction as the change; the relay publishes rows to Kafka and marks them
-- sent only after the broker acknowledged. Nothing is lost between the database and Kafka.
create table outbox (
    tenant_id uuid not null,
    event_id uuid not null,
    seq bigint generated always as identity,
    topic text not null,
    event_type text not null,
    schema_version smallint not null,
    actor jsonb not null,
    occurred_at timestamptz not null default now(),
    request_id text,
    payload jsonb not null,
    published_at timestamptz,
    constraint outbox_pkey primary key (tenant_id, event_id),
    constraint outbox_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint outbox_seq_key unique (seq),
    constraint outbox_topic_check check (topic in ('warung.audit.v1', 'warung.events.v1'))
);
-- The relay's queue: unsent rows in commit-ish order.
create index outbox_unsent_idx on outbox (seq) where published_at is null;
-- Pruning published rows past retention.
create index outbox_published_idx on outbox (published_at) where published_at is not null;

select warung_enable_tenant_rls('outbox');
-- The app only appends; it never reads, changes or deletes outbox rows.
grant insert on outbox to warung_app;
-- The relay (system role) claims, marks and prunes.
grant select, delete on outbox to warung_system;
grant update (published_at) on outbox to warung_system;

-- Wake relays at once instead of polling (they also poll slowly, in case a notification is lost).
create function outbox_notify() returns trigger
    language plpgsql
as $$
begin
    perform pg_notify('warung_outbox', '');
    return null;
end
$$;
create trigger outbox_notify after insert on outbox
    for each statement execute function outbox_notify();
