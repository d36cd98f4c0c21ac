-- Envelope encryption keys (DESIGN §3). One data key (DEK) per data subject (staff user,
-- customer, or the tenant itself for business contact data), stored ONLY wrapped by the Transit
-- KEK `warung-kek` (derived with context = tenant id). Deleting a row is crypto-shredding: every
-- value sealed under that key becomes unreadable for good.
create table subject_keys (
    tenant_id uuid not null,
    subject_id uuid not null,
    subject_kind text not null,
    wrapped_dek text not null,
    kek_version integer not null,
    created_at timestamptz not null default now(),
    rewrapped_at timestamptz,
    constraint subject_keys_pkey primary key (tenant_id, subject_id),
    constraint subject_keys_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint subject_keys_kind_check check (subject_kind in ('tenant', 'staff', 'customer')),
    constraint subject_keys_kek_version_check check (kek_version >= 1)
);
select warung_enable_tenant_rls('subject_keys');
-- The app creates keys, reads them, and shreds them. It never rewrites one.
grant select, insert, delete on subject_keys to warung_app;
-- `warung keys rewrap` (system role) re-wraps DEKs under the newest KEK version.
grant select on subject_keys to warung_system;
grant update (wrapped_dek, kek_version, rewrapped_at) on subject_keys to warung_system;
-- Finding keys still wrapped by an old KEK version, in resumable key order.
create index subject_keys_kek_version_idx on subject_keys (kek_version, tenant_id, subject_id);

-- One blind-index key per tenant (HMAC key for equality lookups over encrypted email/phone),
-- wrapped by the KEK like a DEK.
create table pii_index_keys (
    tenant_id uuid not null,
    wrapped_key text not null,
    kek_version integer not null,
    created_at timestamptz not null default now(),
    rewrapped_at timestamptz,
    constraint pii_index_keys_pkey primary key (tenant_id),
    constraint pii_index_keys_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint pii_index_keys_kek_version_check check (kek_version >= 1)
);
select warung_enable_tenant_rls('pii_index_keys');
grant select, insert on pii_index_keys to warung_app;
grant select on pii_index_keys to warung_system;
grant update (wrapped_key, kek_version, rewrapped_at) on pii_index_keys to warung_system;
