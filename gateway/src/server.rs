//! Serving: binds, runs the HTTP app and the modules' workers, and shuts both down gracefully
//! (stop accepting, finish in-flight requests, cancel workers, wait up to the grace period).

use std::{net::SocketAddr, time::Duration};

use platform::{AppState, Module, WorkerContext, db::SystemDb};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::app;

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    /// The internal metrics listener's address, when `http.metrics_bind` is set.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    grace: Duration,
}

/// Builds the application state from config: every client, plus `auth`'s session service (the
/// edge verifies tokens with it; modules revoke sessions through it) and every module's
/// subject data (an export or erasure covers all modules, whatever this process serves).
pub fn connect(config: platform::config::Config) -> anyhow::Result<AppState> {
    connect_at(config, std::sync::Arc::new(platform::clock::SystemClock))
}

/// [`connect`] with the clock every part reads, token expiry included (`warung seed demo`
/// dates its shop's first days back).
pub fn connect_at(
    config: platform::config::Config,
    clock: platform::clock::SharedClock,
) -> anyhow::Result<AppState> {
    let state = AppState::connect(config)?.with_clock(clock);
    let sessions = std::sync::Arc::new(auth::Service::new(&state)?);
    let subjects = crate::modules::ALL
        .iter()
        .filter_map(|m| m.subject_data)
        .collect();
    Ok(state.with_sessions(sessions).with_subjects(subjects))
}

/// Starts serving `modules` on `listener` and running their workers.
pub async fn start(
    listener: TcpListener,
    mut state: AppState,
    system: SystemDb,
    modules: &[Module],
) -> anyhow::Result<Server> {
    // The operator may run any job from any process serving the admin routes.
    state.jobs = Some(platform::jobs::JobControl::new(
        platform::jobs::Runner::new(&state, system.clone()),
        crate::modules::ALL
            .iter()
            .flat_map(|m| (m.jobs)(&state))
            .collect(),
    ));
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let grace = Duration::from_millis(state.config.http.shutdown_grace_ms);
    let mut tasks = JoinSet::new();

    let metrics_addr = match state.config.http.metrics_bind {
        Some(bind) => {
            let listener = TcpListener::bind(bind).await?;
            let addr = listener.local_addr()?;
            let app = app::metrics_only(state.clone());
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let serve = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await });
                if let Err(err) = serve.await {
                    tracing::error!(error = %err, "metrics listener failed");
                }
            });
            tracing::info!(%addr, "serving metrics on the internal listener");
            Some(addr)
        }
        None => None,
    };
    let app = app::build(state.clone(), modules)?;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(err) = serve.await {
            tracing::error!(error = %err, "http server failed");
        }
    });

    let context = WorkerContext {
        system,
        shutdown: shutdown.clone(),
    };
    for worker in state.platform_workers() {
        tasks.spawn(worker.supervise(context.clone()));
    }
    for module in modules {
        for worker in (module.workers)(&state) {
            tracing::info!(
                module = module.name,
                worker = worker.name,
                "starting worker"
            );
            tasks.spawn(worker.supervise(context.clone()));
        }
    }
    let jobs: Vec<_> = modules.iter().flat_map(|m| (m.jobs)(&state)).collect();
    if state.config.jobs.scheduler && !jobs.is_empty() {
        let runner = platform::jobs::Runner::new(&state, context.system.clone());
        tasks.spawn(runner.scheduler(jobs).supervise(context.clone()));
    }
    let names: Vec<_> = modules.iter().map(|m| m.name).collect();
    tracing::info!(%addr, modules = ?names, "serving");
    Ok(Server {
        addr,
        metrics_addr,
        shutdown,
        tasks,
        grace,
    })
}

impl Server {
    /// Stops accepting, lets in-flight requests and workers finish within the grace period.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let drained = tokio::time::timeout(self.grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_ms = self.grace.as_millis(),
                "shutdown grace period over; aborting the rest"
            );
            self.tasks.abort_all();
        }
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        self.shutdown().await;
        tracing::info!("stopped");
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
