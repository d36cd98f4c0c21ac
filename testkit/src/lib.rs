//! Integration-test harness. A [`TestApp`] is the real application on `127.0.0.1:0`, talking to
//! the real local stack (`scripts/stack up`); every test makes its own tenants, so tests never
//! depend on order or on each other's data. A [`FaultProxy`] sits between the app and one
//! dependency so a test can cut the network to it and restore it.
//!
//! Run the tests with `cargo nextest`. Each test is its own process, so the process-global
//! Prometheus recorder (`/metrics`) only counts that test's own work.
//!
//! Settings come from the environment (`eval "$(scripts/stack env --tests)"`, as `scripts/test`
//! does); when they are missing, the harness asks `scripts/stack env --tests` itself. The
//! instance's own settings (`scripts/stack env`, what `scripts/up` serves) are refused: the
//! suite never writes where a person works.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support"
)]

mod broker;
mod commerce;
mod database;
mod identity;
pub mod mail;
mod proxy;
mod scenario;
mod settle;

use std::{collections::HashMap, path::PathBuf, sync::OnceLock};

use gateway::server::{self, Server};
use platform::{
    AppState, Module,
    config::Config,
    db::{MIGRATOR, SystemDb, TenantTx},
    events::{self, Actor, AuditRecord, Resource},
    id::TenantId,
    jobs,
};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::sync::OnceCell;

pub use broker::TestBroker;
pub use commerce::customer_body;
pub use database::FreshDatabase;
pub use identity::{Merchant, PASSWORD, Staff, signup_body};
pub use proxy::FaultProxy;
pub use scenario::Scenario;

/// The stack's settings: `WARUNG_*` for the app plus `STACK_*` facts for tests.
pub fn stack_env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env: HashMap<String, String> = std::env::vars().collect();
        if env.contains_key("WARUNG_DATABASE__APP_URL") {
            assert!(
                env.get("WARUNG_REDIS__KEY_PREFIX")
                    .is_some_and(|prefix| prefix.starts_with("warung-test")),
                "these are the instance's settings (what scripts/up serves), not the suite's: \
                 eval \"$(scripts/stack env --tests)\""
            );
        } else {
            let script = workspace_root().join("scripts/stack");
            let output = std::process::Command::new(&script)
                .args(["env", "--tests"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            assert!(
                output.status.success(),
                "`scripts/stack env --tests` failed; is the stack up (`scripts/stack up`)?\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let line = line.trim().trim_start_matches("export ");
                if let Some((key, value)) = line.split_once('=') {
                    env.insert(key.to_owned(), value.trim_matches(['\'', '"']).to_owned());
                }
            }
        }
        env
    })
}

/// The stack's Vault root token (from the `init.json` beside the app's token file), for tests
/// that must act as the operator who set Vault up: make a token or a Transit key of their own.
pub fn vault_root_token() -> String {
    let token_file = PathBuf::from(&stack_env()["WARUNG_VAULT__TOKEN_FILE"]);
    let init: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(token_file.with_file_name("init.json")).unwrap(),
    )
    .unwrap();
    init["root_token"].as_str().unwrap().to_owned()
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
}

/// Loads the stack's config with `overrides` (`WARUNG_*` keys) applied on top; binds port 0.
pub fn config_with(overrides: &[(&str, String)]) -> Config {
    let mut vars: HashMap<String, String> = stack_env()
        .iter()
        .filter(|(k, _)| k.starts_with("WARUNG_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.insert("WARUNG_ENVIRONMENT".into(), "test".into());
    vars.insert("WARUNG_HTTP__BIND".into(), "127.0.0.1:0".into());
    // Relays only where a test asks for one (`.set("WARUNG_OUTBOX__RELAY", "true")`), on an
    // isolated app: a relay takes every tenant's rows in its database.
    vars.insert("WARUNG_OUTBOX__RELAY".into(), "false".into());
    // Jobs run when a test runs them (`TestApp::run_job`), not on a clock.
    vars.insert("WARUNG_JOBS__SCHEDULER".into(), "false".into());
    // Readiness is checked afresh on each call: tests cut a dependency and look at once. The
    // cache has a test of its own.
    vars.insert("WARUNG_HEALTH__CACHE_MS".into(), "0".into());
    // Every test talks from 127.0.0.1 at once: per-address limits would trip across tests. A
    // test of a limit sets it low and calls from an address of its own (`client_from`).
    for (key, value) in [
        ("WARUNG_RATE_LIMIT__PER_IP_PER_SECOND", "100000"),
        ("WARUNG_RATE_LIMIT__PER_IP_BURST", "100000"),
        (
            "WARUNG_RATE_LIMIT__PUBLIC_WRITES_PER_IP_PER_HOUR",
            "100000000",
        ),
        ("WARUNG_AUTH__MAX_FAILURES_PER_IP", "100000000"),
    ] {
        vars.insert(key.into(), value.into());
    }
    for (key, value) in overrides {
        vars.insert((*key).to_owned(), value.clone());
    }
    Config::load_from(None, vars).expect("test configuration")
}

/// Applies migrations once per test process (the migrator's advisory lock makes concurrent
/// processes safe).
async fn migrated(config: &Config) {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let url = config
            .database
            .migrate_url
            .as_ref()
            .expect("WARUNG_DATABASE__MIGRATE_URL");
        let pool = PgPool::connect(url.expose_secret())
            .await
            .expect("connect as owner");
        MIGRATOR.run(&pool).await.expect("migrations");
        pool.close().await;
    })
    .await;
}

