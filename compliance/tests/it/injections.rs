//! One violation per test, injected the way it would happen (a hand fix, a bad migration, a
//! bug, an operator's shortcut), and the verifier must fail that check and no other.

use gateway::verify::VerifyArgs;
use platform::{
    events::{self, Actor, AuditRecord, Resource},
    pii::IndexKind,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::harness::{Verifier, assert_only};

/// Starts a deployment, applies `inject`, and asserts that exactly `checks` fail.
macro_rules! violation {
    ($name:ident, [$($check:literal),+], |$v:ident| $inject:block) => {
        #[tokio::test]
        async fn $name() {
            let verifier = Verifier::start().await;
            {
                let $v = &verifier;
                $inject
            }
            let report = verifier.verify().await;
            assert_only(&report, &[$($check),+]);
            verifier.finish().await;
        }
    };
}

// ---- PII at rest -----------------------------------------------------------------------------

violation!(an_email_in_a_product_name, ["pii.plaintext_email"], |v| {
    v.app_exec("update products set name = 'Kopi (pesan: siti.rahma@mail.co.id)'")
        .await;
});

violation!(a_phone_in_a_category_name, ["pii.plaintext_phone"], |v| {
    v.app_exec(&format!(
        "insert into categories (tenant_id, id, name, created_at, updated_at)
         values ('{}', gen_random_uuid(), 'Pesan WA 0812-3456-7890', now(), now())",
        v.tenant()
    ))
    .await;
});

violation!(a_nik_in_an_audit_payload, ["pii.plaintext_nik"], |v| {
    let mut tx = v.tx().await;
    let record = AuditRecord::new(
        Actor::System { name: "test" },
        "test.injected",
        Resource::new("customer", v.customer(0)),
    )
    .details(json!({"ktp": "3174055205900001"}));
    events::emit_audit(&mut tx, &record).await.unwrap();
    tx.commit().await.unwrap();
});

violation!(
    a_plaintext_address_in_a_sealed_column,
    ["pii.sealed_format"],
    |v| {
        v.app_exec(&format!(
        "update customers set address = convert_to('Jl. Mawar 12, Bandung', 'UTF8') where id = '{}'",
        v.customer(0)
    ))
    .await;
    }
);

violation!(
    a_ciphertext_moved_to_another_customer,
    ["pii.sealed_bound"],
    |v| {
        v.app_exec(&format!(
        "update customers set full_name = (select full_name from customers where id = '{}') where id = '{}'",
        v.customer(1),
        v.customer(0)
    ))
    .await;
    }
);

violation!(
    an_unkeyed_hash_as_blind_index,
    ["pii.blind_index_keyed"],
    |v| {
        let normalized = IndexKind::Email.normalize(&v.emails[0]);
        let digest = hex::encode(Sha256::digest(normalized.as_bytes()));
        v.app_exec(&format!(
            "update customers set email_index = '\\x{digest}' where id = '{}'",
            v.customer(0)
        ))
        .await;
    }
);

// ---- Tenant isolation ------------------------------------------------------------------------

violation!(rls_not_forced_on_one_table, ["tenancy.rls_forced"], |v| {
    v.owner_exec(&["alter table categories no force row level security"])
        .await;
});

violation!(
    a_second_policy_for_the_app_role,
    ["tenancy.policies_isolate"],
    |v| {
        v.owner_exec(&[
            "create policy also_mine on products for select to warung_app
                    using (tenant_id = warung_current_tenant())",
        ])
        .await;
    }
);

violation!(
    an_object_owned_by_the_app_role,
    ["tenancy.roles_own_nothing"],
    |v| {
        // A schema: the app role has no CREATE on `public`, so it can be given nothing there.
        v.owner_exec(&[
            "grant warung_app to warung",
            "create schema ft_owned authorization warung_app",
            "revoke warung_app from warung",
        ])
        .await;
    }
);

#[tokio::test]
async fn a_verifier_role_that_may_create_databases() {
    let v = Verifier::start().await;
    let role = format!("ft_v_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    v.owner_exec(&[
        &format!("create role {role} login createdb password 'ft-password'"),
        &format!("grant warung_compliance to {role}"),
    ])
    .await;
    let env = testkit::stack_env();
    let mut url = url::Url::parse(&env["WARUNG_DATABASE__MIGRATE_URL"]).unwrap();
    url.set_username(&role).unwrap();
    url.set_password(Some("ft-password")).unwrap();
    url.set_path(&format!("/{}", v.db.name));
    let report = v
        .verify_with(
            &[("WARUNG_DATABASE__COMPLIANCE_URL", url.to_string())],
            &VerifyArgs::default(),
        )
        .await;
    // The role lives in the cluster, not in the test's database: gone before any assertion.
    v.finish().await;
    let owner = sqlx::PgPool::connect(&env["WARUNG_DATABASE__MIGRATE_URL"])
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("drop role {role}")))
        .execute(&owner)
        .await
        .unwrap();
    assert_only(&report, &["tenancy.roles_unprivileged"]);
}

