//! The `memring` binary: parses the command line and runs one command. The
//! command line, the role starters with their signal handling, and the bench
//! harness live here, on the binary side: no service module can reach them.

mod bench;
mod cli;
mod run;

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{one_line_clap_error, BenchCommand, Cli, Command};
use clap::error::ErrorKind;
use clap::Parser;
use memring::plan::run_plan;

/// Runs a service command on a multi-threaded runtime, logging to stderr.
fn run_service(
    service: impl std::future::Future<Output = Result<(), String>>,
) -> Result<String, String> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(service)?;
    Ok(String::new())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = error.print();
                return if error.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            eprintln!("{}", one_line_clap_error(&error));
            return ExitCode::from(2);
        }
    };
    let outcome = match cli.command {
        Command::Plan(args) => run_plan(&args.request()).map_err(|e| e.to_string()),
        Command::Up(args) => run_service(run::run_up(args)),
        Command::Frontend(args) => run_service(run::run_frontend(args)),
        Command::CacheNode(args) => run_service(run::run_cache_node(args)),
        Command::Manager(args) => run_service(run::run_manager(args)),
        Command::Bench(BenchCommand::Read(args)) => run_service(async move {
            let report = crate::bench::bench_read(args).await?;
            print!("{report}");
            Ok(())
        }),
    };
    match outcome {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(text.as_bytes()).is_err() || stdout.flush().is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
