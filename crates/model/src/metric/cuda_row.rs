//! [`CudaRow`]: a row of the metric table in CUDA C. The expressions themselves live in
//! [`super::table`], beside the Rust formulas they mirror; the tests here evaluate them on the
//! CPU and compare them with those formulas, so a wrong expression fails without a GPU.

/// A row of the metric table in CUDA C, compiled into the GPU kernels ([`crate::gpu`]).
///
/// Each field is an `f32` expression over `z` (the metric's input), `s` (the score, where a
/// derivative reads it), `scale` (the head's score scale), `eps` and `head` (tau for `cosine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaRow {
    /// [`super::table::Metric::score`].
    pub score: &'static str,
    /// [`super::table::Metric::dscore`] (may read `s`).
    pub dscore: &'static str,
    /// [`super::table::Metric::dscore_dhead`].
    pub dscore_dhead: &'static str,
    /// [`super::table::Metric::weight`] for [`super::table::Normalise::Direct`] (unused otherwise).
    pub weight: &'static str,
}

impl CudaRow {
    /// A row whose weight is `exp(score)` (every [`super::table::Normalise`] but
    /// [`super::table::Normalise::Direct`]).
    pub const fn softmax(score: &'static str, dscore: &'static str, dscore_dhead: &'static str) -> Self {
        CudaRow { score, dscore, dscore_dhead, weight: "expf(s)" }
    }
}

#[cfg(test)]
mod tests {
    use super::super::MetricKind;
    use super::super::table::{Consts, Metric, Normalise, with_metric};

    /// Values of the names an expression may read.
    struct Env {
        z: f64,
        s: f64,
        scale: f64,
        eps: f64,
        head: f64,
    }

    /// Evaluates a CUDA C expression of the table's small grammar: float literals (`1.0f`),
    /// `z`, `s`, `scale`, `eps`, `head`, unary `-`, `+ - * /`, parentheses, `expf`, `logf`.
    fn eval(src: &str, env: &Env) -> f64 {
        let toks: Vec<String> = tokens(src);
        let mut at = 0;
        let v = sum(&toks, &mut at, env);
        assert_eq!(at, toks.len(), "trailing input in `{src}`");
        v
    }

    fn tokens(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for ch in src.chars() {
            if ch.is_alphanumeric() || ch == '.' || ch == '_' {
                cur.push(ch);
            } else {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                if !ch.is_whitespace() {
                    out.push(ch.to_string());
                }
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    fn sum(t: &[String], at: &mut usize, env: &Env) -> f64 {
        let mut v = product(t, at, env);
        while let Some(op) = t.get(*at).filter(|o| *o == "+" || *o == "-").cloned() {
            *at += 1;
            let r = product(t, at, env);
            v = if op == "+" { v + r } else { v - r };
        }
        v
    }

    fn product(t: &[String], at: &mut usize, env: &Env) -> f64 {
        let mut v = unary(t, at, env);
        while let Some(op) = t.get(*at).filter(|o| *o == "*" || *o == "/").cloned() {
            *at += 1;
            let r = unary(t, at, env);
            v = if op == "*" { v * r } else { v / r };
        }
        v
    }

    fn unary(t: &[String], at: &mut usize, env: &Env) -> f64 {
        let tok = t[*at].clone();
        *at += 1;
        match tok.as_str() {
            "-" => -unary(t, at, env),
            "(" => {
                let v = sum(t, at, env);
                assert_eq!(t[*at], ")");
                *at += 1;
                v
            }
            "expf" | "logf" => {
                assert_eq!(t[*at], "(");
                let v = unary(t, at, env);
                if tok == "expf" { v.exp() } else { v.ln() }
            }
            "z" => env.z,
            "s" => env.s,
            "scale" => env.scale,
            "eps" => env.eps,
            "head" => env.head,
            lit => lit.trim_end_matches('f').parse().unwrap_or_else(|_| panic!("unknown token `{lit}`")),
        }
    }

    /// Every metric's CUDA expressions give its Rust formulas' values (score, derivative,
    /// derivative in the head parameter, and the closed-form weight of `Normalise::Direct`).
    #[test]
    fn cuda_rows_compute_what_the_rust_rows_compute() {
        let c = Consts { scale: 0.7f32, eps: 1e-2 };
        let head = 1.3f32;
        for kind in MetricKind::ALL {
            for z in [0.05f32, 0.3, 1.0, 2.5] {
                with_metric!(kind, M => {
                    let row = M::CUDA;
                    let s = M::score(c, &head, z);
                    let env = Env { z: z as f64, s: s as f64, scale: 0.7, eps: 1e-2, head: head as f64 };
                    let close = |a: f64, b: f32, what: &str| {
                        let ok = (a - b as f64).abs() <= 1e-5 * (1.0 + a.abs());
                        assert!(ok, "{kind} z={z} {what}: cuda {a}, rust {b}");
                    };
                    close(eval(row.score, &env), s, "score");
                    close(eval(row.dscore, &env), M::dscore(c, head, z, || s), "dscore");
                    close(eval(row.dscore_dhead, &env), M::dscore_dhead(z), "dscore_dhead");
                    let w = match M::NORMALISE {
                        Normalise::Direct => M::weight(c, head, z),
                        Normalise::Softmax | Normalise::SoftmaxBounded => s.exp(),
                    };
                    close(eval(row.weight, &env), w, "weight");
                });
            }
        }
    }
}
