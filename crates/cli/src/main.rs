//! `attnlab`: train, sample, evaluate and benchmark transformers with pluggable attention metrics.

mod commands;
mod runtime;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train the same small models with different attention metrics and compare them.
#[derive(Parser)]
#[command(name = "attnlab", version, about)]
struct Cli {
    /// Log more (`-v` debug, `-vv` trace); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// CPU threads for tensor work (default: RAYON_NUM_THREADS, else the physical cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the attention metrics and their score formulas.
    Metrics,
    /// Training speed and peak memory of the reference GPT per attention metric.
    Bench(commands::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = runtime::apply(cli.threads) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Metrics => commands::metrics::run(),
        Command::Bench(args) => commands::bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
