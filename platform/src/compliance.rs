//! The face modules show the compliance verifier (`warung compliance verify`, the `compliance`
//! crate; DESIGN §12). A check is data ([`CheckSpec`]) plus one async function that probes the
//! live deployment and returns a [`Finding`]. Modules contribute the checks only they can write
//! (the audit chain, the consent rules, data-subject deadlines) through [`ComplianceProbe`] and
//! declare where they keep sealed personal data ([`SealedColumn`]), so a new module adds its
//! checks without the verifier knowing it.
//!
//! Evidence is counts, table and column names and ids: never a personal value.

use std::{fmt::Debug, sync::Arc};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{clock::SharedClock, config::Config, db::Db, id::TenantId, pii::PiiCipher};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = CheckStatus)]
pub enum Status {
    Pass,
    Skip,
    Warn,
    Fail,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Skip => "SKIP",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Error => "ERROR",
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// What a check is, independent of any run.
#[derive(Debug, Clone, Copy)]
pub struct CheckSpec {
    /// Stable id, `group.name` (e.g. `tenancy.rls_forced`); the legal map and
    /// docs/COMPLIANCE.md are keyed by it.
    pub id: &'static str,
    pub group: Group,
    pub title: &'static str,
    pub severity: Severity,
    /// InSpec-style impact, 0.0 to 1.0.
    pub impact: f32,
    /// Whether the check reads tenant data (it then honours `--tenant`); catalog, key and
    /// transport checks look at the whole deployment and run only without `--tenant`.
    pub tenant_data: bool,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    PiiAtRest,
    TenantIsolation,
    AuditStore,
    Keys,
    Consent,
    DataSubjectRequests,
    Retention,
    Transport,
    LogsAndTopics,
}

impl Group {
    pub fn title(self) -> &'static str {
        match self {
            Self::PiiAtRest => "PII at rest",
            Self::TenantIsolation => "Tenant isolation",
            Self::AuditStore => "Audit store",
            Self::Keys => "Keys",
            Self::Consent => "Consent",
            Self::DataSubjectRequests => "Data-subject requests",
            Self::Retention => "Retention",
            Self::Transport => "Transport and edge",
            Self::LogsAndTopics => "Logs and topics",
        }
    }
}

/// What one run of a check found. `status` is PASS, FAIL or SKIP here; the runner turns an
/// error returned by the check into ERROR.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub status: Status,
    /// One sentence, no personal data.
    pub summary: String,
    /// Counts, names and ids.
    pub evidence: serde_json::Value,
}

impl Finding {
    pub fn pass(summary: impl Into<String>) -> Self {
        Self {
            status: Status::Pass,
            summary: summary.into(),
            evidence: serde_json::Value::Null,
        }
    }

    pub fn fail(summary: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            summary: summary.into(),
            evidence: serde_json::Value::Null,
        }
    }

    pub fn skip(summary: impl Into<String>) -> Self {
        Self {
            status: Status::Skip,
            summary: summary.into(),
            evidence: serde_json::Value::Null,
        }
    }

    /// PASS when `violations` is empty, else FAIL listing them (at most 50, with the total).
    pub fn from_violations(
        violations: Vec<String>,
        pass: impl Into<String>,
        fail: impl FnOnce(usize) -> String,
    ) -> Self {
        if violations.is_empty() {
            return Self::pass(pass);
        }
        let total = violations.len();
        let shown: Vec<String> = violations.into_iter().take(50).collect();
        Self::fail(fail(total)).with(serde_json::json!({ "violations": total, "items": shown }))
    }

    pub fn with(mut self, evidence: serde_json::Value) -> Self {
        self.evidence = evidence;
        self
    }

    /// Adds one field to the evidence (which becomes an object if it was not one).
    pub fn with_field(mut self, key: &str, value: impl Serialize) -> Self {
        if !self.evidence.is_object() {
            self.evidence = serde_json::json!({});
        }
        if let (Some(map), Ok(value)) = (self.evidence.as_object_mut(), serde_json::to_value(value))
        {
            map.insert(key.to_owned(), value);
        }
        self
    }
}

pub type CheckFn = for<'a> fn(&'a Ctx) -> BoxFuture<'a, anyhow::Result<Finding>>;

#[derive(Clone, Copy)]
pub struct Check {
    pub spec: CheckSpec,
    pub run: CheckFn,
}

impl Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("id", &self.spec.id).finish()
    }
}

