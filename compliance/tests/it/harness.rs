//! A deployment of the test's own: a fresh database, a Transit KEK made for the test, the app
//! on both, and a small shop in it (an owner, a cashier, two customers with consent, a product,
//! an order), its audit records delivered to the store. [`Verifier::verify`] runs the command's
//! code against it.

use std::path::PathBuf;

use compliance::Report;
use gateway::verify::VerifyArgs;
use platform::{
    Role,
    compliance::{Ctx, Status},
    db::TenantTx,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::{FreshDatabase, Merchant, Staff, TestApp, customer_body, stack_env};

pub struct Verifier {
    pub app: TestApp,
    pub db: FreshDatabase,
    pub kek: Kek,
    pub merchant: Merchant,
    pub cashier: Staff,
    /// Two customers (JSON as created), each with an email, a phone and consent.
    pub customers: Vec<Value>,
    pub emails: Vec<String>,
    settings: Vec<(&'static str, String)>,
}

/// A Transit key of the test's own (aes256-gcm96, derived), managed with the root token.
pub struct Kek {
    pub name: String,
    /// The root token in a file, as the app reads its token (`WARUNG_VAULT__TOKEN_FILE`).
    pub token_file: PathBuf,
    client: reqwest::Client,
    addr: String,
    root: String,
}

impl Kek {
    pub async fn create() -> Self {
        let env = stack_env();
        let token_file = PathBuf::from(&env["WARUNG_VAULT__TOKEN_FILE"]);
        let init: Value = serde_json::from_str(
            &std::fs::read_to_string(token_file.with_file_name("init.json")).unwrap(),
        )
        .unwrap();
        let name = format!("ft-kek-{}", uuid::Uuid::now_v7().simple());
        let root = init["root_token"].as_str().unwrap().to_owned();
        let token_file = std::env::temp_dir().join(format!("{name}.token"));
        std::fs::write(&token_file, &root).unwrap();
        let kek = Self {
            name,
            token_file,
            client: reqwest::Client::new(),
            addr: env["WARUNG_VAULT__ADDR"].trim_end_matches('/').to_owned(),
            root,
        };
        kek.post("", json!({"type": "aes256-gcm96", "derived": true}))
            .await;
        kek
    }

    /// `POST transit/keys/NAME{suffix}` with the root token.
    pub async fn post(&self, suffix: &str, body: Value) {
        let url = format!("{}/v1/transit/keys/{}{suffix}", self.addr, self.name);
        let response = self
            .client
            .post(url)
            .header("x-vault-token", &self.root)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }

    async fn delete(&self) {
        self.post("/config", json!({"deletion_allowed": true}))
            .await;
        let url = format!("{}/v1/transit/keys/{}", self.addr, self.name);
        let _ = self
            .client
            .delete(url)
            .header("x-vault-token", &self.root)
            .send()
            .await;
        let _ = std::fs::remove_file(&self.token_file);
    }
}

impl Verifier {
    pub async fn start() -> Self {
        let db = FreshDatabase::create().await;
        let kek = Kek::create().await;
        let mut settings = db.settings();
        settings.push(("WARUNG_VAULT__KEK_NAME", kek.name.clone()));
        // Job locks of its own: the everyday-shop test runs every job.
        settings.push((
            "WARUNG_REDIS__KEY_PREFIX",
            format!("warung-t-{}", uuid::Uuid::now_v7().simple()),
        ));
        // The app's token may use warung-kek only; this deployment's key is the test's own.
        settings.push((
            "WARUNG_VAULT__TOKEN_FILE",
            kek.token_file.display().to_string(),
        ));
        let mut builder = TestApp::builder();
        for (key, value) in &settings {
            builder = builder.set(key, value.clone());
        }
        let app = builder.start().await;
        let merchant = app.merchant().await;
        let cashier = app.staff(&merchant, Role::Cashier).await;
        let mut customers = Vec::new();
        let mut emails = Vec::new();
        for (name, phone) in [("ani", "+62 811-2233-4455"), ("budi", "+62 812-9876-5432")] {
            let email = format!("{name}.{}@example.id", uuid::Uuid::now_v7().simple());
            let mut body = customer_body(&email);
            body["phone"] = json!(phone);
            customers.push(app.customer(&cashier, &body).await);
            emails.push(email);
        }
        let product = app.product(&merchant.owner, 18_000, 10).await;
        app.order(
            &cashier,
            &json!({"lines": [{"product_id": product["id"], "quantity": 2}], "customer_id": customers[0]["id"]}),
        )
        .await;
        app.deliver_audit().await;
        Self {
            app,
            db,
            kek,
            merchant,
            cashier,
            customers,
            emails,
            settings,
        }
    }

    /// The context `warung compliance verify` builds, for this deployment, with `extra`
    /// settings on top.
    pub async fn context(&self, extra: &[(&'static str, String)], args: &VerifyArgs) -> Ctx {
        let mut settings = self.settings.clone();
        settings.extend(extra.iter().cloned());
        let config = testkit::config_with(&settings);
        gateway::verify::context(config, args).await.unwrap()
    }

    pub async fn verify(&self) -> Report {
        self.verify_with(&[], &VerifyArgs::default()).await
    }

    pub async fn verify_with(&self, extra: &[(&'static str, String)], args: &VerifyArgs) -> Report {
        let ctx = self.context(extra, args).await;
        self.run(&ctx).await
    }

    pub async fn run(&self, ctx: &Ctx) -> Report {
        let checks = compliance::all_checks(&gateway::verify::probes());
        compliance::run(ctx, &checks).await
    }

    /// The schema owner on this deployment's database.
    pub async fn owner(&self) -> PgPool {
        self.db.owner().await
    }

    pub async fn owner_exec(&self, statements: &[&str]) {
        let owner = self.owner().await;
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                .execute(&owner)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        owner.close().await;
    }

    pub async fn system_exec(&self, statement: &str) {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(self.app.system.pool())
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// A tenant transaction of the shop, as request code gets it.
    pub async fn tx(&self) -> TenantTx {
        self.app.tenant_tx(self.merchant.tenant).await
    }

    /// Runs `statement` in the shop's tenant transaction and commits it with an audit record.
    pub async fn app_exec(&self, statement: &str) {
        let mut tx = self.tx().await;
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        testkit::audited(&mut tx, "test.injected").await;
        tx.commit().await.unwrap();
    }

    pub fn tenant(&self) -> uuid::Uuid {
        self.merchant.tenant.0
    }

    pub fn customer(&self, i: usize) -> uuid::Uuid {
        self.customers[i]["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn finish(self) {
        self.app.stop().await;
        self.db.drop().await;
        self.kek.delete().await;
    }
}

/// Fails unless exactly `failing` checks failed, every other one passed or was skipped, and
/// none could not run.
pub fn assert_only(report: &Report, failing: &[&str]) {
    let mut failed = report.ids(Status::Fail);
    failed.sort_unstable();
    let mut expected = failing.to_vec();
    expected.sort_unstable();
    let errors: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.status == Status::Error)
        .map(|f| format!("{}: {}", f.id, f.summary))
        .collect();
    let details: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| format!("{}: {} {}", f.id, f.summary, f.evidence))
        .collect();
    assert!(errors.is_empty(), "checks could not run: {errors:#?}");
    assert_eq!(failed, expected, "failed: {details:#?}");
    assert_eq!(report.passed(), failing.is_empty());
}
