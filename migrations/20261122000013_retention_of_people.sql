-- Retention of people (issue #8): guest customers inactive past their shop's period, and staff
-- accounts deleted long enough ago, are erased through the same flow as an erasure request
-- (channel `retention`), with notice to guests first.

-- When a customer last did something with the shop (created, named on an order). Rows older
-- than this column count from their creation.
alter table customers add column last_active_at timestamptz;
grant update (last_active_at) on customers to warung_app;

alter table privacy_requests drop constraint privacy_requests_channel_check;
alter table privacy_requests add constraint privacy_requests_channel_check
    check (channel in ('public', 'self', 'staff', 'retention'));
-- The retention job files these requests itself.
grant insert on privacy_requests to warung_system;
grant update (status, outcome, completed_at, updated_at) on privacy_requests to warung_app;

insert into retention_policies (category, module, description, legal_min_days, default_days, max_days, reason) values
    ('inactive_guests', 'users', 'Personal data of guest customers not named on an order since',
     30, 730, 1825,
     'Guests have no account to keep; two years covers returns and warranty claims. Their orders stay, without them. They are mailed 14 days ahead.'),
    ('deleted_staff', 'users', 'Personal data of staff accounts the shop deleted',
     0, 30, 365,
     'A month to undo a mistaken deletion; after it nothing justifies keeping the person.');
