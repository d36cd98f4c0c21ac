//! A shop owner's own report, `GET /api/v1/compliance/report`: the checks of tenant data, over
//! their shop only (row-level security confines the verifier's connections to it), for the
//! owner alone, a few times an hour.

use platform::compliance::Status;
use serde_json::json;

use crate::harness::Verifier;

async fn report(v: &Verifier, bearer: &str) -> (u16, serde_json::Value) {
    let response = v.app.get_as("/api/v1/compliance/report", bearer).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_owner_sees_their_shops_checks_and_nothing_of_another_shop() {
    let v = Verifier::start().await;
    // Another shop on the same deployment, with an email typed into a product's name.
    let other = v.app.merchant().await;
    let product = v.app.product(&other.owner, 10_000, 5).await;
    let mut tx = v.app.tenant_tx(other.tenant).await;
    sqlx::query("update products set name = 'Kopi — pesan ke rudi@mail.co.id' where id = $1")
        .bind(
            product["id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap(),
        )
        .execute(&mut *tx)
        .await
        .unwrap();
    testkit::audited(&mut tx, "test.injected").await;
    tx.commit().await.unwrap();

    let (status, mine) = report(&v, &v.merchant.owner.bearer()).await;
    assert_eq!(status, 200, "{mine}");
    let mine: compliance::Report = serde_json::from_value(mine).unwrap();
    assert_eq!(mine.tenant, Some(v.tenant()));
    assert!(mine.passed(), "{}", mine.to_table(false));
    let deployment_wide = [
        "tenancy.rls_forced",
        "keys.kek_not_exportable",
        "transport.vault_tls",
    ];
    for id in deployment_wide {
        assert!(mine.finding(id).is_none(), "{id} is the operator's check");
    }
    assert!(mine.totals.checks >= 20, "{} checks", mine.totals.checks);
    assert!(
        mine.finding("pii.sealed_bound").unwrap().evidence["opened"]
            .as_u64()
            .unwrap()
            > 0
    );

    let (status, theirs) = report(&v, &other.owner.bearer()).await;
    assert_eq!(status, 200, "{theirs}");
    let theirs: compliance::Report = serde_json::from_value(theirs).unwrap();
    let email = theirs.finding("pii.plaintext_email").unwrap();
    assert_eq!(email.status, Status::Fail);
    assert_eq!(
        email.evidence["columns"]["products.name"]["tenants"],
        json!([other.tenant.0])
    );
    assert_eq!(theirs.ids(Status::Fail), ["pii.plaintext_email"]);

    // Each report is in its own shop's trail, with its digest.
    for tenant in [v.tenant(), other.tenant.0] {
        let recorded: i64 = sqlx::query_scalar(
            "select count(*) from outbox where tenant_id = $1 and event_type = 'compliance.verified'",
        )
        .bind(tenant)
        .fetch_one(v.app.system.pool())
        .await
        .unwrap();
        assert_eq!(recorded, 1);
    }
    v.finish().await;
}

#[tokio::test]
async fn only_the_owner_may_ask_and_only_a_few_times_an_hour() {
    let v = Verifier::start().await;
    let (status, body) = report(&v, &v.cashier.bearer()).await;
    assert_eq!(status, 403, "{body}");
    for _ in 0..6 {
        let (status, body) = report(&v, &v.merchant.owner.bearer()).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = report(&v, &v.merchant.owner.bearer()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["limit"], "compliance_reports");
    v.finish().await;
}

#[tokio::test]
async fn the_owners_connections_see_their_shop_whatever_the_query() {
    let v = Verifier::start().await;
    // A second shop, so that an unbound connection has two tenants to see.
    v.app.merchant().await;
    let config = testkit::config_with(&v.db.settings());
    let url = config.database.compliance_url.clone().unwrap();
    let bound = platform::db::Db::connect_as_tenant(
        &url,
        "test",
        1,
        std::time::Duration::from_secs(10),
        v.merchant.tenant,
    )
    .unwrap();
    let free =
        platform::db::Db::connect_as(&url, "test", 1, std::time::Duration::from_secs(10)).unwrap();
    // No `where`: row-level security alone decides.
    let count = |db: &platform::db::Db, table: &'static str| {
        let pool = db.global().clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "select count(distinct tenant_id) from {table}"
            )))
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    for table in ["staff_users", "subject_keys", "consent_records", "outbox"] {
        assert_eq!(count(&bound, table).await, 1, "{table}");
        assert_eq!(count(&free, table).await, 2, "{table}");
    }
    let tenants: Vec<uuid::Uuid> = sqlx::query_scalar("select id from tenants")
        .fetch_all(bound.global())
        .await
        .unwrap();
    assert_eq!(tenants, [v.tenant()]);
    v.finish().await;
}
