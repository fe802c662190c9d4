//! Franke's (1979, 1982) test function F1, his 100-node scattered set, the 33 x 33 evaluation
//! grid and the error measures used to compare scattered-data interpolators.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// Franke's F1 on [0,1]^2:
/// `0.75 e^{-((9x-2)^2 + (9y-2)^2)/4} + 0.75 e^{-(9x+1)^2/49 - (9y+1)/10}
///  + 0.5 e^{-((9x-7)^2 + (9y-3)^2)/4} - 0.2 e^{-(9x-4)^2 - (9y-7)^2}`.
pub fn franke_f1(x: f64, y: f64) -> f64 {
    let (a, b) = (9.0 * x, 9.0 * y);
    0.75 * (-((a - 2.0).powi(2) + (b - 2.0).powi(2)) / 4.0).exp()
        + 0.75 * (-(a + 1.0).powi(2) / 49.0 - (b + 1.0) / 10.0).exp()
        + 0.5 * (-((a - 7.0).powi(2) + (b - 3.0).powi(2)) / 4.0).exp()
        - 0.2 * (-(a - 4.0).powi(2) - (b - 7.0).powi(2)).exp()
}

/// Side of the uniform evaluation grid (33 x 33 points of [0,1]^2, endpoints included).
pub const GRID_SIDE: usize = 33;

/// The `side x side` uniform grid of [0,1]^2, row-major in y then x: `(i/(side-1), j/(side-1))`.
pub fn grid(side: usize) -> Vec<[f64; 2]> {
    let h = 1.0 / (side.max(2) - 1) as f64;
    (0..side).flat_map(|j| (0..side).map(move |i| [i as f64 * h, j as f64 * h])).collect()
}

/// Parses a node file: one node a line as `x y` (whitespace or comma separated); blank lines and
/// lines starting with `#` are skipped. `source` names the file in errors.
pub fn parse_nodes(text: &str, source: &str) -> Result<Vec<[f64; 2]>> {
    let mut nodes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> =
            line.split(|c: char| c.is_whitespace() || c == ',').filter(|f| !f.is_empty()).collect();
        let parsed: Vec<Option<f64>> = fields.iter().map(|f| f.parse::<f64>().ok()).collect();
        match parsed.as_slice() {
            [Some(x), Some(y)] if x.is_finite() && y.is_finite() => nodes.push([*x, *y]),
            [Some(_), Some(_)] => bail!("{source} line {}: coordinates must be finite, got `{line}`", i + 1),
            _ => bail!("{source} line {}: expected two numbers `x y`, got `{line}`", i + 1),
        }
    }
    if nodes.is_empty() {
        bail!("{source} holds no nodes")
    }
    Ok(nodes)
}

/// Interpolation errors against the truth on a set of points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// `max_i |pred_i - truth_i|`.
    pub max_abs: f64,
    /// `mean_i |pred_i - truth_i|`.
    pub mean_abs: f64,
    /// `sqrt(mean_i (pred_i - truth_i)^2)`.
    pub rms: f64,
}

impl Errors {
    /// Errors of `pred` against `truth` (same length, at least one point).
    pub fn of(pred: &[f64], truth: &[f64]) -> Result<Self> {
        if pred.len() != truth.len() || pred.is_empty() {
            bail!(
                "error measures need equal, non-empty lists ({} predictions, {} truths)",
                pred.len(),
                truth.len()
            )
        }
        let n = pred.len() as f64;
        let abs: Vec<f64> = pred.iter().zip(truth).map(|(p, t)| (p - t).abs()).collect();
        Ok(Self {
            max_abs: abs.iter().copied().fold(0.0, f64::max),
            mean_abs: abs.iter().sum::<f64>() / n,
            rms: (abs.iter().map(|a| a * a).sum::<f64>() / n).sqrt(),
        })
    }
}