#[derive(Debug, Default)]
pub struct TestAppBuilder {
    modules: Option<Vec<Module>>,
    module_workers: bool,
    overrides: Vec<(&'static str, String)>,
    clock: Option<platform::clock::SharedClock>,
    isolated: bool,
    /// The isolated world of another app this one joins ([`TestAppBuilder::alongside`]).
    joined: Option<Vec<(&'static str, String)>>,
}

/// What an isolated app has to itself (see [`TestAppBuilder::isolated`]); its database is
/// dropped with it.
#[derive(Debug)]
struct Isolation {
    database: Option<FreshDatabase>,
    _broker: Option<TestBroker>,
}

impl Isolation {
    fn database(&self) -> &FreshDatabase {
        self.database.as_ref().expect("the isolated database")
    }
}

impl Drop for Isolation {
    fn drop(&mut self) {
        // Called inside the test's runtime, which cannot be blocked on: a thread of its own
        // drops the database (sessions still open in it are ended).
        if let Some(database) = self.database.take() {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|runtime| runtime.block_on(database.drop()))
            })
            .join();
        }
    }
}

impl TestAppBuilder {
    /// Run only these modules (default: all).
    pub fn modules(mut self, modules: Vec<Module>) -> Self {
        self.modules = Some(modules);
        self
    }

    /// Also run the modules' background workers (e.g. the audit sink). Off by default: a
    /// consumer per test app would keep consumer groups rebalancing.
    pub fn with_module_workers(mut self) -> Self {
        self.module_workers = true;
        self
    }

    /// Override one `WARUNG_*` setting, e.g. to route a dependency through a [`FaultProxy`].
    pub fn set(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.overrides.push((key, value.into()));
        self
    }

    /// Run on this clock (e.g. a `ManualClock` the test moves) instead of the system's.
    pub fn clock(mut self, clock: platform::clock::SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A world of the app's own: a migrated database ([`FreshDatabase`]), a Redis key prefix
    /// and a broker ([`TestBroker`], unless the test sets `WARUNG_KAFKA__BROKERS`). For tests
    /// that run what works on every tenant at once (the outbox relay, the audit sink, the mail
    /// sender, the jobs) or move the clock: they run beside every other test, since nothing
    /// they do can reach another test's rows, locks or topics, nor theirs reach them.
    pub fn isolated(mut self) -> Self {
        self.isolated = true;
        self
    }

    /// Runs in the isolated world of `app` (its database, Redis prefix and broker), e.g. a
    /// second process with other settings. `app` keeps the world and drops it at its stop.
    pub fn alongside(mut self, app: &TestApp) -> Self {
        self.joined = Some(app.world());
        self
    }

    pub async fn start(self) -> TestApp {
        init_logging();
        let mut overrides = self.joined.clone().unwrap_or_default();
        let isolation = if self.isolated {
            let database = FreshDatabase::create().await;
            overrides.extend(database.settings());
            overrides.push((
                "WARUNG_REDIS__KEY_PREFIX",
                format!("warung-t-{}", uuid::Uuid::now_v7().simple()),
            ));
            let broker = if self
                .overrides
                .iter()
                .any(|(key, _)| *key == "WARUNG_KAFKA__BROKERS")
            {
                None
            } else {
                let broker = TestBroker::start(&[events::AUDIT_TOPIC, events::EVENTS_TOPIC]).await;
                overrides.push(("WARUNG_KAFKA__BROKERS", broker.addr.to_string()));
                Some(broker)
            };
            Some(Isolation {
                database: Some(database),
                _broker: broker,
            })
        } else {
            None
        };
        overrides.extend(self.overrides);
        let config = config_with(&overrides);
        if isolation.is_none() && self.joined.is_none() {
            migrated(&config).await;
        }
        let mut modules = self
            .modules
            .unwrap_or_else(|| gateway::modules::ALL.to_vec());
        if !self.module_workers {
            for module in &mut modules {
                module.workers = |_| Vec::new();
            }
        }
        let system = SystemDb::connect(&config.database).unwrap();
        let listener = tokio::net::TcpListener::bind(config.http.bind)
            .await
            .unwrap();
        let mut state = server::connect(config).unwrap();
        if let Some(clock) = self.clock {
            state = state.with_clock(clock);
        }
        let server = server::start(listener, state.clone(), system.clone(), &modules)
            .await
            .unwrap();
        TestApp {
            base: format!("http://{}", server.addr),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            state,
            system,
            modules,
            server: Some(server),
            isolation,
        }
    }
}

/// The running application under test.
#[derive(Debug)]
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub system: SystemDb,
    modules: Vec<Module>,
    server: Option<Server>,
    isolation: Option<Isolation>,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// The settings of this isolated app's world: its database, Redis prefix and broker (as
    /// `WARUNG_*` variables, e.g. for a `warung` command the test runs).
    pub fn world(&self) -> Vec<(&'static str, String)> {
        let isolation = self.isolation.as_ref().expect("an isolated app");
        let mut settings = isolation.database().settings();
        settings.push((
            "WARUNG_REDIS__KEY_PREFIX",
            self.state.config.redis.key_prefix.clone(),
        ));
        settings.push(("WARUNG_KAFKA__BROKERS", self.kafka_brokers().to_owned()));
        settings
    }

