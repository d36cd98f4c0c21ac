//! Scheduled jobs (DESIGN §7): retention, partition upkeep, anything that must run now and then
//! in exactly one process at a time.
//!
//! A module lists its [`Job`]s; gateway schedules them with tokio-cron-scheduler in every
//! process running the module, and `warung jobs run NAME` runs one by hand. Whoever triggers it,
//! a run goes through [`Runner::run`]:
//!
//! 1. take the Redis lock `{redis.key_prefix}:job:{name}` (`SET NX PX`). Held elsewhere: nothing to do.
//!    Redis unreachable: the run is **skipped and reported**, never run unlocked. A scheduled
//!    run also claims its slot (`job-slot:{name}:{time}`, the schedule's time it fires for):
//!    every process fires at that time, and the lock alone would let a second one run the slot
//!    again as soon as the first released it;
//! 2. bump the job's fencing epoch in `job_leases` and record the run in `job_runs`;
//! 3. run the job while a task renews the lock every third of its ttl; if the lock is lost the
//!    job is told to stop ([`JobContext::stop`]);
//! 4. every write batch of the job starts with [`JobContext::begin`], which checks the epoch is
//!    still this run's, under a share lock: a holder that paused past its lock's expiry cannot
//!    write after a newer holder has started;
//! 5. record the outcome and counts, release the lock by compare-and-delete.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use serde::Serialize;
use sqlx::{PgConnection, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::{
    clients::Redis,
    clock::SharedClock,
    db::SystemDb,
    locks::{self, LockGuard},
    module::Worker,
};

type JobFuture = Pin<Box<dyn Future<Output = anyhow::Result<JobReport>> + Send>>;
type JobFn = Arc<dyn Fn(JobContext) -> JobFuture + Send + Sync>;

/// A named, scheduled piece of work.
#[derive(Clone)]
pub struct Job {
    /// Stable name: lock key, metrics label, `warung jobs run NAME`.
    pub name: &'static str,
    /// When it runs: six-field cron (seconds first), UTC.
    pub schedule: &'static str,
    pub description: &'static str,
    run: JobFn,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl Job {
    pub fn new<F, Fut>(
        name: &'static str,
        schedule: &'static str,
        description: &'static str,
        run: F,
    ) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<JobReport>> + Send + 'static,
    {
        Self {
            name,
            schedule,
            description,
            run: Arc::new(move |ctx| Box::pin(run(ctx))),
        }
    }
}

/// What a run is given.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub system: SystemDb,
    pub lease: Lease,
    /// Count what would be done, change nothing.
    pub dry_run: bool,
    pub clock: SharedClock,
    /// Cancelled at shutdown or when the lock is lost: finish the current batch and return.
    pub stop: CancellationToken,
}

impl JobContext {
    /// Starts a write batch: a system transaction in which the lease was just checked.
    pub async fn begin(&self) -> anyhow::Result<Transaction<'static, Postgres>> {
        let mut tx = self.system.pool().begin().await?;
        self.lease.check(&mut tx).await?;
        Ok(tx)
    }
}

/// The fencing epoch a run took. See the module docs.
#[derive(Debug, Clone)]
pub struct Lease {
    job: &'static str,
    epoch: i64,
}

/// The run's lease was superseded by a newer holder: it must not write.
#[derive(Debug, thiserror::Error)]
#[error("job {job} lost its lease: epoch {epoch} was superseded")]
pub struct Fenced {
    pub job: &'static str,
    pub epoch: i64,
}

impl Lease {
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Fails with [`Fenced`] unless the job's epoch is still this lease's. The share lock holds
    /// off a newer holder's bump until the caller's transaction ends.
    pub async fn check(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        let current = sqlx::query_scalar!(
            "select epoch from job_leases where job = $1 for share",
            self.job
        )
        .fetch_optional(conn)
        .await?;
        if current == Some(self.epoch) {
            Ok(())
        } else {
            Err(Fenced {
                job: self.job,
                epoch: self.epoch,
            }
            .into())
        }
    }
}