/// Franke's 100 scattered nodes (Franke 1982; ACM TOMS algorithm 792, TESTDT node set 1).
pub const FRANKE_NODES: [[f64; 2]; 100] = [
    [0.0227035, -0.0310206],
    [0.0539888, 0.1586742],
    [0.0217008, 0.2576924],
    [0.0175129, 0.3414014],
    [0.0019029, 0.4943596],
    [-0.0509685, 0.5782854],
    [0.0395408, 0.6993418],
    [-0.0487061, 0.7470194],
    [0.0315828, 0.9107649],
    [-0.0418785, 0.9962890],
    [0.1324189, 0.0501330],
    [0.1090271, 0.0918555],
    [0.1254439, 0.2592973],
    [0.0934540, 0.3381592],
    [0.0767578, 0.4171125],
    [0.1451874, 0.5615563],
    [0.0626494, 0.6552235],
    [0.1452734, 0.7524066],
    [0.0958668, 0.9146523],
    [0.0695559, 0.9632421],
    [0.2645602, 0.0292939],
    [0.2391645, 0.0602303],
    [0.2088990, 0.2668783],
    [0.2767329, 0.3696044],
    [0.1714726, 0.4801738],
    [0.2266781, 0.5940595],
    [0.1909212, 0.6878797],
    [0.1867647, 0.8185576],
    [0.2304634, 0.9046507],
    [0.2426219, 0.9805412],
    [0.3663168, 0.0396955],
    [0.3857662, 0.0684484],
    [0.3832392, 0.2389548],
    [0.3179087, 0.3124129],
    [0.3466321, 0.4902989],
    [0.3776591, 0.5199303],
    [0.3873159, 0.6445227],
    [0.3812917, 0.8203789],
    [0.3795364, 0.8938079],
    [0.2803515, 0.9711719],
    [0.4149771, -0.0284618],
    [0.4277679, 0.1560965],
    [0.4200010, 0.2262471],
    [0.4663631, 0.3175094],
    [0.4855658, 0.3891417],
    [0.4092026, 0.5084949],
    [0.4792578, 0.6324247],
    [0.4812279, 0.7511007],
    [0.3977761, 0.8489712],
    [0.4027321, 0.9978728],
    [0.5848691, -0.0271948],
    [0.5730076, 0.1272430],
    [0.6063893, 0.2709269],
    [0.5013894, 0.3477728],
    [0.5741311, 0.4259422],
    [0.6106955, 0.6084711],
    [0.5990105, 0.6733781],
    [0.5380621, 0.7235242],
    [0.6096967, 0.9242411],
    [0.5026188, 1.0308762],
    [0.6616928, 0.0255959],
    [0.6427836, 0.0707835],
    [0.6396475, 0.2008336],
    [0.6703963, 0.3259843],
    [0.7001181, 0.4890704],
    [0.6333590, 0.5096324],
    [0.6908947, 0.6697880],
    [0.6895638, 0.7759569],
    [0.6718889, 0.9366096],
    [0.6837675, 1.0064516],
    [0.7736939, 0.0285374],
    [0.7635332, 0.1021403],
    [0.7410424, 0.1936581],
    [0.8258981, 0.3235775],
    [0.7306034, 0.4714228],
    [0.8086609, 0.6091595],
    [0.8214531, 0.6685053],
    [0.7290640, 0.8022808],
    [0.8076643, 0.8476790],
    [0.8170951, 1.0512371],
    [0.8424572, 0.0380499],
    [0.8684053, 0.0902048],
    [0.8366923, 0.2083092],
    [0.9418461, 0.3318491],
    [0.8478122, 0.4335632],
    [0.8599583, 0.5910139],
    [0.9175700, 0.6307383],
    [0.8596328, 0.8144841],
    [0.9279871, 0.9042310],
    [0.8512805, 0.9696030],
    [1.0449820, -0.0120900],
    [0.9670631, 0.1334114],
    [0.9857884, 0.2695844],
    [0.9676313, 0.3795281],
    [1.0129299, 0.4396054],
    [0.9657040, 0.5044425],
    [1.0019855, 0.6941519],
    [1.0359297, 0.7459923],
    [1.0414677, 0.8682081],
    [0.9471506, 0.9801409],
];
