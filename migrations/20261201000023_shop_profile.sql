-- The shop's profile (#21 item 1), edited by its owner with PATCH /api/v1/tenant: what a receipt
-- prints about the shop, and the time zone its days (receipt numbers, reports) are counted in.
-- The phone is sealed like every personal value (a small shop's number is often its owner's),
-- under the tenant's own subject key; the rest is business information printed on receipts.
alter table tenants add column address text;
alter table tenants add column phone bytea;
-- NPWP, digits only (15, or 16 for the NIK-based form).
alter table tenants add column tax_id text;
alter table tenants add column time_zone text not null default 'Asia/Jakarta';
alter table tenants add column receipt_header text;
alter table tenants add column receipt_footer text;
alter table tenants add column currency text not null default 'IDR';
alter table tenants add constraint tenants_profile_check
    check (char_length(address) between 1 and 500
           and tax_id ~ '^([0-9]{15}|[0-9]{16})$'
           and char_length(time_zone) between 1 and 64
           and char_length(receipt_header) <= 500
           and char_length(receipt_footer) <= 500
           and currency ~ '^[A-Z]{3}$');
grant update (address, phone, tax_id, time_zone, receipt_header, receipt_footer, currency)
    on tenants to warung_app;
