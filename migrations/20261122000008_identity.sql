-- Identity (issue #5): privacy purposes and policies (users), consent evidence (users), staff
-- accounts and invitations (users), credentials, sessions and single-use tokens (auth).
-- Person fields are bytea sealed by the PII layer (platform::pii); lookups go through blind
-- indexes. No table here references another module's table: modules keep their own.

-- ---------------------------------------------------------------------------------------------
-- Privacy purposes and policies: platform-wide reference data, the same for every tenant, so no
-- tenant_id. Kept as data: the privacy issue adds rows, not code. `audience` says whose
-- consent a purpose is asked of: the merchant's staff, or the merchant's customers.
create table privacy_policies (
    audience text not null,
    version text not null,
    major integer not null,
    minor integer not null,
    published_at timestamptz not null,
    constraint privacy_policies_pkey primary key (audience, version),
    constraint privacy_policies_audience_check check (audience in ('merchant', 'customer')),
    constraint privacy_policies_version_key unique (audience, major, minor)
);

create table privacy_policy_texts (
    audience text not null,
    version text not null,
    lang text not null,
    title text not null,
    body text not null,
    constraint privacy_policy_texts_pkey primary key (audience, version, lang),
    constraint privacy_policy_texts_policy_fkey foreign key (audience, version)
        references privacy_policies (audience, version),
    constraint privacy_policy_texts_lang_check check (lang in ('id', 'en'))
);

create table privacy_purposes (
    audience text not null,
    code text not null,
    required boolean not null,
    -- GDPR art. 6(1) / UU PDP art. 20(2) basis: consent, contract, legal_obligation, legitimate_interest
    lawful_basis text not null,
    data_categories text[] not null,
    retention text not null,
    position integer not null,
    constraint privacy_purposes_pkey primary key (audience, code),
    constraint privacy_purposes_audience_check check (audience in ('merchant', 'customer')),
    constraint privacy_purposes_code_format check (code ~ '^[a-z][a-z_]{1,40}$'),
    constraint privacy_purposes_basis_check
        check (lawful_basis in ('consent', 'contract', 'legal_obligation', 'legitimate_interest'))
);

create table privacy_purpose_texts (
    audience text not null,
    code text not null,
    lang text not null,
    title text not null,
    description text not null,
    constraint privacy_purpose_texts_pkey primary key (audience, code, lang),
    constraint privacy_purpose_texts_purpose_fkey foreign key (audience, code)
        references privacy_purposes (audience, code),
    constraint privacy_purpose_texts_lang_check check (lang in ('id', 'en'))
);

grant select on privacy_policies, privacy_policy_texts, privacy_purposes, privacy_purpose_texts
    to warung_app, warung_system;

insert into privacy_policies (audience, version, major, minor, published_at) values
    ('merchant', '1.0', 1, 0, '2026-11-01T00:00:00Z'),
    ('customer', '1.0', 1, 0, '2026-11-01T00:00:00Z');

insert into privacy_policy_texts (audience, version, lang, title, body) values
    ('merchant', '1.0', 'id', 'Kebijakan Privasi Warung untuk Merchant',
     'Warung memproses data pribadi Anda (nama, email, nomor telepon, kredensial) untuk menjalankan akun toko Anda, sesuai UU No. 27 Tahun 2022 tentang Pelindungan Data Pribadi dan GDPR. '
     'Data pribadi dienkripsi dengan kunci per orang; setiap akses dan perubahan dicatat dalam jejak audit yang tidak dapat diubah. '
     'Anda berhak mengakses, mengekspor, memperbaiki, membatasi pemrosesan, menarik persetujuan dan meminta penghapusan data Anda. '
     'Persetujuan opsional (pemasaran, analitik) dapat ditarik kapan saja tanpa memengaruhi layanan. '
     'Data disimpan selama akun aktif dan dihapus sesuai jadwal retensi setelah akun ditutup, kecuali yang wajib disimpan menurut hukum.'),
    ('merchant', '1.0', 'en', 'Warung Privacy Policy for Merchants',
     'Warung processes your personal data (name, email, phone number, credentials) to run your shop account, under Indonesia''s Personal Data Protection Law No. 27/2022 and the GDPR. '
     'Personal data is encrypted under a key of its own per person; every access and change is recorded in an immutable audit trail. '
     'You may access, export, rectify, restrict, withdraw consent and request erasure of your data. '
     'Optional consents (marketing, analytics) can be withdrawn at any time without affecting the service. '
     'Data is kept while the account is active and deleted on the retention schedule after it closes, except what the law requires us to keep.'),
    ('customer', '1.0', 'id', 'Kebijakan Privasi untuk Pelanggan',
     'Toko tempat Anda berbelanja memproses nama, email, nomor telepon dan alamat Anda untuk memproses pesanan, dengan Warung sebagai pemroses data. '
     'Data Anda dienkripsi dan setiap aksesnya dicatat. Struk melalui email dan pemasaran hanya dengan persetujuan Anda. '
     'Anda berhak mengakses, mengekspor, memperbaiki, membatasi, menarik persetujuan dan meminta penghapusan data Anda.'),
    ('customer', '1.0', 'en', 'Privacy Policy for Customers',
     'The shop you buy from processes your name, email, phone number and address to handle your orders, with Warung as its processor. '
     'Your data is encrypted and every access to it is recorded. Email receipts and marketing only with your consent. '
     'You may access, export, rectify, restrict, withdraw consent and request erasure of your data.');

insert into privacy_purposes (audience, code, required, lawful_basis, data_categories, retention, position) values
    ('merchant', 'account', true, 'contract', '{identity,contact,credentials}',
     'while the account is active, then deleted after the closure grace period', 1),
    ('merchant', 'marketing', false, 'consent', '{contact}', 'until consent is withdrawn', 2),
    ('merchant', 'analytics', false, 'consent', '{usage}', '13 months, aggregated after', 3),
    ('customer', 'orders', true, 'contract', '{identity,contact,purchases}',
     'purchases for bookkeeping as the law requires; the person anonymized on erasure', 1),
    ('customer', 'receipt_email', false, 'consent', '{contact,purchases}', 'until consent is withdrawn', 2),
    ('customer', 'marketing', false, 'consent', '{contact,purchases}', 'until consent is withdrawn', 3),
    ('customer', 'analytics', false, 'consent', '{purchases}', '13 months, aggregated after', 4);

insert into privacy_purpose_texts (audience, code, lang, title, description) values
    ('merchant', 'account', 'id', 'Menjalankan akun toko', 'Wajib: membuat dan menjalankan akun toko Anda, masuk, keamanan, dan email layanan.'),
    ('merchant', 'account', 'en', 'Operate the shop account', 'Required: create and run your shop account, sign-in, security and service email.'),
    ('merchant', 'marketing', 'id', 'Kabar dan penawaran', 'Opsional: email tentang fitur baru dan penawaran Warung.'),
    ('merchant', 'marketing', 'en', 'News and offers', 'Optional: email about new features and offers from Warung.'),
    ('merchant', 'analytics', 'id', 'Analitik penggunaan', 'Opsional: statistik penggunaan untuk memperbaiki layanan.'),
    ('merchant', 'analytics', 'en', 'Usage analytics', 'Optional: usage statistics to improve the service.'),
    ('customer', 'orders', 'id', 'Memproses pesanan', 'Wajib: mencatat dan memproses pesanan dan pembayaran Anda.'),
    ('customer', 'orders', 'en', 'Process orders', 'Required: record and process your orders and payments.'),
    ('customer', 'receipt_email', 'id', 'Struk melalui email', 'Opsional: kirim struk pembelian ke email Anda.'),
    ('customer', 'receipt_email', 'en', 'Email receipts', 'Optional: send purchase receipts to your email.'),
    ('customer', 'marketing', 'id', 'Promosi dari toko', 'Opsional: toko boleh mengirimi Anda promosi.'),
    ('customer', 'marketing', 'en', 'Offers from the shop', 'Optional: the shop may send you offers.'),
    ('customer', 'analytics', 'id', 'Analitik pembelian', 'Opsional: pembelian Anda dihitung dalam statistik toko.'),
    ('customer', 'analytics', 'en', 'Purchase analytics', 'Optional: your purchases count in the shop''s statistics.');

-- ---------------------------------------------------------------------------------------------
-- Consent evidence (users). Append-only: the app inserts and reads, never rewrites. The current
-- state of a purpose is its latest record. IP and user agent are kept only as HMACs under the
-- tenant's index key.
create table consent_records (
    tenant_id uuid not null,
    id uuid not null,
    subject_id uuid not null,
    subject_kind text not null,
    purpose text not null,
    policy_version text not null,
    granted boolean not null,
    method text not null,
    ip_hash bytea,
    user_agent_hash bytea,
    recorded_at timestamptz not null,
    constraint consent_records_pkey primary key (tenant_id, id),
    constraint consent_records_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint consent_records_kind_check check (subject_kind in ('staff', 'customer')),
    constraint consent_records_method_check
        check (method in ('signup', 'invitation', 'checkout', 'settings', 'api'))
);
select warung_enable_tenant_rls('consent_records');
grant select, insert on consent_records to warung_app;
grant select on consent_records to warung_system;
create index consent_records_subject_idx on consent_records (tenant_id, subject_id, purpose, recorded_at desc);

-- ---------------------------------------------------------------------------------------------
-- Staff accounts (users). `full_name` is null only while an invitation is pending.
create table staff_users (
    tenant_id uuid not null,
    id uuid not null,
    role text not null,
    status text not null,
    full_name bytea,
    email bytea not null,
    email_index bytea not null,
    phone bytea,
    locale text not null,
    email_verified_at timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    deleted_at timestamptz,
    constraint staff_users_pkey primary key (tenant_id, id),
    constraint staff_users_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint staff_users_role_check check (role in ('owner', 'manager', 'cashier')),
    constraint staff_users_status_check check (status in ('invited', 'active', 'deleted')),
    constraint staff_users_locale_check check (locale in ('id', 'en')),
    constraint staff_users_name_check check (status = 'invited' or full_name is not null)
);
select warung_enable_tenant_rls('staff_users');
-- One live account per email in a tenant; a deleted account frees its address.
create unique index staff_users_email_key on staff_users (tenant_id, email_index) where status <> 'deleted';
grant select, insert on staff_users to warung_app;
grant update (role, status, full_name, phone, locale, email_verified_at, updated_at, deleted_at)
    on staff_users to warung_app;
grant select on staff_users to warung_system;

create table staff_invitations (
    tenant_id uuid not null,
    id uuid not null,
    user_id uuid not null,
    token_hash bytea not null,
    invited_by uuid not null,
    expires_at timestamptz not null,
    accepted_at timestamptz,
    created_at timestamptz not null,
    constraint staff_invitations_pkey primary key (tenant_id, id),
    constraint staff_invitations_user_fkey foreign key (tenant_id, user_id) references staff_users (tenant_id, id),
    constraint staff_invitations_token_key unique (tenant_id, token_hash)
);
select warung_enable_tenant_rls('staff_invitations');
grant select, insert on staff_invitations to warung_app;
grant update (accepted_at) on staff_invitations to warung_app;
grant select, delete on staff_invitations to warung_system;

-- ---------------------------------------------------------------------------------------------
-- Credentials, sessions and single-use tokens (auth). user_id is a staff user's id; it is not a
-- foreign key into users' table on purpose (modules own their tables).
create table credentials (
    tenant_id uuid not null,
    user_id uuid not null,
    password_hash text not null,
    updated_at timestamptz not null,
    constraint credentials_pkey primary key (tenant_id, user_id),
    constraint credentials_tenant_fkey foreign key (tenant_id) references tenants (id)
);
select warung_enable_tenant_rls('credentials');
grant select, insert, delete on credentials to warung_app;
grant update (password_hash, updated_at) on credentials to warung_app;
grant select on credentials to warung_system;

-- A session is one login: the family of refresh tokens rotated from it.
create table sessions (
    tenant_id uuid not null,
    id uuid not null,
    user_id uuid not null,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    refreshed_at timestamptz,
    revoked_at timestamptz,
    revoked_reason text,
    constraint sessions_pkey primary key (tenant_id, id),
    constraint sessions_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint sessions_revoked_check check ((revoked_at is null) = (revoked_reason is null))
);
select warung_enable_tenant_rls('sessions');
grant select, insert on sessions to warung_app;
grant update (refreshed_at, revoked_at, revoked_reason) on sessions to warung_app;
grant select, delete on sessions to warung_system;
create index sessions_user_idx on sessions (tenant_id, user_id) where revoked_at is null;

-- Every refresh token ever issued for a session, by SHA-256 of its secret part. A used one
-- presented again is reuse: the whole session is revoked.
create table refresh_tokens (
    tenant_id uuid not null,
    token_hash bytea not null,
    session_id uuid not null,
    generation integer not null,
    created_at timestamptz not null,
    used_at timestamptz,
    constraint refresh_tokens_pkey primary key (tenant_id, token_hash),
    constraint refresh_tokens_session_fkey foreign key (tenant_id, session_id) references sessions (tenant_id, id)
        on delete cascade,
    constraint refresh_tokens_generation_key unique (tenant_id, session_id, generation)
);
select warung_enable_tenant_rls('refresh_tokens');
grant select, insert on refresh_tokens to warung_app;
grant update (used_at) on refresh_tokens to warung_app;
grant select, delete on refresh_tokens to warung_system;

-- Mailed single-use tokens: email verification and password reset.
create table auth_tokens (
    tenant_id uuid not null,
    token_hash bytea not null,
    purpose text not null,
    user_id uuid not null,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    used_at timestamptz,
    constraint auth_tokens_pkey primary key (tenant_id, token_hash),
    constraint auth_tokens_tenant_fkey foreign key (tenant_id) references tenants (id),
    constraint auth_tokens_purpose_check check (purpose in ('email_verification', 'password_reset'))
);
select warung_enable_tenant_rls('auth_tokens');
grant select, insert on auth_tokens to warung_app;
grant update (used_at) on auth_tokens to warung_app;
grant select, delete on auth_tokens to warung_system;
create index auth_tokens_user_idx on auth_tokens (tenant_id, user_id, purpose) where used_at is null;