/// Counts of what a run did (or, dry, would do), by item: `{"partitions_created": 2}`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct JobReport {
    pub counts: BTreeMap<&'static str, i64>,
}

impl JobReport {
    pub fn add(&mut self, item: &'static str, n: i64) {
        *self.counts.entry(item).or_default() += n;
    }

    pub fn get(&self, item: &str) -> i64 {
        self.counts.get(item).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Manual,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum RunOutcome {
    Succeeded(JobReport),
    Failed(anyhow::Error),
    /// Another process holds the lock: it is running this job right now.
    Busy,
    /// The lock service is unreachable; the run did not happen.
    Skipped(String),
    /// The run lost its lock or its lease midway and stopped before writing more.
    Fenced,
}

impl RunOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Succeeded(_) => "succeeded",
            Self::Failed(_) => "failed",
            Self::Busy => "busy",
            Self::Skipped(_) => "skipped",
            Self::Fenced => "fenced",
        }
    }
}

/// Runs jobs under the lock and the lease.
#[derive(Debug, Clone)]
pub struct Runner {
    pub system: SystemDb,
    pub redis: Redis,
    pub clock: SharedClock,
    pub lock_ttl: Duration,
}

impl Runner {
    pub fn new(state: &crate::AppState, system: SystemDb) -> Self {
        Self {
            system,
            redis: state.redis.clone(),
            clock: state.clock.clone(),
            lock_ttl: Duration::from_millis(state.config.jobs.lock_ttl_ms),
        }
    }

    #[tracing::instrument(name = "job.run", skip_all, fields(job = job.name, dry_run, trigger = trigger.as_str()))]
    pub async fn run(
        &self,
        job: &Job,
        trigger: Trigger,
        dry_run: bool,
        shutdown: &CancellationToken,
    ) -> RunOutcome {
        let started = std::time::Instant::now();
        let outcome = self.run_locked(job, trigger, dry_run, shutdown).await;
        let label = outcome.label();
        metrics::counter!("job_runs_total", "job" => job.name, "outcome" => label).increment(1);
        match &outcome {
            RunOutcome::Succeeded(report) => {
                metrics::histogram!("job_run_duration_seconds", "job" => job.name)
                    .record(started.elapsed().as_secs_f64());
                metrics::gauge!("job_last_success_timestamp_seconds", "job" => job.name)
                    .set(self.clock.now().timestamp() as f64);
                if !dry_run {
                    for (item, n) in &report.counts {
                        metrics::counter!("job_items_total", "job" => job.name, "item" => *item)
                            .increment(u64::try_from(*n).unwrap_or(0));
                    }
                }
                tracing::info!(counts = ?report.counts, "job run succeeded");
            }
            RunOutcome::Failed(err) => {
                tracing::error!(error = format!("{err:#}"), "job run failed");
            }
            RunOutcome::Busy => tracing::debug!("job is running in another process"),
            RunOutcome::Skipped(reason) => {
                tracing::warn!(reason, "job run skipped: its lock could not be taken");
            }
            RunOutcome::Fenced => tracing::warn!("job run lost its lease and stopped"),
        }
        outcome
    }

