//! Keys: the Transit KEK is protected and rotated, no stored key depends on a retired KEK
//! version, and a backup taken before a shred stops being openable in time.

use futures::FutureExt;
use platform::{
    compliance::{Check, Ctx, Finding, Group::Keys, Severity},
    pii::{KekInfo, Keys as Provider},
};

use super::check;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check(
            "keys.kek_not_exportable",
            Keys,
            "The KEK cannot be exported or backed up in plaintext",
            Severity::Critical,
            1.0,
            false,
            |c| not_exportable(c).boxed(),
        ),
        check(
            "keys.kek_deletion_refused",
            Keys,
            "Vault refuses to delete the KEK",
            Severity::High,
            0.8,
            false,
            |c| deletion_refused(c).boxed(),
        ),
        check(
            "keys.kek_rotated",
            Keys,
            "The KEK's newest version is younger than the rotation period",
            Severity::Medium,
            0.5,
            false,
            |c| rotated(c).boxed(),
        ),
        check(
            "keys.no_retired_wrapping",
            Keys,
            "No stored key is wrapped by a KEK version that no longer decrypts",
            Severity::High,
            0.8,
            false,
            |c| no_retired_wrapping(c).boxed(),
        ),
        check(
            "keys.backup_exposure",
            Keys,
            "KEK versions superseded longer ago than backups are kept no longer decrypt",
            Severity::Medium,
            0.6,
            false,
            |c| backup_exposure(c).boxed(),
        ),
    ]
}

/// The KEK's description, or SKIP when the deployment has none (the local key file, refused in
/// production).
async fn kek(ctx: &Ctx) -> anyhow::Result<Result<KekInfo, Finding>> {
    match ctx.pii.keys() {
        Provider::Vault(transit) => Ok(Ok(transit.describe().await?)),
        Provider::Local(_) => Ok(Err(Finding::skip(
            "pii.provider = local: no Transit KEK (development only; refused in production)",
        ))),
    }
}

fn evidence(info: &KekInfo) -> serde_json::Value {
    serde_json::json!({
        "kek": info.name,
        "latest_version": info.latest_version,
        "min_decryption_version": info.min_decryption_version,
        "exportable": info.exportable,
        "allow_plaintext_backup": info.allow_plaintext_backup,
        "deletion_allowed": info.deletion_allowed,
        "derived": info.derived,
    })
}

async fn not_exportable(ctx: &Ctx) -> anyhow::Result<Finding> {
    let info = match kek(ctx).await? {
        Ok(info) => info,
        Err(skip) => return Ok(skip),
    };
    let finding = if info.exportable || info.allow_plaintext_backup {
        Finding::fail(format!(
            "{} can leave Vault (exportable: {}, plaintext backup: {})",
            info.name, info.exportable, info.allow_plaintext_backup
        ))
    } else {
        Finding::pass(format!(
            "{} is neither exportable nor backed up in plaintext",
            info.name
        ))
    };
    Ok(finding.with(evidence(&info)))
}

async fn deletion_refused(ctx: &Ctx) -> anyhow::Result<Finding> {
    let info = match kek(ctx).await? {
        Ok(info) => info,
        Err(skip) => return Ok(skip),
    };
    let finding = if info.deletion_allowed {
        Finding::fail(format!(
            "{} may be deleted: every sealed value would be lost",
            info.name
        ))
    } else {
        Finding::pass(format!("{} cannot be deleted", info.name))
    };
    Ok(finding.with(evidence(&info)))
}

async fn rotated(ctx: &Ctx) -> anyhow::Result<Finding> {
    let info = match kek(ctx).await? {
        Ok(info) => info,
        Err(skip) => return Ok(skip),
    };
    let Some(created) = info.versions.get(&info.latest_version) else {
        anyhow::bail!(
            "Vault did not say when version {} was made",
            info.latest_version
        );
    };
    let age = ctx.clock.now() - *created;
    let limit = i64::from(ctx.config.compliance.kek_rotation_days);
    let days = age.num_days();
    let finding = if age.num_seconds() > limit * 86_400 {
        Finding::fail(format!(
            "the newest version of {} is {days} days old (rotate at least every {limit} days)",
            info.name
        ))
    } else {
        Finding::pass(format!(
            "the newest version of {} is {days} days old (limit {limit})",
            info.name
        ))
    };
    Ok(finding.with(serde_json::json!({ "age_days": days, "limit_days": limit, "version": info.latest_version })))
}

async fn no_retired_wrapping(ctx: &Ctx) -> anyhow::Result<Finding> {
    let info = match kek(ctx).await? {
        Ok(info) => info,
        Err(skip) => return Ok(skip),
    };
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "select 'subject_keys', kek_version, count(*) from subject_keys
             where kek_version < $1 or kek_version > $2 group by 2
         union all
         select 'pii_index_keys', kek_version, count(*) from pii_index_keys
             where kek_version < $1 or kek_version > $2 group by 2
         order by 1, 2",
    )
    .bind(info.min_decryption_version)
    .bind(info.latest_version)
    .fetch_all(&ctx.read)
    .await?;
    Ok(Finding::from_violations(
        rows.iter()
            .map(|(table, v, n)| format!("{table}: {n} keys wrapped by KEK version {v}"))
            .collect(),
        format!(
            "every stored key is wrapped by a version between {} and {}",
            info.min_decryption_version, info.latest_version
        ),
        |n| {
            format!(
                "{n} groups of keys are wrapped by a KEK version outside what decrypts (rewrap before raising min_decryption_version)"
            )
        },
    ))
}

async fn backup_exposure(ctx: &Ctx) -> anyhow::Result<Finding> {
    let info = match kek(ctx).await? {
        Ok(info) => info,
        Err(skip) => return Ok(skip),
    };
    let keep = i64::from(ctx.config.compliance.backup_retention_days);
    let now = ctx.clock.now();
    let mut violations = Vec::new();
    for version in info.min_decryption_version..info.latest_version {
        // A version is superseded when the next one is made; backups older than `keep` days
        // are gone, so past that a superseded version only serves keys a rewrap should have moved.
        if let Some(next) = info.versions.get(&(version + 1)) {
            let superseded = now - *next;
            let days = superseded.num_days();
            if superseded.num_seconds() > keep * 86_400 {
                violations.push(format!(
                    "version {version} was superseded {days} days ago and still decrypts (backups are kept {keep} days)"
                ));
            }
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "the oldest version that decrypts is {}; none superseded more than {keep} days ago",
            info.min_decryption_version
        ),
        |n| {
            format!(
                "{n} old KEK versions still decrypt: a backup taken before a shred can still be opened"
            )
        },
    ))
}
