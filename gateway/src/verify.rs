//! `warung compliance verify`: composes the verifier from every module's probe and the
//! deployment's config, runs it, and writes the report (terminal table, JSON, JUnit, OSCAL).
//! Also the shop owner's own report, `GET /api/v1/compliance/report` (the `compliance`
//! module): the same checks of tenant data, on connections bound to the owner's tenant.

use std::{io::IsTerminal, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use axum::extract::State;
use platform::{
    AppState, Authorized, Error, Module,
    compliance::{ComplianceProbe, Ctx},
    config::Config,
    db::{Db, SystemDb},
    events::{self, Actor, AuditRecord, Resource},
    health::Dependency,
    http::Json,
    id::TenantId,
    permission,
    throttle::{self, Window},
};

use crate::modules;

permission!(pub ReadComplianceReport = "compliance.read", [Owner], "Run the compliance checks of the shop's own data (a few times an hour)");

/// The owner's report: a route only. Served where the process is given
/// `database.compliance_url`; elsewhere it answers 404.
pub const MODULE: Module = Module {
    name: "compliance",
    needs: &[Dependency::Postgres, Dependency::Redis, Dependency::Vault],
    router,
    workers: |_| Vec::new(),
    jobs: |_| Vec::new(),
    permissions: &[ReadComplianceReport::INFO],
    subject_data: None,
    compliance: None,
};

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(owner_report))
}

/// Owner reports per shop per hour: each reads every table of the shop.
const OWNER_REPORTS: Window = Window {
    name: platform::error::Limit::ComplianceReports,
    limit: 6,
    seconds: 3600,
};

/// The shop's own compliance report: every check of tenant data (PII at rest in its rows,
/// sealed values, its audit chain, consent, its data-subject requests, retention), run now on
/// connections that row-level security confines to the shop, and recorded in its audit trail
/// as `compliance.verified`. Checks of the whole deployment (roles, keys, transport) are the
/// operator's. At most 6 an hour.
#[utoipa::path(get, path = "/api/v1/compliance/report", tag = "compliance",
    security(("bearer" = ["compliance.read"])),
    responses(
        (status = 200, body = compliance::Report),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem, description = "this deployment does not serve compliance reports"),
        (status = 429, body = platform::error::Problem),
        (status = 503, body = platform::error::Problem),
    ))]
async fn owner_report(
    caller: Authorized<ReadComplianceReport>,
    State(state): State<AppState>,
) -> platform::Result<Json<compliance::Report>> {
    let Some(url) = state.config.database.compliance_url.clone() else {
        return Err(Error::NotFound);
    };
    let tenant = caller.tenant;
    let key = state.redis.key(format_args!("compliance-report:{tenant}"));
    throttle::take(&state.redis, &key, OWNER_REPORTS).await?;
    let read_db = Db::connect_as_tenant(
        &url,
        "warung-compliance-owner",
        2,
        Duration::from_secs(120),
        tenant,
    )
    .map_err(Error::from)?;
    let ctx = Ctx {
        read: read_db.global().clone(),
        read_db,
        app: state.db.clone(),
        system: None,
        pii: state.pii.clone(),
        config: state.config.clone(),
        clock: state.clock.clone(),
        sealed: sealed_columns().into(),
        tenant: Some(tenant),
        fast: false,
        scan_logs: None,
        scan_topics: false,
        jobs: Arc::new([]),
        retention: retention_tasks().into(),
        memo: Arc::default(),
    };
    let checks = compliance::all_checks(&probes());
    let report = compliance::run(&ctx, &checks).await;
    let digest = compliance::Report::digest(&report.to_json());
    record(&ctx, &report, &digest)
        .await
        .map_err(Error::Internal)?;
    ctx.read.close().await;
    Ok(Json(report))
}

fn sealed_columns() -> Vec<platform::compliance::SealedColumn> {
    probes()
        .iter()
        .flat_map(|p| p.sealed_columns().iter().copied())
        .collect()
}

fn retention_tasks() -> Vec<Arc<dyn platform::retention::RetentionTask>> {
    probes().iter().flat_map(|p| p.retention_tasks()).collect()
}

/// What the command was asked for.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VerifyArgs {
    /// Only this tenant's data (its slug or id); checks of the whole deployment are left out.
    #[arg(long, value_name = "SLUG|ID")]
    pub tenant: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write JUnit XML (one testcase per check) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write OSCAL Assessment Results (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub oscal: Option<PathBuf>,
    /// Compare with a previous JSON report: what is new, fixed, or still failing.
    #[arg(long, value_name = "PREVIOUS.json")]
    pub diff: Option<PathBuf>,
    /// Sample instead of reading everything (PII scan rows per table, chains, sealed samples).
    #[arg(long)]
    pub fast: bool,
    /// Scan these log files (or every file under this folder) for personal data.
    #[arg(long, value_name = "PATH")]
    pub scan_logs: Option<PathBuf>,
    /// Scan the newest messages of every Kafka topic for personal data.
    #[arg(long)]
    pub scan_topics: bool,
}

/// Every module's probe.
pub fn probes() -> Vec<&'static dyn ComplianceProbe> {
    modules::ALL.iter().filter_map(|m| m.compliance).collect()
}