    /// Claims the schedule slot this run fires for (the latest time of the job's schedule at
    /// or before now); false when another process already ran it. Claims outlive a day, longer
    /// than any slot's lateness.
    async fn claim_slot(&self, job: &Job) -> redis::RedisResult<bool> {
        let now = self.clock.now();
        let slot = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(job.schedule)
            .and_then(|cron| cron.find_previous_occurrence(&now, true))
            .unwrap_or(now);
        let key = self
            .redis
            .key(format_args!("job-slot:{}:{}", job.name, slot.timestamp()));
        let mut conn = self.redis.conn();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(25 * 3600 * 1000)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    async fn run_locked(
        &self,
        job: &Job,
        trigger: Trigger,
        dry_run: bool,
        shutdown: &CancellationToken,
    ) -> RunOutcome {
        let key = self.redis.key(format_args!("job:{}", job.name));
        let guard = match locks::try_acquire(&self.redis, &key, self.lock_ttl).await {
            Ok(Some(guard)) => guard,
            Ok(None) => return RunOutcome::Busy,
            Err(err) => {
                let reason = format!("lock service unavailable: {}", err.kind_label());
                self.record_skip(job, trigger, dry_run, &reason).await;
                return RunOutcome::Skipped(reason);
            }
        };
        if trigger == Trigger::Schedule {
            match self.claim_slot(job).await {
                Ok(true) => {}
                Ok(false) => {
                    release(guard).await;
                    return RunOutcome::Busy;
                }
                Err(err) => {
                    release(guard).await;
                    let reason = format!("lock service unavailable: {}", err.kind_label());
                    self.record_skip(job, trigger, dry_run, &reason).await;
                    return RunOutcome::Skipped(reason);
                }
            }
        }
        let (lease, run_id) = match self.open(job, &guard, trigger, dry_run).await {
            Ok(opened) => opened,
            Err(err) => {
                release(guard).await;
                return RunOutcome::Failed(err);
            }
        };
        let stop = shutdown.child_token();
        // If this future is dropped mid-run (its task aborted), the renewal task must stop too:
        // the lock then expires after its ttl, as after a crash, instead of living on.
        let _stop_on_drop = stop.clone().drop_guard();
        let renewal = tokio::spawn(keep_renewed(guard, stop.clone()));
        let ctx = JobContext {
            system: self.system.clone(),
            lease,
            dry_run,
            clock: self.clock.clone(),
            stop: stop.clone(),
        };
        let result = (job.run)(ctx).await;
        stop.cancel();
        let lock_lost = match renewal.await {
            Ok(Some(guard)) => {
                release(guard).await;
                false
            }
            _ => true,
        };
        let outcome = match result {
            // Told to stop when the lock was lost: it may have left work undone.
            Ok(_) if lock_lost => RunOutcome::Fenced,
            Ok(report) => RunOutcome::Succeeded(report),
            Err(err) if err.is::<Fenced>() => RunOutcome::Fenced,
            Err(err) => RunOutcome::Failed(err),
        };
        if let Err(err) = self.close(run_id, &outcome).await {
            tracing::warn!(error = %err, "could not record the job run's outcome");
        }
        outcome
    }

    /// Bumps the epoch, closes runs a crashed holder left open, records this one.
    async fn open(
        &self,
        job: &Job,
        guard: &LockGuard,
        trigger: Trigger,
        dry_run: bool,
    ) -> anyhow::Result<(Lease, i64)> {
        let mut tx = self.system.pool().begin().await?;
        let epoch = sqlx::query_scalar!(
            "insert into job_leases (job, epoch, holder) values ($1, 1, $2)
             on conflict (job) do update
                 set epoch = job_leases.epoch + 1, holder = excluded.holder, acquired_at = now()
             returning epoch",
            job.name,
            guard.token(),
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "update job_runs set outcome = 'failed', finished_at = now(),
                 error = 'abandoned: its process stopped or lost the lock mid-run'
             where job = $1 and outcome = 'running'",
            job.name
        )
        .execute(&mut *tx)
        .await?;
        let run_id = sqlx::query_scalar!(
            "insert into job_runs (job, epoch, dry_run, trigger, outcome)
             values ($1, $2, $3, $4, 'running') returning id",
            job.name,
            epoch,
            dry_run,
            trigger.as_str(),
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            Lease {
                job: job.name,
                epoch,
            },
            run_id,
        ))
    }

    async fn close(&self, run_id: i64, outcome: &RunOutcome) -> Result<(), sqlx::Error> {
        let (counts, error) = match outcome {
            RunOutcome::Succeeded(report) => {
                (serde_json::to_value(report).unwrap_or_default(), None)
            }
            RunOutcome::Failed(err) => (serde_json::json!({}), Some(format!("{err:#}"))),
            _ => (serde_json::json!({}), None),
        };
        sqlx::query!(
            "update job_runs set outcome = $2, counts = $3, error = $4, finished_at = now()
             where id = $1",
            run_id,
            outcome.label(),
            counts,
            error,
        )
        .execute(self.system.pool())
        .await
        .map(drop)
    }

