-- Data-subject requests (issue #8): access, export, rectification, restriction, withdrawal and
-- erasure, each with its legal due time, identity check by an emailed single-use token, and the
-- export bundles they produce. Owned by `users`.

-- Per-tenant privacy settings: which law's clock applies and how long an erasure waits (a
-- grace period in which the person can still change their mind by writing to the shop).
create table privacy_settings (
    tenant_id uuid not null,
    -- `uu_pdp` (Indonesia, UU No. 27/2022) or `gdpr`.
    jurisdiction text not null,
    erasure_grace_hours integer not null default 0,
    updated_at timestamptz not null default now(),
    constraint privacy_settings_pkey primary key (tenant_id),
    constraint privacy_settings_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint privacy_settings_jurisdiction_check check (jurisdiction in ('uu_pdp', 'gdpr')),
    -- At most 30 days: a grace period must not become a way to miss the legal deadline.
    constraint privacy_settings_grace_check check (erasure_grace_hours between 0 and 720)
);
select warung_enable_tenant_rls('privacy_settings');
grant select, insert on privacy_settings to warung_app;
grant update (jurisdiction, erasure_grace_hours, updated_at) on privacy_settings to warung_app;
grant select on privacy_settings to warung_system;

-- Shops that exist already: Indonesian ones follow UU PDP, the others the GDPR.
insert into privacy_settings (tenant_id, jurisdiction)
select id, case when country = 'ID' then 'uu_pdp' else 'gdpr' end from tenants;

create table privacy_requests (
    tenant_id uuid not null,
    id uuid not null,
    type text not null,
    subject_kind text not null,
    subject_id uuid not null,
    -- How it came in: `public` (the person, by email), `self` (a signed-in staff member about
    -- themselves), `staff` (staff recording a customer's request).
    channel text not null,
    -- Who filed it when staff did (a staff user id), for the trail; null otherwise.
    filed_by uuid,
    jurisdiction text not null,
    -- awaiting_verification → (token) → completed | in_progress (rectification, by staff)
    --                                  | scheduled → erasing → completed (erasure)
    -- expired (token never used), rejected (e.g. the last owner cannot be erased).
    status text not null,
    received_at timestamptz not null,
    due_at timestamptz not null,
    verified_at timestamptz,
    -- Erasure: when the grace period ends and the job may start.
    scheduled_for timestamptz,
    -- Erasure progress, so a crash resumes where it stopped: null (not begun) or anonymized
    -- (every module done; the farewell mail and the shred follow, both idempotent).
    erasure_step text,
    completed_at timestamptz,
    -- A code, never free text (no PII): exported, restricted, withdrawn, erased, rectified,
    -- last_owner, not_found.
    outcome text,
    -- The identity check: only the SHA-256 of the mailed secret.
    token_hash bytea,
    token_expires_at timestamptz,
    updated_at timestamptz not null,
    constraint privacy_requests_pkey primary key (tenant_id, id),
    constraint privacy_requests_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint privacy_requests_token_key unique (tenant_id, token_hash),
    constraint privacy_requests_type_check check (type in
        ('access', 'export', 'rectification', 'restriction', 'withdrawal', 'erasure')),
    constraint privacy_requests_kind_check check (subject_kind in ('staff', 'customer')),
    constraint privacy_requests_channel_check check (channel in ('public', 'self', 'staff')),
    constraint privacy_requests_jurisdiction_check check (jurisdiction in ('uu_pdp', 'gdpr')),
    constraint privacy_requests_status_check check (status in
        ('awaiting_verification', 'in_progress', 'scheduled', 'erasing', 'completed',
         'expired', 'rejected')),
    constraint privacy_requests_step_check
        check (erasure_step is null or erasure_step = 'anonymized')
);
select warung_enable_tenant_rls('privacy_requests');
create index privacy_requests_open_idx on privacy_requests (tenant_id, due_at)
    where status not in ('completed', 'expired', 'rejected');
create index privacy_requests_subject_idx on privacy_requests (tenant_id, subject_id, received_at desc);
create index privacy_requests_erasure_idx on privacy_requests (scheduled_for)
    where status in ('scheduled', 'erasing');
grant select, insert on privacy_requests to warung_app;
grant update (status, verified_at, scheduled_for, erasure_step, completed_at, outcome,
              token_hash, token_expires_at, updated_at) on privacy_requests to warung_app;
grant select on privacy_requests to warung_system;

-- An export bundle: a zip of JSON and CSV, sealed under the subject's own key (so an erasure
-- shreds it too), fetched once through a mailed link before it expires.
create table privacy_exports (
    tenant_id uuid not null,
    id uuid not null,
    request_id uuid not null,
    subject_id uuid not null,
    bundle bytea not null,
    size_bytes integer not null,
    token_hash bytea not null,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    downloaded_at timestamptz,
    constraint privacy_exports_pkey primary key (tenant_id, id),
    constraint privacy_exports_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint privacy_exports_request_fkey foreign key (tenant_id, request_id)
        references privacy_requests (tenant_id, id),
    constraint privacy_exports_token_key unique (tenant_id, token_hash)
);
select warung_enable_tenant_rls('privacy_exports');
grant select, insert on privacy_exports to warung_app;
grant update (downloaded_at) on privacy_exports to warung_app;
grant select, delete on privacy_exports to warung_system;

-- Restriction (GDPR art. 18, UU PDP art. 11): stored, not processed. Erasure: the person is gone,
-- the row keeps only ciphertext nobody can open, and no blind index links it to an address.
alter table customers add column restricted_at timestamptz;
alter table customers add column erased_at timestamptz;
grant update (restricted_at, erased_at) on customers to warung_app;
alter table staff_users add column restricted_at timestamptz;
alter table staff_users add column erased_at timestamptz;
alter table staff_users alter column email_index drop not null;
grant update (restricted_at, erased_at, email_index) on staff_users to warung_app;

-- A customer's erasure keeps their orders for bookkeeping, without the person.
grant update (customer_id) on orders to warung_app;

-- Consent changed by a data-subject request (a withdrawal request).
alter table consent_records drop constraint consent_records_method_check;
alter table consent_records add constraint consent_records_method_check
    check (method in ('signup', 'invitation', 'checkout', 'settings', 'api', 'request'));

-- An erased customer keeps no blind index, while their sealed fields wait for the shred.
alter table customers drop constraint customers_email_check;
alter table customers add constraint customers_email_check
    check ((email is null) = (email_index is null) or erased_at is not null);
alter table customers drop constraint customers_phone_check;
alter table customers add constraint customers_phone_check
    check ((phone is null) = (phone_index is null) or erased_at is not null);
