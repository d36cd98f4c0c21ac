-- A month can be retired more than once. A record dated in a month whose partition retention
-- already dropped (a late delivery, a replay, a clock far behind) waits in DEFAULT until
-- audit_ensure_partitions re-creates that month's partition and moves it there; retention then
-- retires the partition again, with a signed digest of its own. Before, the second digest hit
-- audit_retired_partitions_pkey on every run and retention stopped for good.
alter table audit_retired_links drop constraint audit_retired_links_partition_fkey;
alter table audit_retired_partitions drop constraint audit_retired_partitions_pkey;
-- 1 for the first retirement of a partition name, 2 for the next, and so on.
alter table audit_retired_partitions add column retirement integer not null default 1;
alter table audit_retired_partitions
    add constraint audit_retired_partitions_pkey primary key (partition_name, retirement);
alter table audit_retired_links add column retirement integer not null default 1;
alter table audit_retired_links
    add constraint audit_retired_links_partition_fkey foreign key (partition_name, retirement)
        references audit_retired_partitions (partition_name, retirement);

-- As before, but the digest that must count the partition is its latest retirement's.
create or replace function audit_drop_partition(target text)
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
    select records into recorded from audit_retired_partitions r
    where r.partition_name = target
    order by r.retirement desc
    limit 1;
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
