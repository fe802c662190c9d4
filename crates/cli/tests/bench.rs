//! `attnlab bench`: the JSON report's shape on a tiny run, and clear errors on bad input.
//! (No timing assertions: timings belong to the benchmark, not to tests.)

use std::process::Command;

fn attnlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_attnlab")).args(args).output().expect("run attnlab")
}

#[test]
fn tiny_bench_reports_every_field_per_metric() {
    let out = attnlab(&[
        "bench",
        "--metrics",
        "dot,idw",
        "--steps",
        "2",
        "--warmup",
        "0",
        "--block-size",
        "8",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["modern"], false, "the report says which attention it measured");
    let results = v["results"].as_array().expect("results list");
    assert_eq!(results.len(), 2);
    for (r, name) in results.iter().zip(["dot", "idw"]) {
        assert_eq!(r["metric"], name);
        for key in ["tokens_per_s", "fwd_ms", "bwd_ms", "opt_ms", "peak_rss_mib"] {
            let x = r[key].as_f64().unwrap_or(-1.0);
            assert!(x > 0.0 && x.is_finite(), "{name}: {key} = {}", r[key]);
        }
        assert_eq!(r["threads"], 1);
        // The per-kind breakdown: every kernel kind ran in both passes, and (with two steps the
        // medians are means) the timed kernels fit inside their phase.
        let k = &r["kinds"];
        let ms = |key: &str| k[key].as_f64().unwrap_or_else(|| panic!("{name}: kinds.{key} = {}", k[key]));
        for kind in ["matmul", "elementwise", "attention"] {
            for pass in ["fwd", "bwd"] {
                assert!(ms(&format!("{kind}_{pass}_ms")) > 0.0, "{name}: no {kind} {pass} time: {k}");
            }
        }
        for pass in ["fwd", "bwd"] {
            let timed: f64 =
                ["matmul", "elementwise", "attention"].iter().map(|x| ms(&format!("{x}_{pass}_ms"))).sum();
            let phase = r[format!("{pass}_ms")].as_f64().unwrap_or(0.0);
            assert!(timed <= phase * 1.001, "{name}: {pass} kernels {timed} ms > phase {phase} ms");
            assert!((timed + ms(&format!("other_{pass}_ms")) - phase).abs() < 1e-6 * phase.max(1.0), "{k}");
        }
    }
}

#[test]
fn bad_bench_input_gives_a_clear_error() {
    for (args, needle) in [
        (vec!["bench", "--metrics", "manhattan"], "manhattan"),
        (vec!["bench", "--steps", "0"], "--steps"),
        (vec!["bench", "--fused", "attn,warp"], "warp"),
        (vec!["bench", "--device", "tpu"], "tpu"),
        (vec!["--threads", "0", "bench"], "--threads"),
    ] {
        let out = attnlab(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: error does not name `{needle}`: {err}");
    }
}

#[test]
fn a_modern_bench_says_so_in_its_table_and_its_json() {
    let args = ["bench", "--metrics", "dot", "--steps", "1", "--warmup", "0", "--block-size", "8"];
    let out = attnlab(&[&args[..], &["--batch-size", "2", "--threads", "1", "--modern"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().next().is_some_and(|l| l.contains("--modern")), "{table}");
    let out = attnlab(&[&args[..], &["--batch-size", "2", "--threads", "1", "--modern", "--json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["modern"], true);
}
