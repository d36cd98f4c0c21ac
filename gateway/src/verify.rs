//! `warung compliance verify`: composes the verifier from every module's probe and the
//! deployment's config, runs it, and writes the report (terminal table, JSON, JUnit).

use std::{io::IsTerminal, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use platform::{
    AppState,
    compliance::{ComplianceProbe, Ctx},
    config::Config,
    db::{Db, SystemDb},
    events::{self, Actor, AuditRecord, Resource},
    id::TenantId,
};

use crate::modules;

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
    let app = Db::connect_as(
        &config.database.app_url,
        "warung-compliance-probe",
        2,
        Duration::from_secs(60),
    )?
    .global()
    .clone();
    let system = SystemDb::connect(&config.database)?.pool().clone();
    let state = AppState::connect(config.clone())?;
    let jobs: Vec<(&'static str, &'static str)> = modules::ALL
        .iter()
        .flat_map(|m| (m.jobs)(&state))
        .map(|job| (job.name, job.schedule))
        .collect();
    let sealed: Vec<_> = probes()
        .iter()
        .flat_map(|p| p.sealed_columns().iter().copied())
        .collect();
    let retention: Vec<_> = probes().iter().flat_map(|p| p.retention_tasks()).collect();
    let tenant = match &args.tenant {
        None => None,
        Some(given) => Some(resolve_tenant(&read, given).await?),
    };
    Ok(Ctx {
        read,
        read_db,
        app,
        system,
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
    let db = Db::connect_as(
        &ctx.config.database.app_url,
        "warung-compliance-record",
        2,
        Duration::from_secs(15),
    )?;
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
        let mut tx = db.tenant(*tenant).begin().await?;
        let record = AuditRecord::new(
            Actor::System { name: "compliance" },
            "compliance.verified",
            Resource::new("compliance_report", digest),
        )
        .details(details.clone());
        events::emit_audit(&mut tx, &record).await?;
        tx.commit().await?;
    }
    db.close().await;
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