violation!(
    a_bypassrls_role_granted_a_tenant_table,
    ["tenancy.no_rls_bypass"],
    |v| {
        // scripts/stack provisions `warung_ft_bypass` (BYPASSRLS, nothing granted) for this test:
        // only a superuser can make such a role.
        v.owner_exec(&["grant select on customers to warung_ft_bypass"])
            .await;
    }
);

violation!(
    an_unlisted_security_definer_function,
    ["tenancy.security_definer_allowlist"],
    |v| {
        v.owner_exec(&[
            "create function ft_definer() returns int language sql security definer as 'select 1'",
        ])
        .await;
    }
);

#[tokio::test]
async fn a_tenant_function_that_shows_another_tenant() {
    let v = Verifier::start().await;
    let other = v.app.merchant().await;
    // Same catalog, other behaviour: each tenant's transaction sees the other's rows.
    let (a, b) = (v.tenant(), other.tenant.0);
    v.owner_exec(&[&format!(
        "create or replace function warung_current_tenant() returns uuid language sql stable as $$
             select case nullif(current_setting('app.tenant_id', true), '')::uuid
                 when '{a}' then '{b}'::uuid when '{b}' then '{a}'::uuid
                 else nullif(current_setting('app.tenant_id', true), '')::uuid end $$"
    )])
    .await;
    let report = v.verify().await;
    assert_only(&report, &["tenancy.app_sees_one_tenant"]);
    v.finish().await;
}

violation!(
    a_tenant_function_with_a_default_tenant,
    ["tenancy.app_without_tenant_sees_nothing"],
    |v| {
        v.owner_exec(&[&format!(
        "create or replace function warung_current_tenant() returns uuid language sql stable as $$
             select coalesce(nullif(current_setting('app.tenant_id', true), '')::uuid, '{}'::uuid) $$",
        v.tenant()
    )])
    .await;
    }
);

#[tokio::test]
async fn a_table_the_verifier_cannot_read_is_an_error_never_a_clean_scan() {
    let v = Verifier::start().await;
    // A tenant table made by hand, without the helper: RLS forced, the app's policy, and no
    // policy (or grant) for the verifier. Its rows hold an email the scan must not miss quietly.
    v.owner_exec(&[
        "create table ft_notes (tenant_id uuid not null references tenants (id), id uuid not null,
             note text not null, primary key (tenant_id, id))",
        "alter table ft_notes enable row level security",
        "alter table ft_notes force row level security",
        "create policy tenant_isolation on ft_notes to warung_app
             using (tenant_id = warung_current_tenant()) with check (tenant_id = warung_current_tenant())",
        "grant select, insert on ft_notes to warung_app",
        "revoke all on ft_notes from warung_compliance",
    ])
    .await;
    v.app_exec(&format!(
        "insert into ft_notes values ('{}', gen_random_uuid(), 'call siti@example.id')",
        v.tenant()
    ))
    .await;
    let report = v.verify().await;
    let mut errors = report.ids(platform::compliance::Status::Error);
    errors.sort_unstable();
    assert_eq!(
        errors,
        [
            "pii.plaintext_email",
            "pii.plaintext_nik",
            "pii.plaintext_phone"
        ],
        "{}",
        report.to_table(false)
    );
    let finding = report.finding("pii.plaintext_email").unwrap();
    assert!(finding.summary.contains("ft_notes"), "{}", finding.summary);
    assert_eq!(
        report.ids(platform::compliance::Status::Fail),
        ["tenancy.verifier_read_only"]
    );
    assert!(!report.passed());
    v.finish().await;
}

