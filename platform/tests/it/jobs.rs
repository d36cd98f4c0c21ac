//! Jobs run under a Redis lock and a PostgreSQL fencing epoch: one run at a time, never
//! unlocked, and a holder that lost its lock cannot write.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use platform::{
    jobs::{Job, JobReport, RunOutcome, Trigger},
    locks,
};
use testkit::{TestApp, TestBroker};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Job names are lock keys shared by every test process: each test gets its own.
fn unique(prefix: &str) -> &'static str {
    Box::leak(format!("test.{prefix}.{}", uuid::Uuid::now_v7().simple()).into_boxed_str())
}

async fn run_outcome(app: &TestApp, run_id_job: &str) -> Vec<(String, Option<i64>)> {
    sqlx::query_as("select outcome, epoch from job_runs where job = $1 order by id")
        .bind(run_id_job)
        .fetch_all(app.system.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lock_is_renewed_and_released_only_by_its_holder() {
    let app = TestApp::spawn().await;
    let redis = &app.state.redis;
    let key = format!("warung:test-lock:{}", uuid::Uuid::now_v7());
    let first = locks::try_acquire(redis, &key, Duration::from_millis(300))
        .await
        .unwrap()
        .expect("free lock");
    assert!(
        locks::try_acquire(redis, &key, Duration::from_secs(5))
            .await
            .unwrap()
            .is_none(),
        "a held lock was taken twice"
    );
    assert!(first.renew().await.unwrap(), "the holder could not renew");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = locks::try_acquire(redis, &key, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("an expired lock stayed taken");
    assert!(!first.renew().await.unwrap(), "a stale holder renewed");
    assert!(!first.release().await.unwrap(), "a stale holder released");
    assert!(
        locks::try_acquire(redis, &key, Duration::from_secs(5))
            .await
            .unwrap()
            .is_none(),
        "the stale release freed the new holder's lock"
    );
    assert!(second.release().await.unwrap());
}

#[tokio::test]
async fn only_one_run_at_a_time_and_the_lock_outlives_its_ttl_while_renewed() {
    // A 1 s lock renewed every ~333 ms, held by a run that takes 2.5 s.
    let app = TestApp::builder()
        .set("WARUNG_JOBS__LOCK_TTL_MS", "1000")
        .start()
        .await;
    let name = unique("single");
    let started = Arc::new(Notify::new());
    let signal = started.clone();
    let job = Job::new(name, "0 0 0 * * *", "test", move |ctx| {
        let signal = signal.clone();
        async move {
            signal.notify_one();
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let mut tx = ctx.begin().await?;
            sqlx::query("select 1").execute(&mut *tx).await?;
            tx.commit().await?;
            let mut report = JobReport::default();
            report.add("things", 3);
            Ok(report)
        }
    });
    let runner = app.job_runner();
    let shutdown = CancellationToken::new();
    let long = runner.run(&job, Trigger::Manual, false, &shutdown);
    let contender = async {
        started.notified().await;
        // Past the lock's ttl: only renewal keeps it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        runner.run(&job, Trigger::Manual, false, &shutdown).await
    };
    let (first, second) = tokio::join!(long, contender);
    match first {
        RunOutcome::Succeeded(report) => assert_eq!(report.get("things"), 3),
        other => panic!("the first run did not succeed: {other:?}"),
    }
    assert!(
        matches!(second, RunOutcome::Busy),
        "a second run started beside the first: {second:?}"
    );
    let runs = run_outcome(&app, name).await;
    assert_eq!(runs, [("succeeded".to_owned(), Some(1))]);
    let counts: serde_json::Value =
        sqlx::query_scalar("select counts from job_runs where job = $1")
            .bind(name)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(counts, serde_json::json!({"things": 3}));
    // Released at the end: the next run takes the lock at once, with the next epoch.
    assert!(matches!(
        runner.run(&job, Trigger::Manual, true, &shutdown).await,
        RunOutcome::Succeeded(_)
    ));
    assert_eq!(
        run_outcome(&app, name).await[1],
        ("succeeded".into(), Some(2))
    );
}

#[tokio::test]
async fn with_redis_unreachable_a_run_is_skipped_and_reported_never_run_unlocked() {
    let nowhere = TestBroker::free_addr();
    let app = TestApp::builder()
        .set("WARUNG_REDIS__URL", format!("redis://{nowhere}"))
        .start()
        .await;
    let name = unique("redis-down");
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let job = Job::new(name, "0 0 0 * * *", "test", move |_| {
        let flag = flag.clone();
        async move {
            flag.store(true, Ordering::SeqCst);
            Ok(JobReport::default())
        }
    });
    let outcome = app
        .job_runner()
        .run(&job, Trigger::Schedule, false, &CancellationToken::new())
        .await;
    assert!(
        matches!(&outcome, RunOutcome::Skipped(reason) if reason.contains("lock service unavailable")),
        "{outcome:?}"
    );
    assert!(!ran.load(Ordering::SeqCst), "the job ran without its lock");
    assert_eq!(run_outcome(&app, name).await, [("skipped".into(), None)]);
}

#[tokio::test]
async fn a_holder_whose_lock_passed_to_another_is_fenced_before_it_writes() {
    let app = TestApp::spawn().await;
    let name = unique("fenced");
    let table = app.scratch_table("note text").await;
    let tenant = app.tenant().await.id;
    let (paused, resume) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let first_run = Arc::new(AtomicBool::new(true));
    let job = {
        let (paused, resume, first_run) = (paused.clone(), resume.clone(), first_run.clone());
        let table = table.clone();
        Job::new(name, "0 0 0 * * *", "test", move |ctx| {
            let (paused, resume, table) = (paused.clone(), resume.clone(), table.clone());
            let stalls = first_run.swap(false, Ordering::SeqCst);
            async move {
                if stalls {
                    // A long GC pause, say: the lock expires meanwhile.
                    paused.notify_one();
                    resume.notified().await;
                }
                let mut tx = ctx.begin().await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "insert into {table} (tenant_id, id, note) values ($1, gen_random_uuid(), $2)"
                )))
                .bind(tenant)
                .bind(format!("epoch {}", ctx.lease.epoch()))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(JobReport::default())
            }
        })
    };
    let owner = app.owner_pool().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "grant insert on {table} to warung_system"
    )))
    .execute(&owner)
    .await
    .unwrap();
    owner.close().await;

    let runner = app.job_runner();
    let shutdown = CancellationToken::new();
    let stale = tokio::spawn({
        let (runner, job, shutdown) = (runner.clone(), job.clone(), shutdown.clone());
        async move { runner.run(&job, Trigger::Schedule, false, &shutdown).await }
    });
    paused.notified().await;
    // The lock expires (deleted here rather than waited out) and another process takes it.
    let mut redis = app.state.redis.conn();
    let _: i64 = redis::cmd("DEL")
        .arg(app.state.redis.key(format_args!("job:{name}")))
        .query_async(&mut redis)
        .await
        .unwrap();
    let fresh = runner.run(&job, Trigger::Manual, false, &shutdown).await;
    assert!(matches!(fresh, RunOutcome::Succeeded(_)), "{fresh:?}");
    resume.notify_one();
    let stale = stale.await.unwrap();
    assert!(matches!(stale, RunOutcome::Fenced), "{stale:?}");

    let notes: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select note from {table}")))
            .fetch_all(app.system.pool())
            .await
            .unwrap();
    assert_eq!(notes, ["epoch 2"], "the fenced holder wrote");
    let outcomes: Vec<String> = run_outcome(&app, name)
        .await
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(outcomes, ["fenced", "succeeded"]);
    app.drop_table(&table).await;
}

