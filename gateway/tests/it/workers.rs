//! The worker runtime: workers get the system database and a shutdown signal; a failing worker
//! is restarted; shutdown stops them.

use std::sync::atomic::{AtomicUsize, Ordering};

use platform::{AppState, Module, Worker};
use testkit::TestApp;
use utoipa_axum::router::OpenApiRouter;

static STARTS: AtomicUsize = AtomicUsize::new(0);
static STOPPED: AtomicUsize = AtomicUsize::new(0);

fn probe_workers(_: &AppState) -> Vec<Worker> {
    vec![Worker::new("probe", |ctx| async move {
        let run = STARTS.fetch_add(1, Ordering::SeqCst);
        // Proves the context carries a working cross-tenant connection.
        let _: i64 = sqlx::query_scalar("select count(*) from tenants")
            .fetch_one(ctx.system.pool())
            .await?;
        if run == 0 {
            anyhow::bail!("first run fails on purpose");
        }
        ctx.shutdown.cancelled().await;
        STOPPED.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })]
}

const PROBE: Module = Module {
    name: "probe",
    needs: &[],
    router: OpenApiRouter::new,
    workers: probe_workers,
    jobs: |_| Vec::new(),
    permissions: &[],
    subject_data: None,
    compliance: None,
};

#[tokio::test]
async fn a_failed_worker_is_restarted_and_shutdown_stops_it() {
    let app = TestApp::builder()
        .modules(vec![PROBE])
        .with_module_workers()
        .start()
        .await;
    for _ in 0..100 {
        if STARTS.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        STARTS.load(Ordering::SeqCst),
        2,
        "restarted once after the failure"
    );
    assert_eq!(STOPPED.load(Ordering::SeqCst), 0);
    app.stop().await;
    assert_eq!(
        STOPPED.load(Ordering::SeqCst),
        1,
        "the worker saw the shutdown signal"
    );
}

#[tokio::test]
async fn a_routes_only_module_brings_its_routes_and_none_of_its_workers_or_jobs() {
    let app = TestApp::spawn().await;
    let full = gateway::modules::select("notifications,audit").unwrap();
    // What is dropped must be there to drop: both run workers, audit has jobs.
    assert!(full.iter().all(|m| !(m.workers)(&app.state).is_empty()));
    assert!(full.iter().any(|m| !(m.jobs)(&app.state).is_empty()));
    let edge = gateway::modules::with_routes_only(Vec::new(), "notifications,audit").unwrap();
    assert_eq!(edge.len(), 2);
    for module in &edge {
        assert!((module.workers)(&app.state).is_empty(), "{}", module.name);
        assert!((module.jobs)(&app.state).is_empty(), "{}", module.name);
        assert!(
            !(module.router)().into_openapi().paths.paths.is_empty(),
            "{} keeps its routes",
            module.name
        );
    }
    // A module that runs in full keeps its workers beside another's routes.
    let mixed = gateway::modules::with_routes_only(
        gateway::modules::select("notifications").unwrap(),
        "notifications,audit",
    )
    .unwrap();
    assert!(!(mixed[0].workers)(&app.state).is_empty());
    assert!((mixed[1].workers)(&app.state).is_empty());
}

/// Every job's schedule, as shipped, is read alike by the scheduler (tokio-cron-scheduler) and
/// by the slot claim (croner, seconds required), and fires at least once a day: a slot's claim
/// lives 25 hours, so a longer gap would let a late process run the slot again.
#[tokio::test]
async fn every_production_schedule_parses_and_fires_at_least_daily() {
    let app = TestApp::spawn().await;
    let jobs: Vec<_> = gateway::modules::ALL
        .iter()
        .flat_map(|m| (m.jobs)(&app.state))
        .collect();
    assert!(jobs.len() >= 8, "{}", jobs.len());
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build();
    let start: chrono::DateTime<chrono::Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    for job in &jobs {
        tokio_cron_scheduler::Job::new_async(job.schedule, |_, _| Box::pin(async {}))
            .unwrap_or_else(|e| {
                panic!(
                    "{}: the scheduler refuses `{}`: {e}",
                    job.name, job.schedule
                )
            });
        let cron = parser
            .parse(job.schedule)
            .unwrap_or_else(|e| panic!("{}: croner refuses `{}`: {e}", job.name, job.schedule));
        let mut at = start;
        for _ in 0..14 {
            let next = cron.find_next_occurrence(&at, false).unwrap();
            assert!(
                next - at <= chrono::TimeDelta::hours(25),
                "{} (`{}`) waits {} between runs",
                job.name,
                job.schedule,
                next - at
            );
            at = next;
        }
    }
    // The check itself: a weekly schedule is caught.
    let weekly = parser.parse("0 0 3 * * Mon").unwrap();
    let first = weekly.find_next_occurrence(&start, false).unwrap();
    let second = weekly.find_next_occurrence(&first, false).unwrap();
    assert!(second - first > chrono::TimeDelta::hours(25));
}
