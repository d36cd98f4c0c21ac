//! The legal map: for each check, the law it gives evidence for and how to fix a failure.
//!
//! - UU PDP: Law No. 27/2022 on Personal Data Protection, as `Pasal N ayat (M) huruf x`.
//! - GDPR: Regulation (EU) 2016/679, as `Art. N(M)(x)`.
//! - Kominfo: the ministry's PDP implementation assessment tool (Ditjen Aptika, 2021), sections
//!   A1-A7 (processing principles) and B (transfer and disclosure).
//! - KAMI: BSSN's Indeks KAMI 5.0; area VII (Pelindungan Data Pribadi) items are `7.x`, other
//!   areas' items are cited by their number where area VII has no item for the control.
//!
//! docs/COMPLIANCE.md (Verification) explains each check under a heading of its id; a unit test
//! keeps the map, the registered checks and that page in step.

use serde::{Deserialize, Serialize};

/// The law a check gives evidence for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Legal {
    pub uu_pdp: Vec<String>,
    pub gdpr: Vec<String>,
    pub kominfo: Vec<String>,
    pub kami: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub id: &'static str,
    pub uu_pdp: &'static [&'static str],
    pub gdpr: &'static [&'static str],
    pub kominfo: &'static [&'static str],
    pub kami: &'static [&'static str],
    pub remediation: &'static str,
}

impl Entry {
    pub fn legal(&self) -> Legal {
        let own = |refs: &[&str]| refs.iter().map(|r| (*r).to_owned()).collect();
        Legal {
            uu_pdp: own(self.uu_pdp),
            gdpr: own(self.gdpr),
            kominfo: own(self.kominfo),
            kami: own(self.kami),
        }
    }
}

pub fn entry(id: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.id == id)
}

/// The check's section in docs/COMPLIANCE.md (GitHub's anchor for a `#### id` heading drops
/// the dots).
pub fn docs_link(id: &str) -> String {
    format!("docs/COMPLIANCE.md#{}", id.replace('.', ""))
}

// Shared references, so each group cites the same articles.
const SECURITY_PDP: &[&str] = &["Pasal 16 ayat (2) huruf e", "Pasal 35", "Pasal 39 ayat (1)"];
const ISOLATION_GDPR: &[&str] = &["Art. 5(1)(f)", "Art. 25(1)", "Art. 32(1)(b)"];
const ENCRYPTION_PDP: &[&str] = &["Pasal 16 ayat (2) huruf e", "Pasal 35", "Pasal 39 ayat (2)"];
const ENCRYPTION_GDPR: &[&str] = &["Art. 5(1)(f)", "Art. 25(1)", "Art. 32(1)(a)"];
const RECORDS_PDP: &[&str] = &["Pasal 16 ayat (2) huruf h", "Pasal 31", "Pasal 47"];
const RECORDS_GDPR: &[&str] = &["Art. 5(1)(f)", "Art. 5(2)", "Art. 30"];
const KEYS_PDP: &[&str] = &["Pasal 16 ayat (2) huruf e", "Pasal 35"];
const RIGHTS_PDP: &[&str] = &[
    "Pasal 14",
    "Pasal 30 ayat (1)",
    "Pasal 32 ayat (2)",
    "Pasal 40 ayat (2)",
    "Pasal 41 ayat (1)",
];
const ERASURE_PDP: &[&str] = &[
    "Pasal 8",
    "Pasal 16 ayat (2) huruf g",
    "Pasal 43 ayat (1)",
    "Pasal 44",
];
const RETENTION_PDP: &[&str] = &[
    "Pasal 16 ayat (2) huruf g",
    "Pasal 42 ayat (1)",
    "Pasal 43 ayat (1)",
];
const TRANSPORT_PDP: &[&str] = &["Pasal 35", "Pasal 39 ayat (2)"];

const fn e(
    id: &'static str,
    uu_pdp: &'static [&'static str],
    gdpr: &'static [&'static str],
    kominfo: &'static [&'static str],
    kami: &'static [&'static str],
    remediation: &'static str,
) -> Entry {
    Entry {
        id,
        uu_pdp,
        gdpr,
        kominfo,
        kami,
        remediation,
    }
}

