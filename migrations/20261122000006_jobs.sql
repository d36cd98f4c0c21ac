-- Scheduled jobs (DESIGN §7). A run holds a Redis lock AND the fencing epoch below: taking the
-- lock bumps the epoch, and every write batch of the run first checks (under a share lock) that
-- the epoch is still its own. A holder that paused past its lock's expiry finds a newer epoch and
-- stops before writing; a newer holder's bump waits for an older holder's open batch to commit.
create table job_leases (
    job text not null,
    epoch bigint not null,
    -- Random token of the Redis lock that took this epoch (which process, for operators).
    holder text not null,
    acquired_at timestamptz not null default now(),
    constraint job_leases_pkey primary key (job)
);
grant select, insert, update on job_leases to warung_system;

-- One row per run attempt, including runs skipped because the lock could not be taken: the
-- operator's record of what each job did and when. Counts only, never personal data.
create table job_runs (
    id bigint generated always as identity,
    job text not null,
    epoch bigint,
    dry_run boolean not null,
    -- `schedule` or `manual` (warung jobs run / admin endpoint).
    trigger text not null,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    -- running, succeeded, failed, skipped (lock service unavailable), fenced (lost the lease).
    outcome text not null,
    counts jsonb not null default '{}',
    error text,
    constraint job_runs_pkey primary key (id),
    constraint job_runs_outcome_check
        check (outcome in ('running', 'succeeded', 'failed', 'skipped', 'fenced'))
);
create index job_runs_job_idx on job_runs (job, started_at desc);
grant select, insert, update on job_runs to warung_system;