/// The verifier's context for a deployment: `config` must still hold its database URLs
/// (the compliance role's, the app's and the system's).
pub async fn context(config: Config, args: &VerifyArgs) -> anyhow::Result<Ctx> {
    let Some(url) = config.database.compliance_url.clone() else {
        anyhow::bail!(
            "database.compliance_url (WARUNG_DATABASE__COMPLIANCE_URL) is required: the verifier reads as its own read-only role"
        );
    };
    // A check may stream a whole table in one statement; the runner bounds each check.
    let read_db = Db::connect_as(&url, "warung-compliance", 4, Duration::from_secs(300))?;
    let read = read_db.global().clone();
    let system = SystemDb::connect(&config.database)?.pool().clone();
    let state = AppState::connect(config.clone())?;
    let jobs: Vec<(&'static str, &'static str)> = modules::ALL
        .iter()
        .flat_map(|m| (m.jobs)(&state))
        .map(|job| (job.name, job.schedule))
        .collect();
    let sealed = sealed_columns();
    let retention = retention_tasks();
    let tenant = match &args.tenant {
        None => None,
        Some(given) => Some(resolve_tenant(&read, given).await?),
    };
    Ok(Ctx {
        read,
        read_db,
        app: state.db.clone(),
        system: Some(system),
        pii: state.pii.clone(),
        config: Arc::new(config),
        clock: state.clock.clone(),
        sealed: sealed.into(),
        tenant,
        fast: args.fast,
        scan_logs: args.scan_logs.clone(),
        scan_topics: args.scan_topics,
        jobs: jobs.into(),
        retention: retention.into(),
        memo: Arc::default(),
    })
}

async fn resolve_tenant(read: &sqlx::PgPool, given: &str) -> anyhow::Result<TenantId> {
    let id: Option<uuid::Uuid> = match given.parse::<uuid::Uuid>() {
        Ok(id) => {
            sqlx::query_scalar("select id from tenants where id = $1")
                .bind(id)
                .fetch_optional(read)
                .await?
        }
        Err(_) => {
            sqlx::query_scalar("select id from tenants where slug = $1")
                .bind(given)
                .fetch_optional(read)
                .await?
        }
    };
    id.map(TenantId)
        .with_context(|| format!("no tenant `{given}`"))
}

/// Records the run in the audit trail: a `compliance.verified` record holding the SHA-256 of
/// the report's JSON and its totals, so a filed report can be matched to the chain. Warung's
/// audit chains are per tenant and there is no platform chain, so the record goes into the
/// chain of every tenant the run looked at (one with `--tenant`): each shop's own trail shows
/// when it was verified and with what result. Written as the app role through the ordinary
/// outbox, like any audited change; the verifier's own role stays read-only.
pub async fn record(ctx: &Ctx, report: &compliance::Report, digest: &str) -> anyhow::Result<usize> {
    let tenants = ctx.tenants().await?;
    let details = serde_json::json!({
        "report_sha256": digest,
        "tool": report.tool,
        "version": report.version,
        "started_at": report.started_at,
        "scope": if report.tenant.is_some() { "tenant" } else { "deployment" },
        "passed": report.passed(),
        "totals": report.totals,
        "failed": report.ids(platform::compliance::Status::Fail),
        "errors": report.ids(platform::compliance::Status::Error),
    });
    for tenant in &tenants {
        let mut tx = ctx.app.tenant(*tenant).begin().await?;
        let record = AuditRecord::new(
            Actor::System { name: "compliance" },
            "compliance.verified",
            Resource::new("compliance_report", digest),
        )
        .details(details.clone());
        events::emit_audit(&mut tx, &record).await?;
        tx.commit().await?;
    }
    Ok(tenants.len())
}

/// Runs every check, writes the outputs and records the run ([`record`]). Returns the report;
/// the caller decides the exit code ([`compliance::Report::passed`]).
pub async fn run(ctx: &Ctx, args: &VerifyArgs) -> anyhow::Result<compliance::Report> {
    // Read the previous report first: a bad path should fail before minutes of checks.
    let previous: Option<compliance::Report> = match &args.diff {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a report of `warung compliance verify --json`",
                    path.display()
                )
            })?)
        }
    };
    let checks = compliance::all_checks(&probes());
    let report = compliance::run(ctx, &checks).await;
    let json = report.to_json();
    let digest = compliance::Report::digest(&json);
    let recorded = record(ctx, &report, &digest).await?;
    if let Some(path) = &args.json {
        std::fs::write(path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report.to_junit())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.oscal {
        std::fs::write(path, report.to_oscal())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut table = report.to_table(std::io::stdout().is_terminal());
    if let Some(previous) = &previous {
        let diff = report.diff(previous);
        table.push_str(&format!(
            "\nSince the report of {}:\n  new failures:  {}\n  fixed:         {}\n  still failing: {}\n",
            previous.started_at.to_rfc3339(),
            list(&diff.new),
            list(&diff.fixed),
            list(&diff.still_failing)
        ));
    }
    table.push_str(&format!(
        "Report SHA-256 {digest} (of the JSON form), recorded as compliance.verified in {recorded} tenants' audit trails.\n"
    ));
    std::io::Write::write_all(&mut std::io::stdout(), table.as_bytes())?;
    Ok(report)
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}
