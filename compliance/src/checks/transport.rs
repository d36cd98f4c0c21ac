//! Transport and edge: in production, Vault, SMTP and PostgreSQL are reached over TLS (each
//! proven by a live connection), and what the deployment declares private is not served on its
//! public address.

use futures::FutureExt;
use platform::{
    clients::{Mailer, Vault},
    compliance::{Check, Ctx, Finding, Group::Transport, Severity},
    config::{Environment, SmtpTls},
};

use super::check;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check(
            "transport.vault_tls",
            Transport,
            "Vault is reached over TLS in production",
            Severity::High,
            0.8,
            false,
            |c| vault_tls(c).boxed(),
        ),
        check(
            "transport.smtp_tls",
            Transport,
            "Mail leaves over TLS in production",
            Severity::Medium,
            0.6,
            false,
            |c| smtp_tls(c).boxed(),
        ),
        check(
            "transport.database_tls",
            Transport,
            "The app's database connection is encrypted in production",
            Severity::High,
            0.8,
            false,
            |c| database_tls(c).boxed(),
        ),
        check(
            "transport.metrics_private",
            Transport,
            "Metrics and readiness details are not served on the public address",
            Severity::Medium,
            0.5,
            false,
            |c| metrics_private(c).boxed(),
        ),
    ]
}

fn production(ctx: &Ctx) -> Option<Finding> {
    (ctx.config.environment != Environment::Production).then(|| {
        Finding::skip(format!(
            "environment is {:?}: TLS is required in production only",
            ctx.config.environment
        ))
    })
}

async fn vault_tls(ctx: &Ctx) -> anyhow::Result<Finding> {
    if let Some(skip) = production(ctx) {
        return Ok(skip);
    }
    let addr = &ctx.config.vault.addr;
    if addr.scheme() != "https" {
        return Ok(Finding::fail(format!(
            "vault.addr is {}:// (plaintext)",
            addr.scheme()
        )));
    }
    // A live handshake: the address answers over TLS with a certificate the platform trusts.
    let health = Vault::connect(&ctx.config.vault)?.health().await?;
    Ok(Finding::pass(format!(
        "Vault answers over TLS ({health:?})"
    )))
}

async fn smtp_tls(ctx: &Ctx) -> anyhow::Result<Finding> {
    if let Some(skip) = production(ctx) {
        return Ok(skip);
    }
    let smtp = &ctx.config.smtp;
    if smtp.tls == SmtpTls::None {
        return Ok(Finding::fail(format!(
            "smtp.tls is none: mail to {}:{} travels in plaintext",
            smtp.host, smtp.port
        )));
    }
    Mailer::connect(smtp)?.ping().await?;
    Ok(Finding::pass(format!(
        "the SMTP relay completes a {:?} handshake",
        smtp.tls
    )))
}

async fn database_tls(ctx: &Ctx) -> anyhow::Result<Finding> {
    if let Some(skip) = production(ctx) {
        return Ok(skip);
    }
    let ssl: Option<bool> =
        sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_optional(ctx.app.global())
            .await?;
    Ok(if ssl == Some(true) {
        Finding::pass("the app role's connection is encrypted")
    } else {
        Finding::fail(
            "the app role's connection to PostgreSQL is not encrypted (sslmode=require or verify-full)",
        )
    })
}

async fn metrics_private(ctx: &Ctx) -> anyhow::Result<Finding> {
    if !ctx.config.compliance.metrics_private {
        return Ok(Finding::skip(
            "the deployment declares /metrics public (compliance.metrics_private = false)",
        ));
    }
    let base = ctx
        .config
        .compliance
        .public_url
        .clone()
        .unwrap_or_else(|| ctx.config.http.public_base_url.clone());
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let mut exposed = Vec::new();
    for path in ["metrics", "health/ready"] {
        let url = base.join(path)?;
        let response = client.get(url.clone()).send().await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let leaks = match path {
            "metrics" => status.is_success() && body.contains("# TYPE"),
            _ => body.contains("\"checks\"") || body.contains("\"dependencies\""),
        };
        if leaks {
            exposed.push(format!("{url} answers {status} with details"));
        }
    }
    Ok(Finding::from_violations(
        exposed,
        format!("{base} serves neither metrics nor readiness details"),
        |n| format!("{n} private endpoints are served on the public address"),
    ))
}