violation!(
    a_write_grant_to_the_verifier,
    ["tenancy.verifier_read_only"],
    |v| {
        v.owner_exec(&["grant insert on products to warung_compliance"])
            .await;
    }
);

violation!(a_grant_to_public, ["tenancy.no_public_grants"], |v| {
    v.owner_exec(&["grant select on retention_policies to public"])
        .await;
});

// ---- Audit store -----------------------------------------------------------------------------

violation!(
    an_old_record_stuck_in_the_outbox,
    ["audit.outbox_drained"],
    |v| {
        v.system_exec(&format!(
        "insert into outbox (tenant_id, event_id, topic, event_type, schema_version, actor, occurred_at, payload)
         values ('{}', gen_random_uuid(), 'warung.audit.v1', 'test.stuck', 1, '{{\"kind\": \"system\"}}',
                 now() - interval '1 hour', '{{}}')",
        v.tenant()
    ))
    .await;
    }
);

violation!(
    the_app_role_may_rewrite_audit_records,
    ["audit.append_only_app"],
    |v| {
        v.owner_exec(&[
            "grant update, delete on audit_events to warung_app",
            "alter table audit_events disable trigger user",
        ])
        .await;
    }
);

violation!(
    the_system_role_may_rewrite_audit_records,
    ["audit.append_only_system"],
    |v| {
        v.owner_exec(&[
            "grant update, delete on audit_events to warung_system",
            "alter table audit_events disable trigger user",
        ])
        .await;
    }
);

#[tokio::test]
async fn a_missing_partition() {
    let v = Verifier::start().await;
    let owner = v.owner().await;
    let last: String = sqlx::query_scalar(
        "select partition_name from audit_partitions() where range_to is not null
         order by range_from desc limit 1",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    owner.close().await;
    v.owner_exec(&[&format!("drop table {last}")]).await;
    let report = v.verify().await;
    assert_only(&report, &["audit.partitions_ahead"]);
    v.finish().await;
}

violation!(
    a_record_in_the_default_partition,
    ["audit.default_partition_empty"],
    |v| {
        v.system_exec(
        "insert into audit_events (tenant_id, event_id, chain_seq, occurred_at, event_type, actor,
                                   envelope, prev_hash, hash)
         values (gen_random_uuid(), gen_random_uuid(), 1, '2100-01-01', 'test.future', '{}', '{}', '\\x00', '\\x00')",
    )
    .await;
    }
);

violation!(
    an_audit_record_edited_by_its_owner,
    ["audit.chains_intact"],
    |v| {
        // The owner steps past both guards (the append-only triggers and FORCE'd RLS), edits the
        // shop's first record, and puts the guards back: only the chain can tell.
        v.owner_exec(&[
            "alter table audit_events disable trigger user",
            "alter table audit_events no force row level security",
            &format!(
                "update audit_events set envelope = jsonb_set(envelope, '{{type}}', '\"tampered\"')
             where tenant_id = '{}' and chain_seq = 1",
                v.tenant()
            ),
            "alter table audit_events force row level security",
            "alter table audit_events enable trigger user",
        ])
        .await;
    }
);

violation!(a_dead_letter, ["audit.no_dead_letters"], |v| {
    v.system_exec(
        "insert into audit_dead_letters (topic, kafka_partition, kafka_offset, message_key, reason)
         values ('warung.audit.v1', 0, 1, null, 'unparseable')",
    )
    .await;
});

