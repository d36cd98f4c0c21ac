-- Audit partition upkeep and retention (DESIGN §5). Both are DDL on a table the service roles
-- may only append to, so they are narrow SECURITY DEFINER functions owned by the schema owner,
-- callable by warung_system (the jobs' role) and nobody else.

-- Every partition of audit_events with its range (NULLs for DEFAULT).
create function audit_partitions()
    returns table (partition_name text, range_from timestamptz, range_to timestamptz)
    language sql stable
    set search_path = public, pg_temp
as $$
    select c.relname::text,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'public.audit_events'::regclass
    order by 2 nulls first
$$;

-- Partitions of audit_events get the tenant policies but not FORCE: nobody but the owner has
-- any grant on a partition (the service roles go through the parent, where RLS is forced), and
-- the owner's maintenance functions below must see every row of the partition they work on.
create function audit_partition_rls(tbl regclass) returns void
    language plpgsql
    set search_path = public, pg_temp
as $$
begin
    perform warung_enable_tenant_rls(tbl);
    execute format('alter table %s no force row level security', tbl);
end
$$;
revoke all on function audit_partition_rls(regclass) from public;
alter table audit_events_default no force row level security;

-- Makes sure a monthly partition exists for every month from `first_month` for `months` months,
-- and for every month that has rows waiting in DEFAULT (records dated outside the partitions
-- that existed when they arrived: clock skew, replays, imports). Those rows are moved into their
-- new partition: DEFAULT is detached, the partitions are created, the rows are copied into them
-- unchanged (same ids, dates and hashes, so the chain still verifies), a fresh DEFAULT is
-- attached and the old one dropped, all in one transaction. Returns what it created and moved.
create function audit_ensure_partitions(first_month date, months integer)
    returns table (partition_name text, moved_rows bigint)
    language plpgsql
    security definer
    set search_path = public, pg_temp
as $$
declare
    needed date[];
    month date;
    waiting boolean;
    lower_bound timestamptz;
    upper_bound timestamptz;
begin
    -- One maintainer at a time (the jobs' lock already ensures it; this keeps a hand call safe).
    perform pg_advisory_xact_lock(hashtext('audit_ensure_partitions'));
    select coalesce(array_agg(s.m order by s.m), '{}') into needed
    from (
        select generate_series(date_trunc('month', first_month::timestamp),
                               date_trunc('month', first_month::timestamp) + make_interval(months => months - 1),
                               interval '1 month')::date as m
        union
        select distinct date_trunc('month', d.occurred_at at time zone 'UTC')::date
        from audit_events_default d
    ) s
    where not exists (select from audit_partitions() p
                      where p.range_from = s.m::timestamp at time zone 'UTC');
    select exists (select from audit_events_default) into waiting;
    if waiting then
        alter table audit_events detach partition audit_events_default;
        alter table audit_events_default rename to audit_events_default_moving;
    end if;
    foreach month in array needed loop
        partition_name := format('audit_events_p%s', to_char(month, 'YYYY_MM'));
        lower_bound := month::timestamp at time zone 'UTC';
        upper_bound := (month + interval '1 month')::timestamp at time zone 'UTC';
        execute format('create table %I partition of audit_events for values from (%L) to (%L)',
                       partition_name, lower_bound, upper_bound);
        perform audit_partition_rls(partition_name::regclass);
        moved_rows := 0;
        if waiting then
            execute format('insert into %I select * from audit_events_default_moving
                            where occurred_at >= %L and occurred_at < %L',
                           partition_name, lower_bound, upper_bound);
            get diagnostics moved_rows = row_count;
        end if;
        return next;
    end loop;
    if waiting then
        create table audit_events_default partition of audit_events default;
        perform audit_partition_rls('audit_events_default'::regclass);
        drop table audit_events_default_moving;
    end if;
end
$$;
revoke all on function audit_ensure_partitions(date, integer) from public;
grant execute on function audit_ensure_partitions(date, integer) to warung_system;

-- What was dropped, kept forever: one row per dropped partition with a digest over every
-- record's hash and a Transit (ed25519) signature of that digest, so a compliance officer can
-- show later exactly what left the store and that Warung, not someone else, recorded it.
create table audit_retired_partitions (
    partition_name text not null,
    range_from timestamptz not null,
    range_to timestamptz not null,
    records bigint not null,
    -- The signed document (JSON): partition, range, records, sha256 over the record hashes
    -- in (tenant_id, chain_seq) order, and the per-tenant chain runs below.
    digest jsonb not null,
    -- `vault:vN:...` from transit/sign over the digest document's exact bytes.
    signature text not null,
    signed_document text not null,
    dropped_at timestamptz not null default now(),
    constraint audit_retired_partitions_pkey primary key (partition_name)
);
grant select, insert on audit_retired_partitions to warung_system;

-- For each tenant, the runs of chain links that left with a dropped partition: the verifier
-- skips a run and continues from its last hash, so the chain stays checkable after retention.
create table audit_retired_links (
    tenant_id uuid not null,
    first_seq bigint not null,
    last_seq bigint not null,
    last_hash bytea not null,
    partition_name text not null,
    constraint audit_retired_links_pkey primary key (tenant_id, first_seq),
    constraint audit_retired_links_partition_fkey foreign key (partition_name)
        references audit_retired_partitions (partition_name)
);
select warung_enable_tenant_rls('audit_retired_links');
grant select on audit_retired_links to warung_app;
grant select, insert on audit_retired_links to warung_system;

-- Drops one monthly partition, only if its digest was recorded and it ended at least a year
-- ago (a floor under any misconfigured retention; the configured period is longer).
create function audit_drop_partition(target text)
    returns bigint
    language plpgsql
    security definer
    set search_path = public, pg_temp
as $$
declare
    part record;
    recorded bigint;
    present bigint;
begin
    select * into part from audit_partitions() p where p.partition_name = target;
    if not found or part.range_to is null then
        raise exception 'audit_drop_partition: % is not a monthly audit partition', target
            using errcode = 'invalid_parameter_value';
    end if;
    if part.range_to > now() - interval '1 year' then
        raise exception 'audit_drop_partition: % is less than a year old', target
            using errcode = 'insufficient_privilege';
    end if;
    select records into recorded from audit_retired_partitions r where r.partition_name = target;
    if not found then
        raise exception 'audit_drop_partition: no digest recorded for %', target
            using errcode = 'insufficient_privilege';
    end if;
    -- No record may slip in between the count and the drop.
    execute format('lock table %I in share mode', target);
    execute format('select count(*) from %I', target) into present;
    if present <> recorded then
        raise exception 'audit_drop_partition: % holds % records, its digest %', target, present, recorded
            using errcode = 'serialization_failure';
    end if;
    execute format('alter table audit_events detach partition %I', target);
    execute format('drop table %I', target);
    return present;
end
$$;
revoke all on function audit_drop_partition(text) from public;
grant execute on function audit_drop_partition(text) to warung_system;

-- Partitions for the current month and the next three exist from the start.
select * from audit_ensure_partitions(current_date, 4);
