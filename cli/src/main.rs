//! `agora`: parse the command line, run the command, turn the outcome into an exit code
//! (see [`agora_cli::output::exit`]: 0 success, 1 failure, 2 usage error, 3 master
//! unreachable). Errors are reported with `anyhow` here and only here.

use std::io::IsTerminal;
use std::process::ExitCode;

use agora_cli::args::{Cli, Command, ReadArgs, validate_masters};
use agora_cli::client::ApiError;
use agora_cli::output::{self, exit};
use agora_cli::resolve::ResolveError;
use agora_cli::state::View;
use agora_cli::{local, logs, ops, run, state};
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
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// The documented exit code of an error.
fn exit_code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<ResolveError>().is_some() {
            return exit::USAGE;
        }
        if let Some(ApiError::Unreachable(_)) = cause.downcast_ref::<ApiError>() {
            return exit::UNREACHABLE;
        }
    }
    if e.to_string().starts_with("cannot reach the master") {
        return exit::UNREACHABLE;
    }
    exit::FAILURE
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
    ExitCode::from(exit::USAGE)
}

fn success(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    }
}

/// Print a command's text (a closed pipe is not an error).
fn printed(text: anyhow::Result<String>) -> anyhow::Result<ExitCode> {
    output::out(&text?);
    Ok(ExitCode::SUCCESS)
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
        Command::Tasks(a) => printed(ops::tasks(a).await),
        Command::Usage(a) => show_usage(a).await,
        Command::Quota(c) => printed(ops::quota(c).await),
        Command::Weights(a) => printed(ops::weights(a).await),
        Command::Reserve(a) => printed(ops::resource_op(ops::ResourceOp::Reserve, a).await),
        Command::Unreserve(a) => printed(ops::resource_op(ops::ResourceOp::Unreserve, a).await),
        Command::Volumes(c) => printed(ops::volumes(c).await),
        Command::Agent(c) => printed(ops::agent(c).await),
        Command::Task(c) => printed(ops::task(c).await),
        Command::Framework(c) => printed(ops::framework(c).await),
        Command::Explain(a) => printed(ops::explain(a).await),
        Command::Logs(a) => logs::logs(a).await.map(|()| ExitCode::SUCCESS),
        Command::Events(a) => logs::events(a).await.map(|()| ExitCode::SUCCESS),
        Command::Completions(a) => {
            let mut buf = Vec::new();
            clap_complete::generate(a.shell, &mut Cli::command(), "agora", &mut buf);
            output::out(&String::from_utf8_lossy(&buf));
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn show_usage(args: ReadArgs) -> anyhow::Result<ExitCode> {
    let masters = match validate_masters(&args.master.master) {
        Ok(m) => m,
        Err(message) => return Ok(usage("usage", message)),
    };
    let reports = state::fetch_usage(&masters, &args.master.security).await?;
    if args.json {
        output::out(&output::json(&agora_views::usage::usage_json(&reports)));
    } else {
        output::out(&state::usage_table(&reports));
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(name: &str, args: ReadArgs, view: View) -> anyhow::Result<ExitCode> {
    let masters = match validate_masters(&args.master.master) {
        Ok(m) => m,
        Err(message) => return Ok(usage(name, message)),
    };
    let cluster = state::fetch(&masters, &args.master.security).await?;
    output::out(&state::render(&cluster, view, args.json));
    Ok(ExitCode::SUCCESS)
}
