//! The operator's routes (`platform_admin` only): the scheduled jobs, and running one now. An
//! operator token comes from `warung admin token` (it needs the signing key, so only someone
//! holding the deployment's secrets can make one) and lives at most 15 minutes.

use std::collections::BTreeMap;

use axum::extract::State;
use platform::routes;
use platform::{
    AppState, Authorized, Error, Module, Result, health::Dependency, http::Json, permission,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

permission!(pub RunJobs = "jobs.run", [PlatformAdmin], "List the scheduled jobs and run one now (the operator)");

pub const MODULE: Module = Module {
    name: "admin",
    needs: &[Dependency::Postgres, Dependency::Redis],
    router,
    workers: |_| Vec::new(),
    jobs: |_| Vec::new(),
    permissions: &[RunJobs::INFO],
    subject_data: None,
    compliance: None,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(run))
}

#[derive(Debug, Serialize, ToSchema)]
struct JobInfo {
    name: &'static str,
    /// Six-field cron (seconds first), UTC.
    schedule: &'static str,
    description: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
struct Jobs {
    items: Vec<JobInfo>,
}

fn control(state: &AppState) -> Result<&platform::jobs::JobControl> {
    state
        .jobs
        .as_ref()
        .ok_or(Error::Unavailable(Dependency::Postgres))
}

/// Every scheduled job.
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "admin",
    security(("bearer" = ["jobs.run"])),
    responses(
        (status = 200, body = Jobs),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
    ))]
async fn list(_caller: Authorized<RunJobs>, State(state): State<AppState>) -> Result<Json<Jobs>> {
    let items = control(&state)?
        .jobs()
        .iter()
        .map(|job| JobInfo {
            name: job.name,
            schedule: job.schedule,
            description: job.description,
        })
        .collect();
    Ok(Json(Jobs { items }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RunJob {
    name: String,
    /// Count what the job would do, change nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct JobRun {
    job: String,
    dry_run: bool,
    /// `succeeded`, `failed`, `busy` (running elsewhere now), `skipped` (lock service down),
    /// `fenced` (lost its lock midway).
    outcome: &'static str,
    /// What it did (or would do), by item.
    counts: BTreeMap<&'static str, i64>,
}

/// Runs a job now, under its lock and lease like a scheduled run, and answers when it ends.
/// The run is recorded in `job_runs` (trigger `manual`).
#[utoipa::path(post, path = "/api/v1/admin/jobs/run", tag = "admin",
    security(("bearer" = ["jobs.run"])),
    request_body = RunJob,
    responses(
        (status = 200, body = JobRun),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn run(
    caller: Authorized<RunJobs>,
    State(state): State<AppState>,
    Json(body): Json<RunJob>,
) -> Result<Json<JobRun>> {
    let outcome = control(&state)?
        .run(&body.name, body.dry_run)
        .await
        .ok_or_else(|| Error::invalid("name", "no such job (GET /api/v1/admin/jobs lists them)"))?;
    tracing::info!(operator = %caller.user, job = body.name, dry_run = body.dry_run, outcome = outcome.label(), "operator ran a job");
    let counts = match &outcome {
        platform::jobs::RunOutcome::Succeeded(report) => report.counts.clone(),
        _ => BTreeMap::new(),
    };
    Ok(Json(JobRun {
        job: body.name,
        dry_run: body.dry_run,
        outcome: outcome.label(),
        counts,
    }))
}
