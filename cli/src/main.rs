//! `agora`: parse the command line, run the command, turn the outcome into an exit code
//! (0 success, 1 failure, 2 usage error). Errors are reported with `anyhow` here and only
//! here.

use std::io::IsTerminal;
use std::process::ExitCode;

use agora_cli::args::{Cli, Command, validate_masters};
use agora_cli::state::View;
use agora_cli::{local, run, state};
use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A usage error in clap's format, with the usage of `subcommand` (exit code 2).
fn usage(subcommand: &str, message: String) -> ExitCode {
    let mut cli = Cli::command();
    cli.build();
    let e = match cli.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(clap::error::ErrorKind::ValueValidation, message),
        None => cli.error(clap::error::ErrorKind::ValueValidation, message),
    };
    let _ = e.print();
    ExitCode::from(2)
}

fn success(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => match args.validate() {
            Err(message) => Ok(usage("run", message)),
            Ok(spec) => Ok(success(run::execute(spec).await?)),
        },
        Command::Local(args) => Ok(success(local::execute(args).await?)),
        Command::State(a) => show("state", a, View::State).await,
        Command::Agents(a) => show("agents", a, View::Agents).await,
        Command::Frameworks(a) => show("frameworks", a, View::Frameworks).await,
        Command::Tasks(a) => show("tasks", a, View::Tasks).await,
        Command::Usage(a) => show_usage(a).await,
    }
}

async fn show_usage(args: agora_cli::args::StateArgs) -> anyhow::Result<ExitCode> {
    let masters = match validate_masters(&args.master.master) {
        Ok(m) => m,
        Err(message) => return Ok(usage("usage", message)),
    };
    let reports = state::fetch_usage(&masters, &args.master.security).await?;
    if args.json {
        let v = agora_views::usage::usage_json(&reports);
        // Serialising a `Value` cannot fail.
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", state::usage_table(&reports));
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(
    name: &str,
    args: agora_cli::args::StateArgs,
    view: View,
) -> anyhow::Result<ExitCode> {
    let masters = match validate_masters(&args.master.master) {
        Ok(m) => m,
        Err(message) => return Ok(usage(name, message)),
    };
    let cluster = state::fetch(&masters, &args.master.security).await?;
    print!("{}", state::render(&cluster, view, args.json));
    Ok(ExitCode::SUCCESS)
}