    /// The whole configuration of this isolated app's world, with the credentials the
    /// request path's state drops (the system and owner URLs): for a `warung` command the test
    /// runs in-process, which connects on its own.
    pub fn config(&self) -> Config {
        config_with(&self.world())
    }

    /// All modules against the stack as configured.
    pub async fn spawn() -> Self {
        Self::builder().start().await
    }

    /// Runs one of the app's jobs now, under its lock and lease, like `warung jobs run`.
    pub async fn run_job(&self, name: &str, dry_run: bool) -> jobs::RunOutcome {
        let job = self
            .modules
            .iter()
            .flat_map(|m| (m.jobs)(&self.state))
            .find(|job| job.name == name)
            .unwrap_or_else(|| panic!("no job named {name}"));
        self.job_runner()
            .run(&job, jobs::Trigger::Manual, dry_run, &Default::default())
            .await
    }

    /// Runs a job until one run completes: a run finding the lock held elsewhere (another
    /// test's run) or losing it on a loaded machine is tried again. Panics on any other
    /// outcome.
    pub async fn run_job_to_completion(&self, name: &str, dry_run: bool) -> jobs::JobReport {
        for _ in 0..40 {
            match self.run_job(name, dry_run).await {
                jobs::RunOutcome::Succeeded(report) => return report,
                jobs::RunOutcome::Busy | jobs::RunOutcome::Fenced => {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        panic!("{name} never got its lock");
    }

    pub fn job_runner(&self) -> jobs::Runner {
        jobs::Runner::new(&self.state, self.system.clone())
    }

    /// A client whose requests come from another loopback address (`127.0.0.N`), so a test of
    /// a per-address limit is not disturbed by other tests.
    pub fn client_from(&self, address: [u8; 4]) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(address))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// The internal metrics listener's `/metrics`, when `http.metrics_bind` is set.
    pub fn metrics_url(&self) -> Option<String> {
        let addr = self.server.as_ref()?.metrics_addr?;
        Some(format!("http://{addr}/metrics"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A fresh tenant, created the way onboarding does: inside its own tenant transaction.
    pub async fn tenant(&self) -> TestTenant {
        let id = TenantId::new();
        let slug = format!("t-{}", id.0.simple());
        let mut tx = self.state.db.tenant(id).begin().await.unwrap();
        sqlx::query(
            "insert into tenants (id, slug, business_name, locale, country) values ($1, $2, $3, 'id', 'ID')",
        )
        .bind(id)
        .bind(&slug)
        .bind(format!("Toko {}", &slug[2..10]))
        .execute(&mut *tx)
        .await
        .unwrap();
        audited(&mut tx, "tenant.created").await;
        tx.commit().await.unwrap();
        TestTenant { id, slug }
    }

    /// A tenant transaction, as request code gets it.
    pub async fn tenant_tx(&self, tenant: TenantId) -> TenantTx {
        self.state.db.tenant(tenant).begin().await.unwrap()
    }

    /// A connection as the schema owner, for tests that inspect the catalogue or stage fixtures
    /// no application role may create.
    pub async fn owner_pool(&self) -> PgPool {
        match &self.isolation {
            Some(isolation) => isolation.database().owner().await,
            None => PgPool::connect(&stack_env()["WARUNG_DATABASE__MIGRATE_URL"])
                .await
                .unwrap(),
        }
    }

    /// The broker this app publishes to and consumes from.
    pub fn kafka_brokers(&self) -> &str {
        &self.state.config.kafka.brokers
    }

    /// A throwaway tenant table built with the same pattern as real ones (RLS helper, explicit
    /// grants), for tests that need rows before a module owns such a table. Drop it with
    /// [`TestApp::drop_table`].
    pub async fn scratch_table(&self, columns: &str) -> String {
        let owner = self.owner_pool().await;
        let table = format!("scratch_{}", uuid::Uuid::now_v7().simple());
        for statement in [
            format!(
                "create table {table} (tenant_id uuid not null references tenants (id), id uuid not null, \
                 {columns}, primary key (tenant_id, id))"
            ),
            format!("select warung_enable_tenant_rls('{table}')"),
            format!("grant select, insert on {table} to warung_app"),
            format!("grant select on {table} to warung_system"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&owner)
                .await
                .unwrap();
        }
        owner.close().await;
        table
    }

    pub async fn drop_table(&self, table: &str) {
        let owner = self.owner_pool().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("drop table if exists {table}")))
            .execute(&owner)
            .await
            .unwrap();
        owner.close().await;
    }

    /// Carries the audit records waiting in the outbox into the audit store: the relay's
    /// envelope, then the sink's own `store`, with the broker between them left out. For tests
    /// on a [`FreshDatabase`], whose events must not cross to other tests' sinks through the
    /// shared topics (nor theirs to this one). Returns how many records it delivered.
    pub async fn deliver_audit(&self) -> usize {
        use rdkafka::message::{OwnedMessage, Timestamp};
        let mut tx = self.system.pool().begin().await.unwrap();
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "select seq, tenant_id::text,
                    jsonb_build_object('event_id', event_id, 'type', event_type,
                        'schema_version', schema_version, 'tenant_id', tenant_id, 'actor', actor,
                        'occurred_at', occurred_at, 'request_id', request_id, 'payload', payload)::text,
                    (extract(epoch from occurred_at) * 1000)::bigint
             from outbox where published_at is null and topic = $1 order by seq for update",
        )
        .bind(events::AUDIT_TOPIC)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        let messages: Vec<OwnedMessage> = rows
            .iter()
            .enumerate()
            .map(|(i, (_, key, envelope, at))| {
                OwnedMessage::new(
                    Some(envelope.clone().into_bytes()),
                    Some(key.clone().into_bytes()),
                    events::AUDIT_TOPIC.to_owned(),
                    Timestamp::CreateTime(*at),
                    0,
                    i as i64,
                    None,
                )
            })
            .collect();
        audit::sink::store(&self.system, &messages).await.unwrap();
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        sqlx::query("update outbox set published_at = now() where seq = any($1)")
            .bind(&seqs)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        rows.len()
    }

    /// Shuts the app down; an isolated app's database goes with it.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Some(database) = self.isolation.as_mut().and_then(|i| i.database.take()) {
            database.drop().await;
        }
    }
}

