//! `attnlab`: train, sample, evaluate and benchmark transformers with pluggable attention metrics.

mod commands;
mod runtime;

use std::io::IsTerminal;
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
    /// Train a model from a run config (TOML).
    Train(commands::train::TrainArgs),
    /// Generate text from a trained run.
    Sample(commands::sample::SampleArgs),
    /// Fix one prediction of an `idw` prototype network with one hand-made key/value pair.
    Augment(commands::augment::AugmentArgs),
    /// Compare runs: loss curves, final table, learned parameters, attention geometry.
    Eval(commands::eval::EvalArgs),
    /// Train a grid of runs (bases x metrics x seeds ...) and report on all of them.
    Sweep(commands::sweep::SweepArgs),
    /// One job of `sweep --jobs N` (internal): trains the planned run given on stdin.
    #[command(hide = true)]
    SweepRun(commands::sweep_run::SweepRunArgs),
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
        Command::Train(args) => commands::train::run(args),
        Command::Sample(args) => commands::sample::run(args),
        Command::Augment(args) => commands::augment::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Sweep(args) => commands::sweep::run(args),
        Command::SweepRun(args) => commands::sweep_run::run(args),
        Command::Bench(args) => commands::bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.downcast_ref::<attnlab_train::Interrupted>().is_some()
                || e.downcast_ref::<attnlab_train::sweep::jobs::SweepInterrupted>().is_some() =>
        {
            eprintln!("{e}");
            ExitCode::from(attnlab_train::interrupt::stop_exit_code())
        }
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
    // Colour codes only on a terminal: a log redirected to a file stays plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
