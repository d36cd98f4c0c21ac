//! `warung`: one binary for every role (serve, migrate, operator commands).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = gateway::cli::Cli::parse();
    match gateway::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Startup errors go to stderr even before telemetry is up.
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("warung: {err:#}\n"),
            );
            std::process::ExitCode::FAILURE
        }
    }
}
