//! `attnlab augment RUN --point X,Y --class C [--replace K] --out DIR`: low-impact augmentation
//! of a trained `idw` prototype network (McCarter 2023).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

/// Arguments of `attnlab augment`.
#[derive(Args, Debug)]
pub struct AugmentArgs {
    /// A prototype-network run directory (its `last/` checkpoint) or checkpoint directory.
    pub run: PathBuf,
    /// The point to fix, as comma-separated coordinates (`0.5,0.25`).
    #[arg(long, allow_hyphen_values = true)]
    pub point: String,
    /// The class the point should get.
    #[arg(long)]
    pub class: usize,
    /// Replace prototype K instead of adding a new one.
    #[arg(long, value_name = "K")]
    pub replace: Option<usize>,
    /// Where to write the augmented checkpoint.
    #[arg(long)]
    pub out: PathBuf,
}

/// Augments, saves the checkpoint (with `augment.json`) and prints the report.
pub fn run(args: AugmentArgs) -> Result<()> {
    let point = parse_point(&args.point)?;
    let report = attnlab_train::augment::augment_run(&args.run, &point, args.class, args.replace, &args.out)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Parses `x,y` into finite numbers.
fn parse_point(text: &str) -> Result<Vec<f64>> {
    let point = text
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .with_context(|| format!("--point `{text}`: `{}` is not a number", s.trim()))
        })
        .collect::<Result<Vec<_>>>()?;
    if point.iter().any(|v| !v.is_finite()) {
        bail!("--point `{text}`: coordinates must be finite")
    }
    if point.len() != 2 {
        bail!("--point `{text}`: expected two coordinates `X,Y`, got {}", point.len())
    }
    Ok(point)
}