#[tokio::test]
async fn a_retired_partition_with_a_forged_signature() {
    let v = Verifier::start().await;
    let signature = v
        .app
        .state
        .vault
        .sign_digest(b"another document")
        .await
        .unwrap();
    v.system_exec(&format!(
        "insert into audit_retired_partitions (partition_name, range_from, range_to, records, digest,
                                               signature, signed_document)
         values ('audit_events_1999_01', '1999-01-01', '1999-02-01', 0, '{{\"records\": 0}}',
                 '{signature}', '{{\"records\": 0}}')"
    ))
    .await;
    let report = v.verify().await;
    assert_only(&report, &["audit.retired_digests_signed"]);
    v.finish().await;
}

// ---- Keys ------------------------------------------------------------------------------------

violation!(an_exportable_kek, ["keys.kek_not_exportable"], |v| {
    v.kek.post("/config", json!({"exportable": true})).await;
});

violation!(a_deletable_kek, ["keys.kek_deletion_refused"], |v| {
    v.kek
        .post("/config", json!({"deletion_allowed": true}))
        .await;
});

#[tokio::test]
async fn a_kek_older_than_the_rotation_period() {
    let v = Verifier::start().await;
    let report = v
        .verify_with(
            &[("WARUNG_COMPLIANCE__KEK_ROTATION_DAYS", "0".into())],
            &VerifyArgs::default(),
        )
        .await;
    assert_only(&report, &["keys.kek_rotated"]);
    v.finish().await;
}

violation!(
    a_key_wrapped_by_a_version_that_does_not_decrypt,
    ["keys.no_retired_wrapping"],
    |v| {
        v.app_exec(&format!(
        "insert into subject_keys (tenant_id, subject_id, subject_kind, wrapped_dek, kek_version)
         values ('{}', gen_random_uuid(), 'customer', 'vault:v7:AAAA', 7)",
        v.tenant()
    ))
        .await;
    }
);

#[tokio::test]
async fn a_superseded_kek_version_outliving_the_backups() {
    let v = Verifier::start().await;
    v.kek.post("/rotate", json!({})).await;
    let report = v
        .verify_with(
            &[("WARUNG_COMPLIANCE__BACKUP_RETENTION_DAYS", "0".into())],
            &VerifyArgs::default(),
        )
        .await;
    assert_only(&report, &["keys.backup_exposure"]);
    v.finish().await;
}

// ---- Consent ---------------------------------------------------------------------------------

violation!(
    a_required_purpose_withdrawn,
    ["consent.required_evidence"],
    |v| {
        v.app_exec(&format!(
        "insert into consent_records (tenant_id, id, subject_id, subject_kind, purpose, policy_version,
                                      granted, method, recorded_at)
         values ('{}', gen_random_uuid(), '{}', 'customer', 'orders', '1.0', false, 'api', now())",
        v.tenant(),
        v.customer(1)
    ))
    .await;
    }
);

violation!(
    a_policy_version_without_its_english_text,
    ["consent.current_policy"],
    |v| {
        v.owner_exec(&[
            "insert into privacy_policies (audience, version, major, minor, published_at)
         values ('customer', '1.1', 1, 1, now() - interval '1 minute')",
            "insert into privacy_policy_texts (audience, version, lang, title, body)
         values ('customer', '1.1', 'id', 'Kebijakan Privasi', 'Teks baru.')",
        ])
        .await;
    }
);

violation!(
    consent_evidence_made_editable,
    ["consent.evidence_append_only"],
    |v| {
        v.owner_exec(&["grant update on consent_records to warung_app"])
            .await;
    }
);

violation!(
    a_marketing_mail_to_a_customer_who_declined,
    ["consent.mail_only_with_consent"],
    |v| {
        v.system_exec(&format!(
            "insert into notification_deliveries (tenant_id, id, event_id, event_type, template,
                 recipient_kind, recipient_id, context, status, sent_at)
             values ('{}', gen_random_uuid(), gen_random_uuid(), 'marketing.message', 'marketing',
                     'customer', '{}', '{{}}', 'sent', now())",
            v.tenant(),
            v.customer(1)
        ))
        .await;
    }
);

// ---- Data-subject requests -------------------------------------------------------------------