/// Every process fires a scheduled job at the same time; the lock keeps them from running side
/// by side, and the slot claim keeps the second from running the slot again once the first has
/// released the lock (found by the fault campaign's `double-run` count, two processes).
#[tokio::test]
async fn a_schedule_slot_runs_once_though_every_process_fires_for_it() {
    let clock = Arc::new(platform::clock::ManualClock::new(
        "2026-12-01T10:00:00.250Z".parse().unwrap(),
    ));
    let app = TestApp::builder().clock(clock.clone()).start().await;
    let name = unique("slot");
    let job = Job::new(name, "0 * * * * *", "test", |_| async {
        Ok(JobReport::default())
    });
    let (first, second) = (app.job_runner(), app.job_runner());
    let shutdown = CancellationToken::new();
    let ran = |outcome: &RunOutcome| matches!(outcome, RunOutcome::Succeeded(_));

    assert!(ran(&first
        .run(&job, Trigger::Schedule, false, &shutdown)
        .await));
    clock.advance(chrono::TimeDelta::milliseconds(900)); // the other process fires a bit later
    let again = second.run(&job, Trigger::Schedule, false, &shutdown).await;
    assert!(
        matches!(again, RunOutcome::Busy),
        "the slot ran twice: {again:?}"
    );
    // By hand it runs whenever asked; the next minute is a slot of its own.
    assert!(ran(&second
        .run(&job, Trigger::Manual, false, &shutdown)
        .await));
    clock.advance(chrono::TimeDelta::seconds(60));
    assert!(ran(&second
        .run(&job, Trigger::Schedule, false, &shutdown)
        .await));
    let runs = run_outcome(&app, name).await;
    assert_eq!(runs.len(), 3, "{runs:?}");
}
