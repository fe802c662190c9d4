//! Fused norms, GELU, cross-entropy and linear maps against candle's composed ops; the kernel
//! switch list.

use attnlab_model::fused;
use candle_core::{D, DType, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::util::{DEV, max_abs, max_abs_diff, randn};

fn composed_norm(x: &Tensor, w: &Tensor, eps: f64, rms: bool) -> Result<Tensor> {
    let c = if rms { x.clone() } else { x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)? };
    let var = c.sqr()?.mean_keepdim(D::Minus1)?;
    c.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(w)
}

/// Compares `fused(x, w)` with `composed(x, w)` and their gradients under a random probe.
fn check_pair(
    name: &str,
    shape: &[usize],
    wdim: Option<usize>,
    fused_f: impl Fn(&Tensor, Option<&Tensor>) -> Result<Tensor>,
    composed_f: impl Fn(&Tensor, Option<&Tensor>) -> Result<Tensor>,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = Var::from_tensor(&(randn(&mut rng, shape, 1.5)? + 0.3)?)?;
    let w = match wdim {
        Some(c) => Some(Var::from_tensor(&(randn(&mut rng, &[c], 0.5)? + 1.0)?)?),
        None => None,
    };
    let probe = randn(&mut rng, shape, 1.0)?;
    let run = |f: &dyn Fn(&Tensor, Option<&Tensor>) -> Result<Tensor>| -> Result<(Tensor, Vec<Tensor>)> {
        let y = f(x.as_tensor(), w.as_ref().map(|w| w.as_tensor()))?;
        let grads = (&y * &probe)?.sum_all()?.backward()?;
        let mut g = vec![grads.get(x.as_tensor()).cloned().expect("x gradient")];
        if let Some(w) = &w {
            g.push(grads.get(w.as_tensor()).cloned().expect("w gradient"));
        }
        Ok((y, g))
    };
    let (yf, gf) = run(&fused_f)?;
    let (yr, gr) = run(&composed_f)?;
    let d = max_abs_diff(&yf, &yr)?;
    assert!(d < 1e-5 * (1.0 + max_abs(&yr)?), "{name}: forward differs by {d}");
    for (i, (a, b)) in gf.iter().zip(&gr).enumerate() {
        let d = max_abs_diff(a, b)?;
        assert!(d < 1e-4 * (1.0 + max_abs(b)?), "{name}: gradient {i} differs by {d}");
    }
    Ok(())
}

#[test]
fn fused_norms_and_gelu_match_composed() -> Result<()> {
    for shape in [vec![3usize, 5, 16], vec![300, 64]] {
        let c = shape[shape.len() - 1];
        let wf = |w: Option<&Tensor>| w.cloned().expect("weight");
        check_pair(
            "layer norm",
            &shape,
            Some(c),
            |x, w| fused::layer_norm(x, &wf(w), 1e-5),
            |x, w| composed_norm(x, &wf(w), 1e-5, false),
        )?;
        check_pair(
            "rms norm",
            &shape,
            Some(c),
            |x, w| fused::rms_norm(x, &wf(w), 1e-5),
            |x, w| composed_norm(x, &wf(w), 1e-5, true),
        )?;
        check_pair("gelu", &shape, None, |x, _| fused::gelu(x), |x, _| x.gelu_erf())?;
    }
    Ok(())
}

#[test]
fn fused_cross_entropy_matches_candle() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for (n, v) in [(7usize, 5usize), (600, 65)] {
        let z = Var::from_tensor(&randn(&mut rng, &[n, v], 3.0)?)?;
        let t: Vec<u32> = (0..n).map(|_| rng.random_range(0..v as u32)).collect();
        let t = Tensor::from_vec(t, n, &DEV)?;
        let lf = fused::cross_entropy(z.as_tensor(), &t)?;
        let lr = candle_nn::loss::cross_entropy(z.as_tensor(), &t)?;
        assert!(max_abs_diff(&lf, &lr)? < 1e-5, "loss {lf} vs {lr}");
        let gf = (&lf * 3.0)?.backward()?.get(z.as_tensor()).cloned().expect("fused gradient");
        let gr = (&lr * 3.0)?.backward()?.get(z.as_tensor()).cloned().expect("candle gradient");
        assert!(max_abs_diff(&gf, &gr)? < 1e-6, "cross-entropy gradients differ");
    }
    let z = Tensor::zeros((2, 3), DType::F32, &DEV)?;
    let bad = Tensor::new(&[0u32, 3], &DEV)?;
    let err = fused::cross_entropy(&z, &bad).expect_err("out of range target");
    assert!(err.to_string().contains("out of range"), "{err}");
    Ok(())
}

