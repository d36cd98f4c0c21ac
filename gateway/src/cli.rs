//! `warung` subcommands.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use platform::{
    AppState,
    config::Config,
    db::SystemDb,
    jobs::RunOutcome,
    pii::{Keys, rewrap},
};

use crate::{app, modules, server};

#[derive(Debug, Parser)]
#[command(
    name = "warung",
    version,
    about = "Privacy-first, multi-tenant commerce backend"
)]
pub struct Cli {
    /// Optional TOML config file; `WARUNG_*` environment variables override it.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP and run background workers for some or all modules.
    Serve {
        /// `all`, or a comma-separated list (tenants, users, auth, products, orders, notifications, audit, admin, compliance).
        #[arg(long, default_value = "all")]
        modules: String,
        /// Also serve these modules' HTTP routes, without their workers and jobs (e.g. the
        /// request path serving `audit,notifications` whose consumers run elsewhere).
        #[arg(long, default_value = "")]
        routes_only: String,
    },
    /// Apply pending database migrations (as the schema owner, `database.migrate_url`).
    Migrate,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Key management: KEK rotation and data-key rewrap.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Audit store commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The transactional outbox: re-publish events after a broker lost data.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Scheduled jobs: list them, or run one now (under its lock, like a scheduled run).
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Print the OpenAPI document, or check a file against it.
    Openapi {
        /// Fail if this file differs from the generated document (for CI).
        #[arg(long, value_name = "FILE")]
        check: Option<PathBuf>,
        /// Write the document to this file instead of stdout.
        #[arg(long, value_name = "FILE", conflicts_with = "check")]
        output: Option<PathBuf>,
    },
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Compliance: live verification of Warung's guarantees against this deployment.
    Compliance {
        #[command(subcommand)]
        command: ComplianceCommand,
    },
    /// Demo data for trying Warung out.
    Seed {
        #[command(subcommand)]
        command: SeedCommand,
    },
    /// Print the permission matrix (every route, who may call it) as the markdown table in
    /// docs/API.md.
    Permissions,
}