fn request_row(
    v: &Verifier,
    kind: &str,
    status: &str,
    subject: uuid::Uuid,
    received: &str,
    due: &str,
) -> String {
    format!(
        "insert into privacy_requests (tenant_id, id, type, subject_kind, subject_id, channel,
                                       jurisdiction, status, received_at, due_at, completed_at,
                                       outcome, updated_at)
         values ('{}', gen_random_uuid(), '{kind}', 'customer', '{subject}', 'staff', 'uu_pdp',
                 '{status}', {received}, {due},
                 case when '{status}' = 'completed' then now() end,
                 case when '{status}' = 'completed' then 'erased' end, now())",
        v.tenant()
    )
}

violation!(an_overdue_request, ["privacy.requests_on_time"], |v| {
    let row = request_row(
        v,
        "access",
        "in_progress",
        v.customer(0),
        "now() - interval '4 days'",
        "now() - interval '1 day'",
    );
    v.app_exec(&row).await;
});

violation!(
    a_request_due_later_than_the_law_allows,
    ["privacy.due_times_lawful"],
    |v| {
        let row = request_row(
            v,
            "access",
            "awaiting_verification",
            v.customer(0),
            "now()",
            "now() + interval '60 days'",
        );
        v.app_exec(&row).await;
    }
);

violation!(
    an_erasure_without_its_tombstone,
    ["privacy.erased_tombstone"],
    |v| {
        let row = request_row(
            v,
            "erasure",
            "completed",
            uuid::Uuid::now_v7(),
            "now() - interval '2 days'",
            "now() + interval '20 days'",
        );
        v.app_exec(&row).await;
    }
);

