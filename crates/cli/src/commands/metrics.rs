//! `attnlab metrics`: the metrics the attention layer offers.

use attnlab_model::MetricKind;

/// Prints every metric's config name and score formula.
pub fn run() -> anyhow::Result<()> {
    for m in MetricKind::ALL {
        let formula = match m {
            MetricKind::Dot => "q.k / sqrt(d)",
            MetricKind::Cosine => "tau_h * q.k / (|q| |k|)",
            MetricKind::NegSqEuclid => "-|q-k|^2 / sqrt(d)",
            MetricKind::NegEuclid => "-|q-k|^p / sqrt(d)",
            MetricKind::Idw => "-log(eps + |q-k|^p)   (softmax = Shepard inverse distance weighting)",
            MetricKind::InvDist => "1 / (eps + |q-k|^p)",
            MetricKind::Rbf => "exp(-|q-k|^p / 2)",
        };
        println!("{:<14} {formula}", m.name());
    }
    Ok(())
}