#[derive(Debug, Subcommand)]
pub enum SeedCommand {
    /// An Indonesian demo shop made through the API: an owner and a cashier, 20 products,
    /// 12 customers, two days of orders, an open data-subject request. Does nothing when the
    /// shop exists; refused in production.
    Demo,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new version of the Transit KEK; new data keys are wrapped with it at once.
    Rotate,
    /// Re-wrap every stored data key under the newest KEK version (resumable; data is untouched).
    Rewrap {
        /// Keys per Transit call and database batch.
        #[arg(long, default_value_t = 200)]
        batch: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Publish again the rows already published at or after `--since` (the re-drive after a
    /// broker lost data): the relays send them once more; consumers ignore what they have.
    Replay {
        /// RFC 3339, e.g. 2026-12-01T08:00:00Z. Rows pruned by `outbox.retention_hours` are gone.
        #[arg(long)]
        since: chrono::DateTime<chrono::Utc>,
        /// Only this topic (default: both).
        #[arg(long, value_parser = [platform::events::AUDIT_TOPIC, platform::events::EVENTS_TOPIC])]
        topic: Option<String>,
        /// Count the rows, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chains and name the first broken link of each tenant.
    Verify {
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ComplianceCommand {
    /// Probe every guarantee (PII at rest, tenant isolation, the audit store, keys, consent,
    /// data-subject requests, retention, transport) and report each with its legal source.
    /// Read-only; exits non-zero when any check fails or cannot run.
    Verify(crate::verify::VerifyArgs),
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Every job with its schedule.
    List,
    /// Run one job now and print what it did.
    Run {
        name: String,
        /// Count what the job would do without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print a `platform_admin` access token for the operator's routes (`/api/v1/admin/...`).
    /// Signed with the deployment's signing key; no session, so it cannot be revoked: it lives
    /// at most 15 minutes.
    Token {
        #[arg(long, default_value_t = 15)]
        minutes: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, print it with secrets redacted.
    Check,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            modules,
            routes_only,
        } => {
            let modules = modules::with_routes_only(modules::select(&modules)?, &routes_only)?;
            let config = load(cli.config.as_deref())?;
            platform::telemetry::init(&config.telemetry);
            let system = SystemDb::connect(&config.database)?;
            let listener = tokio::net::TcpListener::bind(config.http.bind)
                .await
                .with_context(|| format!("cannot bind {}", config.http.bind))?;
            let state = server::connect(config)?;
            server::start(listener, state, system, &modules)
                .await?
                .run_until_signal()
                .await;
            Ok(())
        }
        Command::Migrate => {
            let config = load(cli.config.as_deref())?;
            platform::telemetry::init(&config.telemetry);
            platform::db::migrate(&config.database).await?;
            tracing::info!(
                migrations = platform::db::MIGRATOR.iter().count(),
                "database is up to date"
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { tenant },
        } => {
            let config = load(cli.config.as_deref())?;
            platform::telemetry::init(&config.telemetry);
            let system = SystemDb::connect(&config.database)?;
            let vault = platform::clients::Vault::connect(&config.vault)?;
            let reports = match tenant {
                Some(id) => vec![audit::verify::tenant(&system, &vault, id.into()).await?],
                None => audit::verify::all(&system, &vault).await?,
            };
            let mut out = std::io::stdout();
            let mut broken = 0;
            for report in &reports {
                match &report.first_break {
                    None => writeln!(out, "{}: intact ({} records)", report.tenant, report.links)?,
                    Some(link) => {
                        broken += 1;
                        let event = link
                            .event_id
                            .map(|e| format!(", event {e}"))
                            .unwrap_or_default();
                        writeln!(
                            out,
                            "{}: BROKEN at record {}{event}: {}",
                            report.tenant, link.chain_seq, link.reason
                        )?;
                    }
                }
            }
            if broken > 0 {
                anyhow::bail!("{broken} of {} audit chains are broken", reports.len());
            }
            Ok(())
        }
        Command::Keys { command } => {
            let config = load(cli.config.as_deref())?;
            platform::telemetry::init(&config.telemetry);
            let system = SystemDb::connect(&config.database)?;
            let state = server::connect(config)?;
            keys(&state, &system, command).await
        }
        Command::Outbox {
            command:
                OutboxCommand::Replay {
                    since,
                    topic,
                    dry_run,
                },
        } => {
            let config = load(cli.config.as_deref())?;
            platform::telemetry::init(&config.telemetry);
            let system = SystemDb::connect(&config.database)?;
            // Before the replay marks rows unsent: the oldest published row still kept.
            let kept = sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
                "select min(published_at) from outbox where published_at is not null",
            )
            .fetch_one(system.pool())
            .await?;
            let rows =
                platform::events::relay::replay(&system, since, topic.as_deref(), dry_run).await?;
            let mut out = std::io::stdout();
            if dry_run {
                writeln!(out, "{rows} rows would be published again (dry run)")?;
            } else {
                writeln!(
                    out,
                    "{rows} rows marked for publishing again; the relays send them now"
                )?;
            }
            if let Some(oldest) = kept.filter(|oldest| *oldest > since) {
                writeln!(
                    out,
                    "note: the oldest published row kept is from {oldest}; anything published \
                     between --since and then was pruned (outbox.retention_hours) and is not replayed"
                )?;
            }
            Ok(())
        }
        Command::Jobs { command } => {
            let config = load(cli.config.as_deref())?;
            platform::telemetry::init(&config.telemetry);
            let system = SystemDb::connect(&config.database)?;
            let state = server::connect(config)?;
            jobs(&state, system, command).await
        }
        Command::Admin {
            command: AdminCommand::Token { minutes },
        } => {
            let config = load(cli.config.as_deref())?;
            let state = server::connect(config)?;
            let service = auth::Service::from_state(&state)?;
            let operator = platform::id::UserId::new();
            let token = service.operator_token(operator, chrono::Utc::now(), minutes * 60)?;
            writeln!(std::io::stdout(), "{token}")?;
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let config = load(cli.config.as_deref())?;
            writeln!(std::io::stdout(), "configuration is valid:\n{config:#?}")?;
            Ok(())
        }
        Command::Openapi { check, output } => {
            let json = app::openapi().to_pretty_json()? + "\n";
            match (check, output) {
                (Some(path), _) => check_file(&path, &json),
                (None, Some(path)) => Ok(std::fs::write(&path, json)?),
                (None, None) => Ok(std::io::stdout().write_all(json.as_bytes())?),
            }
        }
        Command::Compliance {
            command: ComplianceCommand::Verify(args),
        } => {
            let config = load(cli.config.as_deref())?;
            platform::telemetry::init(&config.telemetry);
            let ctx = crate::verify::context(config, &args).await?;
            let report = crate::verify::run(&ctx, &args).await?;
            if !report.passed() {
                anyhow::bail!(
                    "compliance verification failed: {} checks failed, {} could not run",
                    report.totals.fail,
                    report.totals.error
                );
            }
            Ok(())
        }
        Command::Seed {
            command: SeedCommand::Demo,
        } => {
            let config = load(cli.config.as_deref())?;
            platform::telemetry::init(&config.telemetry);
            let outcome = crate::demo::seed(config).await?;
            demo_report(&mut std::io::stdout(), &outcome)?;
            Ok(())
        }
        Command::Permissions => {
            Ok(std::io::stdout().write_all(app::permission_matrix().as_bytes())?)
        }
    }
}

async fn keys(state: &AppState, system: &SystemDb, command: KeysCommand) -> anyhow::Result<()> {
    let Keys::Vault(transit) = state.pii.keys() else {
        anyhow::bail!("key rotation applies to pii.provider = vault");
    };
    let mut out = std::io::stdout();
    match command {
        KeysCommand::Rotate => {
            let version = transit.rotate().await?;
            writeln!(
                out,
                "KEK rotated: new data keys are wrapped with version {version}."
            )?;
            writeln!(
                out,
                "Run `warung keys rewrap` to move existing data keys to it."
            )?;
        }
        KeysCommand::Rewrap { batch } => {
            let latest = transit.latest_version().await?;
            let total = rewrap::pending(system, latest).await?;
            let bar = indicatif::ProgressBar::new(total).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} keys  {per_sec}  eta {eta}",
                )?,
            );
            let report = rewrap::rewrap_all(state.pii.keys(), system, batch.max(1), |done| {
                bar.set_position(done)
            })
            .await?;
            bar.finish();
            writeln!(
                out,
                "rewrapped {} data keys to KEK version {} ({} skipped: shredded or changed meanwhile)",
                report.rewrapped, report.latest_version, report.skipped
            )?;
            if report.failed > 0 {
                anyhow::bail!(
                    "{} data keys could not be rewrapped (damaged; logged with tenant and subject id)",
                    report.failed
                );
            }
        }
    }
    Ok(())
}

async fn jobs(state: &AppState, system: SystemDb, command: JobsCommand) -> anyhow::Result<()> {
    let all: Vec<_> = modules::ALL.iter().flat_map(|m| (m.jobs)(state)).collect();
    let mut out = std::io::stdout();
    match command {
        JobsCommand::List => {
            for job in &all {
                writeln!(
                    out,
                    "{:<24} {:<18} {}",
                    job.name, job.schedule, job.description
                )?;
            }
            Ok(())
        }
        JobsCommand::Run { name, dry_run } => {
            let Some(job) = all.iter().find(|job| job.name == name) else {
                let known: Vec<_> = all.iter().map(|j| j.name).collect();
                anyhow::bail!("no job named `{name}`; jobs: {}", known.join(", "));
            };
            let runner = platform::jobs::Runner::new(state, system);
            let shutdown = tokio_util::sync::CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    stop.cancel();
                }
            });
            let outcome = runner
                .run(job, platform::jobs::Trigger::Manual, dry_run, &shutdown)
                .await;
            match outcome {
                RunOutcome::Succeeded(report) => {
                    let verb = if dry_run {
                        "would process"
                    } else {
                        "processed"
                    };
                    writeln!(out, "{name}: succeeded; {verb}:")?;
                    for (item, n) in &report.counts {
                        writeln!(out, "  {item}: {n}")?;
                    }
                    Ok(())
                }
                RunOutcome::Busy => {
                    anyhow::bail!("{name} is running in another process right now; try later")
                }
                RunOutcome::Skipped(reason) => anyhow::bail!("{name} did not run: {reason}"),
                RunOutcome::Fenced => {
                    anyhow::bail!("{name} lost its lock midway and stopped; run it again")
                }
                RunOutcome::Failed(err) => Err(err.context(format!("{name} failed"))),
            }
        }
    }
}

