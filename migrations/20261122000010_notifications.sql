-- Notifications (issue #7): the durable delivery log. One row per (event, template), created
-- idempotently by the intake (a redelivered event finds its row), then sent, retried with
-- backoff, or marked dead or cancelled by the sender. The log holds no address and no body:
-- the recipient is a data subject id whose address is opened at send time, and `context`
-- holds the event's PII-free payload (a token in it is sealed under the recipient's key).
create table notification_deliveries (
    tenant_id uuid not null,
    id uuid not null,
    event_id uuid not null,
    event_type text not null,
    template text not null,
    recipient_kind text not null,
    recipient_id uuid not null,
    context jsonb not null,
    status text not null default 'pending',
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    -- A claim: its sender's token and how long it holds. Only the holder of the token records
    -- the outcome; a retry by staff or a takeover after expiry makes a new token.
    lease_token uuid,
    lease_until timestamptz,
    -- A category and an SMTP code at most ("smtp_transient 451"), never a server's message:
    -- those quote addresses.
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    sent_at timestamptz,
    constraint notification_deliveries_pkey primary key (tenant_id, id),
    constraint notification_deliveries_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint notification_deliveries_event_template_key unique (tenant_id, event_id, template),
    constraint notification_deliveries_status_check
        check (status in ('pending', 'sending', 'sent', 'dead', 'cancelled')),
    constraint notification_deliveries_recipient_kind_check
        check (recipient_kind in ('staff', 'customer')),
    constraint notification_deliveries_attempts_check check (attempts >= 0)
);
-- The sender's queue: due mail and mail whose sender's lease ran out.
create index notification_deliveries_due_idx on notification_deliveries (next_attempt_at)
    where status in ('pending', 'sending');
-- Cancelling a subject's pending mail at erasure.
create index notification_deliveries_recipient_idx on notification_deliveries (tenant_id, recipient_id)
    where status in ('pending', 'sending');

select warung_enable_tenant_rls('notification_deliveries');
-- The owner's view and retry (tenant transactions), and the cancellation at erasure.
grant select on notification_deliveries to warung_app;
grant update (status, attempts, next_attempt_at, lease_token, lease_until, last_error, updated_at)
    on notification_deliveries to warung_app;
-- The intake and the sender work across tenants (system role).
grant select, insert on notification_deliveries to warung_system;
grant update (status, attempts, next_attempt_at, lease_token, lease_until, last_error, updated_at, sent_at)
    on notification_deliveries to warung_system;

-- Events the intake could not turn into mail (a producer bug), with the reason. Nothing is
-- dropped silently. Payloads carry no plaintext PII by construction (DESIGN §4).
create table notification_dead_letters (
    id bigint generated always as identity,
    topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    message_key text,
    reason text not null,
    payload bytea,
    recorded_at timestamptz not null default now(),
    constraint notification_dead_letters_pkey primary key (id),
    -- A message read again (no offset commit before a crash) is recorded once.
    constraint notification_dead_letters_message_key unique (topic, kafka_partition, kafka_offset)
);
grant select, insert on notification_dead_letters to warung_system;