    /// A run that could not take its lock still leaves a trace for operators (best effort:
    /// PostgreSQL may be down too).
    async fn record_skip(&self, job: &Job, trigger: Trigger, dry_run: bool, reason: &str) {
        let recorded = sqlx::query!(
            "insert into job_runs (job, dry_run, trigger, outcome, error, finished_at)
             values ($1, $2, $3, 'skipped', $4, now())",
            job.name,
            dry_run,
            trigger.as_str(),
            reason,
        )
        .execute(self.system.pool())
        .await;
        if let Err(err) = recorded {
            tracing::warn!(error = %err, "could not record the skipped job run");
        }
    }

    /// The worker that runs `jobs` on their schedules until shutdown.
    pub fn scheduler(self, jobs: Vec<Job>) -> Worker {
        let jobs = Arc::new(jobs);
        Worker::new("job-scheduler", move |ctx| {
            let (runner, jobs) = (self.clone(), jobs.clone());
            async move {
                let mut scheduler = tokio_cron_scheduler::JobScheduler::new().await?;
                for job in jobs.iter() {
                    let (runner, job, shutdown) =
                        (runner.clone(), job.clone(), ctx.shutdown.clone());
                    let cron = tokio_cron_scheduler::Job::new_async(job.schedule, move |_, _| {
                        let (runner, job, shutdown) =
                            (runner.clone(), job.clone(), shutdown.clone());
                        Box::pin(async move {
                            runner.run(&job, Trigger::Schedule, false, &shutdown).await;
                        })
                    })?;
                    scheduler.add(cron).await?;
                }
                scheduler.start().await?;
                ctx.shutdown.cancelled().await;
                scheduler.shutdown().await?;
                Ok(())
            }
        })
    }
}

/// Running named jobs on request: the operator's admin endpoint. The one capability a request
/// handler has over the system role, and it is this narrow: start a job by name, under its lock
/// and lease like any run. The runner (and its system pool) stays private.
#[derive(Debug, Clone)]
pub struct JobControl {
    runner: Runner,
    jobs: Arc<Vec<Job>>,
}

impl JobControl {
    pub fn new(runner: Runner, jobs: Vec<Job>) -> Self {
        Self {
            runner,
            jobs: Arc::new(jobs),
        }
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Runs `name` now; `None` when no such job exists.
    pub async fn run(&self, name: &str, dry_run: bool) -> Option<RunOutcome> {
        let job = self.jobs.iter().find(|job| job.name == name)?;
        Some(
            self.runner
                .run(job, Trigger::Manual, dry_run, &CancellationToken::new())
                .await,
        )
    }
}

/// Renews until `stop`; returns the guard for release, or `None` once the lock is lost (and
/// then cancels `stop` so the job winds down).
async fn keep_renewed(guard: LockGuard, stop: CancellationToken) -> Option<LockGuard> {
    let period = guard.ttl() / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Some(guard),
            () = tokio::time::sleep(period) => {}
        }
        match guard.renew().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("job lock expired and passed on; stopping the run");
                stop.cancel();
                return None;
            }
            Err(err) => {
                // Cannot prove we still hold it: stop. The lease stops any write already late.
                tracing::warn!(error = %err.kind_label(), "job lock renewal failed; stopping the run");
                stop.cancel();
                return None;
            }
        }
    }
}

async fn release(guard: LockGuard) {
    if let Err(err) = guard.release().await {
        tracing::warn!(error = %err.kind_label(), "job lock release failed; it will expire");
    }
}

trait KindLabel {
    fn kind_label(&self) -> String;
}

impl KindLabel for redis::RedisError {
    /// Redis errors can quote commands; keep only what kind of failure it was.
    fn kind_label(&self) -> String {
        if self.is_timeout() {
            "timed out".into()
        } else if self.is_connection_refusal() || self.is_io_error() {
            "connection failed".into()
        } else {
            format!("{:?}", self.kind())
        }
    }
}