/// Marks customer 0 erased (request, tombstone, no blind index) but leaves `keep` undone.
async fn erased_but(v: &Verifier, keep_key: bool, keep_index: bool) {
    let customer = v.customer(0);
    let mut tx = v.tx().await;
    for statement in [
        request_row(
            v,
            "erasure",
            "completed",
            customer,
            "now() - interval '2 days'",
            "now() + interval '20 days'",
        ),
        format!("update customers set erased_at = now() where id = '{customer}'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    if !keep_index {
        sqlx::query("update customers set email_index = null, phone_index = null where id = $1")
            .bind(customer)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    if !keep_key {
        sqlx::query("delete from subject_keys where subject_id = $1")
            .bind(customer)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let tombstone = AuditRecord::new(
        Actor::System { name: "test" },
        "subject.erased",
        Resource::new("customer", customer),
    );
    events::emit_audit(&mut tx, &tombstone).await.unwrap();
    tx.commit().await.unwrap();
    v.app.deliver_audit().await;
}

violation!(
    an_erased_customer_whose_key_survived,
    ["privacy.erased_keyless"],
    |v| {
        erased_but(v, true, false).await;
    }
);

violation!(
    an_erased_customer_still_findable_by_email,
    ["privacy.erased_unlinkable"],
    |v| {
        erased_but(v, false, true).await;
    }
);

// ---- Retention -------------------------------------------------------------------------------

violation!(
    a_shop_retention_below_the_legal_minimum,
    ["retention.policies_within_law"],
    |v| {
        v.app_exec(&format!(
        "insert into retention_overrides (tenant_id, category, days) values ('{}', 'notification_logs', 1)",
        v.tenant()
    ))
    .await;
    }
);

violation!(
    a_used_token_kept_past_its_policy,
    ["retention.nothing_overdue"],
    |v| {
        // auth_tokens are kept 7 days after use or expiry by default: this one expired 20 ago.
        v.app_exec(&format!(
            "insert into auth_tokens (tenant_id, token_hash, purpose, user_id, created_at, expires_at)
             values ('{}', decode(md5(random()::text), 'hex'), 'email_verification', gen_random_uuid(),
                     now() - interval '21 days', now() - interval '20 days')",
            v.tenant()
        ))
        .await;
    }
);

violation!(
    jobs_that_never_ran_on_an_old_deployment,
    ["retention.jobs_on_schedule"],
    |v| {
        v.owner_exec(&["update _sqlx_migrations set installed_on = now() - interval '10 days'"])
            .await;
    }
);

violation!(
    one_schedule_slot_run_twice,
    ["retention.no_double_run"],
    |v| {
        for offset in ["10 minutes", "9 minutes 59 seconds"] {
            v.system_exec(&format!(
            "insert into job_runs (job, epoch, dry_run, trigger, started_at, finished_at, outcome)
             values ('retention.auth', 1, false, 'schedule', now() - interval '{offset}', now(), 'succeeded')"
        ))
        .await;
        }
    }
);

// ---- Transport and edge ----------------------------------------------------------------------

#[tokio::test]
async fn production_mode_on_a_plaintext_loopback_stack() {
    // One setting trips all three: on this stack Vault, SMTP and PostgreSQL all speak plaintext
    // (or PostgreSQL may offer TLS, when the server has a certificate).
    let v = Verifier::start().await;
    let mut ctx = v.context(&[], &VerifyArgs::default()).await;
    let mut config = (*ctx.config).clone();
    config.environment = platform::config::Environment::Production;
    ctx.config = std::sync::Arc::new(config);
    let report = v.run(&ctx).await;
    let db_tls: bool =
        sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_one(ctx.app.global())
            .await
            .unwrap();
    let mut expected = vec!["transport.vault_tls", "transport.smtp_tls"];
    if !db_tls {
        expected.push("transport.database_tls");
    }
    assert_only(&report, &expected);
    v.finish().await;
}

#[tokio::test]
async fn metrics_served_where_the_deployment_says_they_are_private() {
    let v = Verifier::start().await;
    let report = v
        .verify_with(
            &[
                ("WARUNG_COMPLIANCE__METRICS_PRIVATE", "true".into()),
                ("WARUNG_COMPLIANCE__PUBLIC_URL", v.app.base.clone()),
            ],
            &VerifyArgs::default(),
        )
        .await;
    assert_only(&report, &["transport.metrics_private"]);
    v.finish().await;
}

// ---- Logs and topics -------------------------------------------------------------------------

#[tokio::test]
async fn an_email_in_a_log_file() {
    let v = Verifier::start().await;
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("clean.log"),
        "INFO order created order_id=0195\n",
    )
    .unwrap();
    let args = VerifyArgs {
        scan_logs: Some(folder.path().to_owned()),
        ..VerifyArgs::default()
    };
    let clean = v.verify_with(&[], &args).await;
    assert_only(&clean, &[]);
    assert_eq!(
        clean.finding("logs.no_pii").unwrap().status,
        platform::compliance::Status::Pass
    );
    std::fs::write(
        folder.path().join("leaky.log"),
        "INFO ok\nWARN login failed for budi.santoso@example.id\n",
    )
    .unwrap();
    let leaky = v.verify_with(&[], &args).await;
    assert_only(&leaky, &["logs.no_pii"]);
    v.finish().await;
}

#[tokio::test]
async fn a_phone_in_a_kafka_payload() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let v = Verifier::start().await;
    let broker = testkit::TestBroker::start(&[events::AUDIT_TOPIC, events::EVENTS_TOPIC]).await;
    let brokers = broker.addr.to_string();
    let args = VerifyArgs {
        scan_topics: true,
        ..VerifyArgs::default()
    };
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let send = |payload: String| {
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::<str, str>::to(events::EVENTS_TOPIC).payload(&payload),
                    std::time::Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    };
    send(json!({"type": "order.paid", "payload": {"order_id": uuid::Uuid::now_v7()}}).to_string())
        .await;
    let settings = [("WARUNG_KAFKA__BROKERS", brokers.clone())];
    let clean = v.verify_with(&settings, &args).await;
    assert_only(&clean, &[]);
    assert_eq!(
        clean.finding("topics.no_pii").unwrap().status,
        platform::compliance::Status::Pass
    );
    send(
        json!({"type": "customer.created", "payload": {"phone": "+62 812-3456-7890"}}).to_string(),
    )
    .await;
    let leaky = v.verify_with(&settings, &args).await;
    assert_only(&leaky, &["topics.no_pii"]);
    v.finish().await;
}