#[test]
fn kernel_list_parses_and_rejects_unknown_names() -> Result<()> {
    assert_eq!(fused::parse_kernels("none")?, 0);
    assert_eq!(fused::parse_kernels("weights,ce")?, fused::Kernel::Weights as u8 | fused::Kernel::Ce as u8);
    assert_eq!(fused::parse_kernels("attn,flash")?, fused::parse_kernels("weights,tiles")?, "old names");
    let err = fused::parse_kernels("attn,bogus").expect_err("unknown kernel");
    assert!(err.to_string().contains("bogus"), "{err}");
    Ok(())
}

#[test]
fn fused_gelu_matches_libm_erf_closely_over_a_wide_range() -> Result<()> {
    let xs: Vec<f32> = (-1200..=1200).map(|i| i as f32 * 0.01).collect();
    let x = Tensor::from_vec(xs.clone(), xs.len(), &DEV)?;
    let d = max_abs_diff(&fused::gelu(&x)?, &x.gelu_erf()?)?;
    assert!(d < 2e-6, "fused GELU differs from gelu_erf by {d}");
    Ok(())
}

/// The fused linear map against candle's `Linear`, with and without bias, on 2-D and 3-D inputs.
#[test]
fn fused_linear_matches_candle_linear() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for (shape, bias) in [(vec![5usize, 7], false), (vec![3, 9, 7], true), (vec![2, 40, 7], false)] {
        let x = Var::from_tensor(&randn(&mut rng, &shape, 1.0)?)?;
        let w = Var::from_tensor(&randn(&mut rng, &[6, 7], 0.5)?)?;
        let bv = Var::from_tensor(&randn(&mut rng, &[6], 0.5)?)?;
        let b = bias.then(|| bv.as_tensor().clone());
        let mut out_shape = shape.clone();
        out_shape[shape.len() - 1] = 6;
        let probe = randn(&mut rng, &out_shape, 1.0)?;
        let run = |fused_path: bool| -> Result<Vec<Tensor>> {
            let y = if fused_path {
                fused::linear(x.as_tensor(), w.as_tensor(), b.as_ref())?.expect("kernel applies")
            } else {
                candle_core::Module::forward(
                    &candle_nn::Linear::new(w.as_tensor().clone(), b.clone()),
                    x.as_tensor(),
                )?
            };
            let grads = (&y * &probe)?.sum_all()?.backward()?;
            let mut out = vec![y];
            out.push(grads.get(x.as_tensor()).cloned().expect("x gradient"));
            out.push(grads.get(w.as_tensor()).cloned().expect("w gradient"));
            if bias {
                out.push(grads.get(bv.as_tensor()).cloned().expect("bias gradient"));
            }
            Ok(out)
        };
        for (i, (a, r)) in run(true)?.iter().zip(&run(false)?).enumerate() {
            assert_eq!(a.dims(), r.dims(), "{shape:?}: shape of output/gradient {i}");
            let dd = max_abs_diff(a, r)?;
            assert!(
                dd < 1e-5 * (1.0 + max_abs(r)?),
                "{shape:?} bias={bias}: output/gradient {i} differs by {dd}"
            );
        }
    }
    let x = Tensor::zeros((2, 5), DType::F32, &DEV)?;
    let w = Tensor::zeros((3, 4), DType::F32, &DEV)?;
    let err = fused::linear(&x, &w, None).expect_err("mismatched shapes");
    assert!(err.to_string().contains("do not fit"), "{err}");
    Ok(())
}
