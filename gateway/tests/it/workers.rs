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
