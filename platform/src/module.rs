//! The face every module crate shows: a name, the dependencies it cannot work without, its HTTP
//! routes and its background workers. `gateway` composes a process from a list of these.

use std::{future::Future, pin::Pin, time::Duration};

use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

use crate::{db::SystemDb, health::Dependency, state::AppState};

#[derive(Debug, Clone, Copy)]
pub struct Module {
    pub name: &'static str,
    /// Readiness fails when one of these is down in a process running this module.
    pub needs: &'static [Dependency],
    pub router: fn() -> OpenApiRouter<AppState>,
    pub workers: fn(&AppState) -> Vec<Worker>,
    /// Scheduled jobs (retention, upkeep), run under a lock by `jobs::Runner`.
    pub jobs: fn(&AppState) -> Vec<crate::jobs::Job>,
    /// The permissions its routes require (docs/API.md lists them with their roles).
    pub permissions: &'static [crate::authz::PermissionInfo],
    /// What it holds on data subjects, for their exports and erasures (DESIGN §6).
    pub subject_data: Option<&'static dyn crate::privacy::SubjectDataProvider>,
    /// Its sealed columns and its own checks, for `warung compliance verify` (DESIGN §12).
    pub compliance: Option<&'static dyn crate::compliance::ComplianceProbe>,
}

/// What a worker gets when it starts: the cross-tenant database handle (never available to
/// request handlers) and the shutdown signal it must honour.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    pub system: SystemDb,
    pub shutdown: CancellationToken,
}

type WorkerFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type WorkerFn = Box<dyn Fn(WorkerContext) -> WorkerFuture + Send + Sync>;

/// A long-running consumer or scheduled job. The runtime restarts it with backoff if it fails,
/// and stops it through `WorkerContext::shutdown`.
pub struct Worker {
    pub name: &'static str,
    run: WorkerFn,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new<F, Fut>(name: &'static str, run: F) -> Self
    where
        F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self {
            name,
            run: Box::new(move |ctx| Box::pin(run(ctx))),
        }
    }

    /// Runs until shutdown; a failure is logged and retried after an exponential backoff
    /// (1 s doubling to 60 s), so one bad dependency does not kill the process.
    pub async fn supervise(self, ctx: WorkerContext) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = std::time::Instant::now();
            let result = (self.run)(ctx.clone()).await;
            if ctx.shutdown.is_cancelled() {
                return;
            }
            match result {
                Ok(()) => {
                    tracing::warn!(
                        worker = self.name,
                        "worker returned before shutdown; restarting"
                    );
                }
                Err(err) => {
                    metrics::counter!("worker_failures_total", "worker" => self.name).increment(1);
                    tracing::error!(
                        worker = self.name,
                        error = format!("{err:#}"),
                        "worker failed; restarting"
                    );
                }
            }
            tokio::select! {
                () = ctx.shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            // A worker that ran fine for a while before failing starts its backoff afresh.
            backoff = if started.elapsed() > Duration::from_secs(300) {
                Duration::from_secs(1)
            } else {
                (backoff * 2).min(Duration::from_secs(60))
            };
        }
    }
}
