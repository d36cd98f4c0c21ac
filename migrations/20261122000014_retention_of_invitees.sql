-- Retention (issue #8): people invited as staff who never signed up. Their invitation row goes
-- with `invitations`; the account row that waits for them holds their address (sealed), and
-- they never confirmed it: erased through the erasure flow like the categories before it.
insert into retention_policies (category, module, description, legal_min_days, default_days, max_days, reason) values
    ('unverified_signups', 'users', 'Staff invited who never signed up (an address they never confirmed)',
     0, 30, 365,
     'The person never agreed to anything; a month covers a late acceptance or a resent invitation.');

-- An invitee erased before signing up keeps no name and is no longer `invited` (so the
-- invitation can never revive them): only an active account needs a name.
alter table staff_users drop constraint staff_users_name_check;
alter table staff_users add constraint staff_users_name_check
    check (status <> 'active' or full_name is not null);
