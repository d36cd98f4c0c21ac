//! A database of a test's own, on the stack's PostgreSQL: for tests that must see the whole
//! database in a known state (the compliance verifier asserts that exactly one check fails),
//! which the shared database, where tests run side by side, cannot give. Created empty and
//! migrated by the app that starts on it; dropped by [`FreshDatabase::drop`], and any left
//! behind by a crashed test is dropped by the next one after two hours.

use sqlx::PgPool;

use crate::stack_env;

/// The `WARUNG_DATABASE__*` URLs of the stack, pointed at another database.
#[derive(Debug, Clone)]
pub struct FreshDatabase {
    pub name: String,
}

const PREFIX: &str = "warung_ft_";

fn with_database(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).expect("stack database url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl FreshDatabase {
    /// Creates an empty database owned by the migrating role.
    pub async fn create() -> Self {
        let owner = PgPool::connect(&stack_env()["WARUNG_DATABASE__MIGRATE_URL"])
            .await
            .expect("connect as owner");
        let now = chrono_now();
        let stale: Vec<String> = sqlx::query_scalar(
            "select datname::text from pg_database where datname like 'warung\\_ft\\_%'",
        )
        .fetch_all(&owner)
        .await
        .unwrap();
        for name in stale {
            let created: u64 = name
                .trim_start_matches(PREFIX)
                .split('_')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(now);
            if now.saturating_sub(created) > 2 * 3600 {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "drop database if exists {name} with (force)"
                )))
                .execute(&owner)
                .await;
            }
        }
        let name = format!(
            "{PREFIX}{now}_{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&owner)
            .await
            .expect("create database (the migrating role needs CREATEDB: scripts/stack up)");
        owner.close().await;
        Self { name }
    }

    /// Settings that point an app (and the verifier) at this database.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let env = stack_env();
        let mut settings = Vec::new();
        for key in [
            "WARUNG_DATABASE__APP_URL",
            "WARUNG_DATABASE__SYSTEM_URL",
            "WARUNG_DATABASE__MIGRATE_URL",
            "WARUNG_DATABASE__COMPLIANCE_URL",
        ] {
            if let Some(url) = env.get(key) {
                settings.push((key, with_database(url, &self.name)));
            }
        }
        settings
    }

    /// The schema owner's pool on this database.
    pub async fn owner(&self) -> PgPool {
        let url = with_database(&stack_env()["WARUNG_DATABASE__MIGRATE_URL"], &self.name);
        PgPool::connect(&url).await.expect("connect as owner")
    }

    pub async fn drop(self) {
        let owner = PgPool::connect(&stack_env()["WARUNG_DATABASE__MIGRATE_URL"])
            .await
            .expect("connect as owner");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "drop database if exists {} with (force)",
            self.name
        )))
        .execute(&owner)
        .await
        .expect("drop the test's database");
        owner.close().await;
    }
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
