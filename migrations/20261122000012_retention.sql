-- Retention (issue #8, DESIGN §7): how long each category of data is kept, with the legal
-- minimum below which nothing may be deleted, the default, and the most a shop may choose.
-- Policies are platform-wide data (docs/COMPLIANCE.md gives each one's reason); a shop may
-- override the days of a category within [legal_min_days, max_days].
create table retention_policies (
    category text not null,
    -- The module whose job sweeps it.
    module text not null,
    description text not null,
    legal_min_days integer not null,
    default_days integer not null,
    max_days integer not null,
    reason text not null,
    constraint retention_policies_pkey primary key (category),
    constraint retention_policies_bounds_check
        check (0 <= legal_min_days and legal_min_days <= default_days and default_days <= max_days)
);
grant select on retention_policies to warung_app, warung_system;

insert into retention_policies (category, module, description, legal_min_days, default_days, max_days, reason) values
    ('sessions', 'auth', 'Ended sessions (signed out, revoked or expired) and their refresh tokens',
     0, 30, 365,
     'Kept a month after they end to investigate account misuse; no law requires more.'),
    ('auth_tokens', 'auth', 'Used or expired email-verification and password-reset tokens (hashes only)',
     0, 7, 90,
     'Only useful while valid; a week helps answer "I never got the mail".'),
    ('invitations', 'users', 'Accepted or expired staff invitations',
     0, 30, 365,
     'The accepted account keeps its own audit trail; the invitation row adds nothing after a month.'),
    ('privacy_exports', 'users', 'Export bundles past their download link''s expiry (sealed personal data)',
     0, 0, 30,
     'Data minimisation (GDPR art. 5(1)(c), UU PDP art. 16(2)): a bundle exists only to be downloaded.'),
    ('idempotency_keys', 'orders', 'Idempotency keys of money-moving requests (fingerprints and replies)',
     1, 7, 90,
     'Clients retry within minutes; a day is the floor so that no retry of a payment is ever applied twice.'),
    ('notification_logs', 'notifications', 'Finished entries of the mail log (sent, dead, cancelled)',
     30, 180, 730,
     'Evidence that notices were sent (consent confirmations, privacy answers) for at least a month.');

create table retention_overrides (
    tenant_id uuid not null,
    category text not null,
    days integer not null,
    updated_at timestamptz not null default now(),
    constraint retention_overrides_pkey primary key (tenant_id, category),
    constraint retention_overrides_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint retention_overrides_category_fkey foreign key (category)
        references retention_policies (category)
);
select warung_enable_tenant_rls('retention_overrides');
grant select, insert, delete on retention_overrides to warung_app;
grant update (days, updated_at) on retention_overrides to warung_app;
grant select on retention_overrides to warung_system;

-- Retention jobs record, per tenant and batch, what they removed: an audit record written in
-- the same transaction as the deletion.
grant insert on outbox to warung_system;
grant delete on notification_deliveries to warung_system;
