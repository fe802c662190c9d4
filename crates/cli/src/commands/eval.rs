//! `attnlab eval RUN... --out DIR`: the comparison report of finished or running runs.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Arguments of `attnlab eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directories (each holds config.json, metrics.jsonl, last/).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Report directory (report.md, report.json, pictures).
    #[arg(long, default_value = "checkpoints/report")]
    pub out: PathBuf,
    /// The metric every configuration is compared with (same task and settings).
    #[arg(long, default_value = "dot")]
    pub baseline: String,
}

/// Writes the report and prints where it is.
pub fn run(args: EvalArgs) -> Result<()> {
    let baseline = attnlab_model::MetricKind::parse(&args.baseline)
        .map_err(|e| anyhow::anyhow!("--baseline {}: {e}", args.baseline))?;
    let options = attnlab_eval::ReportOptions { baseline: baseline.name().to_string(), ..Default::default() };
    let report = attnlab_eval::write_report_with(&args.runs, &args.out, &options)?;
    for u in &report.unreadable {
        eprintln!("warning: {} (left out of the report)", u.line());
    }
    println!(
        "report of {} runs in {} task group(s): {}",
        report.n_runs,
        report.groups.len(),
        args.out.join("report.md").display()
    );
    Ok(())
}