/// Records a test's change the way request code must: one audit record before commit (a
/// transaction that wrote cannot commit without one).
pub async fn audited(tx: &mut TenantTx, action: &'static str) {
    let record = AuditRecord::new(
        Actor::System { name: "test" },
        action,
        Resource::new("test", tx.tenant()),
    );
    events::emit_audit(tx, &record).await.unwrap();
}

#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: TenantId,
    pub slug: String,
}

/// `host:port` of a dependency URL from the stack (`redis://127.0.0.1:6379` -> the socket address).
pub fn url_addr(var: &str) -> std::net::SocketAddr {
    let url = url::Url::parse(&stack_env()[var]).unwrap();
    let host = url.host_str().unwrap();
    let port = url.port_or_known_default().unwrap();
    format!("{host}:{port}").parse().unwrap()
}

/// Asserts `response` is a 429 for `limit`: problem+json naming the limit, and a `Retry-After`
/// of at least a second. Returns the problem.
pub async fn rate_limited(response: reqwest::Response, limit: &str) -> serde_json::Value {
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
    assert_eq!(
        response.headers()["content-type"],
        platform::error::PROBLEM_CONTENT_TYPE
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited", "{problem}");
    assert_eq!(problem["limit"], limit, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("retry in")),
        "{problem}"
    );
    problem
}
