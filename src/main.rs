//! The `opentime` binary: parses the command line and hands off to the library.

use opentime::config::{parse_cli, Command};
use std::process::ExitCode;

/// mimalloc instead of the system allocator: renders allocate and free megabyte-sized pixmaps
/// on many threads, and glibc's per-thread arenas kept that memory (RSS grew to twice the
/// heap under 100,000 distinct subscribers; README, *Chaos run*).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    init_logging();
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("opentime: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => run_server(*args),
        Command::Render(args) => opentime::run_render(&args).map_err(|e| e.to_string()),
        Command::Check(args) => opentime::run_check(&args).map_err(|e| e.to_string()),
        Command::Url(args) => opentime::run_url(&args)
            .map(|url| println!("{url}"))
            .map_err(|e| e.to_string()),
        Command::Events(args) => run_events(args),
        Command::Studio(args) => run_studio(args),
        Command::Report(args) => run_report(args),
        Command::Tokens(args) => {
            opentime::run_tokens(&args, std::io::stdin().lock(), std::io::stdout().lock())
                .map(|rows| eprintln!("{rows} tokens written"))
                .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("opentime: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(args: opentime::config::ServeArgs) -> Result<(), String> {
    on_all_cores(opentime::serve(args))
}

/// `opentime studio`: serves until Ctrl-C or SIGTERM.
fn run_studio(args: opentime::config::StudioArgs) -> Result<(), String> {
    on_all_cores(opentime::run_studio(args))
}

/// Runs a long-lived command on a runtime with a worker per core.
fn on_all_cores<E: std::fmt::Display>(
    command: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(command).map_err(|e| e.to_string())
}

/// `opentime report CAMPAIGN`: the table (or JSON) on stdout.
fn run_report(args: opentime::config::ReportArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let text = runtime
        .block_on(opentime::run_report(&args))
        .map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// `opentime events`: JSON lines on stdout, a summary on stderr.
fn run_events(args: opentime::config::EventsArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let read = runtime
        .block_on(opentime::run_events(&args, std::io::stdout().lock()))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "{} events read from {} stream(s) (group `{}` created on {})",
        read.printed, read.streams, args.group, read.groups_created
    );
    Ok(())
}

/// Logs go to stderr; `OPENTIME_LOG` (or `RUST_LOG`) sets the filter, `info` by default. The
/// Redis client's own messages are errors only unless the filter names `redis`: while a Cluster
/// node is down it warns on every reconnection attempt (hundreds a second), and opentime logs
/// what matters to an operator itself (fallbacks, store errors, failovers).
fn init_logging() {
    let mut filter = std::env::var("OPENTIME_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    if !filter.contains("redis") {
        filter.push_str(",redis=error");
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
}