pub static ENTRIES: &[Entry] = &[
    // Tenant isolation
    e(
        "tenancy.rls_forced",
        SECURITY_PDP,
        ISOLATION_GDPR,
        &["A5"],
        &["7.8", "5.4"],
        "Create tenant tables with `select warung_enable_tenant_rls('t')` in their migration; for an existing table run `alter table t enable row level security; alter table t force row level security`.",
    ),
    e(
        "tenancy.policies_isolate",
        SECURITY_PDP,
        ISOLATION_GDPR,
        &["A5"],
        &["7.8", "5.4"],
        "Drop every policy on the table but tenant_isolation (app), system_access (workers) and compliance_read (verifier, FOR SELECT); recreate tenant_isolation with `tenant_id = warung_current_tenant()` in USING and WITH CHECK.",
    ),
    e(
        "tenancy.roles_own_nothing",
        SECURITY_PDP,
        ISOLATION_GDPR,
        &["A5"],
        &["5.16"],
        "Give the object to the schema owner (`alter ... owner to warung`); the service roles must only hold grants.",
    ),
    e(
        "tenancy.roles_unprivileged",
        SECURITY_PDP,
        ISOLATION_GDPR,
        &["A5"],
        &["5.16", "6.16"],
        "`alter role <role> nosuperuser nobypassrls nocreaterole nocreatedb noreplication` and revoke its membership in powerful roles.",
    ),
    e(
        "tenancy.no_rls_bypass",
        SECURITY_PDP,
        ISOLATION_GDPR,
        &["A5"],
        &["5.4", "5.25"],
        "Remove BYPASSRLS from the role (`alter role r nobypassrls`) or revoke its privileges on tenant tables.",
    ),
    e(
        "tenancy.security_definer_allowlist",
        SECURITY_PDP,
        ISOLATION_GDPR,
        &["A5"],
        &["5.16"],
        "Drop the function or make it SECURITY INVOKER; an allowed one needs `set search_path = pg_catalog, public` (or `public, pg_temp`) in its definition.",
    ),
    e(
        "tenancy.app_sees_one_tenant",
        SECURITY_PDP,
        ISOLATION_GDPR,
        &["A5"],
        &["7.8", "5.4"],
        "A table shows other tenants' rows to the app role: fix its policy (see tenancy.policies_isolate) before anything else; treat it as a possible breach (UU PDP Pasal 46, GDPR Art. 33).",
    ),
    e(
        "tenancy.app_without_tenant_sees_nothing",
        SECURITY_PDP,
        ISOLATION_GDPR,
        &["A5"],
        &["7.8", "5.4"],
        "The table's policy matches rows when no tenant is set: its USING must compare with `warung_current_tenant()`, which is NULL without a tenant.",
    ),
    e(
        "tenancy.verifier_read_only",
        &["Pasal 16 ayat (2) huruf h", "Pasal 47"],
        &["Art. 5(2)", "Art. 32(1)(d)"],
        &["A5"],
        &["5.16"],
        "Revoke writes from warung_compliance (`revoke insert, update, delete, truncate on t from warung_compliance`); grant SELECT where it cannot read.",
    ),
    e(
        "tenancy.no_public_grants",
        SECURITY_PDP,
        ISOLATION_GDPR,
        &["A5"],
        &["5.4"],
        "`revoke all on t from public` and grant what each role needs explicitly.",
    ),
    // PII at rest
    e(
        "pii.plaintext_email",
        ENCRYPTION_PDP,
        ENCRYPTION_GDPR,
        &["A5"],
        &["7.8", "5.29", "6.12"],
        "Seal the value with `state.pii.seal(tx, subject, \"table.column\", value)` and keep only a blind index for lookups; rewrite the stored rows through the module that owns them.",
    ),
    e(
        "pii.plaintext_phone",
        ENCRYPTION_PDP,
        ENCRYPTION_GDPR,
        &["A5"],
        &["7.8", "5.29", "6.12"],
        "Seal the value with `state.pii.seal` (and a phone blind index if it is looked up); rewrite the stored rows through the module that owns them.",
    ),
    e(
        "pii.plaintext_nik",
        ENCRYPTION_PDP,
        ENCRYPTION_GDPR,
        &["A5"],
        &["7.8", "5.29", "6.12"],
        "A national id is specific personal data in spirit: seal it with `state.pii.seal`, or do not keep it at all.",
    ),
    e(
        "pii.sealed_format",
        ENCRYPTION_PDP,
        ENCRYPTION_GDPR,
        &["A5"],
        &["6.12", "6.13"],
        "Every write to a declared sealed column must go through `PiiCipher::seal`; find the writer that bypasses it (a benchmark mode, a migration, a hand fix) and reseal the rows.",
    ),
    e(
        "pii.sealed_bound",
        ENCRYPTION_PDP,
        ENCRYPTION_GDPR,
        &["A5", "A4"],
        &["6.12", "6.13", "7.13"],
        "A value that does not open under its own binding was changed or moved after sealing: restore it and look for tampering. One that opens elsewhere was sealed without its binding (platform::pii::cipher binds tenant, subject and `table.column`).",
    ),
    e(
        "pii.blind_index_keyed",
        ENCRYPTION_PDP,
        ENCRYPTION_GDPR,
        &["A5"],
        &["5.29", "6.12"],
        "Compute indexes with `PiiCipher::blind_index` (HMAC-SHA256 under the tenant's index key), never a plain hash; recompute the column.",
    ),
    // Audit store and its way in
    e(
        "audit.outbox_drained",
        RECORDS_PDP,
        RECORDS_GDPR,
        &["A5", "A6"],
        &["6.9", "6.8"],
        "The relay cannot publish: check `/health/ready`, the broker, and `outbox_relay_failures_total`; docs/OPERATIONS.md, Outbox and relay.",
    ),
    e(
        "audit.append_only_app",
        RECORDS_PDP,
        RECORDS_GDPR,
        &["A5"],
        &["6.9", "6.11"],
        "Revoke UPDATE, DELETE and TRUNCATE on audit_events from warung_app and restore the append-only triggers (migration ..._audit_store.sql).",
    ),
    e(
        "audit.append_only_system",
        RECORDS_PDP,
        RECORDS_GDPR,
        &["A5"],
        &["6.9", "6.11"],
        "Revoke UPDATE, DELETE and TRUNCATE on audit_events from warung_system and restore the append-only triggers (migration ..._audit_store.sql).",
    ),
    e(
        "audit.partitions_ahead",
        RECORDS_PDP,
        RECORDS_GDPR,
        &["A5"],
        &["6.9"],
        "Run `warung jobs run audit.partitions` and find why the scheduled run did not (job_runs).",
    ),
    e(
        "audit.default_partition_empty",
        RECORDS_PDP,
        RECORDS_GDPR,
        &["A5"],
        &["6.9"],
        "Run `warung jobs run audit.partitions`: it makes the missing months and moves the waiting records into them unchanged.",
    ),
    e(
        "audit.chains_intact",
        RECORDS_PDP,
        RECORDS_GDPR,
        &["A5", "A6"],
        &["6.11", "7.11"],
        "A chain broke: records were edited, removed or cut. Preserve the database, compare with backups and Kafka, and treat it as a security incident (UU PDP Pasal 46, GDPR Art. 33).",
    ),
    e(
        "audit.no_dead_letters",
        RECORDS_PDP,
        RECORDS_GDPR,
        &["A5", "A6"],
        &["6.9", "6.11"],
        "Read the reasons in audit_dead_letters, fix the cause, then replay the records (`warung outbox replay`) so they join their chains.",
    ),
    e(
        "audit.retired_digests_signed",
        RECORDS_PDP,
        RECORDS_GDPR,
        &["A5", "A7"],
        &["6.11", "7.15"],
        "A retired partition's digest no longer matches its signature: the record of what was dropped was altered. Restore audit_retired_partitions from a backup and investigate.",
    ),
    // Keys
    e(
        "keys.kek_not_exportable",
        KEYS_PDP,
        &["Art. 32(1)(a)"],
        &["A5"],
        &["6.13", "6.14"],
        "A Transit key cannot be made non-exportable again: create a new non-exportable KEK, rewrap every data key to it (`warung keys rewrap`), and retire the old one.",
    ),
    e(
        "keys.kek_deletion_refused",
        KEYS_PDP,
        &["Art. 32(1)(a)", "Art. 32(1)(c)"],
        &["A5"],
        &["6.14"],
        "`bao write transit/keys/warung-kek/config deletion_allowed=false`.",
    ),
    e(
        "keys.kek_rotated",
        KEYS_PDP,
        &["Art. 32(1)(a)"],
        &["A5"],
        &["6.14"],
        "`warung keys rotate`, then `warung keys rewrap` (docs/OPERATIONS.md, Keys and personal data).",
    ),
    e(
        "keys.no_retired_wrapping",
        KEYS_PDP,
        &["Art. 32(1)(a)", "Art. 32(1)(c)"],
        &["A5"],
        &["6.14"],
        "Lower min_decryption_version back until every key opens, run `warung keys rewrap`, and raise it again only once rewrap reports nothing pending.",
    ),
    e(
        "keys.backup_exposure",
        &[
            "Pasal 16 ayat (2) huruf g",
            "Pasal 35",
            "Pasal 43 ayat (1)",
            "Pasal 44",
        ],
        &["Art. 17(1)", "Art. 32(1)(a)"],
        &["A5", "A7"],
        &["6.14", "7.15"],
        "Rewrap (`warung keys rewrap`), then raise the KEK's min_decryption_version past versions superseded longer ago than backups are kept, so a pre-shred backup cannot be opened.",
    ),
    // Consent
    e(
        "consent.required_evidence",
        &["Pasal 20 ayat (2) huruf a", "Pasal 22", "Pasal 24"],
        &["Art. 6(1)", "Art. 7(1)"],
        &["A1"],
        &["7.10"],
        "Stop processing for the people listed until they grant (or re-grant under the new major policy); never insert consent records by hand.",
    ),
    e(
        "consent.current_policy",
        &["Pasal 16 ayat (2) huruf a", "Pasal 21"],
        &["Art. 12(1)", "Art. 13"],
        &["A1", "A6"],
        &["7.4", "7.10"],
        "Publish the policy version in both Indonesian and English (privacy_policy_texts) in a migration.",
    ),
    e(
        "consent.mail_only_with_consent",
        &["Pasal 9", "Pasal 20 ayat (2) huruf a", "Pasal 40 ayat (1)"],
        &["Art. 7(3)", "Art. 21(3)"],
        &["A1", "A3"],
        &["7.10"],
        "Find how the mail left without consent (the sender re-checks consent at send time: a bug or a hand retry), stop that path, and tell the affected people.",
    ),
    e(
        "consent.evidence_append_only",
        &["Pasal 24", "Pasal 31"],
        &["Art. 5(2)", "Art. 7(1)"],
        &["A1"],
        &["7.10"],
        "Revoke UPDATE and DELETE on consent_records from warung_app: evidence is only appended.",
    ),
    // Data-subject requests
    e(
        "privacy.requests_on_time",
        RIGHTS_PDP,
        &["Art. 12(3)"],
        &["A3"],
        &["7.12"],
        "Answer the listed requests now (`GET /api/v1/privacy/requests` shows each clock) and tell the person; find why the automatic fulfilment did not.",
    ),
    e(
        "privacy.due_times_lawful",
        RIGHTS_PDP,
        &["Art. 12(3)"],
        &["A3"],
        &["7.12"],
        "Due times come from `users::privacy::due_at`; a later one was written by something else. Correct the request and answer it within the law's limit.",
    ),
    e(
        "privacy.erased_tombstone",
        &["Pasal 31", "Pasal 43 ayat (1)", "Pasal 45"],
        &["Art. 5(2)", "Art. 17(1)", "Art. 19"],
        &["A7"],
        &["7.15"],
        "Replay the outbox (`warung outbox replay`) so the `subject.erased` record reaches the audit store, and check the dead letters.",
    ),
    e(
        "privacy.erased_keyless",
        ERASURE_PDP,
        &["Art. 17(1)"],
        &["A7"],
        &["7.15", "6.14"],
        "Shred the key (rerun the erasure job: `warung jobs run privacy.requests`); until then the person's data can be opened.",
    ),
    e(
        "privacy.erased_unlinkable",
        ERASURE_PDP,
        &["Art. 17(1)"],
        &["A7"],
        &["7.15"],
        "Null the blind indexes of the erased row (rerun the erasure job); an index lets anyone who knows the address find the row.",
    ),
    // Retention
    e(
        "retention.policies_within_law",
        RETENTION_PDP,
        &["Art. 5(1)(e)"],
        &["A7"],
        &["7.14", "5.5"],
        "Set the shop's choice back within bounds (`PUT /api/v1/retention/policies`) or fix the policy in a migration.",
    ),
    e(
        "retention.nothing_overdue",
        RETENTION_PDP,
        &["Art. 5(1)(e)"],
        &["A7"],
        &["7.14", "5.6"],
        "Run the module's retention job now (`warung jobs run retention.<module>`); if rows stay, read its job_runs for failures and the category's policy and the shop's choice.",
    ),
    e(
        "retention.jobs_on_schedule",
        RETENTION_PDP,
        &["Art. 5(1)(e)"],
        &["A7"],
        &["7.14", "5.6"],
        "Run the job now (`warung jobs run NAME`) and find why its schedule did not: scheduler off (`jobs.scheduler`), lock unavailable, or failures in job_runs.",
    ),
    e(
        "retention.no_double_run",
        RETENTION_PDP,
        &["Art. 5(1)(e)", "Art. 32(1)(b)"],
        &["A7"],
        &["7.14"],
        "Two processes ran one slot: check the Redis lock and the fencing epoch (job_leases), and the clocks of the hosts.",
    ),
    // Transport and edge
    e(
        "transport.vault_tls",
        TRANSPORT_PDP,
        &["Art. 32(1)(a)"],
        &["A5"],
        &["6.12", "6.13"],
        "Serve Vault over HTTPS and set `vault.addr` to https://; the platform trusts the system's roots.",
    ),
    e(
        "transport.smtp_tls",
        TRANSPORT_PDP,
        &["Art. 32(1)(a)"],
        &["A5"],
        &["6.12"],
        "Set `smtp.tls` to `starttls` (587) or `tls` (465) against a relay that offers it.",
    ),
    e(
        "transport.database_tls",
        TRANSPORT_PDP,
        &["Art. 32(1)(a)"],
        &["A5"],
        &["6.12"],
        "Add `sslmode=require` (better `verify-full`) to the database URLs and enable TLS on the server.",
    ),
    e(
        "transport.metrics_private",
        &["Pasal 39 ayat (1)"],
        &["Art. 32(1)(b)"],
        &["A5"],
        &["6.2", "6.16"],
        "Keep `/metrics` and readiness details behind the ingress (deny them on the public host) or serve them on an internal listener.",
    ),
    // Logs and topics
    e(
        "logs.no_pii",
        &["Pasal 16 ayat (2) huruf e", "Pasal 36"],
        &["Art. 5(1)(c)", "Art. 32(1)"],
        &["A5"],
        &["5.29", "6.11"],
        "Wrap the value in `platform::pii::Pii` (its Debug prints [redacted]), remove the log statement, and purge the affected log files.",
    ),
    e(
        "topics.no_pii",
        &["Pasal 16 ayat (2) huruf e", "Pasal 36"],
        &["Art. 5(1)(c)", "Art. 32(1)(a)"],
        &["A5", "B"],
        &["5.29", "6.12"],
        "Event payloads carry ids and sealed values only: fix the emitter; messages already on the topic expire with its retention (shorten it if needed).",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_unique_and_complete() {
        let mut ids: Vec<&str> = ENTRIES.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "duplicate legal entries");
        for entry in ENTRIES {
            assert!(!entry.uu_pdp.is_empty(), "{}: no UU PDP article", entry.id);
            assert!(!entry.gdpr.is_empty(), "{}: no GDPR article", entry.id);
            assert!(
                !entry.kominfo.is_empty(),
                "{}: no Kominfo section",
                entry.id
            );
            assert!(
                !entry.remediation.is_empty(),
                "{}: no remediation",
                entry.id
            );
            for section in entry.kominfo {
                assert!(
                    ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "B"].contains(section),
                    "{}: unknown Kominfo section {section}",
                    entry.id
                );
            }
        }
    }
}
