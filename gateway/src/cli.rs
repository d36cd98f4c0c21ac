//! `warung` subcommands.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use platform::{AppState, config::Config, db::SystemDb};

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
        /// `all`, or a comma-separated list (tenants, users, auth, products, orders, notifications, audit).
        #[arg(long, default_value = "all")]
        modules: String,
    },
    /// Apply pending database migrations (as the schema owner, `database.migrate_url`).
    Migrate,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
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
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, print it with secrets redacted.
    Check,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { modules } => {
            let modules = modules::select(&modules)?;
            let config = load(cli.config.as_deref())?;
            platform::telemetry::init(&config.telemetry);
            let system = SystemDb::connect(&config.database)?;
            let listener = tokio::net::TcpListener::bind(config.http.bind)
                .await
                .with_context(|| format!("cannot bind {}", config.http.bind))?;
            let state = AppState::connect(config)?;
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
    }
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
