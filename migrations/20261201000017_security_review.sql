-- Fixes from the security review (#18): outbound mail a shop cannot turn against strangers,
-- and audit dead letters that name their tenant.

-- A purpose whose grant, when staff record it for a customer, takes effect only once the
-- customer confirms it from their own mailbox (double opt-in): marketing mail.
alter table privacy_purposes add column double_opt_in boolean not null default false;
update privacy_purposes set double_opt_in = true where audience = 'customer' and code = 'marketing';

-- A grant recorded on the customer's behalf that waits for their confirmation is evidence of
-- what staff said, not consent: it does not count until a `confirmation` record follows it.
alter table consent_records add column awaiting_confirmation boolean not null default false;
alter table consent_records drop constraint consent_records_method_check;
alter table consent_records add constraint consent_records_method_check
    check (method in ('signup', 'invitation', 'checkout', 'settings', 'api', 'request', 'confirmation'));
alter table consent_records add constraint consent_records_awaiting_check
    check (not awaiting_confirmation or (granted and method <> 'confirmation'));

-- The mailed single-use links that confirm such a grant (users). Only the token's hash is kept.
create table consent_confirmations (
    tenant_id uuid not null,
    id uuid not null,
    subject_id uuid not null,
    purpose text not null,
    token_hash bytea not null,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    confirmed_at timestamptz,
    constraint consent_confirmations_pkey primary key (tenant_id, id),
    constraint consent_confirmations_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint consent_confirmations_token_key unique (tenant_id, token_hash)
);
select warung_enable_tenant_rls('consent_confirmations');
grant select, insert, update, delete on consent_confirmations to warung_app;
grant select, delete on consent_confirmations to warung_system;
create index consent_confirmations_subject_idx on consent_confirmations (tenant_id, subject_id, purpose);

-- Outbound quotas count what each shop and each recipient was sent lately.
create index notification_deliveries_sent_idx on notification_deliveries (tenant_id, sent_at)
    where sent_at is not null;
create index notification_deliveries_recipient_sent_idx
    on notification_deliveries (tenant_id, recipient_id, template, sent_at);

-- Double opt-in links are swept like the other single-use tokens: the consent record the
-- confirmation wrote is the evidence; the link adds nothing once used or expired.
insert into retention_policies (category, module, description, legal_min_days, default_days, max_days, reason) values
    ('consent_confirmations', 'users', 'Used or expired double opt-in links (hashes only)',
     0, 30, 365,
     'The confirmation is kept as a consent record; the link row is only useful while it is valid.');

-- Audit dead letters name their tenant, so that verifying a tenant's chain reports records of
-- theirs that never made it into it (#18 item 9). Messages too broken to name one keep null.
alter table audit_dead_letters add column tenant_id uuid;
update audit_dead_letters set tenant_id = message_key::uuid
    where message_key ~ '^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$';
select warung_enable_tenant_rls('audit_dead_letters');
grant select on audit_dead_letters to warung_app;
create index audit_dead_letters_tenant_idx on audit_dead_letters (tenant_id);
