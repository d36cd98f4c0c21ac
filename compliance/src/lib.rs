//! Live verification of Warung's guarantees: `warung compliance verify` (DESIGN §12).
//!
//! Owns the checks that look at the deployment as a whole (the catalog and its roles, the PII
//! scan of every column, the keys in Vault, retention runs, transport, logs and topics), the
//! runner, the legal map (UU PDP, GDPR, Kominfo's PDP assessment, BSSN Indeks KAMI) and the report
//! formats. Modules add the checks only they can write through
//! [`platform::compliance::ComplianceProbe`]. Reads go through the read-only role
//! `warung_compliance`; the verifier is the one place that reads every module's tables, and
//! it never writes any of them.

pub mod checks;
pub mod legal;
pub mod report;
pub mod scan;
pub mod shapes;

use std::time::Instant;

use platform::compliance::{Check, ComplianceProbe, Ctx, Finding, Status};

pub use report::{Report, ReportFinding, Totals};

/// Every check: the verifier's own, then each probe's, in a stable order (by id).
pub fn all_checks(probes: &[&dyn ComplianceProbe]) -> Vec<Check> {
    let mut all = checks::builtin();
    for probe in probes {
        all.extend(probe.checks());
    }
    all.sort_by_key(|c| (c.spec.group, c.spec.id));
    all
}

/// How long one check may take before it is reported as ERROR.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `checks` one after the other (their timings stay honest and the database is not
/// loaded by the verifier) and builds the report. With `ctx.tenant`, only checks of tenant
/// data run.
pub async fn run(ctx: &Ctx, checks: &[Check]) -> Report {
    let started = chrono::Utc::now();
    let mut findings = Vec::new();
    for check in checks {
        if ctx.tenant.is_some() && !check.spec.tenant_data {
            continue;
        }
        let clock = Instant::now();
        let finding = match tokio::time::timeout(CHECK_TIMEOUT, (check.run)(ctx)).await {
            Ok(Ok(finding)) => finding,
            Ok(Err(err)) => Finding {
                status: Status::Error,
                summary: format!("the check could not run: {err:#}"),
                evidence: serde_json::Value::Null,
            },
            Err(_) => Finding {
                status: Status::Error,
                summary: format!("the check did not finish in {} s", CHECK_TIMEOUT.as_secs()),
                evidence: serde_json::Value::Null,
            },
        };
        findings.push(ReportFinding::new(
            &check.spec,
            finding,
            clock.elapsed().as_millis() as u64,
        ));
    }
    Report::new(ctx, started, findings)
}
