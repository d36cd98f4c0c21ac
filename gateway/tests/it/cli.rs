//! The `warung` binary's exit status and output, as an operator's script would see them.

use std::process::{Command, Output};

use testkit::TestApp;

/// Runs `warung ARGS` with the suite's settings (the test process's `WARUNG_*`).
fn warung(args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warung"));
    command.args(args).env("RUST_LOG", "warn");
    for (key, value) in testkit::stack_env() {
        command.env(key, value);
    }
    for (key, value) in extra {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn jobs_list_names_every_job_and_run_refuses_an_unknown_one() {
    let app = TestApp::spawn().await;
    let listed = warung(&["jobs", "list"], &[]);
    assert!(listed.status.success(), "{}", text(&listed));
    let out = String::from_utf8_lossy(&listed.stdout);
    let jobs: Vec<_> = gateway::modules::ALL
        .iter()
        .flat_map(|m| (m.jobs)(&app.state))
        .collect();
    assert!(jobs.len() > 5);
    for job in &jobs {
        assert!(out.contains(job.name), "{} missing from:\n{out}", job.name);
    }

    let unknown = warung(&["jobs", "run", "no.such.job"], &[]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("no job named `no.such.job`"),
        "{}",
        text(&unknown)
    );

    let dry = warung(&["jobs", "run", "retention.auth", "--dry-run"], &[]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("retention.auth: succeeded; would process"),
        "{}",
        text(&dry)
    );
}

#[tokio::test]
async fn config_check_fails_on_a_bad_setting_and_names_it() {
    let good = warung(&["config", "check"], &[]);
    assert!(good.status.success(), "{}", text(&good));
    let bad = warung(
        &["config", "check"],
        &[("WARUNG_HTTP__REQUEST_TIMEOUT_MS", "0")],
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("request_timeout_ms"), "{}", text(&bad));
    let unknown = warung(&["config", "check"], &[("WARUNG_HTTP__NO_SUCH_KEY", "1")]);
    assert!(!unknown.status.success(), "{}", text(&unknown));
}

#[tokio::test]
async fn audit_verify_of_an_intact_tenant_succeeds_and_names_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let tenant = t.id.to_string();
    let verified = warung(&["audit", "verify", "--tenant", &tenant], &[]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains(&format!("{tenant}: intact")),
        "{}",
        text(&verified)
    );
}

#[tokio::test]
async fn audit_verify_exits_non_zero_on_a_broken_chain_and_names_the_link() {
    let app = TestApp::builder()
        .isolated()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .with_module_workers()
        .start()
        .await;
    let t = app.tenant().await;
    let tenant = t.id.to_string();
    // `tenant.created` and one more record reach the store through the pipeline.
    let mut tx = app.tenant_tx(t.id).await;
    testkit::audited(&mut tx, "test.emitted").await;
    tx.commit().await.unwrap();
    let mut stored: i64 = 0;
    for _ in 0..200 {
        stored = sqlx::query_scalar("select count(*) from audit_events where tenant_id = $1")
            .bind(t.id)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
        if stored >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(stored >= 2, "the chain never reached 2 records");
    let settings: Vec<(&str, String)> = app.world();
    let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let intact = warung(&["audit", "verify", "--tenant", &tenant], &env);
    assert!(intact.status.success(), "{}", text(&intact));

    // The schema owner rewrites the first record's envelope behind the chain's back.
    let owner = app.owner_pool().await;
    let mut tx = owner.begin().await.unwrap();
    for sql in [
        "alter table audit_events disable trigger audit_events_append_only",
        "alter table audit_events no force row level security",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    let changed = sqlx::query(
        "update audit_events set envelope = jsonb_set(envelope, '{action}', '\"forged\"')
         where tenant_id = $1 and chain_seq = 1",
    )
    .bind(t.id)
    .execute(&mut *tx)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 1);
    for sql in [
        "alter table audit_events enable trigger audit_events_append_only",
        "alter table audit_events force row level security",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();

    let broken = warung(&["audit", "verify", "--tenant", &tenant], &env);
    assert!(!broken.status.success(), "{}", text(&broken));
    let out = text(&broken);
    assert!(
        out.contains(&format!("{tenant}: BROKEN at record 1")),
        "{out}"
    );
    assert!(out.contains("1 of 1 audit chains are broken"), "{out}");
}

#[tokio::test]
async fn keys_rewrap_succeeds_and_exits_non_zero_naming_a_damaged_key() {
    let app = TestApp::builder().isolated().start().await;
    let t = app.tenant().await;
    let settings = app.world();
    let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let clean = warung(&["keys", "rewrap"], &env);
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(
        String::from_utf8_lossy(&clean.stdout).contains("rewrapped"),
        "{}",
        text(&clean)
    );

    // A data key wrapped under an old KEK version (1; the KEK is rotated past it if it never
    // was) that Transit cannot unwrap.
    let platform::pii::Keys::Vault(transit) = app.state.pii.keys() else {
        panic!("vault provider expected")
    };
    if transit.latest_version().await.unwrap() < 2 {
        transit.rotate().await.unwrap();
    }
    let mut tx = app.tenant_tx(t.id).await;
    sqlx::query(
        "insert into subject_keys (tenant_id, subject_id, subject_kind, wrapped_dek, kek_version)
         values ($1, $2, 'customer', 'vault:v1:bm90IGEgcmVhbCBrZXk=', 1)",
    )
    .bind(t.id)
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();
    let damaged = warung(&["keys", "rewrap"], &env);
    assert!(!damaged.status.success(), "{}", text(&damaged));
    assert!(
        text(&damaged).contains("1 data keys could not be rewrapped"),
        "{}",
        text(&damaged)
    );
}

/// `keys rotate` on a Transit key of the test's own (rotating the shared KEK would race the
/// suite's other key tests): refused with the app's token, whose policy names only the
/// deployment's KEK, it exits non-zero and the key keeps its version; with the operator's token
/// it exits 0, names the new version, and Vault holds it.
#[tokio::test]
async fn keys_rotate_exits_non_zero_when_vault_refuses_and_names_the_new_version_when_it_rotates() {
    let mut config = testkit::config_with(&[]);
    config.vault.token = secrecy::SecretString::from(testkit::vault_root_token());
    let root = platform::clients::Vault::connect(&config.vault).unwrap();
    let kek = format!("warung-kek-cli-test-{}", uuid::Uuid::now_v7().simple());
    vaultrs::transit::key::create(
        root.client(),
        &config.vault.transit_mount,
        &kek,
        Some(vaultrs::api::transit::requests::CreateKeyRequest::builder().derived(true)),
    )
    .await
    .unwrap();
    // The newest version: Transit lists one entry per version of a symmetric key.
    let version = || async {
        match vaultrs::transit::key::read(root.client(), &config.vault.transit_mount, &kek)
            .await
            .unwrap()
            .keys
        {
            vaultrs::api::transit::responses::ReadKeyData::Symmetric(versions) => versions.len(),
            other => panic!("not a symmetric key: {other:?}"),
        }
    };
    assert_eq!(version().await, 1);

    let refused = warung(&["keys", "rotate"], &[("WARUNG_VAULT__KEK_NAME", &kek)]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("permission denied"),
        "{}",
        text(&refused)
    );
    assert_eq!(version().await, 1, "a refused rotation changed the key");

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("root-token");
    std::fs::write(&token_file, testkit::vault_root_token()).unwrap();
    let rotated = warung(
        &["keys", "rotate"],
        &[
            ("WARUNG_VAULT__KEK_NAME", &kek),
            ("WARUNG_VAULT__TOKEN_FILE", token_file.to_str().unwrap()),
        ],
    );
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert!(
        String::from_utf8_lossy(&rotated.stdout)
            .contains("new data keys are wrapped with version 2"),
        "{}",
        text(&rotated)
    );
    assert_eq!(version().await, 2);
    vaultrs::transit::key::update(
        root.client(),
        &config.vault.transit_mount,
        &kek,
        Some(
            vaultrs::api::transit::requests::UpdateKeyConfigurationRequest::builder()
                .deletion_allowed(true),
        ),
    )
    .await
    .unwrap();
    vaultrs::transit::key::delete(root.client(), &config.vault.transit_mount, &kek)
        .await
        .unwrap();
}