/// Where a module keeps a sealed personal value: `table.column` (bytea, the AAD field name),
/// the column naming the subject whose key sealed it, and the blind index kept beside it.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// `table.column`, the name bound into the ciphertext.
    pub field: &'static str,
    pub subject_column: &'static str,
    pub blind_index: Option<(&'static str, crate::pii::IndexKind)>,
    /// The column naming the row's tenant: `tenant_id`, but `id` in `tenants` itself.
    pub tenant_column: &'static str,
}

impl SealedColumn {
    pub const fn new(
        table: &'static str,
        column: &'static str,
        field: &'static str,
        subject: &'static str,
    ) -> Self {
        Self {
            table,
            column,
            field,
            subject_column: subject,
            blind_index: None,
            tenant_column: "tenant_id",
        }
    }

    /// For the `tenants` table, whose rows are tenants (`id`).
    pub const fn tenant_in(mut self, column: &'static str) -> Self {
        self.tenant_column = column;
        self
    }

    pub const fn indexed(mut self, column: &'static str, kind: crate::pii::IndexKind) -> Self {
        self.blind_index = Some((column, kind));
        self
    }
}

/// What a module tells the verifier.
pub trait ComplianceProbe: Send + Sync + Debug {
    /// Its sealed columns.
    fn sealed_columns(&self) -> &'static [SealedColumn] {
        &[]
    }

    /// Its own checks.
    fn checks(&self) -> Vec<Check> {
        Vec::new()
    }

    /// Its retention sweeps: the verifier dry-runs them to find rows kept past their policy.
    fn retention_tasks(&self) -> Vec<Arc<dyn crate::retention::RetentionTask>> {
        Vec::new()
    }
}

/// What a check gets. `read` is the verifier's own role (`warung_compliance`: SELECT only,
/// on every table, through a select-only policy of its own). `app` and `system` are the
/// deployment's two roles, used only to *try* what they must be refused, in transactions that
/// are always rolled back.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub read: PgPool,
    /// Tenant transactions over the read-only role, for opening sealed samples.
    pub read_db: Db,
    /// The app role: write probes (always rolled back) and the run's own audit record.
    pub app: Db,
    /// The workers' role; absent where only tenant data is checked (a shop owner's report).
    pub system: Option<PgPool>,
    pub pii: PiiCipher,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub sealed: Arc<[SealedColumn]>,
    /// `--tenant`: data checks look only at this tenant.
    pub tenant: Option<TenantId>,
    /// `--fast`: sample instead of reading everything where a check allows it.
    pub fast: bool,
    /// `--scan-logs`: log files (or folders of them) to scan for personal data.
    pub scan_logs: Option<std::path::PathBuf>,
    /// `--scan-topics`: also sample every Kafka topic.
    pub scan_topics: bool,
    /// Every module's retention sweeps (dry-run only).
    pub retention: Arc<[Arc<dyn crate::retention::RetentionTask>]>,
    /// Every scheduled job of the deployment: name and six-field cron schedule.
    pub jobs: Arc<[(&'static str, &'static str)]>,
    /// Results one check computes for several (e.g. one PII scan for three shapes).
    pub memo: Arc<tokio::sync::Mutex<http::Extensions>>,
}

impl Ctx {
    /// The tenants a data check looks at: the chosen one, or every tenant.
    pub async fn tenants(&self) -> anyhow::Result<Vec<TenantId>> {
        if let Some(tenant) = self.tenant {
            return Ok(vec![tenant]);
        }
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar("select id from tenants order by id")
            .fetch_all(&self.read)
            .await?;
        Ok(ids.into_iter().map(TenantId).collect())
    }

    /// `tenant_id = any($1)` bound to [`Self::tenants`], for queries over many tenants.
    pub async fn tenant_ids(&self) -> anyhow::Result<Vec<uuid::Uuid>> {
        Ok(self.tenants().await?.into_iter().map(|t| t.0).collect())
    }
}

/// Runs `statement` on `pool` (one of the deployment's roles), for `tenant` when given, in a
/// transaction that is always rolled back, and says whether PostgreSQL refused it (SQLSTATE
/// 42501: no privilege, a row-level security violation, or the audit store's append-only
/// trigger). Any other error is returned: the probe itself is broken.
pub async fn refused(
    pool: &PgPool,
    tenant: Option<TenantId>,
    statement: &str,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    if let Some(tenant) = tenant {
        sqlx::query("select set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
    }
    let result = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut *tx)
        .await;
    tx.rollback().await?;
    match result {
        Ok(_) => Ok(false),
        Err(err) => match err.as_database_error().and_then(|e| e.code()).as_deref() {
            Some("42501") => Ok(true),
            _ => Err(anyhow::anyhow!(
                "probe `{statement}` failed unexpectedly: {err}"
            )),
        },
    }
}