fn demo_report(out: &mut impl Write, outcome: &crate::demo::Outcome) -> anyhow::Result<()> {
    use crate::demo::{self, Outcome};
    match outcome {
        Outcome::AlreadyThere => writeln!(
            out,
            "The demo shop `{}` is already there; nothing was changed.",
            demo::SLUG
        )?,
        Outcome::Created(made) => {
            writeln!(
                out,
                "Demo shop `{}` ({}) is ready:",
                demo::SLUG,
                demo::SHOP_NAME
            )?;
            writeln!(
                out,
                "  {} products in {} categories, {} customers ({} with confirmed marketing consent, 1 restricted),",
                made.products, made.categories, made.customers, made.marketing
            )?;
            writeln!(
                out,
                "  {} orders over {} days (1 refunded, 1 cancelled), 1 open data-subject request.",
                made.orders, made.days
            )?;
        }
    }
    writeln!(out, "Sign in with tenant `{}`:", demo::SLUG)?;
    writeln!(
        out,
        "  owner    {}  {}",
        demo::OWNER_EMAIL,
        demo::OWNER_PASSWORD
    )?;
    writeln!(
        out,
        "  cashier  {}  {}",
        demo::CASHIER_EMAIL,
        demo::CASHIER_PASSWORD
    )?;
    Ok(())
}

fn load(file: Option<&Path>) -> anyhow::Result<Config> {
    Ok(Config::load(file)?)
}

fn check_file(path: &Path, generated: &str) -> anyhow::Result<()> {
    let committed =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if committed == generated {
        Ok(())
    } else {
        anyhow::bail!(
            "{} is out of date with the code; regenerate it with `warung openapi --output {}`",
            path.display(),
            path.display()
        )
    }
}
