-- A customer's previous email addresses, for 30 days (security review, #18 item 5). The old
-- address is told of every change, and an access, export or erasure request filed in that
-- time is confirmed from the address the customer had before the change: a cashier who
-- rewrites a customer's address to their own cannot confirm that customer's erasure or export
-- from their own mailbox. The address is the ciphertext copied from `customers.email` (never
-- opened), still bound to that field and the customer's key: a shred makes it noise too.
create table customer_email_changes (
    tenant_id uuid not null,
    id uuid not null,
    customer_id uuid not null,
    previous_email bytea not null,
    changed_at timestamptz not null,
    -- The staff member who made the change.
    changed_by uuid,
    constraint customer_email_changes_pkey primary key (tenant_id, id),
    constraint customer_email_changes_tenant_fkey foreign key (tenant_id) references tenants (id)
);
select warung_enable_tenant_rls('customer_email_changes');
grant select, insert, delete on customer_email_changes to warung_app;
grant select, delete on customer_email_changes to warung_system;
create index customer_email_changes_customer_idx
    on customer_email_changes (tenant_id, customer_id, changed_at);

insert into retention_policies (category, module, description, legal_min_days, default_days, max_days, reason) values
    ('email_changes', 'users', 'A customer''s previous email addresses (sealed)',
     30, 30, 90,
     'For 30 days a request to copy or erase a customer''s data is confirmed from the address they had before a change; after that the old address serves nothing.');
