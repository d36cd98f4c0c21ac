//! A shop used the way a shop is used passes every check, with no false positive: onboarding,
//! staff, customers with consent, catalog, orders paid and refunded, a consent change, an
//! export, an erasure carried out, every retention job run. The report's formats say the same.

use gateway::verify::VerifyArgs;
use platform::compliance::Status;
use serde_json::{Value, json};

use crate::harness::{Verifier, assert_only};

async fn ok(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Files `kind` for customer `i` as the cashier and confirms it with the mailed token.
async fn request(v: &Verifier, kind: &str, i: usize) -> Value {
    let customer = v.customer(i);
    let body = json!({"type": kind, "subject": {"kind": "customer", "id": customer}});
    ok(
        v.app
            .send(
                "POST",
                "/api/v1/privacy/requests",
                &v.merchant.owner,
                None,
                Some(&body),
            )
            .await,
        201,
    )
    .await;
    let token = v
        .app
        .subject_token(
            v.merchant.tenant,
            customer,
            "privacy.identity_check_requested",
        )
        .await;
    ok(
        v.app
            .post_json(
                "/api/v1/privacy/requests/confirm",
                None,
                &json!({"token": token}),
            )
            .await,
        200,
    )
    .await
}

async fn exercise(v: &Verifier) {
    let owner = &v.merchant.owner;
    // An order paid in full, then partly refunded.
    let product = v.app.product(owner, 25_000, 20).await;
    let order = v
        .app
        .order(
            &v.cashier,
            &json!({"lines": [{"product_id": product["id"], "quantity": 2}], "customer_id": v.customer(1)}),
        )
        .await;
    let id = order["id"].as_str().unwrap();
    let key = uuid::Uuid::now_v7().to_string();
    let payment = json!({"method": "cash", "amount_minor": 50_000});
    let path = format!("/api/v1/orders/{id}/payments");
    ok(
        v.app
            .send("POST", &path, &v.cashier, Some(&key), Some(&payment))
            .await,
        201,
    )
    .await;
    let key = uuid::Uuid::now_v7().to_string();
    let refund = json!({"lines": [{"line_no": 1, "quantity": 1}], "reason": "customer_return"});
    let path = format!("/api/v1/orders/{id}/refunds");
    ok(
        v.app
            .send("POST", &path, owner, Some(&key), Some(&refund))
            .await,
        201,
    )
    .await;
    // A consent change at the till.
    let change = json!({"consents": [{"purpose": "marketing", "granted": true}]});
    let path = format!("/api/v1/customers/{}/consents", v.customer(1));
    ok(
        v.app
            .send("PUT", &path, &v.cashier, None, Some(&change))
            .await,
        200,
    )
    .await;
    // An export, and an erasure carried out by the job.
    request(v, "export", 1).await;
    let erasure = request(v, "erasure", 0).await;
    assert_eq!(erasure["status"], "scheduled", "{erasure}");
    for _ in 0..20 {
        v.app.run_job_to_completion("privacy.requests", false).await;
        let done: bool = sqlx::query_scalar(
            "select status = 'completed' from privacy_requests where tenant_id = $1 and type = 'erasure'",
        )
        .bind(v.tenant())
        .fetch_one(v.app.system.pool())
        .await
        .unwrap();
        if done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Every other job, retention's included, as the scheduler would run them.
    let names: Vec<&str> = gateway::modules::ALL
        .iter()
        .flat_map(|m| (m.jobs)(&v.app.state))
        .map(|job| job.name)
        .collect();
    for name in names {
        v.app.run_job_to_completion(name, false).await;
    }
    v.app.deliver_audit().await;
}

#[tokio::test]
async fn a_shop_in_everyday_use_passes_every_check() {
    let v = Verifier::start().await;
    exercise(&v).await;
    let erased: i64 = sqlx::query_scalar(
        "select count(*) from privacy_requests where tenant_id = $1 and type = 'erasure' and outcome = 'erased'",
    )
    .bind(v.tenant())
    .fetch_one(v.app.system.pool())
    .await
    .unwrap();
    assert_eq!(erased, 1, "the erasure was carried out");

    let folder = tempfile::tempdir().unwrap();
    let args = VerifyArgs {
        json: Some(folder.path().join("report.json")),
        junit: Some(folder.path().join("report.xml")),
        ..VerifyArgs::default()
    };
    let ctx = v.context(&[], &args).await;
    let report = gateway::verify::run(&ctx, &args).await.unwrap();
    assert_only(&report, &[]);
    assert!(
        report.totals.checks >= 40,
        "{} checks",
        report.totals.checks
    );
    // The checks that need data had data to look at.
    let evidence = |id: &str| report.finding(id).unwrap().evidence.clone();
    assert!(evidence("pii.sealed_bound")["opened"].as_u64().unwrap() > 0);
    assert!(evidence("pii.sealed_bound")["erased"].as_u64().unwrap() > 0);
    assert!(
        evidence("pii.plaintext_email")["scanned"]["values"]
            .as_u64()
            .unwrap()
            > 100
    );
    for id in [
        "audit.append_only_app",
        "audit.append_only_system",
        "consent.evidence_append_only",
    ] {
        assert_eq!(
            report.finding(id).unwrap().status,
            Status::Pass,
            "{id} had a record to try"
        );
    }

    // The JSON on disk is the report; the JUnit file has one testcase per check.
    let text = std::fs::read_to_string(folder.path().join("report.json")).unwrap();
    let json: compliance::Report = serde_json::from_str(&text).unwrap();
    // The run is in the shop's audit trail, with the digest of exactly that file.
    v.app.deliver_audit().await;
    let recorded: Vec<serde_json::Value> = sqlx::query_scalar(
        "select envelope from audit_events where tenant_id = $1 and event_type = 'compliance.verified'",
    )
    .bind(v.tenant())
    .fetch_all(v.app.system.pool())
    .await
    .unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let details = &recorded[0]["payload"]["details"];
    assert_eq!(details["report_sha256"], compliance::Report::digest(&text));
    assert_eq!(details["totals"]["checks"], report.totals.checks);
    assert_eq!(details["passed"], true);
    assert_eq!(json.totals, report.totals);
    let junit = std::fs::read_to_string(folder.path().join("report.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), report.totals.checks);
    assert_eq!(junit.matches("<failure").count(), 0);

    // Scoped to the shop: only checks of tenant data, all passing.
    let scoped = v
        .verify_with(
            &[],
            &VerifyArgs {
                tenant: Some(v.merchant.slug.clone()),
                ..VerifyArgs::default()
            },
        )
        .await;
    assert_only(&scoped, &[]);
    assert_eq!(scoped.tenant, Some(v.tenant()));
    assert!(scoped.totals.checks < report.totals.checks);
    assert!(scoped.findings.iter().all(|f| f.id != "tenancy.rls_forced"));
    v.finish().await;
}

#[tokio::test]
async fn every_check_has_its_law_its_remediation_and_its_page() {
    let checks = compliance::all_checks(&gateway::verify::probes());
    assert!(checks.len() >= 40, "{} checks", checks.len());
    let docs =
        std::fs::read_to_string(testkit::workspace_root().join("docs/COMPLIANCE.md")).unwrap();
    let mut ids: Vec<&str> = checks.iter().map(|c| c.spec.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), checks.len(), "check ids are unique");
    for check in &checks {
        let id = check.spec.id;
        let entry = compliance::legal::entry(id).unwrap_or_else(|| panic!("{id}: no legal entry"));
        assert!(!entry.uu_pdp.is_empty() && !entry.gdpr.is_empty(), "{id}");
        assert!(
            docs.contains(&format!("#### `{id}`")),
            "{id}: no section in docs/COMPLIANCE.md"
        );
        assert!(
            (0.0..=1.0).contains(&check.spec.impact),
            "{id}: impact out of range"
        );
    }
    for entry in compliance::legal::ENTRIES {
        assert!(
            ids.contains(&entry.id),
            "{}: a legal entry for no check",
            entry.id
        );
    }
}
